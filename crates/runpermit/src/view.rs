//! Text views of the authority's answers (the `runpermit_api` response types): figures
//! written the one way people read them (`runpermit_compute::format_flop`), labelled lines,
//! aligned tables, and organizations by name.

use std::collections::{BTreeMap, BTreeSet};

use runpermit_api::identity::OrganizationView;
use runpermit_compute::format_flop;

use crate::client::Client;

/// A FLOP figure for people (`2.18e26 FLOP`).
pub fn flop(value: f64) -> String {
    format_flop(value)
}

/// An optional text for people: the text, or "" when absent.
pub fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("")
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
        && let Ok(all) = client.get::<Vec<OrganizationView>>("/v1/orgs")
    {
        for org in all {
            names.insert(org.id, org.name);
        }
        return names;
    }
    for id in ids {
        if let Ok(org) = client.get::<OrganizationView>(&format!("/v1/orgs/{id}")) {
            names.insert(id.to_owned(), org.name);
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

/// Shows an answer of the authority: as JSON with `json` (`output::print_answer`), else as
/// `text` renders it for people.
pub fn show<T: serde::Serialize + ?Sized>(
    json: bool,
    answer: &T,
    text: impl FnOnce(&T),
) -> anyhow::Result<()> {
    if json {
        crate::output::print_answer(answer)
    } else {
        text(answer);
        Ok(())
    }
}
