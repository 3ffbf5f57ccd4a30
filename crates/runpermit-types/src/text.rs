//! Text hygiene for every text that enters the regime from outside: names, identifiers,
//! reasons, summaries.
//!
//! What is refused, and why:
//! - **control characters** (NUL, escape sequences, …): they truncate or rewrite what a
//!   terminal, a log line or a C string shows. Line breaks and tabs are allowed in free text;
//! - **bidirectional embedding, override and isolate characters** (U+202A–U+202E,
//!   U+2066–U+2069) and the invisible marks U+200E/U+200F/U+061C: they make a reason or a
//!   name read differently from its bytes ("Trojan Source", CVE-2021-42574), so that a
//!   reviewer approves one text and the log records another;
//! - **lengths** beyond a stated maximum: a 200 KB "reason" is a denial of service on every
//!   page and log line that shows it.
//!
//! The checks return a message naming what is wrong and where (character position, code
//! point), for the caller to attach to its field.

/// The longest identifier (organization, run, permit, cluster, accelerator ids) in characters.
pub const MAX_ID_CHARS: usize = 128;

/// The longest one-line name (an organization's or member's name, a label) in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The longest reason, summary or condition in characters.
pub const MAX_REASON_CHARS: usize = 4000;

/// The longest free text of a document (a run plan's descriptions) in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// Whether `c` changes the display direction of the text around it.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// The first character of `value` that text may not hold, with its position: control
/// characters (line breaks and tabs allowed when `multiline`) and bidirectional controls.
fn forbidden(value: &str, multiline: bool) -> Option<String> {
    value.chars().enumerate().find_map(|(i, c)| {
        if c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')) {
            Some(format!(
                "must not contain control characters (U+{:04X} at character {})",
                c as u32,
                i + 1
            ))
        } else if is_bidi_control(c) {
            Some(format!(
                "must not contain bidirectional-override characters (U+{:04X} at character {}): \
                 they make text read differently from what it says",
                c as u32,
                i + 1
            ))
        } else {
            None
        }
    })
}

/// What is wrong with `value` as text of at most `max` characters, if anything: blank,
/// too long, or holding a forbidden character. `multiline` allows line breaks and tabs.
pub fn text_problem(value: &str, max: usize, multiline: bool) -> Option<String> {
    if value.trim().is_empty() {
        return Some("must not be empty".to_owned());
    }
    let chars = value.chars().count();
    if chars > max {
        return Some(format!("must be at most {max} characters (got {chars})"));
    }
    forbidden(value, multiline)
}

/// What is wrong with `value` as an identifier, if anything: blank, longer than
/// [`MAX_ID_CHARS`], or holding whitespace, a path separator (`/`, `\`), a control or a
/// bidirectional character.
pub fn id_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".to_owned());
    }
    let chars = value.chars().count();
    if chars > MAX_ID_CHARS {
        return Some(format!(
            "must be at most {MAX_ID_CHARS} characters (got {chars})"
        ));
    }
    if let Some(problem) = forbidden(value, false) {
        return Some(problem);
    }
    value
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '/' | '\\'))
        .map(|c| {
            format!(
                "must be an identifier without spaces or path separators (got {c:?} in {value:?})"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_refuses_controls_bidi_and_length_by_position() {
        assert_eq!(text_problem("fine, with a line\nbreak", 100, true), None);
        assert_eq!(text_problem("  ", 100, true).unwrap(), "must not be empty");
        assert!(
            text_problem("a\u{0}b", 100, true)
                .unwrap()
                .contains("U+0000 at character 2")
        );
        assert!(text_problem("a\nb", 100, false).unwrap().contains("U+000A"));
        let trojan = "approve\u{202E}evorppa";
        assert!(
            text_problem(trojan, 100, true)
                .unwrap()
                .contains("U+202E at character 8")
        );
        assert!(
            text_problem("\u{2066}x", 100, true)
                .unwrap()
                .contains("bidirectional")
        );
        assert!(
            text_problem(&"x".repeat(101), 100, true)
                .unwrap()
                .contains("at most 100")
        );
        // Characters, not bytes.
        assert_eq!(text_problem(&"é".repeat(100), 100, false), None);
        // Scripts written right to left are text, not controls.
        assert_eq!(text_problem("مرحبا", 100, false), None);
    }

    #[test]
    fn identifiers_refuse_spaces_separators_and_controls() {
        for good in [
            "org_cloud_a",
            "nvidia-h100-sxm",
            "run_01HZX",
            "b-west",
            "a.b:c@d",
        ] {
            assert_eq!(id_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "a b",
            "../../etc/passwd",
            "a\\b",
            "a\u{0}",
            "x\u{202E}",
            "\tx",
        ] {
            assert!(id_problem(bad).is_some(), "{bad:?}");
        }
        assert!(
            id_problem(&"x".repeat(129))
                .unwrap()
                .contains("at most 128")
        );
    }
}
