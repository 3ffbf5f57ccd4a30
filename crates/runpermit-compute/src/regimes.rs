//! Regulatory compute thresholds, kept as data in `data/regimes.toml`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::quantity::{Flop, FlopRate};

/// The presets that ship with runpermit.
pub const BUILTIN_REGIMES_TOML: &str = include_str!("../data/regimes.toml");

/// A regime: a law or order with one or more compute thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regime {
    /// Stable identifier (`eu-ai-act`).
    pub id: String,
    /// Short display name (`EU AI Act`).
    pub name: String,
    /// Full title, where the short name is not it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Where it applies.
    pub jurisdiction: String,
    /// The legal text.
    pub source: String,
    /// Whether and since when it is in force.
    pub status: String,
    /// Its thresholds.
    pub threshold: Vec<Threshold>,
}

/// One threshold of a regime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawThreshold")]
pub struct Threshold {
    /// Stable identifier (`eu-ai-act-systemic-risk`).
    pub id: String,
    /// What is compared.
    #[serde(flatten)]
    pub limit: Limit,
    /// Which runs it concerns.
    pub applies_to: AppliesTo,
    /// What crossing it means.
    pub consequence: String,
}

/// A threshold as written in the file: serde cannot combine `flatten` with
/// `deny_unknown_fields`, so the kind and its value are checked here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    id: String,
    kind: String,
    flop: Option<Flop>,
    flop_per_second: Option<FlopRate>,
    applies_to: AppliesTo,
    consequence: String,
}

impl TryFrom<RawThreshold> for Threshold {
    type Error = String;

    fn try_from(raw: RawThreshold) -> Result<Self, Self::Error> {
        let limit = match (raw.kind.as_str(), raw.flop, raw.flop_per_second) {
            ("training_compute", Some(flop), None) => Limit::TrainingCompute { flop },
            ("cluster_capacity", None, Some(flop_per_second)) => {
                Limit::ClusterCapacity { flop_per_second }
            }
            ("training_compute", _, _) => {
                return Err(format!(
                    "threshold {}: training_compute takes `flop` only",
                    raw.id
                ));
            }
            ("cluster_capacity", _, _) => {
                return Err(format!(
                    "threshold {}: cluster_capacity takes `flop_per_second` only",
                    raw.id
                ));
            }
            (other, _, _) => {
                return Err(format!(
                    "threshold {}: unknown kind {other:?} (expected training_compute or cluster_capacity)",
                    raw.id
                ));
            }
        };
        Ok(Threshold {
            id: raw.id,
            limit,
            applies_to: raw.applies_to,
            consequence: raw.consequence,
        })
    }
}

/// The quantity a threshold compares, with its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Limit {
    /// Cumulative training compute of the model.
    TrainingCompute {
        /// The threshold.
        flop: Flop,
    },
    /// Theoretical peak of the cluster used for training.
    ClusterCapacity {
        /// The threshold.
        flop_per_second: FlopRate,
    },
}

/// Which runs a threshold concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// Every run.
    All,
    /// Runs whose training data is mostly biological sequence data.
    BiologicalSequenceData,
}

/// Why a regime file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RegimeError {
    /// Not valid TOML, or not the schema.
    #[error("regimes: {0}")]
    Parse(#[from] toml::de::Error),
    /// Unsupported schema version.
    #[error("regimes: schema {0} is not supported (expected 1)")]
    Schema(u32),
    /// Two regimes or thresholds share an id.
    #[error("regimes: id {0:?} is used twice")]
    Duplicate(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegimeFile {
    schema: u32,
    regime: Vec<Regime>,
}

/// Reads regimes in the `data/regimes.toml` schema.
pub fn regimes_from_toml(text: &str) -> Result<Vec<Regime>, RegimeError> {
    let file: RegimeFile = toml::from_str(text)?;
    if file.schema != 1 {
        return Err(RegimeError::Schema(file.schema));
    }
    let mut seen = BTreeSet::new();
    for regime in &file.regime {
        for id in std::iter::once(&regime.id).chain(regime.threshold.iter().map(|t| &t.id)) {
            if !seen.insert(id.clone()) {
                return Err(RegimeError::Duplicate(id.clone()));
            }
        }
    }
    Ok(file.regime)
}

/// The presets compiled into this build.
pub fn builtin_regimes() -> &'static [Regime] {
    static REGIMES: OnceLock<Vec<Regime>> = OnceLock::new();
    REGIMES.get_or_init(|| {
        // Part of the source tree and parsed by a unit test: failure is a build defect.
        regimes_from_toml(BUILTIN_REGIMES_TOML).unwrap_or_else(|e| panic!("built-in {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_presets_carry_the_legal_thresholds() {
        let regimes = builtin_regimes();
        let find = |id: &str| {
            regimes
                .iter()
                .flat_map(|r| &r.threshold)
                .find(|t| t.id == id)
                .unwrap_or_else(|| panic!("{id} missing"))
        };
        assert_eq!(
            find("eu-ai-act-systemic-risk").limit,
            Limit::TrainingCompute {
                flop: Flop::new(1e25).unwrap()
            }
        );
        assert_eq!(
            find("us-eo-14110-model").limit,
            Limit::TrainingCompute {
                flop: Flop::new(1e26).unwrap()
            }
        );
        let bio = find("us-eo-14110-bio");
        assert_eq!(bio.applies_to, AppliesTo::BiologicalSequenceData);
        assert_eq!(
            bio.limit,
            Limit::TrainingCompute {
                flop: Flop::new(1e23).unwrap()
            }
        );
        assert_eq!(
            find("us-eo-14110-cluster").limit,
            Limit::ClusterCapacity {
                flop_per_second: FlopRate::new(1e20).unwrap()
            }
        );
        assert_eq!(
            find("ca-sb-53-frontier").limit,
            Limit::TrainingCompute {
                flop: Flop::new(1e26).unwrap()
            }
        );
    }

    #[test]
    fn unknown_fields_and_duplicate_ids_are_refused() {
        let unknown = "schema = 1\n[[regime]]\nid='a'\nname='A'\njurisdiction='x'\nsource='s'\nstatus='s'\nextra=1\nthreshold=[]\n";
        assert!(matches!(
            regimes_from_toml(unknown),
            Err(RegimeError::Parse(_))
        ));
        let dup = "schema = 1\n[[regime]]\nid='a'\nname='A'\njurisdiction='x'\nsource='s'\nstatus='s'\n[[regime.threshold]]\nid='a'\nkind='training_compute'\nflop=1e25\napplies_to='all'\nconsequence='c'\n";
        assert!(matches!(
            regimes_from_toml(dup),
            Err(RegimeError::Duplicate(_))
        ));
    }
}
