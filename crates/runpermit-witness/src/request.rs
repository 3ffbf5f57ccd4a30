//! The `add-checkpoint` request body, read exactly as C2SP `tlog-witness` writes it:
//!
//! ```text
//! old <size>\n                 decimal, no leading zeros (`0` for zero)
//! <base64 hash>\n              0 to 63 consistency proof lines
//! \n                           an empty line
//! <checkpoint signed note>     origin, size, root, blank line, signature lines
//! ```
//!
//! Every line ends in `\n`. Pure: [`parse`] reads bytes and checks no signature.

use runpermit_log::Hash;

use crate::decide::Refusal;

/// The most consistency proof lines a client may send (C2SP `tlog-witness`).
pub const MAX_PROOF_LINES: usize = 63;

/// The largest request body read, in bytes: the old size line, 63 proof lines of 45 bytes
/// and a checkpoint note with room for many signature lines.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A parsed `add-checkpoint` request; the note is not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the previous checkpoint the client says the witness holds.
    pub old: u64,
    /// The consistency proof from `old` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note (text, blank line, signature lines).
    pub note: String,
}

impl AddCheckpoint {
    /// The note's first line: the log's origin, which picks the keys that must have signed it.
    pub fn origin(&self) -> &str {
        self.note.split('\n').next().unwrap_or_default()
    }
}

/// Reads an `add-checkpoint` body. Every refusal is [`Refusal::Malformed`] (400), naming the
/// line that is wrong.
pub fn parse(body: &[u8]) -> Result<AddCheckpoint, Refusal> {
    let bad = |what: String| Err(Refusal::Malformed(what));
    if body.len() > MAX_BODY_BYTES {
        return bad(format!(
            "the request body is {} bytes; at most {MAX_BODY_BYTES} are read",
            body.len()
        ));
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return bad("the request body is not UTF-8 text".into());
    };
    let mut rest = text;
    let mut next_line = |what: &str| -> Result<&str, Refusal> {
        match rest.split_once('\n') {
            Some((line, after)) => {
                rest = after;
                Ok(line)
            }
            None => Err(Refusal::Malformed(format!(
                "the request ends before {what}: every line must end in a newline"
            ))),
        }
    };
    let first = next_line("the old size line")?;
    let Some(digits) = first.strip_prefix("old ") else {
        return bad("the first line must be \"old <size>\"".into());
    };
    let old = parse_size(digits).ok_or_else(|| {
        Refusal::Malformed(format!(
            "the old size {digits:?} is not a decimal number without leading zeros"
        ))
    })?;
    let mut proof = Vec::new();
    loop {
        let line = next_line("the empty line that ends the consistency proof")?;
        if line.is_empty() {
            break;
        }
        if proof.len() == MAX_PROOF_LINES {
            return bad(format!(
                "more than {MAX_PROOF_LINES} consistency proof lines"
            ));
        }
        let hash = Hash::from_base64(line).map_err(|_| {
            Refusal::Malformed(format!(
                "consistency proof line {} is not a 32-byte hash in standard base64",
                proof.len() + 1
            ))
        })?;
        proof.push(hash);
    }
    if rest.is_empty() {
        return bad("no checkpoint after the empty line".into());
    }
    if !rest.ends_with('\n') {
        return bad("the checkpoint does not end in a newline".into());
    }
    Ok(AddCheckpoint {
        old,
        proof,
        note: rest.to_owned(),
    })
}

/// A decimal tree size without leading zeros (`0` alone for zero) that fits in a `u64`.
fn parse_size(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use runpermit_log::leaf_hash;

    use super::*;

    const NOTE: &str =
        "log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— log.example/a sig\n";

    fn malformed(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(Refusal::Malformed(m)) => m,
            other => panic!("{body:?} gave {other:?}"),
        }
    }

    #[test]
    fn reads_the_c2sp_layout() {
        let h = leaf_hash(b"x");
        let req = parse(format!("old 3\n{h}\n{h}\n\n{NOTE}").as_bytes()).unwrap();
        assert_eq!(req.old, 3);
        assert_eq!(req.proof, vec![h, h]);
        assert_eq!(req.note, NOTE);
        assert_eq!(req.origin(), "log.example/a");
        let req = parse(format!("old 0\n\n{NOTE}").as_bytes()).unwrap();
        assert_eq!((req.old, req.proof.len()), (0, 0));
    }

    #[test]
    fn refuses_each_deviation_naming_it() {
        assert!(malformed(&format!("old 03\n\n{NOTE}")).contains("leading zeros"));
        assert!(malformed(&format!("old -1\n\n{NOTE}")).contains("leading zeros"));
        assert!(malformed(&format!("old  1\n\n{NOTE}")).contains("leading zeros"));
        assert!(malformed(&format!("old 99999999999999999999\n\n{NOTE}")).contains("old size"));
        assert!(malformed(&format!("Old 1\n\n{NOTE}")).contains("first line"));
        assert!(malformed("old 1").contains("newline"));
        assert!(malformed("old 1\nAAAA\n\n").contains("proof line 1"));
        assert!(malformed("old 1\n\n").contains("no checkpoint"));
        assert!(malformed(&format!("old 1\n\n{}", NOTE.trim_end())).contains("newline"));
        let h = leaf_hash(b"x");
        let lines: String = (0..64).map(|_| format!("{h}\n")).collect();
        assert!(malformed(&format!("old 1\n{lines}\n{NOTE}")).contains("more than 63"));
        let lines: String = (0..63).map(|_| format!("{h}\n")).collect();
        assert_eq!(
            parse(format!("old 1\n{lines}\n{NOTE}").as_bytes())
                .unwrap()
                .proof
                .len(),
            63
        );
        assert!(malformed(&"x".repeat(MAX_BODY_BYTES + 1)).contains("bytes"));
        assert!(matches!(
            parse(b"old 1\n\n\xff\n"),
            Err(Refusal::Malformed(_))
        ));
    }
}
