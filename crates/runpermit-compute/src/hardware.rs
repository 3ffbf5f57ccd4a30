//! The accelerator table: peak dense FLOP/s per numeric precision, kept as data in
//! `data/hardware.toml` and compiled into the binary, so that a gate or an auditor
//! computes with exactly the figures the authority used.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::quantity::FlopRate;

/// The table that ships with runpermit.
pub const BUILTIN_HARDWARE_TOML: &str = include_str!("../data/hardware.toml");

/// A numeric precision whose peak rate the table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// IEEE double precision (the tensor-core rate where the chip has one).
    Fp64,
    /// IEEE single precision on the plain vector units.
    Fp32,
    /// NVIDIA TensorFloat-32 on tensor cores (and equivalents).
    Tf32,
    /// bfloat16 on matrix units.
    Bf16,
    /// IEEE half precision on matrix units.
    Fp16,
    /// 8-bit floating point (E4M3/E5M2) on matrix units.
    Fp8,
    /// 8-bit integer operations (OPS, counted like FLOP).
    Int8,
}

impl Precision {
    /// Every precision, in table order.
    pub const ALL: [Precision; 7] = [
        Precision::Fp64,
        Precision::Fp32,
        Precision::Tf32,
        Precision::Bf16,
        Precision::Fp16,
        Precision::Fp8,
        Precision::Int8,
    ];

    /// The lower-case name used in files, flags and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp64 => "fp64",
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the precisions the table knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision {0:?}: expected one of fp64, fp32, tf32, bf16, fp16, fp8, int8")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Precision::ALL
            .into_iter()
            .find(|p| p.as_str() == wanted)
            .ok_or_else(|| UnknownPrecision(s.to_owned()))
    }
}

/// One accelerator model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accelerator {
    /// Stable identifier, lower-case kebab (`nvidia-h100-sxm`).
    pub id: String,
    /// Canonical display name (`NVIDIA H100 SXM`).
    pub name: String,
    /// Maker.
    pub vendor: String,
    /// Year of availability.
    #[serde(default)]
    pub released: Option<String>,
    /// Other spellings, including those in Epoch AI's `Training hardware` column.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Datasheet or whitepaper the figures come from.
    pub source: String,
    /// Per-precision sources, where a figure comes from another document.
    #[serde(default)]
    pub sources: BTreeMap<Precision, String>,
    /// How the figures were read (vector vs tensor FP64, per-core conversions, ...).
    #[serde(default)]
    pub notes: Option<String>,
    /// Peak dense FLOP/s (no structured sparsity) per precision, per chip.
    pub peak_flops: BTreeMap<Precision, FlopRate>,
}

impl Accelerator {
    /// Peak dense rate at `precision`, if the chip supports it.
    pub fn peak(&self, precision: Precision) -> Option<FlopRate> {
        self.peak_flops.get(&precision).copied()
    }

    /// The highest peak over all precisions: the chip's theoretical maximum, as regulations
    /// that count "integer or floating-point operations" read it.
    pub fn max_peak(&self) -> Option<(Precision, FlopRate)> {
        self.peak_flops
            .iter()
            .map(|(p, r)| (*p, *r))
            .max_by(|a, b| a.1.get().total_cmp(&b.1.get()))
    }

    /// The source for the figure at `precision`.
    pub fn source_for(&self, precision: Precision) -> &str {
        self.sources.get(&precision).unwrap_or(&self.source)
    }
}

/// Why the hardware table is unusable. Only a broken edit of the data file causes these.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file is not valid TOML or does not follow the schema.
    #[error("hardware table: {0}")]
    Parse(#[from] toml::de::Error),
    /// The schema version is not one this build reads.
    #[error("hardware table: schema {0} is not supported (expected 1)")]
    Schema(u32),
    /// Two entries share an id, a name or an alias.
    #[error("hardware table: {0:?} names two accelerators")]
    Duplicate(String),
    /// An entry lists no peak rate.
    #[error("hardware table: {0} has no peak_flops")]
    NoFigures(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    schema: u32,
    accelerator: Vec<Accelerator>,
}

/// A name matched no accelerator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown accelerator {name:?}{}", suggestion_text(.suggestions))]
pub struct UnknownAccelerator {
    /// What was asked for.
    pub name: String,
    /// The closest known names, best first.
    pub suggestions: Vec<String>,
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", suggestions.join(", "))
    }
}

/// All accelerators, looked up by name or alias, case-insensitively and ignoring spacing,
/// hyphens and underscores.
#[derive(Debug, Clone)]
pub struct HardwareTable {
    accelerators: Vec<Accelerator>,
    /// Normalised name or alias → index.
    index: BTreeMap<String, usize>,
}

/// Lower case, with spaces, hyphens and underscores removed: "H100-SXM" and "h100 sxm" meet.
fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

impl HardwareTable {
    /// The table compiled into this build.
    pub fn builtin() -> &'static HardwareTable {
        static TABLE: OnceLock<HardwareTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            // The file is part of the source tree and a unit test parses it, so a failure
            // here is a build defect, not bad input.
            HardwareTable::from_toml(BUILTIN_HARDWARE_TOML)
                .unwrap_or_else(|e| panic!("built-in {e}"))
        })
    }

    /// Reads a table in the `data/hardware.toml` schema.
    pub fn from_toml(text: &str) -> Result<HardwareTable, TableError> {
        let file: TableFile = toml::from_str(text)?;
        if file.schema != 1 {
            return Err(TableError::Schema(file.schema));
        }
        let mut index = BTreeMap::new();
        for (i, acc) in file.accelerator.iter().enumerate() {
            if acc.peak_flops.is_empty() {
                return Err(TableError::NoFigures(acc.name.clone()));
            }
            let mut keys: Vec<String> = [&acc.id, &acc.name]
                .into_iter()
                .chain(&acc.aliases)
                .map(|n| normalise(n))
                .collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                if index.insert(key.clone(), i).is_some() {
                    return Err(TableError::Duplicate(key));
                }
            }
        }
        Ok(HardwareTable {
            accelerators: file.accelerator,
            index,
        })
    }

    /// Every accelerator, in file order.
    pub fn accelerators(&self) -> &[Accelerator] {
        &self.accelerators
    }

    /// The accelerator `name` refers to (id, name or alias), or the closest known names.
    pub fn lookup(&self, name: &str) -> Result<&Accelerator, UnknownAccelerator> {
        let key = normalise(name);
        if let Some(&i) = self.index.get(&key) {
            return Ok(&self.accelerators[i]);
        }
        Err(UnknownAccelerator {
            name: name.to_owned(),
            suggestions: self.closest(&key, 3),
        })
    }

    /// Display names of the `n` accelerators whose names or aliases are closest to `key`.
    fn closest(&self, key: &str, n: usize) -> Vec<String> {
        let mut best: BTreeMap<usize, f64> = BTreeMap::new();
        for (candidate, &i) in &self.index {
            let mut score = strsim::jaro_winkler(key, candidate);
            // A name that contains what was typed ("h100" in "nvidiah100sxm") is a strong hint.
            if !key.is_empty() && candidate.contains(key) {
                score += 0.2;
            }
            let entry = best.entry(i).or_insert(0.0);
            *entry = entry.max(score);
        }
        let mut ranked: Vec<(usize, f64)> = best.into_iter().filter(|(_, s)| *s > 0.6).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
            .into_iter()
            .take(n)
            .map(|(i, _)| self.accelerators[i].name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_covers_the_required_chips() {
        let table = HardwareTable::builtin();
        for name in [
            "NVIDIA V100",
            "A100",
            "A800",
            "H100 SXM",
            "H100 PCIe",
            "H800",
            "H20",
            "H200",
            "B200",
            "GB200",
            "MI250X",
            "MI300X",
            "MI325X",
            "TPU v2",
            "TPU v3",
            "TPU v4",
            "TPU v5e",
            "TPU v5p",
            "TPU v6e",
            "Trainium1",
            "Trainium2",
            "Ascend 910",
            "Ascend 910B",
            "Gaudi 2",
            "Gaudi 3",
        ] {
            let acc = table.lookup(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                acc.peak(Precision::Bf16)
                    .or(acc.peak(Precision::Fp16))
                    .is_some(),
                "{name} has no 16-bit figure"
            );
            assert!(
                acc.source.starts_with("https://"),
                "{name}: source {:?}",
                acc.source
            );
        }
    }

    #[test]
    fn lookup_ignores_case_spacing_and_hyphens() {
        let table = HardwareTable::builtin();
        let a = table.lookup("nvidia h100 sxm").unwrap();
        let b = table.lookup("H100-SXM").unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(
            a.peak(Precision::Bf16).unwrap().get(),
            9.894e14,
            "H100 SXM dense BF16"
        );
    }

    #[test]
    fn unknown_names_get_suggestions() {
        let err = HardwareTable::builtin().lookup("H100 SMX").unwrap_err();
        assert!(!err.suggestions.is_empty(), "{err}");
        assert!(err.suggestions[0].contains("H100"), "{err}");
        assert!(err.to_string().contains("did you mean"), "{err}");
    }

    #[test]
    fn duplicate_aliases_are_refused() {
        let text = r#"
            schema = 1
            [[accelerator]]
            id = "a"
            name = "Chip A"
            vendor = "X"
            aliases = ["Same"]
            source = "https://example.org"
            peak_flops = { bf16 = 1e14 }
            [[accelerator]]
            id = "b"
            name = "Chip B"
            vendor = "X"
            aliases = ["same"]
            source = "https://example.org"
            peak_flops = { bf16 = 1e14 }
        "#;
        assert!(matches!(
            HardwareTable::from_toml(text),
            Err(TableError::Duplicate(_))
        ));
    }

    #[test]
    fn precisions_parse_by_name() {
        for p in Precision::ALL {
            assert_eq!(p.as_str().parse::<Precision>().unwrap(), p);
        }
        assert!("fp4".parse::<Precision>().is_err());
    }
}
