//! Text views of the authority's answers: reading fields of its JSON, figures written the one
//! way people read them (`runpermit_compute::format_flop`), and aligned tables.

use std::collections::{BTreeMap, BTreeSet};

use runpermit_compute::format_flop;
use serde_json::Value;

use crate::client::Client;

/// The string field `key` of `v`, or "" when absent.
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The integer field `key` of `v`, or 0 when absent.
pub fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The number field `key` of `v`, or 0 when absent.
pub fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The FLOP figure in field `key` of `v` (`2.18e26 FLOP`), or "" when absent.
pub fn flop(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map(format_flop)
        .unwrap_or_default()
}

/// Whether the boolean field `key` of `v` is true.
pub fn yes(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool) == Some(true)
}

/// The items of a list answer, or the answer itself as the one item.
pub fn items(v: &Value) -> Vec<&Value> {
    match v.as_array() {
        Some(list) => list.iter().collect(),
        None => vec![v],
    }
}

/// A labelled line of a record: `  label:        value`.
pub fn field(label: &str, value: impl std::fmt::Display) {
    println!("  {:<14}{value}", format!("{label}:"));
}

/// A table whose columns are as wide as their widest cell; the last column is not padded.
#[derive(Debug)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header row.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<0$}  ", widths[c]));
                }
            }
            println!("{}", line.trim_end());
        }
    }
}

/// The names of organizations by id, as far as the caller may read them (`GET /v1/orgs/{id}`
/// answers authority staff and the organization's own members); an id the caller may not
/// read is left out, and shown as the id. For several ids, authority staff read them all at
/// once (`GET /v1/orgs`, which others may not call).
pub fn org_names<'a>(
    client: &Client,
    ids: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, String> {
    let ids: BTreeSet<&str> = ids.into_iter().filter(|id| !id.is_empty()).collect();
    let mut names = BTreeMap::new();
    if ids.len() > 1
        && let Ok(all) = client.get("/v1/orgs")
    {
        for org in all.as_array().into_iter().flatten() {
            names.insert(text(org, "id").to_owned(), text(org, "name").to_owned());
        }
        return names;
    }
    for id in ids {
        if let Ok(org) = client.get(&format!("/v1/orgs/{id}")) {
            names.insert(id.to_owned(), text(&org, "name").to_owned());
        }
    }
    names
}

/// An organization for people: `Frontier Lab (org_…)`, or the id alone when its name is not
/// known.
pub fn org(names: &BTreeMap<String, String>, id: &str) -> String {
    match names.get(id) {
        Some(name) if !name.is_empty() => format!("{name} ({id})"),
        _ => id.to_owned(),
    }
}
