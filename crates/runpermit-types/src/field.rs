//! Invalid input, named field by field: [`FieldError`], the accumulator [`Problems`] that
//! every validator uses so that all problems are reported at once, and [`InvalidInput`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text;

/// One invalid input, named by its field path (`hardware.utilization`, `providers[1].id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted path of the field; empty for the input as a whole.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
    /// For an unknown name: the closest known names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<String>,
}

impl FieldError {
    /// `field` is wrong: `message` says how.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
            suggestions: Vec::new(),
        }
    }
}

/// Every problem found in an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidInput {
    /// One entry per invalid field, in field order.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .errors
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Problems with an input's fields, collected so that every one is reported at once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Records that `field` is wrong.
    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records every error of `errors`.
    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    /// Records what is wrong with `value` as text of at most `max` characters (line breaks
    /// allowed when `multiline`): [`text::text_problem`].
    pub fn text(&mut self, field: &str, value: &str, max: usize, multiline: bool) {
        if let Some(problem) = text::text_problem(value, max, multiline) {
            self.push(field, problem);
        }
    }

    /// Records what is wrong with `value` as an identifier: [`text::id_problem`].
    pub fn id(&mut self, field: &str, value: &str) {
        if let Some(problem) = text::id_problem(value) {
            self.push(field, problem);
        }
    }

    /// Whether nothing is wrong so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems found, in the order they were recorded.
    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }

    /// `Ok` when nothing is wrong, else every problem.
    pub fn check(self) -> Result<(), InvalidInput> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidInput { errors: self.0 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_collect_every_field_in_order() {
        let mut p = Problems::default();
        p.id("org_id", "has space");
        p.text("reason", "", 10, false);
        p.text("name", "fine", 10, false);
        p.push("count", "must be positive");
        let err = p.check().unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["org_id", "reason", "count"]);
        assert!(err.to_string().starts_with("org_id: must be an identifier"));
        assert!(Problems::default().check().is_ok());
    }
}
