//! Scheduler-accounting records from a provider's own accounting system, as the gate's
//! `spool` metering source reads them: one JSON object per file.
//!
//! ```json
//! {"run_id": "run_01J…", "permit_id": "pmt_01J…", "cluster": "us-east-1",
//!  "accelerator": "H100 SXM", "accelerator_seconds": 28800,
//!  "from": 1767225600, "to": 1767229200}
//! ```
//!
//! - `run_id`, `permit_id`: the run (the permit's `sub`) and the permit (its `jti`) the
//!   usage belongs to.
//! - `cluster`: one of the gate's `[[clusters]]`.
//! - `accelerator` (optional): the accelerator model, a name, id or alias from the hardware
//!   table; default the cluster's.
//! - `accelerator_seconds`: accelerator-seconds allocated to the run in the interval (a
//!   number ≥ 0, at most the cluster's accelerators × the interval).
//! - `from`, `to`: the interval, unix seconds, `from` < `to`.
//!
//! Unknown keys are refused. [`SpoolRecord::parse`] names every problem by key, all at once.
//! Each record becomes one `scheduler_accounting` report.

use runpermit_compute::{AccountingBasis, FieldError, HardwareTable};
use serde_json::{Map, Value};

use crate::config::GateParams;
use crate::meter::{MeterError, scheduler_accounting};
use crate::text::is_id;
use runpermit_permit::UsageReportClaims;

/// A checked accounting record.
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolRecord {
    /// The run.
    pub run_id: String,
    /// The permit.
    pub permit_id: String,
    /// The cluster (one of the gate's).
    pub cluster: String,
    /// The accelerator's canonical name in the hardware table.
    pub accelerator: String,
    /// Accelerator-seconds in the interval.
    pub accelerator_seconds: f64,
    /// Interval start, unix seconds.
    pub from: i64,
    /// Interval end, unix seconds.
    pub to: i64,
}

const KEYS: [&str; 7] = [
    "run_id",
    "permit_id",
    "cluster",
    "accelerator",
    "accelerator_seconds",
    "from",
    "to",
];

fn problem(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
        suggestions: Vec::new(),
    }
}

fn text_field(object: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> String {
    match object.get(key) {
        None => {
            errors.push(problem(key, "missing"));
            String::new()
        }
        Some(Value::String(s)) if is_id(s) => s.clone(),
        Some(other) => {
            errors.push(problem(
                key,
                format!("must be a non-empty id without surrounding spaces; got {other}"),
            ));
            String::new()
        }
    }
}

fn time_field(object: &Map<String, Value>, key: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    match object.get(key) {
        None => {
            errors.push(problem(key, "missing (unix seconds)"));
            None
        }
        Some(v) => match v.as_i64() {
            Some(t) if t >= 0 => Some(t),
            _ => {
                errors.push(problem(
                    key,
                    format!("must be a whole number of unix seconds ≥ 0; got {v}"),
                ));
                None
            }
        },
    }
}

impl SpoolRecord {
    /// Reads and checks a record: JSON syntax, unknown keys, every field, the cluster among
    /// `params`' clusters, the accelerator in `table`, `from` < `to`, and accelerator-seconds
    /// within what the cluster could have delivered in the interval. Every problem is
    /// named by key (empty for a syntax error), all at once.
    pub fn parse(
        text: &str,
        params: &GateParams,
        table: &HardwareTable,
    ) -> Result<SpoolRecord, Vec<FieldError>> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| vec![problem("", format!("not JSON: {e}"))])?;
        let Value::Object(object) = value else {
            return Err(vec![problem(
                "",
                "must be a JSON object with run_id, permit_id, cluster, accelerator_seconds, from and to",
            )]);
        };
        let mut errors = Vec::new();
        for key in object.keys() {
            if !KEYS.contains(&key.as_str()) {
                errors.push(problem(
                    key,
                    format!("unknown key; the keys are {}", KEYS.join(", ")),
                ));
            }
        }
        let run_id = text_field(&object, "run_id", &mut errors);
        let permit_id = text_field(&object, "permit_id", &mut errors);
        let cluster = text_field(&object, "cluster", &mut errors);
        let cluster_params = params.cluster(&cluster);
        if !cluster.is_empty() && cluster_params.is_none() {
            let known: Vec<&str> = params.clusters().iter().map(|c| c.name.as_str()).collect();
            errors.push(problem(
                "cluster",
                format!(
                    "{cluster:?} is not one of this gate's clusters ({})",
                    known.join(", ")
                ),
            ));
        }
        let accelerator = match object.get("accelerator") {
            None | Some(Value::Null) => cluster_params.map(|c| c.accelerator.clone()),
            Some(Value::String(name)) => match table.lookup(name) {
                Ok(chip) => Some(chip.name.clone()),
                Err(e) => {
                    let hint = if e.suggestions.is_empty() {
                        String::new()
                    } else {
                        format!("; did you mean {}?", e.suggestions.join(", "))
                    };
                    errors.push(FieldError {
                        field: "accelerator".into(),
                        message: format!(
                            "unknown accelerator {name:?}: give a name, id or alias from the hardware table{hint}"
                        ),
                        suggestions: e.suggestions,
                    });
                    None
                }
            },
            Some(other) => {
                errors.push(problem(
                    "accelerator",
                    format!("must be an accelerator name from the hardware table; got {other}"),
                ));
                None
            }
        };
        let seconds = match object.get("accelerator_seconds") {
            None => {
                errors.push(problem("accelerator_seconds", "missing"));
                None
            }
            Some(v) => match v.as_f64() {
                Some(s) if s.is_finite() && s >= 0.0 => Some(s),
                _ => {
                    errors.push(problem(
                        "accelerator_seconds",
                        format!("must be a number ≥ 0; got {v}"),
                    ));
                    None
                }
            },
        };
        let from = time_field(&object, "from", &mut errors);
        let to = time_field(&object, "to", &mut errors);
        if let (Some(from), Some(to)) = (from, to)
            && to <= from
        {
            errors.push(problem(
                "to",
                format!("must be later than from ({to} ≤ {from})"),
            ));
        }
        if let (Some(s), Some(from), Some(to), Some(c)) = (seconds, from, to, cluster_params)
            && to > from
        {
            let most = (to - from) as f64 * c.accelerators as f64;
            if s > most {
                errors.push(problem(
                    "accelerator_seconds",
                    format!(
                        "{s} is more than cluster {} can deliver in the interval: {} accelerators × {} s = {most}",
                        c.name,
                        c.accelerators,
                        to - from
                    ),
                ));
            }
        }
        match (errors.is_empty(), accelerator, seconds, from, to) {
            (true, Some(accelerator), Some(accelerator_seconds), Some(from), Some(to)) => {
                Ok(SpoolRecord {
                    run_id,
                    permit_id,
                    cluster,
                    accelerator,
                    accelerator_seconds,
                    from,
                    to,
                })
            }
            _ => Err(errors),
        }
    }

    /// The record as a `scheduler_accounting` usage report by `provider`, signed at `iat`
    /// (`seq` 0: the queue assigns it), counted with the permit's accounting `basis` (`None`:
    /// at the chip's highest peak).
    pub fn claims(
        &self,
        provider: &str,
        iat: i64,
        table: &HardwareTable,
        basis: Option<&AccountingBasis>,
    ) -> Result<UsageReportClaims, MeterError> {
        let chip = table
            .lookup(&self.accelerator)
            .map_err(|e| MeterError::Invalid(format!("unknown accelerator {:?}", e.name)))?;
        let metered = scheduler_accounting(chip, self.accelerator_seconds, basis)?;
        Ok(UsageReportClaims::new(
            provider,
            &self.run_id,
            &self.permit_id,
            &self.cluster,
            0,
            (self.from, self.to),
            iat,
            metered,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GateConfig;
    use runpermit_permit::MeterMethod;

    fn params() -> GateParams {
        GateConfig::from_toml(crate::config::tests::EXAMPLE)
            .unwrap()
            .params(HardwareTable::builtin())
            .unwrap()
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_record_becomes_an_accounting_report() {
        let table = HardwareTable::builtin();
        let text = r#"{"run_id":"run_1","permit_id":"pmt_1","cluster":"us-east-1",
            "accelerator_seconds":28800,"from":1767225600,"to":1767229200}"#;
        let record = SpoolRecord::parse(text, &params(), table).unwrap();
        assert_eq!(record.accelerator, "NVIDIA H100 SXM");
        let claims = record.claims("org-cloud", 1767229300, table, None).unwrap();
        assert_eq!(claims.method, MeterMethod::SchedulerAccounting);
        assert_eq!(claims.accelerator_seconds["nvidia-h100-sxm"], 28800.0);
        // Without the permit's basis: at the chip's highest peak.
        assert!((claims.flop.get() / (28800.0 * 1.979e15) - 1.0).abs() < 1e-9);
        let basis = AccountingBasis {
            precision: runpermit_compute::Precision::Bf16,
            utilization: 0.4,
            utilization_low: 0.3,
            utilization_high: 0.5,
            parameters: None,
        };
        let claims = record
            .claims("org-cloud", 1767229300, table, Some(&basis))
            .unwrap();
        assert!((claims.flop.get() / (28800.0 * 9.894e14 * 0.4) - 1.0).abs() < 1e-9);
        assert!((claims.flop_upper.get() / (28800.0 * 1.979e15) - 1.0).abs() < 1e-9);
        assert_eq!((claims.from, claims.to), (1767225600, 1767229200));
        assert_eq!(claims.iss, "org-cloud");
        assert_eq!(claims.sub, "run_1");
        assert_eq!(claims.permit_id, "pmt_1");

        let other = text.replace(
            "\"accelerator_seconds\"",
            "\"accelerator\":\"GB200\",\"accelerator_seconds\"",
        );
        let record = SpoolRecord::parse(&other, &params(), table).unwrap();
        assert_eq!(record.accelerator, "NVIDIA GB200");
    }

    #[test]
    fn every_problem_is_named_by_key() {
        let table = HardwareTable::builtin();
        let text = r#"{"run_id":"","permit_id":7,"cluster":"mars-1","accelerator":"H10O",
            "accelerator_seconds":-1,"from":100,"to":50,"gpus":8}"#;
        let errors = SpoolRecord::parse(text, &params(), table).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "gpus",
                "run_id",
                "permit_id",
                "cluster",
                "accelerator",
                "accelerator_seconds",
                "to"
            ]
        );
        assert!(
            errors[3].message.contains("us-east-1"),
            "{}",
            errors[3].message
        );
        let errors = SpoolRecord::parse("{\"run_id\":\"r\"}", &params(), table).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["permit_id", "cluster", "accelerator_seconds", "from", "to"]
        );
        let errors = SpoolRecord::parse("{not json", &params(), table).unwrap_err();
        assert_eq!(fields(&errors), [""]);
        let errors = SpoolRecord::parse("[1]", &params(), table).unwrap_err();
        assert_eq!(fields(&errors), [""]);
        // More accelerator-seconds than the cluster has in the interval.
        let text = r#"{"run_id":"r","permit_id":"p","cluster":"us-east-1",
            "accelerator_seconds":1e12,"from":0,"to":10}"#;
        let errors = SpoolRecord::parse(text, &params(), table).unwrap_err();
        assert_eq!(fields(&errors), ["accelerator_seconds"]);
        assert!(errors[0].message.contains("16384"), "{}", errors[0].message);
    }
}
