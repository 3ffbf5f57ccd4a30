//! Which sections of the console a signed-in person sees in the header.

use crate::domain::Caller;

/// The links of a signed-in person's own sections, in the header: (label, path).
pub fn nav(_caller: &Caller) -> Vec<(&'static str, &'static str)> {
    vec![("Desk", "/console")]
}
