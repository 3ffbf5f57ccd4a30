//! The gate's configuration file (TOML), and the resolved parameters a [`Gate`](crate::Gate)
//! works with. These doc comments document every key; `examples/gate.toml` is a complete,
//! commented example.
//!
//! Unknown keys are refused. Every problem names its key by path (`clusters[1].accelerator`),
//! all at once. Reading the files the configuration names (the JWKS, the reporting key) is the
//! caller's business: this module does no IO.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use runpermit_compute::{
    Accelerator, FieldError, Flop, FlopRate, HardwareTable, Precision, UnknownAccelerator,
};
use runpermit_log::{VerifierKey, WitnessPolicy};
use serde::{Deserialize, Serialize};

use crate::text::is_id;

mod metering;

pub use metering::{
    DEFAULT_METERING_INTERVAL_SECONDS, DEFAULT_QUEUE_DIR, MAX_METERING_INTERVAL_SECONDS,
    MeterSource, MeteringConfig,
};

/// Default of [`GateConfig::clock_skew_seconds`].
pub const DEFAULT_CLOCK_SKEW_SECONDS: i64 = 60;
/// Default of [`GateConfig::status_grace_seconds`].
pub const DEFAULT_STATUS_GRACE_SECONDS: i64 = 300;
/// The largest accepted [`GateConfig::clock_skew_seconds`]: an hour.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 3600;
/// The largest accepted [`GateConfig::status_grace_seconds`]: a day.
pub const MAX_STATUS_GRACE_SECONDS: i64 = 86_400;

/// The gate's configuration file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// `authority_url`: the licensing authority's base URL (`https://authority.example`),
    /// from which the gate polls the status list and to which it sends usage reports. Named
    /// in refusals that the gate's operator must fix. `http://` is accepted for local tests.
    pub authority_url: String,
    /// `jwks`: path of the authority's JWKS file (its `/.well-known/jwks.json`, obtained and
    /// checked out of band). Permits and status lists are verified against these keys only:
    /// pinned, never fetched from a token.
    pub jwks: PathBuf,
    /// `log_vkey`: the transparency log's verifier key, pinned out of band
    /// (`<name>+<key id>+<base64 key>`, the text of the authority's `/log/vkey`). A permit's
    /// proof bundle must be under a checkpoint signed by this key.
    pub log_vkey: String,
    /// `witness_policy`: path of a witness policy file (C2SP `tlog-policy`, or Sigsum's form
    /// with hex keys; see `docs/log.md`). Optional. When set, a permit's proof bundle must
    /// carry a checkpoint cosigned by a quorum of the policy's witnesses, else the job is
    /// refused with `proof_not_witnessed`; without it, the log key's signature is enough (no
    /// cosignature is required). The caller reads and parses the file when it loads the
    /// configuration ([`GateConfig::parse_witness_policy`]) and refuses to start on an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_policy: Option<PathBuf>,
    /// `provider_id`: this compute provider's organization id at the authority. A permit
    /// admits a job here only if it lists this id in its `providers`.
    pub provider_id: String,
    /// `reporting_key`: path of this provider's Ed25519 private key (PKCS#8 PEM), which signs
    /// usage reports. Required with `[metering]` (the gate reads it, and refuses to start
    /// if it cannot, naming the path); optional otherwise, since `runpermit gate check` and a
    /// gate that does not meter never sign anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_key: Option<PathBuf>,
    /// `clock_skew_seconds`: how far this machine's clock may differ from the authority's
    /// when checking a permit's `nbf`, `iat` and `exp`, in seconds (0 to 3600; default 60).
    #[serde(default = "default_clock_skew")]
    pub clock_skew_seconds: i64,
    /// `status_grace_seconds`: how long past its `exp` the status list is still relied on,
    /// in seconds (0 to 86400; default 300). Covers a missed poll and clock skew; after it,
    /// jobs that need a permit are refused until a fresh list arrives (fail closed).
    #[serde(default = "default_status_grace")]
    pub status_grace_seconds: i64,
    /// `[thresholds]`: which jobs need a permit. At least one key must be set.
    #[serde(default)]
    pub thresholds: Thresholds,
    /// `[[clusters]]`: this provider's clusters, one table each; at least one.
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    /// `[metering]`: what `runpermit gate serve` meters and reports to the authority.
    /// Optional: without it the gate meters nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering: Option<MeteringConfig>,
}

fn default_clock_skew() -> i64 {
    DEFAULT_CLOCK_SKEW_SECONDS
}

fn default_status_grace() -> i64 {
    DEFAULT_STATUS_GRACE_SECONDS
}

/// `[thresholds]`: the size from which a job needs a permit. A job passes untouched, with no
/// permit, when it is below *every* threshold that is set; a job that reaches any of them
/// needs a permit. (Thresholds are reached at equality, as regulatory thresholds are.)
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// `min_accelerators`: a job requesting this many accelerators or more needs a permit
    /// (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accelerators: Option<u64>,
    /// `min_projected_flop`: a job whose projected compute reaches this many FLOP needs a
    /// permit (greater than 0; a number or text such as `"1e24 FLOP"`). The projection is an
    /// upper bound: accelerators × the chip's peak (bf16, else its best 16-bit figure) ×
    /// the job's duration, at 100% utilization. A job that states no duration cannot be
    /// shown to be below it, so with this key set such a job needs a permit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_projected_flop: Option<Flop>,
}

/// `[[clusters]]`: one of this provider's clusters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `name`: the cluster's id, as the authority and permits name it (`providers[].clusters`)
    /// and as jobs give it. Unique.
    pub name: String,
    /// `accelerator`: the cluster's accelerator model, a name, id or alias from
    /// runpermit-compute's hardware table (`H100 SXM`, `nvidia-h100-sxm`, `TPU v5p`).
    pub accelerator: String,
    /// `accelerators`: how many accelerators the cluster has (1 to 10^7). A job requesting
    /// more is refused, whatever its permit allows.
    pub accelerators: u64,
}

/// Why the configuration cannot be used: every problem, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// One entry per problem; `field` is the key's path (`clusters[0].accelerator`), empty
    /// for a TOML syntax error.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("gate configuration: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.field.is_empty() {
                f.write_str(&e.message)?;
            } else {
                write!(f, "{}: {}", e.field, e.message)?;
            }
        }
        Ok(())
    }
}

/// A cluster as [`Gate::decide`](crate::Gate::decide) sees it: its accelerator resolved in the hardware
/// table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterParams {
    /// The cluster's id.
    pub name: String,
    /// The accelerator's canonical name in the hardware table (`NVIDIA H100 SXM`).
    pub accelerator: String,
    /// The precision whose peak projects a job's compute: bf16, else fp16, tf32, fp32, else
    /// the first the table lists (the estimator's default, so that the gate and the
    /// authority project alike).
    pub precision: Precision,
    /// The accelerator's peak dense rate at `precision`, per chip.
    pub peak: FlopRate,
    /// How many accelerators the cluster has.
    pub accelerators: u64,
}

/// The validated, resolved configuration [`Gate::decide`](crate::Gate::decide) takes. Built only by
/// [`GateConfig::params`].
#[derive(Clone, Debug, PartialEq)]
pub struct GateParams {
    authority_url: String,
    provider_id: String,
    clusters: Vec<ClusterParams>,
    thresholds: Thresholds,
    clock_skew_seconds: i64,
    status_grace_seconds: i64,
}

impl GateParams {
    /// The authority's base URL.
    pub fn authority_url(&self) -> &str {
        &self.authority_url
    }

    /// This provider's organization id.
    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    /// The clusters, in file order.
    pub fn clusters(&self) -> &[ClusterParams] {
        &self.clusters
    }

    /// The cluster named `name`, if configured.
    pub fn cluster(&self, name: &str) -> Option<&ClusterParams> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The thresholds.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// The tolerated clock skew for permits, in seconds.
    pub fn clock_skew_seconds(&self) -> i64 {
        self.clock_skew_seconds
    }

    /// The status list's grace period, for [`StatusListCache::new`](crate::StatusListCache::new).
    pub fn status_grace_seconds(&self) -> i64 {
        self.status_grace_seconds
    }
}

impl GateConfig {
    /// Reads and validates a configuration in TOML against the built-in hardware table.
    pub fn from_toml(text: &str) -> Result<GateConfig, ConfigError> {
        let config = parse(text)?;
        config.params(HardwareTable::builtin())?;
        Ok(config)
    }

    /// Validates the configuration and resolves its clusters' accelerators in `table`.
    pub fn params(&self, table: &HardwareTable) -> Result<GateParams, ConfigError> {
        let mut errors = Errors::default();
        self.check_scalars(&mut errors);
        self.check_thresholds(&mut errors);
        let clusters = self.check_clusters(&mut errors, table);
        if let Some(metering) = &self.metering {
            metering.check(&mut errors);
        }
        if !errors.0.is_empty() {
            return Err(ConfigError { errors: errors.0 });
        }
        Ok(GateParams {
            authority_url: self.authority_url.trim_end_matches('/').to_owned(),
            provider_id: self.provider_id.clone(),
            clusters,
            thresholds: self.thresholds.clone(),
            clock_skew_seconds: self.clock_skew_seconds,
            status_grace_seconds: self.status_grace_seconds,
        })
    }

    /// Reads `text`, the content of the `witness_policy` file, as a witness policy; an error
    /// names the `witness_policy` key, the file and the policy's line.
    pub fn parse_witness_policy(&self, text: &str) -> Result<WitnessPolicy, ConfigError> {
        WitnessPolicy::parse(text).map_err(|e| {
            let mut errors = Errors::default();
            let path = self.witness_policy.as_deref().unwrap_or(Path::new(""));
            errors.push(
                "witness_policy",
                format!("the witness policy {}: {e}", path.display()),
            );
            ConfigError { errors: errors.0 }
        })
    }

    /// Makes the relative paths (`jwks`, `witness_policy`, `reporting_key`, and `[metering]`'s `queue_dir` and
    /// `spool_dir`) relative to `base`, the directory of the configuration file, as every
    /// program reading this file does. Pure path arithmetic: nothing is read.
    pub fn resolve_paths(&mut self, base: &Path) {
        let mut paths = vec![&mut self.jwks];
        if let Some(policy) = &mut self.witness_policy {
            paths.push(policy);
        }
        if let Some(key) = &mut self.reporting_key {
            paths.push(key);
        }
        if let Some(metering) = &mut self.metering {
            paths.push(&mut metering.queue_dir);
            if let Some(spool) = &mut metering.spool_dir {
                paths.push(spool);
            }
        }
        for path in paths {
            if path.is_relative() && !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
    }

    fn check_scalars(&self, errors: &mut Errors) {
        let url = &self.authority_url;
        if !is_http_url(url) {
            errors.push(
                "authority_url",
                format!(
                    "must be the authority's base URL, such as \"https://authority.example\"; got {url:?}"
                ),
            );
        }
        if self.jwks.as_os_str().is_empty() {
            errors.push(
                "jwks",
                "must be the path of the authority's JWKS file (its /.well-known/jwks.json, pinned out of band)",
            );
        }
        if self
            .witness_policy
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            errors.push(
                "witness_policy",
                "must be the path of a witness policy file (log, witness, group and quorum lines), or be left out to require no cosignatures",
            );
        }
        if let Err(e) = VerifierKey::parse(&self.log_vkey) {
            errors.push(
                "log_vkey",
                format!(
                    "must be the log's verifier key, the text of the authority's /log/vkey: {e}"
                ),
            );
        }
        if !is_id(&self.provider_id) {
            errors.push(
                "provider_id",
                format!(
                    "must be this provider's organization id at the authority, such as \"org-cloud\"; got {:?}",
                    self.provider_id
                ),
            );
        }
        const KEY: &str = "the path of this provider's Ed25519 private key (PKCS#8 PEM, as \
                           `openssl genpkey -algorithm ed25519` writes)";
        match &self.reporting_key {
            Some(path) if path.as_os_str().is_empty() => {
                errors.push("reporting_key", format!("must be {KEY}"));
            }
            None if self.metering.is_some() => errors.push(
                "reporting_key",
                format!("is required with [metering], which signs usage reports: {KEY}"),
            ),
            _ => {}
        }
        if !(0..=MAX_CLOCK_SKEW_SECONDS).contains(&self.clock_skew_seconds) {
            errors.push(
                "clock_skew_seconds",
                format!(
                    "must be between 0 and {MAX_CLOCK_SKEW_SECONDS} seconds, such as {DEFAULT_CLOCK_SKEW_SECONDS}; got {}",
                    self.clock_skew_seconds
                ),
            );
        }
        if !(0..=MAX_STATUS_GRACE_SECONDS).contains(&self.status_grace_seconds) {
            errors.push(
                "status_grace_seconds",
                format!(
                    "must be between 0 and {MAX_STATUS_GRACE_SECONDS} seconds, such as {DEFAULT_STATUS_GRACE_SECONDS}; got {}",
                    self.status_grace_seconds
                ),
            );
        }
    }

    fn check_thresholds(&self, errors: &mut Errors) {
        let t = &self.thresholds;
        if t.min_accelerators.is_none() && t.min_projected_flop.is_none() {
            errors.push(
                "thresholds",
                "set min_accelerators and/or min_projected_flop: the size from which a job needs a permit \
                 (min_accelerators = 1 requires one for every job that uses an accelerator)",
            );
        }
        if t.min_accelerators == Some(0) {
            errors.push(
                "thresholds.min_accelerators",
                "must be at least 1 (1 requires a permit for every job that uses an accelerator); got 0",
            );
        }
        if t.min_projected_flop == Some(Flop::ZERO) {
            errors.push(
                "thresholds.min_projected_flop",
                "must be greater than 0 FLOP, such as 1e24; got 0",
            );
        }
    }

    fn check_clusters(&self, errors: &mut Errors, table: &HardwareTable) -> Vec<ClusterParams> {
        if self.clusters.is_empty() {
            errors.push(
                "clusters",
                "must list at least one cluster: [[clusters]] with name, accelerator and accelerators",
            );
        }
        let mut seen = HashSet::new();
        let mut resolved = Vec::new();
        for (i, cluster) in self.clusters.iter().enumerate() {
            let field = |key: &str| format!("clusters[{i}].{key}");
            if !is_id(&cluster.name) {
                errors.push(
                    &field("name"),
                    format!(
                        "must be the cluster's id as permits name it, such as \"us-east-1\"; got {:?}",
                        cluster.name
                    ),
                );
            } else if !seen.insert(cluster.name.as_str()) {
                errors.push(
                    &field("name"),
                    format!("{:?} names two clusters: names are unique", cluster.name),
                );
            }
            if let Err(message) =
                runpermit_compute::limits::ACCELERATORS.check_count(cluster.accelerators)
            {
                errors.push(&field("accelerators"), message);
            }
            match table.lookup(&cluster.accelerator) {
                Ok(accelerator) => {
                    let (precision, peak) = projection_peak(accelerator);
                    resolved.push(ClusterParams {
                        name: cluster.name.clone(),
                        accelerator: accelerator.name.clone(),
                        precision,
                        peak,
                        accelerators: cluster.accelerators,
                    });
                }
                Err(UnknownAccelerator { name, suggestions }) => {
                    let hint = if suggestions.is_empty() {
                        " (see runpermit-compute's data/hardware.toml for the names)".to_owned()
                    } else {
                        format!("; did you mean {}?", suggestions.join(", "))
                    };
                    errors.0.push(FieldError {
                        field: field("accelerator"),
                        message: format!(
                            "unknown accelerator {name:?}: give a name, id or alias from the hardware table{hint}"
                        ),
                        suggestions,
                    });
                }
            }
        }
        resolved
    }
}

/// Whether `url` is `http://` or `https://` with a host and no whitespace.
fn is_http_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .map(|rest| rest.split('/').next().unwrap_or(""))
        .is_some_and(|host| !host.is_empty())
        && !url.chars().any(char::is_whitespace)
}

/// The precision and peak that project a job's compute: the estimator's default (bf16, else
/// fp16, tf32, fp32, else the first figure the table has). The table refuses accelerators
/// without any figure, so there always is one.
fn projection_peak(accelerator: &Accelerator) -> (Precision, FlopRate) {
    [
        Precision::Bf16,
        Precision::Fp16,
        Precision::Tf32,
        Precision::Fp32,
    ]
    .into_iter()
    .find_map(|p| accelerator.peak(p).map(|r| (p, r)))
    .or_else(|| accelerator.peak_flops.iter().next().map(|(p, r)| (*p, *r)))
    .unwrap_or((Precision::Bf16, FlopRate::default()))
}

/// TOML → [`GateConfig`], with the failing key's path and position.
fn parse(text: &str) -> Result<GateConfig, ConfigError> {
    let error = |path: String, e: toml::de::Error| {
        let message = e.message().trim_end().to_owned();
        // serde reports a missing key at its table: name the key itself.
        let field = match message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            Some(key) if path.is_empty() => key.to_owned(),
            Some(key) => format!("{path}.{key}"),
            None => path,
        };
        let position = e
            .span()
            .map(|s| {
                let (line, column) = line_column(text, s.start);
                format!(" (line {line}, column {column})")
            })
            .unwrap_or_default();
        ConfigError {
            errors: vec![FieldError {
                field,
                message: format!("{message}{position}"),
                suggestions: Vec::new(),
            }],
        }
    };
    let de = toml::Deserializer::parse(text).map_err(|e| error(String::new(), e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        error(path, e.into_inner())
    })
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
            suggestions: Vec::new(),
        });
    }
}

#[cfg(test)]
pub(crate) mod tests;
