//! Checks on a batch before it reaches the database: enumerated values, JSON text, key sizes.
//! Every problem of the batch is reported at once, each naming its write and field. What each
//! kind of write must hold is in `writes`; usage batches and log batches are checked here.

mod writes;

use writes::check;

use crate::MAX_LOG_ENTRY_BYTES;

use crate::{LogBatch, StoreError, UsageRecord, Write};

/// Checks every write of `writes`; `Invalid` lists all problems found.
pub(crate) fn batch(writes: &[Write]) -> Result<(), StoreError> {
    let mut problems = Problems::default();
    for (i, write) in writes.iter().enumerate() {
        problems.at = format!("writes[{i}] ({})", write.describe());
        check(write, &mut problems);
    }
    if problems.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(problems.list.join("; ")))
    }
}

/// Checks every record of a [`crate::RunStore::ingest_usage`] batch; `Invalid` lists all
/// problems found, each naming its record (index and key) and field.
pub(crate) fn usage(records: &[UsageRecord]) -> Result<(), StoreError> {
    // `p.at` stays empty (each problem starts " field: …"); a record's name is prefixed below.
    let mut p = Problems::default();
    for (i, r) in records.iter().enumerate() {
        let start = p.list.len();
        p.id("provider_id", &r.provider_id);
        p.id("run_id", &r.run_id);
        if r.seq < 1 {
            p.push("seq", format!("must be 1 or more (got {})", r.seq));
        }
        p.id("permit_id", &r.permit_id);
        p.id("cluster", &r.cluster);
        if r.to_s <= r.from_s {
            p.push(
                "to_s",
                format!(
                    "must be after from_s (got from_s {}, to_s {})",
                    r.from_s, r.to_s
                ),
            );
        }
        p.flop("flop", r.flop);
        p.flop("flop_lower", r.flop_lower);
        p.flop("flop_upper", r.flop_upper);
        p.flop("capacity_flop", r.capacity_flop);
        if !(r.flop_lower <= r.flop && r.flop <= r.flop_upper) {
            p.push(
                "flop",
                format!(
                    "must lie within flop_lower..=flop_upper (got {} <= {} <= {})",
                    r.flop_lower, r.flop, r.flop_upper
                ),
            );
        }
        p.id("method", &r.method);
        p.json("accelerator_seconds_json", &r.accelerator_seconds_json);
        p.sha256_hex(
            "digest",
            &r.digest,
            "the lowercase hex SHA-256 of the token",
        );
        p.id("token", &r.token);
        if p.list.len() > start {
            // Name the record only when it has problems: formatting it costs more than checking.
            let at = format!(
                "records[{i}] (provider {:?} run {:?} seq {})",
                r.provider_id, r.run_id, r.seq
            );
            for problem in &mut p.list[start..] {
                problem.insert_str(0, &at);
            }
        }
    }
    if p.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
    }
}

/// Access-usage records, all problems at once ([`crate::RunStore::ingest_access_usage`]).
pub(crate) fn access_usage(records: &[crate::AccessUsageRecord]) -> Result<(), StoreError> {
    let mut p = Problems::default();
    for (i, r) in records.iter().enumerate() {
        let start = p.list.len();
        p.id("iss", &r.iss);
        p.id("grant_id", &r.grant_id);
        p.id("model_id", &r.model_id);
        if r.seq < 1 {
            p.push("seq", format!("must be 1 or more (got {})", r.seq));
        }
        if r.to_s <= r.from_s {
            p.push(
                "to_s",
                format!(
                    "must be after from_s (got from_s {}, to_s {})",
                    r.from_s, r.to_s
                ),
            );
        }
        for (field, value) in [
            ("requests", r.requests),
            ("prompt_tokens", r.prompt_tokens),
            ("completion_tokens", r.completion_tokens),
            ("refused", r.refused),
        ] {
            if value < 0 {
                p.push(field, format!("must be 0 or more (got {value})"));
            }
        }
        p.sha256_hex(
            "digest",
            &r.digest,
            "the lowercase hex SHA-256 of the token",
        );
        p.id("token", &r.token);
        if p.list.len() > start {
            let at = format!(
                "records[{i}] (iss {:?} grant {:?} seq {})",
                r.iss, r.grant_id, r.seq
            );
            for problem in &mut p.list[start..] {
                problem.insert_str(0, &at);
            }
        }
    }
    if p.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
    }
}

/// The largest tree size [`log_batch`] accepts (2^53): far beyond any real log, and small enough
/// that every stored-hash index fits an `i64` without overflow checks downstream.
const MAX_LOG_SIZE: i64 = 1 << 53;

/// How many hashes tlog stores for a tree of `n` records (`StoredHashCount(n)` in Go's
/// `golang.org/x/mod/sumdb/tlog`): `2n - popcount(n)`. The hashes that records `0..n` add are
/// the stored-hash indexes `0..stored_hash_count(n)`. `n` is at most [`MAX_LOG_SIZE`].
pub(crate) fn stored_hash_count(n: i64) -> i64 {
    2 * n - i64::from(n.count_ones())
}

/// Checks a [`LogBatch`] against itself (the stored size is the database's to check): sizes,
/// consecutive entry indexes, the exact run of stored-hash indexes it must add, non-empty
/// fields, distinct queue ids. `Invalid` lists every problem found (the first of each kind for
/// per-entry checks). On success, returns the batch's queue ids, sorted.
pub(crate) fn log_batch(batch: &LogBatch) -> Result<Vec<i64>, StoreError> {
    let mut p = Problems {
        at: "log batch".to_owned(),
        list: Vec::new(),
    };
    let range = 0..=MAX_LOG_SIZE;
    if !range.contains(&batch.expected_size) {
        p.push(
            "expected_size",
            format!("must be 0 to {MAX_LOG_SIZE} (got {})", batch.expected_size),
        );
    }
    let added = i64::try_from(batch.entries.len()).unwrap_or(i64::MAX);
    let size_ok =
        range.contains(&batch.size) && batch.expected_size.checked_add(added) == Some(batch.size);
    if !size_ok {
        p.push(
            "size",
            format!(
                "must be expected_size + entries.len() = {} + {} (got {})",
                batch.expected_size,
                batch.entries.len(),
                batch.size
            ),
        );
    }
    let mut expected_index = batch.expected_size;
    let (mut bad_index, mut bad_subject, mut bad_entry) = (false, false, false);
    for (i, e) in batch.entries.iter().enumerate() {
        if e.index != expected_index && !bad_index {
            bad_index = true;
            p.push(
                &format!("entries[{i}].index"),
                format!(
                    "must be {expected_index}: entries take the indexes expected_size, \
                     expected_size + 1, … in order (got {})",
                    e.index
                ),
            );
        }
        if e.subject.is_empty() && !bad_subject {
            bad_subject = true;
            p.push(
                &format!("entries[{i}].subject"),
                "must not be empty".to_owned(),
            );
        }
        if (e.entry.is_empty() || e.entry.len() >= MAX_LOG_ENTRY_BYTES) && !bad_entry {
            bad_entry = true;
            p.log_entry(&format!("entries[{i}].entry"), &e.entry);
        }
        expected_index = expected_index.saturating_add(1);
    }
    if p.list.is_empty() {
        // Sizes are in range: the stored-hash arithmetic cannot overflow.
        let first = stored_hash_count(batch.expected_size);
        let end = stored_hash_count(batch.size);
        let want = usize::try_from(end - first).unwrap_or(usize::MAX);
        if batch.hashes.len() != want {
            p.push(
                "hashes",
                format!(
                    "must hold the {want} stored hashes with indexes {first}..{end} that a tree \
                     of {} entries adds to one of {} (got {})",
                    batch.size,
                    batch.expected_size,
                    batch.hashes.len()
                ),
            );
        } else if let Some((i, (index, _))) = batch
            .hashes
            .iter()
            .enumerate()
            .find(|(i, (index, _))| *index != first + *i as i64)
        {
            p.push(
                &format!("hashes[{i}]"),
                format!(
                    "index must be {}: the hashes take the indexes {first}..{end} in order \
                     (got {index})",
                    first + i as i64
                ),
            );
        }
    }
    if let Some(i) = batch.hashes.iter().position(|(_, hash)| hash.is_empty()) {
        p.push(&format!("hashes[{i}]"), "hash must not be empty".to_owned());
    }
    if batch.root.is_empty() {
        p.push("root", "must not be empty".to_owned());
    }
    p.id("checkpoint", &batch.checkpoint);
    let mut queue_ids: Vec<i64> = batch.entries.iter().map(|e| e.queue_id).collect();
    queue_ids.sort_unstable();
    if let Some(pair) = queue_ids.windows(2).find(|pair| pair[0] == pair[1]) {
        p.push(
            "entries",
            format!("queue_id {} appears more than once", pair[0]),
        );
    }
    if p.list.is_empty() {
        Ok(queue_ids)
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
    }
}

#[derive(Default)]
struct Problems {
    at: String,
    list: Vec<String>,
}

impl Problems {
    fn push(&mut self, field: &str, message: String) {
        self.list.push(format!("{} {field}: {message}", self.at));
    }

    /// A FLOP figure: finite and not negative.
    fn flop(&mut self, field: &str, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            self.push(
                field,
                format!("must be a finite number of FLOP, 0 or more (got {value})"),
            );
        }
    }

    /// A lowercase hex SHA-256 digest; `what` says of what.
    fn sha256_hex(&mut self, field: &str, value: &str, what: &str) {
        let hex = value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            self.push(
                field,
                format!("must be {what} (64 characters 0-9a-f; got {value:?})"),
            );
        }
    }

    fn ed25519_key(&mut self, field: &str, key: &[u8]) {
        if key.len() != 32 {
            self.push(
                field,
                format!(
                    "must be the 32 raw bytes of an Ed25519 public key (got {} bytes)",
                    key.len()
                ),
            );
        }
    }

    fn not_negative(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.push(field, format!("must be 0 or more (got {value})"));
        }
    }

    fn id(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty".to_owned());
        }
    }

    fn one_of(&mut self, field: &str, value: &str, accepted: &[&str]) {
        if !accepted.contains(&value) {
            self.push(
                field,
                format!("must be one of {} (got {value:?})", accepted.join(", ")),
            );
        }
    }

    fn log_entry(&mut self, field: &str, entry: &[u8]) {
        if entry.is_empty() || entry.len() >= MAX_LOG_ENTRY_BYTES {
            self.push(
                field,
                format!(
                    "must hold 1 to {} bytes (got {})",
                    MAX_LOG_ENTRY_BYTES - 1,
                    entry.len()
                ),
            );
        }
    }

    fn json(&mut self, field: &str, value: &str) {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(value) {
            self.push(
                field,
                format!("must be JSON text, such as {{}} or null ({e})"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, SigningKey};

    #[test]
    fn reports_every_problem_with_its_write_and_field() {
        let writes = vec![
            Write::InsertMember(Member {
                id: "m1".into(),
                org_id: String::new(),
                name: "Ada".into(),
                role: runpermit_types::Role::Admin,
                created_at: 0,
            }),
            Write::InsertSigningKey(SigningKey {
                kid: "k1".into(),
                public_key: vec![0; 31],
                created_at: 0,
                retired_at: None,
            }),
        ];
        let Err(StoreError::Invalid(message)) = batch(&writes) else {
            panic!("expected Invalid");
        };
        assert!(
            message.contains("writes[0] (InsertMember m1) org_id: must not be empty"),
            "{message}"
        );
        assert!(
            message
                .contains("writes[1] (InsertSigningKey k1) public_key: must be the 32 raw bytes"),
            "{message}"
        );
    }

    #[test]
    fn stored_hash_count_matches_tlog() {
        // StoredHashCount from golang.org/x/mod/sumdb/tlog, by its definition: the hashes of
        // records 0..n, each adding its leaf and one hash per completed subtree.
        let mut count = 0;
        for n in 0..1_000_i64 {
            assert_eq!(stored_hash_count(n), count, "n = {n}");
            count += 1 + i64::from((n + 1).trailing_zeros());
        }
    }

    #[test]
    fn log_batch_problems_are_each_reported() {
        use crate::{LogBatch, SequencedEntry};
        let entry = |queue_id, index| SequencedEntry {
            queue_id,
            index,
            subject: "s".into(),
            entry: vec![1],
        };
        let batch = LogBatch {
            expected_size: 3,
            entries: vec![entry(1, 3), entry(1, 5)],
            hashes: vec![],
            size: 6,
            root: vec![],
            checkpoint: String::new(),
            at: 0,
        };
        let Err(StoreError::Invalid(message)) = log_batch(&batch) else {
            panic!("expected Invalid");
        };
        for part in [
            "size: must be expected_size + entries.len() = 3 + 2 (got 6)",
            "entries[1].index: must be 4",
            "root: must not be empty",
            "checkpoint: must not be empty",
            "queue_id 1 appears more than once",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }

        let ok = LogBatch {
            expected_size: 3,
            entries: vec![entry(9, 3), entry(2, 4)],
            // stored_hash_count(3) = 4, stored_hash_count(5) = 8
            hashes: (4..8).map(|i| (i, vec![0; 32])).collect(),
            size: 5,
            root: vec![0; 32],
            checkpoint: "c".into(),
            at: 0,
        };
        assert_eq!(log_batch(&ok).unwrap(), vec![2, 9]);
        let mut shifted = ok.clone();
        shifted.hashes[2].0 = 7;
        let Err(StoreError::Invalid(message)) = log_batch(&shifted) else {
            panic!("expected Invalid");
        };
        assert!(message.contains("hashes[2]: index must be 6"), "{message}");
        let mut short = ok;
        short.hashes.pop();
        let Err(StoreError::Invalid(message)) = log_batch(&short) else {
            panic!("expected Invalid");
        };
        assert!(
            message.contains("must hold the 4 stored hashes with indexes 4..8"),
            "{message}"
        );
    }

    #[test]
    fn accepts_an_empty_batch() {
        assert!(batch(&[]).is_ok());
    }
}
