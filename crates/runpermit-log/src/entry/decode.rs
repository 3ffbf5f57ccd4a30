//! Reading a logged entry back: [`decode`] and the field reader it builds entries with.

use runpermit_compute::{FieldError, Flop};

use super::{DecisionKind, LogEntry, MAX_ENTRY_BYTES, encode};
use crate::error::EntryError;
use crate::jcs::{self, Scalar};

/// Decodes a logged entry and the time it was appended at.
///
/// Refuses: more than [`MAX_ENTRY_BYTES`]; anything but one flat JSON object; a version
/// other than 1; an unknown type; missing, unknown or wrongly typed fields and invalid
/// values (all named at once); and bytes that are not exactly the canonical encoding of
/// the entry they decode to.
pub fn decode(bytes: &[u8]) -> Result<(LogEntry, i64), EntryError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge { size: bytes.len() });
    }
    let members = jcs::parse_object(bytes)
        .map_err(|(offset, reason)| EntryError::Malformed { offset, reason })?;
    let mut f = Fields {
        members,
        errors: Vec::new(),
    };
    match f.take("v") {
        Some(Scalar::Num(v)) if v == "1" => {}
        Some(Scalar::Num(v)) => return Err(EntryError::UnsupportedVersion(v)),
        Some(_) => return Err(f.fail("v", "must be the number 1")),
        None => return Err(f.fail("v", "missing: every entry starts with version \"v\": 1")),
    }
    let kind = match f.take("type") {
        Some(Scalar::Str(t)) => t,
        Some(_) => return Err(f.fail("type", "must be a string")),
        None => return Err(f.fail("type", "missing")),
    };
    let at = f.int("at");
    let entry = match kind.as_str() {
        "application_submitted" => f.build(|f| LogEntry::ApplicationSubmitted {
            application_id: f.string("application_id"),
            org_id: f.string("org_id"),
            plan_digest: f.string("plan_digest"),
            tier: f.string("tier"),
            estimated_flop: f.flop("estimated_flop"),
            policy_version: f.string("policy_version"),
        }),
        "decision" => f.build(|f| LogEntry::Decision {
            application_id: f.string("application_id"),
            decision: f.decision("decision"),
            tier: f.string("tier"),
            policy_version: f.string("policy_version"),
            reason: f.optional_string("reason"),
        }),
        "permit_issued" => f.build(|f| LogEntry::PermitIssued {
            permit_id: f.string("permit_id"),
            application_id: f.string("application_id"),
            run_id: f.string("run_id"),
            holder_org_id: f.string("holder_org_id"),
            token: f.string("token"),
            flop_budget: f.flop("flop_budget"),
            nbf: f.int("nbf"),
            exp: f.int("exp"),
            policy_version: f.string("policy_version"),
        }),
        "tranche_released" => f.build(|f| LogEntry::TrancheReleased {
            permit_id: f.string("permit_id"),
            run_id: f.string("run_id"),
            tranche: f.u32("tranche"),
            flop: f.flop("flop"),
        }),
        "run_paused" => f.build(|f| LogEntry::RunPaused {
            permit_id: f.string("permit_id"),
            run_id: f.string("run_id"),
            reason: f.string("reason"),
        }),
        "run_resumed" => f.build(|f| LogEntry::RunResumed {
            permit_id: f.string("permit_id"),
            run_id: f.string("run_id"),
            reason: f.string("reason"),
        }),
        "run_revoked" => f.build(|f| LogEntry::RunRevoked {
            permit_id: f.string("permit_id"),
            run_id: f.string("run_id"),
            reason: f.string("reason"),
        }),
        "run_completed" => f.build(|f| LogEntry::RunCompleted {
            permit_id: f.string("permit_id"),
            run_id: f.string("run_id"),
            reason: f.string("reason"),
        }),
        "usage_summary" => f.build(|f| LogEntry::UsageSummary {
            run_id: f.string("run_id"),
            cumulative_flop: f.flop("cumulative_flop"),
            providers: f.u32("providers"),
            through: f.int("through"),
        }),
        "model_registered" => f.build(|f| LogEntry::ModelRegistered {
            run_id: f.string("run_id"),
            model_name: f.string("model_name"),
            checkpoint_digest: f.string("checkpoint_digest"),
        }),
        "access_granted" => f.build(|f| LogEntry::AccessGranted {
            grant_id: f.string("grant_id"),
            model_id: f.string("model_id"),
            grantee_org_id: f.string("grantee_org_id"),
            tier: f.string("tier"),
            token: f.string("token"),
        }),
        "access_changed" => f.build(|f| LogEntry::AccessChanged {
            grant_id: f.string("grant_id"),
            status: f.string("status"),
            reason: f.string("reason"),
        }),
        _ => return Err(EntryError::UnknownType(kind)),
    }?;
    let canonical = encode(&entry, at)?;
    if canonical != bytes {
        let offset = canonical
            .iter()
            .zip(bytes)
            .position(|(a, b)| a != b)
            .unwrap_or(canonical.len().min(bytes.len()));
        return Err(EntryError::NonCanonical { offset });
    }
    Ok((entry, at))
}

/// The members of an object being decoded, taken one by one, and the problems found.
struct Fields {
    members: Vec<(String, Scalar)>,
    errors: Vec<FieldError>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Scalar> {
        let i = self.members.iter().position(|(k, _)| k == name)?;
        Some(self.members.remove(i).1)
    }

    fn error(&mut self, field: &str, message: &str) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message: message.to_owned(),
            suggestions: Vec::new(),
        });
    }

    fn fail(mut self, field: &str, message: &str) -> EntryError {
        self.error(field, message);
        EntryError::Invalid(self.errors)
    }

    /// Builds an entry with `make`, then reports every missing, mistyped or unknown field.
    fn build(mut self, make: impl FnOnce(&mut Fields) -> LogEntry) -> Result<LogEntry, EntryError> {
        let entry = make(&mut self);
        let unknown: Vec<String> = self.members.drain(..).map(|(k, _)| k).collect();
        for key in unknown {
            self.error(&key, "unknown field");
        }
        if self.errors.is_empty() {
            Ok(entry)
        } else {
            Err(EntryError::Invalid(self.errors))
        }
    }

    fn string(&mut self, name: &str) -> String {
        match self.take(name) {
            Some(Scalar::Str(s)) => s,
            Some(_) => {
                self.error(name, "must be a string");
                String::new()
            }
            None => {
                self.error(name, "missing");
                String::new()
            }
        }
    }

    fn optional_string(&mut self, name: &str) -> Option<String> {
        match self.take(name) {
            Some(Scalar::Str(s)) => Some(s),
            Some(Scalar::Null) => None,
            Some(_) => {
                self.error(name, "must be a string or null");
                None
            }
            None => {
                self.error(name, "missing (null when there is none)");
                None
            }
        }
    }

    fn number(&mut self, name: &str, what: &str) -> Option<String> {
        match self.take(name) {
            Some(Scalar::Num(n)) => Some(n),
            Some(_) => {
                self.error(name, &format!("must be {what}"));
                None
            }
            None => {
                self.error(name, "missing");
                None
            }
        }
    }

    fn int(&mut self, name: &str) -> i64 {
        self.integer(name, "an integer in plain digits")
    }

    fn u32(&mut self, name: &str) -> u32 {
        self.integer(name, "an integer from 0 to 4294967295")
    }

    /// The integer field `name` as `T`, or an error saying it must be `what` (and 0).
    fn integer<T: std::str::FromStr + Default>(&mut self, name: &str, what: &str) -> T {
        let Some(text) = self.number(name, "an integer") else {
            return T::default();
        };
        match text.parse::<T>() {
            Ok(n) => n,
            Err(_) => {
                self.error(name, &format!("must be {what}, got {text}"));
                T::default()
            }
        }
    }

    fn flop(&mut self, name: &str) -> Flop {
        let Some(text) = self.number(name, "a number of FLOP") else {
            return Flop::ZERO;
        };
        // The JSON grammar was checked by the parser; Rust's parser rounds correctly.
        match text.parse::<f64>().map(Flop::new) {
            Ok(Ok(flop)) => flop,
            Ok(Err(e)) => {
                self.error(name, &e.to_string());
                Flop::ZERO
            }
            Err(_) => {
                self.error(name, &format!("not a number: {text}"));
                Flop::ZERO
            }
        }
    }

    fn decision(&mut self, name: &str) -> DecisionKind {
        match self.take(name) {
            Some(Scalar::Str(text)) => DecisionKind::parse(&text).unwrap_or_else(|| {
                self.error(
                    name,
                    &format!(
                        "unknown decision {text:?} (approved, denied, exempt, changes_requested, withdrawn, appealed)"
                    ),
                );
                DecisionKind::Approved
            }),
            Some(_) => {
                self.error(name, "must be a string");
                DecisionKind::Approved
            }
            None => {
                self.error(name, "missing");
                DecisionKind::Approved
            }
        }
    }
}
