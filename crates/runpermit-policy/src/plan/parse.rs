//! Reading a plan from its text: the format (`Format`), the first problem that stops reading
//! (`ParseError`, with its field path and position), and `RunPlan::parse`.

use std::fmt;

use runpermit_compute::FieldError;
use serde::{Deserialize, Serialize};

use super::RunPlan;

/// The text format of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl Format {
    /// The format a file extension names (`toml`, `json`; case-insensitive).
    pub fn from_extension(extension: &str) -> Option<Format> {
        match extension.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

/// A plan that cannot be read: bad syntax, a wrong type, a missing required field or an
/// unknown field. Reading stops at the first such problem; [`RunPlan::validate`] then
/// reports every problem of a plan that could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The format being read.
    pub format: Format,
    /// Dotted path of the field (`providers[1].clusters`); empty for the document as a whole
    /// (syntax errors).
    pub field: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ParseError {
    /// The error as a [`FieldError`], with the position in the message.
    pub fn to_field_error(&self) -> FieldError {
        let message = match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{} (line {l}, column {c})", self.message),
            (Some(l), None) => format!("{} (line {l})", self.message),
            _ => self.message.clone(),
        };
        FieldError {
            field: self.field.clone(),
            message,
            suggestions: Vec::new(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run plan ({})", self.format)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, " line {l}, column {c}")?,
            (Some(l), None) => write!(f, " line {l}")?,
            _ => {}
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl RunPlan {
    /// Reads a plan in TOML.
    pub fn from_toml(text: &str) -> Result<RunPlan, ParseError> {
        RunPlan::parse(text, Format::Toml)
    }

    /// Reads a plan in JSON.
    pub fn from_json(text: &str) -> Result<RunPlan, ParseError> {
        RunPlan::parse(text, Format::Json)
    }

    /// Reads a plan in `format`. The error names the field path and, where the parser
    /// knows it, the line and column. Unknown fields are refused.
    pub fn parse(text: &str, format: Format) -> Result<RunPlan, ParseError> {
        match format {
            Format::Json => {
                let mut de = serde_json::Deserializer::from_str(text);
                let plan: RunPlan = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let field = path_text(e.path());
                    let inner = e.into_inner();
                    let (line, column) = (inner.line(), inner.column());
                    ParseError {
                        format,
                        field,
                        line: (line > 0).then_some(line),
                        column: (column > 0).then_some(column),
                        message: strip_json_position(&inner.to_string()),
                    }
                })?;
                de.end().map_err(|e| ParseError {
                    format,
                    field: String::new(),
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: strip_json_position(&e.to_string()),
                })?;
                Ok(plan)
            }
            Format::Toml => {
                let toml_error = |field: String, e: toml::de::Error| {
                    let (line, column) = e
                        .span()
                        .map(|s| line_column(text, s.start))
                        .map_or((None, None), |(l, c)| (Some(l), Some(c)));
                    ParseError {
                        format,
                        field,
                        line,
                        column,
                        message: e.message().trim_end().to_owned(),
                    }
                };
                let de =
                    toml::Deserializer::parse(text).map_err(|e| toml_error(String::new(), e))?;
                serde_path_to_error::deserialize(de).map_err(|e| {
                    let field = path_text(e.path());
                    toml_error(field, e.into_inner())
                })
            }
        }
    }
}

/// `serde_path_to_error`'s path (`providers[1].clusters`), empty for the root.
fn path_text(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." { String::new() } else { text }
}

/// serde_json appends " at line L column C" to its messages; the position is kept apart.
fn strip_json_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
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
