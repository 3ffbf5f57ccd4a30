//! The bodies of the fuzz targets: one function per parser that takes outside input.
//!
//! Each `fuzz_targets/<name>.rs` calls the function `<name>` here, and
//! `crates/runpermit/tests/fuzz_corpus.rs` (which includes this file as a module) replays
//! every file of `fuzz/corpus/<name>/` and `fuzz/artifacts/<name>/` through the same
//! function under plain `cargo test`, so a crash found once stays fixed.
//!
//! A target takes any bytes and must not panic: a parser returns an error. Where it is
//! cheap, a target also asserts what must hold for what was accepted (read, written, read
//! again gives the same thing). It returns whether the input was accepted, so that the
//! replay test can tell a corpus that still reaches a parser's success path from one that
//! no longer does.
//!
//! Signed inputs (permits, status lists, usage reports, log proofs) verify only under the
//! fixed keys of [`seeds`]: a JWS target also reads its input as a claim set, signs it with
//! the fixed key and verifies that, so the fuzzer gets past the signature to the claims.
//! Written with nothing but the crates' public APIs and `std`, `serde_json` and `toml`.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::path::Path;
use std::sync::LazyLock;

use runpermit_compute::{Estimate, Flop, FlopRate, HardwareTable, builtin_regimes, parse_count};
use runpermit_gate::{
    DCGM_TENSOR_ACTIVE, DEFAULT_STATUS_GRACE_SECONDS, Gate, GateConfig, GateParams, JobRequest,
    SpoolRecord, StatusListCache, TrustAnchors, Usage, dcgm_tensor_active, exposition_series,
    scheduler_accounting,
};
use runpermit_gate_agent::{ADMISSION_API_VERSION, Agent, slurm};
use runpermit_log::{
    Checkpoint, CosignerKey, DecisionKind, Hash, LogEntry, LogKey, LogState, ProofBundle,
    TileFetcher, TilePath, VerifierKey, WitnessPolicy, append, decode, encode, entries_tile,
    inclusion_proof, leaf_hash, needed_paths, parse_entries_tile, parse_path, sign_checkpoint,
    stored_hash_count, tile_bytes, verify_checkpoint, verify_cosignatures, verify_log,
};
use runpermit_permit::{
    EXEMPTION_TYP, ExemptionClaims, Holder, Jwks, PERMIT_TYP, PermitClaims, PermitRequest,
    PublicKey, SigningKey, check, check_permit_validity, sign, sign_exemption, sign_jws,
    verify_exemption, verify_permit_signature,
};
use runpermit_permit::{
    PermitStatus, STATUS_TYP, StatusEntry, StatusListClaims, USAGE_TYP, UsageReportClaims,
    sign_status_list, sign_usage_report, verify_status_list, verify_usage_report,
};
use runpermit_policy::{Format, Policy, RunPlan, classify, permit_terms, tranche_schedule};
use serde::Serialize;
use serde_json::{Value, json};

/// A target: any bytes in, whether they were accepted out; panics only on a bug.
pub type Target = fn(&[u8]) -> bool;

/// Every target, by name: the name of its `fuzz_targets/` file, `[[bin]]` and corpus.
pub const TARGETS: &[(&str, Target)] = &[
    ("plan_toml", plan_toml),
    ("plan_json", plan_json),
    ("quantity", quantity),
    ("jwks", jwks),
    ("permit_token", permit_token),
    ("status_list", status_list),
    ("usage_report", usage_report),
    ("proof_bundle", proof_bundle),
    ("checkpoint", checkpoint),
    ("tile_path", tile_path),
    ("log_entry", log_entry),
    ("entry_bundle", entry_bundle),
    ("log_verify", log_verify),
    ("admission", admission),
    ("decide_request", decide_request),
    ("spool_record", spool_record),
    ("gate_config", gate_config),
    ("policy_toml", policy_toml),
    ("slurm_jobs", slurm_jobs),
    ("exposition", exposition),
    ("witness_policy", witness_policy),
];

/// The fixed time of every target (2026-01-01T00:00:00Z).
const NOW: i64 = 1_767_225_600;
const AUTHORITY: &str = "https://authority.example";
const PROVIDER: &str = "org-cloud";
const CLUSTER: &str = "us-east-1";
/// The log of `docs/log.md`, whose verifier key there is this name with seed `[42; 32]`.
const LOG_NAME: &str = "log.example.org/runpermit";
const GATE_TOML: &str = include_str!("../../crates/runpermit-gate/examples/gate.toml");
const PLAN_TOML: &str = include_str!("../../examples/plans/standard.toml");

/// Keys, the gate's configuration and what the targets decide with, built once.
struct Fixture {
    /// The authority's permit key, seed `[1; 32]`: permits, receipts, status lists.
    authority: SigningKey,
    jwks: Jwks,
    /// The provider's reporting key, seed `[3; 32]`: usage reports.
    provider: SigningKey,
    provider_jwks: Jwks,
    log_key: LogKey,
    vkey: String,
    /// `crates/runpermit-gate/examples/gate.toml`, validated.
    params: GateParams,
    /// A gate with the example configuration and the fixture's keys, holding a fresh status
    /// list (version 7) suspending `pmt_suspended`.
    gate: Gate,
    /// `run_main` has used 1e24 FLOP.
    usage: Usage,
    /// A gate agent for `us-east-1` with the fixture's keys, no status list, at [`NOW`].
    agent: Agent,
    /// `examples/plans/standard.toml` and its estimate.
    plan: RunPlan,
    estimate: Estimate,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let authority = SigningKey::from_seed(&[1; 32]);
    let provider = SigningKey::from_seed(&[3; 32]);
    let jwks = Jwks::from_keys(&[authority.public()]);
    let log_key = LogKey::from_seed(LOG_NAME, &[42; 32]).expect("a valid log name");
    let vkey = log_key.verifier_key();
    let params = GateConfig::from_toml(GATE_TOML)
        .and_then(|c| c.params(HardwareTable::builtin()))
        .expect("the example gate configuration is valid");
    let anchors = TrustAnchors {
        jwks: jwks.clone(),
        log_vkey: vkey.clone(),
        witness_policy: None,
    };
    let mut gate = Gate::new(params.clone(), anchors);
    gate.accept_status(status_claims())
        .expect("the fixture's status list is sound");
    let usage = Usage::from_iter([("run_main", flop(1e24))]);
    // Never written: the agent takes no status list here, so it reads this path once and
    // finds nothing.
    let status_file = std::env::temp_dir().join("runpermit-fuzz-no-status-list.jwt");
    let agent = Agent::new(
        params.clone(),
        jwks.clone(),
        vkey.clone(),
        CLUSTER,
        status_file,
    )
    .expect("an agent for a configured cluster")
    .with_clock(|| NOW);
    let plan = RunPlan::from_toml(PLAN_TOML).expect("the example plan reads");
    let estimate = plan
        .estimate(HardwareTable::builtin(), builtin_regimes())
        .expect("the example plan is valid");
    Fixture {
        provider_jwks: Jwks::from_keys(&[provider.public()]),
        authority,
        jwks,
        provider,
        log_key,
        vkey,
        params,
        gate,
        usage,
        agent,
        plan,
        estimate,
    }
});

fn fixture() -> &'static Fixture {
    &FIXTURE
}

fn flop(value: f64) -> Flop {
    Flop::new(value).expect("a valid FLOP count")
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

// ---------------------------------------------------------------------------------------
// runpermit-policy: the run plan and the policy file

/// `RunPlan::from_toml`, then `validate`, `estimate`, `classify` and `permit_terms`.
pub fn plan_toml(data: &[u8]) -> bool {
    plan(data, Format::Toml)
}

/// `RunPlan::from_json`, then as [`plan_toml`].
pub fn plan_json(data: &[u8]) -> bool {
    plan(data, Format::Json)
}

fn plan(data: &[u8], format: Format) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(plan) = RunPlan::parse(text, format) else {
        return false;
    };
    let canonical = plan.canonical_json();
    let digest = plan.digest();
    let valid = plan.validate().is_ok();
    for path in runpermit_policy::OPTIONAL_FIELDS {
        assert!(
            plan.has_field(path).is_some(),
            "{path} is an optional field"
        );
    }
    let _ = (plan.start_unix(), plan.end_unix());
    if valid {
        // The canonical JSON of a valid plan reads back as the same plan, with the same
        // canonical text and so the same digest: the digest is a commitment to the plan.
        let again = RunPlan::from_json(&canonical)
            .unwrap_or_else(|e| panic!("canonical JSON of a valid plan does not read: {e}"));
        assert_eq!(
            again.canonical_json(),
            canonical,
            "canonical JSON is not stable"
        );
        assert_eq!(again.digest(), digest);
        assert_eq!(again, plan);
    }
    let Ok(estimate) = plan.estimate(HardwareTable::builtin(), builtin_regimes()) else {
        return false;
    };
    assert!(valid, "a plan that does not validate was estimated");
    let policy = Policy::builtin();
    let _ = classify(policy, &plan, &estimate);
    let _ = permit_terms(policy, &plan, &estimate, NOW);
    true
}

/// `Policy::from_toml`, then classifying the standard example plan under it.
pub fn policy_toml(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(policy) = Policy::from_toml(text) else {
        return false;
    };
    let f = fixture();
    let _ = classify(&policy, &f.plan, &f.estimate);
    let _ = permit_terms(&policy, &f.plan, &f.estimate, NOW);
    for budget in [0.0, 1e24, 3.2e25, 1e300] {
        let _ = tranche_schedule(&policy, flop(budget));
    }
    true
}

// ---------------------------------------------------------------------------------------
// runpermit-compute: counts and FLOP quantities

/// `parse_count`, and `Flop` and `FlopRate` from text (and from JSON, as plans and
/// configurations read them).
pub fn quantity(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let mut accepted = false;
    if let Some(count) = parse_count(text) {
        assert!(count.is_finite(), "parse_count({text:?}) = {count}");
        accepted = true;
    }
    if let Ok(value) = text.parse::<Flop>() {
        check_quantity(value.get(), "FLOP", |t| t.parse::<Flop>().map(Flop::get));
        let si = value.si();
        check_close(value.get(), si.parse::<Flop>().map(Flop::get), &si);
        accepted = true;
    }
    if let Ok(value) = text.parse::<FlopRate>() {
        check_quantity(value.get(), "FLOP/s", |t| {
            t.parse::<FlopRate>().map(FlopRate::get)
        });
        let si = value.si();
        check_close(value.get(), si.parse::<FlopRate>().map(FlopRate::get), &si);
        accepted = true;
    }
    let _ = serde_json::from_str::<Flop>(text);
    let _ = serde_json::from_str::<FlopRate>(text);
    accepted
}

/// A quantity is finite and not negative, and its exact text reads back to it.
fn check_quantity<E: Debug>(value: f64, unit: &str, read: impl Fn(&str) -> Result<f64, E>) {
    assert!(value.is_finite() && value >= 0.0, "{value}");
    for text in [format!("{value:e}"), format!("{value:e} {unit}")] {
        let back = read(&text).unwrap_or_else(|e| panic!("{text:?} does not read: {e:?}"));
        assert_eq!(back.to_bits(), value.to_bits(), "{text:?}");
    }
}

/// The three-digit SI text reads back within rounding.
fn check_close<E: Debug>(value: f64, back: Result<f64, E>, si: &str) {
    let back = back.unwrap_or_else(|e| panic!("{si:?} does not read: {e:?}"));
    if value >= 1.0 {
        assert!(
            (back / value - 1.0).abs() < 0.01,
            "{value} → {si:?} → {back}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// runpermit-permit: JWKS and signed tokens

/// `Jwks::from_json`; what it accepts writes and reads back the same.
pub fn jwks(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(jwks) = Jwks::from_json(text) else {
        return false;
    };
    let again = Jwks::from_json(&jwks.to_json())
        .unwrap_or_else(|e| panic!("a JWKS's own JSON does not read: {e}"));
    assert_eq!(again, jwks);
    for jwk in &jwks.keys {
        let key = jwks
            .find(&jwk.kid)
            .expect("every key of a read JWKS is usable");
        assert_eq!(key.kid(), jwk.kid);
        assert_eq!(PublicKey::from_jwk(&key.to_jwk()).as_ref(), Ok(&key));
    }
    true
}

/// Permits (`verify_permit_signature`, `check_permit_validity`) and exemption receipts
/// (`verify_exemption`).
pub fn permit_token(data: &[u8]) -> bool {
    let f = fixture();
    let permit = signed(
        data,
        PERMIT_TYP,
        &f.authority,
        |token| verify_permit_signature(token, &f.jwks),
        |claims: &PermitClaims| {
            for (now, leeway) in [(NOW, 60), (i64::MIN, i64::MAX), (i64::MAX, i64::MIN)] {
                let _ = check_permit_validity(claims, now, leeway);
            }
            if let Some(scope) = claims.provider(PROVIDER) {
                let _ = scope.allows_cluster(CLUSTER);
            }
        },
    );
    let exemption = signed(
        data,
        EXEMPTION_TYP,
        &f.authority,
        |token| verify_exemption(token, &f.jwks),
        |_: &ExemptionClaims| {},
    );
    permit || exemption
}

/// The signed status list (`verify_status_list`), then `StatusListCache`.
pub fn status_list(data: &[u8]) -> bool {
    let f = fixture();
    signed(
        data,
        STATUS_TYP,
        &f.authority,
        |token| verify_status_list(token, &f.jwks),
        |list: &StatusListClaims| {
            let mut cache = StatusListCache::new(DEFAULT_STATUS_GRACE_SECONDS);
            cache
                .accept(list.clone())
                .unwrap_or_else(|e| panic!("an empty cache refuses a verified list: {e}"));
            cache
                .accept(list.clone())
                .unwrap_or_else(|e| panic!("the held list offered again is refused: {e}"));
            for now in [NOW, i64::MIN, i64::MAX] {
                let _ = cache.freshness(now);
            }
            for entry in &list.entries {
                assert_eq!(cache.status_of(&entry.permit_id), Some(entry));
            }
        },
    )
}

/// The signed usage report (`verify_usage_report`); what verifies can be signed again.
pub fn usage_report(data: &[u8]) -> bool {
    let f = fixture();
    signed(
        data,
        USAGE_TYP,
        &f.provider,
        |token| verify_usage_report(token, &f.provider_jwks),
        |claims: &UsageReportClaims| {
            sign_usage_report(claims, &f.provider)
                .unwrap_or_else(|e| panic!("verified claims do not sign: {e}"));
        },
    )
}

/// Runs `verify` on the input as a token, and on the input as a claim set (any JSON value)
/// signed by `key` with `typ`; for what verifies, checks that its claims signed again
/// verify to the same claims, then runs `then`. Whether either verified.
fn signed<T, E>(
    data: &[u8],
    typ: &str,
    key: &SigningKey,
    verify: impl Fn(&str) -> Result<T, E>,
    then: impl Fn(&T),
) -> bool
where
    T: Serialize + Debug,
    E: Debug,
{
    let Some(text) = text(data) else {
        return false;
    };
    let mut tokens = vec![text.to_owned()];
    if let Ok(claims) = serde_json::from_str::<Value>(text) {
        tokens.push(sign_jws(typ, &claims, key));
    }
    let mut accepted = false;
    for token in tokens {
        let Ok(claims) = verify(&token) else {
            continue;
        };
        let again = verify(&sign_jws(typ, &claims, key))
            .unwrap_or_else(|e| panic!("verified claims signed again do not verify: {e:?}"));
        assert!(
            same_json(&to_value(&claims), &to_value(&again)),
            "claims changed on the way round: {claims:?} → {again:?}"
        );
        then(&claims);
        accepted = true;
    }
    accepted
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("claims serialize")
}

/// Equal JSON, numbers within a few units in the last place (serde_json reads floats to
/// within one, not exactly).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x != y => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------
// runpermit-log: proofs, checkpoints, tiles, entries

/// `ProofBundle::parse`, then `verify_entry` against the fixture's log key.
pub fn proof_bundle(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(bundle) = ProofBundle::parse(text) else {
        return false;
    };
    assert_eq!(
        bundle.to_string(),
        text,
        "a bundle reads only in the form it is written"
    );
    let f = fixture();
    match bundle.verify_entry(&f.vkey) {
        Ok(proved) => {
            assert_eq!(proved.index, bundle.index);
            assert!(proved.index < proved.checkpoint.size);
            let entry = bundle.entry.as_deref().expect("a proved entry was carried");
            assert_eq!(
                encode(&proved.entry, proved.at).ok().as_deref(),
                Some(entry)
            );
            true
        }
        Err(_) => {
            if let Some(entry) = &bundle.entry {
                let _ = bundle.verify(&f.vkey, entry);
            }
            false
        }
    }
}

/// A signed checkpoint (`verify_checkpoint` with the fixture's key), a checkpoint body
/// (`Checkpoint::from_body`) and a verifier key (`VerifierKey::parse`).
pub fn checkpoint(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let f = fixture();
    let mut accepted = false;
    if let Ok(checkpoint) = verify_checkpoint(text, &f.vkey) {
        assert!(text.starts_with(&checkpoint.body()));
        assert_eq!(checkpoint.origin, LOG_NAME);
        accepted = true;
    }
    if let Ok(checkpoint) = Checkpoint::from_body(text) {
        assert_eq!(
            checkpoint.body(),
            text,
            "a body reads only in the form it is written"
        );
        accepted = true;
    }
    if let Ok(key) = VerifierKey::parse(text) {
        assert_eq!(VerifierKey::parse(&key.to_string()).as_ref(), Ok(&key));
        let note = sign_checkpoint(&log().checkpoint, &f.log_key).expect("signs");
        let _ = verify_checkpoint(&note, text);
        accepted = true;
    }
    accepted
}

/// `parse_path`: what it accepts is the path it writes.
pub fn tile_path(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Some(path) = parse_path(text) else {
        return false;
    };
    assert_eq!(
        path.to_string(),
        text,
        "a tile path reads only in its canonical form"
    );
    true
}

/// `decode`: what it accepts is exactly the encoding of what it decoded.
pub fn log_entry(data: &[u8]) -> bool {
    let Ok((entry, at)) = decode(data) else {
        return false;
    };
    let encoded =
        encode(&entry, at).unwrap_or_else(|e| panic!("a decoded entry does not encode: {e}"));
    assert_eq!(
        encoded, data,
        "decode accepted bytes that are not canonical"
    );
    true
}

/// `parse_entries_tile`: what it accepts is the bundle of its entries; each entry decoded.
pub fn entry_bundle(data: &[u8]) -> bool {
    let Ok(entries) = parse_entries_tile(data) else {
        return false;
    };
    let slices: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    assert_eq!(entries_tile(&slices), data);
    for entry in &entries {
        log_entry(entry);
    }
    true
}

/// The largest log [`log_verify`] serves, and the largest previous state it starts from.
const HONEST_SIZE: u64 = 400;

/// An honest log of [`HONEST_SIZE`] `run_paused` entries: their bytes and stored hashes (a
/// prefix of which is the stored hashes of any smaller tree).
struct HonestLog {
    entries: Vec<Vec<u8>>,
    stored: Vec<Hash>,
}

static HONEST: LazyLock<HonestLog> = LazyLock::new(|| {
    let entries: Vec<Vec<u8>> = (0..HONEST_SIZE)
        .map(|i| {
            let entry = LogEntry::RunPaused {
                permit_id: format!("pmt_{}", i % 7),
                run_id: format!("run_{}", i % 7),
                reason: format!("milestone {i}"),
            };
            encode(&entry, NOW + i as i64).expect("a valid entry")
        })
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let stored = append(0, &leaves, &Vec::<Hash>::new())
        .expect("appends")
        .hashes;
    HonestLog { entries, stored }
});

impl HonestLog {
    fn root(&self, size: u64) -> Hash {
        runpermit_log::root(size, &self.stored).expect("a root")
    }

    /// What an honest log of `size` entries serves at `path`, if it has it.
    fn resource(&self, path: &TilePath, size: u64) -> Option<Vec<u8>> {
        match path {
            TilePath::Hashes(tile) => {
                let count = usize::try_from(stored_hash_count(size)).ok()?;
                tile_bytes(tile, &self.stored[..count]).ok()
            }
            TilePath::Entries(tile) => {
                let start = usize::try_from(tile.index()).ok()? * 256;
                let end = start + usize::from(tile.width());
                let entries = self
                    .entries
                    .get(start..end.min(usize::try_from(size).ok()?))?;
                (entries.len() == usize::from(tile.width()))
                    .then(|| entries_tile(&entries.iter().map(Vec::as_slice).collect::<Vec<_>>()))
            }
        }
    }
}

/// The honest log at `size`, with some resources altered; records whether an altered one was
/// served.
struct ServedLog {
    size: u64,
    altered: HashMap<String, Vec<u8>>,
    served_altered: Cell<bool>,
}

impl TileFetcher for ServedLog {
    type Error = String;

    fn tile(&self, path: &TilePath) -> Result<Vec<u8>, String> {
        let honest = HONEST
            .resource(path, self.size)
            .ok_or_else(|| format!("{path}: not found"))?;
        match self.altered.get(&path.to_string()) {
            Some(bytes) if *bytes != honest => {
                self.served_altered.set(true);
                Ok(bytes.clone())
            }
            _ => Ok(honest),
        }
    }
}

/// `verify_log`, the auditor's check of a whole log, against a log server that alters what
/// it serves. The input: the tree size (2 bytes, 1 to 300, so past one full tile), the
/// previous verified size (2 bytes, 0 to 400: beyond the size is a rollback), then edits of
/// 4 bytes each to the resources the verifier fetches: which one (by its place in
/// `needed_paths`), an offset (2 bytes) and a byte (0 truncates there; past the end it is
/// appended; otherwise XORed in). The checkpoint is honest and signed. An honest log must verify, and a log that
/// served anything altered must not.
pub fn log_verify(data: &[u8]) -> bool {
    let [a, b, c, d, edits @ ..] = data else {
        return false;
    };
    let size = 1 + u64::from(u16::from_be_bytes([*a, *b])) % 300;
    let previous_size = u64::from(u16::from_be_bytes([*c, *d])) % (HONEST_SIZE + 1);
    let f = fixture();
    let honest = &*HONEST;
    let previous = (previous_size > 0).then(|| LogState {
        size: previous_size,
        root_hash: honest.root(previous_size),
    });
    let checkpoint = Checkpoint {
        origin: LOG_NAME.into(),
        size,
        root_hash: honest.root(size),
    };
    let note = sign_checkpoint(&checkpoint, &f.log_key).expect("signs");
    let paths = needed_paths(previous_size, size);
    let mut altered: HashMap<String, Vec<u8>> = HashMap::new();
    for edit in edits.chunks_exact(4) {
        let Some(path) = paths.get(usize::from(edit[0]) % paths.len().max(1)) else {
            break;
        };
        let bytes = altered
            .entry(path.to_string())
            .or_insert_with(|| honest.resource(path, size).unwrap_or_default());
        let offset = usize::from(u16::from_be_bytes([edit[1], edit[2]]));
        match edit[3] {
            0 => bytes.truncate(offset),
            x if offset < bytes.len() => bytes[offset] ^= x,
            x => bytes.push(x),
        }
    }
    let served = ServedLog {
        size,
        altered,
        served_altered: Cell::new(false),
    };
    match verify_log(&f.vkey, previous.as_ref(), &note, &served, &mut |_, _| {}) {
        Ok(summary) => {
            assert!(
                !served.served_altered.get(),
                "verify_log accepted a log that served an altered tile or bundle"
            );
            assert!(previous_size <= size, "verify_log accepted a rollback");
            assert_eq!(summary.checkpoint, checkpoint);
            assert_eq!(summary.new_entries, size - previous_size);
            assert_eq!(
                summary.entries_by_type.values().sum::<u64>(),
                size - previous_size
            );
            true
        }
        Err(e) => {
            assert!(
                served.served_altered.get() || previous_size > size,
                "verify_log refused an honest log: {e}"
            );
            false
        }
    }
}

// ---------------------------------------------------------------------------------------
// runpermit-gate and runpermit-gate-agent

/// A Kubernetes AdmissionReview body, answered by the fixture's gate agent (`review`).
pub fn admission(data: &[u8]) -> bool {
    let Ok(answer) = runpermit_gate_agent::review(&fixture().agent, data) else {
        return false;
    };
    assert_eq!(answer["apiVersion"], ADMISSION_API_VERSION);
    assert!(answer["response"]["uid"].is_string(), "{answer}");
    assert!(answer["response"]["allowed"].is_boolean(), "{answer}");
    true
}

/// A `JobRequest` as `POST /v1/decide` and `gate check` take it: `Gate::decide_uncached` and
/// `Gate::decide` (cold and warm) must decide the same.
pub fn decide_request(data: &[u8]) -> bool {
    let Ok(job) = serde_json::from_slice::<JobRequest>(data) else {
        return false;
    };
    let f = fixture();
    let plain = f.gate.decide_uncached(&job, &f.usage, NOW);
    let mut gate = f.gate.clone();
    for _ in 0..2 {
        let cached = gate.decide(&job, &f.usage, NOW);
        assert_eq!(cached, plain, "the evidence cache changed a decision");
    }
    serde_json::to_string(&plain).expect("a decision serializes");
    true
}

/// A spool accounting record (`SpoolRecord::parse` against the example configuration),
/// then its usage report claims, as the `spool` metering source makes them.
pub fn spool_record(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let table = HardwareTable::builtin();
    let Ok(record) = SpoolRecord::parse(text, &fixture().params, table) else {
        return false;
    };
    let Ok(mut claims) = record.claims(PROVIDER, NOW, table, None) else {
        return true;
    };
    // The queue numbers the report; then it must be signable, or metering would reject a
    // record that parsed.
    claims.seq = 1;
    assert_eq!(
        claims.problems(),
        vec![],
        "a parsed record makes unsound claims"
    );
    true
}

/// `GateConfig::from_toml`; what it accepts writes as TOML and reads back the same.
pub fn gate_config(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let Ok(config) = GateConfig::from_toml(text) else {
        return false;
    };
    config
        .params(HardwareTable::builtin())
        .unwrap_or_else(|e| panic!("from_toml accepted what params refuses: {e}"));
    if let Ok(written) = toml::to_string(&config) {
        let again = GateConfig::from_toml(&written)
            .unwrap_or_else(|e| panic!("a configuration's own TOML does not read: {e}"));
        assert_eq!(again, config);
    }
    let mut resolved = config.clone();
    resolved.resolve_paths(Path::new("/etc/runpermit"));
    true
}

/// `scontrol show job -o -d` output (`slurm::parse_jobs`), two listings tracked by a
/// `JobTracker`, and the Slurm field readers on the whole text.
pub fn slurm_jobs(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    // Two successive listings, split at the first blank line (or the same one twice).
    let (first, second) = text.split_once("\n\n").unwrap_or((text, text));
    let jobs = slurm::parse_jobs(first);
    for job in &jobs {
        let _ = (job.is_active(), job.gpus_on("gpu001"));
    }
    let mut tracker = slurm::JobTracker::new(NOW - 3600);
    let observed = tracker.observe(&jobs, NOW);
    let _ = slurm::by_run(&observed.usage);
    let observed = tracker.observe(&slurm::parse_jobs(second), NOW + 60);
    let _ = slurm::by_run(&observed.usage);
    let _ = slurm::parse_marker(text);
    let _ = slurm::parse_duration(text);
    let _ = slurm::parse_utc(text);
    let _ = slurm::gpus_in_tres(text);
    let _ = slurm::gpus_in_gres(text);
    let _ = slurm::hostlist_contains(text, "gpu001");
    !jobs.is_empty()
}

/// A Prometheus text exposition as dcgm-exporter serves it (`exposition_series`,
/// `dcgm_tensor_active`).
pub fn exposition(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let _ = dcgm_tensor_active(text, "hpc_job", "1");
    let _ = exposition_series(text, "DCGM_FI_DEV_GPU_UTIL");
    exposition_series(text, DCGM_TENSOR_ACTIVE).is_ok_and(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------
// Seeds that need the fixed keys

/// The fixture's status list claims: version 7, one suspended permit.
fn status_claims() -> StatusListClaims {
    StatusListClaims::new(
        AUTHORITY,
        NOW - 60,
        3600,
        7,
        vec![StatusEntry {
            permit_id: "pmt_suspended".into(),
            status: PermitStatus::Suspended,
            reason: "incident inc_1 under investigation".into(),
            since: NOW - 3600,
        }],
    )
}

/// The main permit of the seeds: 16384 accelerators of `org-cloud` in `us-east-1`.
fn permit_request(jti: &str, run: &str) -> PermitRequest {
    serde_json::from_value(json!({
        "iss": AUTHORITY,
        "sub": run,
        "jti": jti,
        "nbf": NOW - 86_400,
        "exp": NOW + 90 * 86_400,
        "application_id": "app_main",
        "holder": {"org_id": "org-lab", "name": "Example Lab"},
        "providers": [
            {"provider": PROVIDER, "clusters": [CLUSTER]},
            {"provider": "org-hpc", "clusters": []}
        ],
        "evaluators": ["org-institute"],
        "max_accelerators": 16_384,
        "flop_budget": 3.2e25,
        "tranches": [{"index": 1, "flop": 8e24}, {"index": 2, "flop": 3.2e25}],
        "policy_version": "2026-01",
        "tier": "standard",
        "conditions": ["milestone evaluation at each tranche"]
    }))
    .expect("a permit request")
}

/// The seeds' log: a decision, the main permit and a tranche release, all at `NOW - 86400`.
struct Log {
    token: String,
    claims: PermitClaims,
    entries: Vec<Vec<u8>>,
    bundles: Vec<ProofBundle>,
    checkpoint: Checkpoint,
}

fn log() -> Log {
    let f = fixture();
    let issued_at = NOW - 86_400;
    let signed = sign(
        check(permit_request("pmt_main", "run_main"), issued_at).expect("a sound permit"),
        &f.authority,
    );
    let claims = signed.claims;
    let entries = [
        LogEntry::Decision {
            application_id: "app_main".into(),
            decision: DecisionKind::Approved,
            tier: "standard".into(),
            policy_version: "2026-01".into(),
            reason: None,
        },
        LogEntry::PermitIssued {
            permit_id: claims.jti.clone(),
            application_id: claims.application_id.clone(),
            run_id: claims.sub.clone(),
            holder_org_id: claims.holder.org_id.clone(),
            token: signed.token.clone(),
            flop_budget: claims.flop_budget,
            nbf: claims.nbf,
            exp: claims.exp,
            policy_version: claims.policy_version.clone(),
        },
        LogEntry::TrancheReleased {
            permit_id: claims.jti.clone(),
            run_id: claims.sub.clone(),
            tranche: 1,
            flop: flop(8e24),
        },
    ];
    let entries: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| encode(e, issued_at).expect("a valid entry"))
        .collect();
    let leaves: Vec<_> = entries.iter().map(|e| leaf_hash(e)).collect();
    let appended = append(0, &leaves, &Vec::<Hash>::new()).expect("appends");
    let (size, stored) = (appended.size, appended.hashes);
    let checkpoint = Checkpoint {
        origin: LOG_NAME.into(),
        size,
        root_hash: appended.root,
    };
    let note = sign_checkpoint(&checkpoint, &f.log_key).expect("signs");
    let bundles = (0..size)
        .map(|i| ProofBundle {
            index: i,
            entry: Some(entries[i as usize].clone()),
            proof: inclusion_proof(i, size, &stored).expect("a proof"),
            checkpoint: note.clone(),
        })
        .collect();
    Log {
        token: signed.token,
        claims,
        entries,
        bundles,
        checkpoint,
    }
}

/// One seed: its target, its file name in `fuzz/corpus/<target>/`, its bytes.
pub type Seed = (&'static str, &'static str, Vec<u8>);

/// A witness policy (`WitnessPolicy::parse`, both key forms), its quorum over every witness
/// and over none, and `verify_checkpoint` of the fixture's checkpoint cosigned by a fixed
/// witness; and the input as a note whose cosignatures `verify_cosignatures` reads.
pub fn witness_policy(data: &[u8]) -> bool {
    let Some(text) = text(data) else {
        return false;
    };
    let f = fixture();
    let witness = CosignerKey::from_seed("witness.example.org/w1", &[0x51; 32]).expect("key");
    let _ = verify_cosignatures(text, &[witness.verifier()]);
    let Ok(policy) = WitnessPolicy::parse(text) else {
        return false;
    };
    let all: Vec<&str> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
    assert!(policy.quorum_met(&all), "every witness meets any quorum");
    assert!(policy.missing(&all).is_empty());
    if !policy.requires_no_cosignature() {
        assert!(!policy.quorum_met(&[]));
        assert!(!policy.missing(&[]).is_empty());
    }
    let checkpoint = Checkpoint {
        origin: LOG_NAME.into(),
        size: 1,
        root_hash: leaf_hash(b"fuzz"),
    };
    let note = sign_checkpoint(&checkpoint, &f.log_key).expect("sign");
    let line = witness.cosign(&checkpoint, NOW as u64).expect("cosign");
    let _ = policy.verify_checkpoint(&format!("{note}{line}"), &f.vkey);
    true
}

/// The seeds that are signed with (or name) the fixed keys, so that the fuzzer starts
/// past the signature checks. Deterministic (Ed25519 signatures are), so the replay test
/// can check that the files in `fuzz/corpus/` are these bytes, and rewrite them with
/// `RUNPERMIT_FUZZ_BLESS=1` when a format changes.
pub fn seeds() -> Vec<Seed> {
    let f = fixture();
    let log = log();
    fn json<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).expect("JSON")
    }
    let permit_bundle = log.bundles[1].to_string();

    let exemption = ExemptionClaims {
        iss: AUTHORITY.into(),
        jti: "rcp_small".into(),
        iat: NOW,
        rpv: 1,
        application_id: "app_small".into(),
        holder: Holder {
            org_id: "org-lab".into(),
            name: "Example Lab".into(),
        },
        estimated_flop: flop(3.1e23),
        policy_version: "2026-01".into(),
        tier: "exempt".into(),
        reason: "3.1e23 FLOP is below every threshold".into(),
    };
    let status = status_claims();
    let empty_status = StatusListClaims::new(AUTHORITY, NOW, 300, 8, Vec::new());
    let chip = HardwareTable::builtin()
        .lookup("H100 SXM")
        .expect("a known chip");
    let report = UsageReportClaims::new(
        PROVIDER,
        "run_main",
        "pmt_main",
        CLUSTER,
        1,
        (NOW - 3600, NOW),
        NOW,
        scheduler_accounting(chip, 8.0 * 3600.0, None).expect("metered"),
    );
    let evidence = json!({"token": log.token, "proof_bundle": permit_bundle});
    let pod = |gpus: Value, annotations: Value| {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "lab",
                "name": "trainer-0",
                "operation": "CREATE",
                "object": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "trainer-0", "annotations": annotations},
                    "spec": {
                        "activeDeadlineSeconds": 86_400,
                        "initContainers": [{"name": "fetch", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
                        "containers": [
                            {"name": "train", "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"cpu": "64"}}},
                            {"name": "log"}
                        ]
                    }
                }
            }
        })
    };
    let permit_annotations = json!({
        "runpermit.org/permit": log.token,
        "runpermit.org/proof": permit_bundle,
    });
    let job = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b1d7c9a0-0000-4000-8000-000000000001",
            "kind": {"group": "batch", "version": "v1", "kind": "Job"},
            "namespace": "lab",
            "name": "pretrain",
            "operation": "CREATE",
            "object": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "pretrain", "annotations": permit_annotations},
                "spec": {
                    "parallelism": 256,
                    "completions": 512,
                    "activeDeadlineSeconds": 604_800,
                    "template": {
                        "metadata": {"annotations": {"team": "pretraining"}},
                        "spec": {"containers": [{"name": "train", "resources": {"requests": {"nvidia.com/gpu": 8}}}]}
                    }
                }
            }
        }
    });

    vec![
        ("jwks", "seed-authority.json", f.jwks.to_json().into_bytes()),
        (
            "jwks",
            "seed-two-keys.json",
            Jwks::from_keys(&[f.authority.public(), f.provider.public()])
                .to_json()
                .into_bytes(),
        ),
        (
            "permit_token",
            "seed-permit.jwt",
            log.token.clone().into_bytes(),
        ),
        ("permit_token", "seed-permit-claims.json", json(&log.claims)),
        (
            "permit_token",
            "seed-exemption.jwt",
            sign_exemption(&exemption, &f.authority).into_bytes(),
        ),
        (
            "permit_token",
            "seed-exemption-claims.json",
            json(&exemption),
        ),
        (
            "status_list",
            "seed-list.jwt",
            sign_status_list(&status, &f.authority).into_bytes(),
        ),
        ("status_list", "seed-list-claims.json", json(&status)),
        (
            "status_list",
            "seed-empty-list.jwt",
            sign_status_list(&empty_status, &f.authority).into_bytes(),
        ),
        (
            "usage_report",
            "seed-report.jwt",
            sign_usage_report(&report, &f.provider)
                .expect("a sound report")
                .into_bytes(),
        ),
        ("usage_report", "seed-report-claims.json", json(&report)),
        ("log_entry", "seed-decision.json", log.entries[0].clone()),
        (
            "log_entry",
            "seed-permit-issued.json",
            log.entries[1].clone(),
        ),
        (
            "log_entry",
            "seed-tranche-released.json",
            log.entries[2].clone(),
        ),
        (
            "entry_bundle",
            "seed-three-entries",
            entries_tile(&log.entries.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        ),
        (
            "proof_bundle",
            "seed-decision.tlog-proof",
            log.bundles[0].to_string().into_bytes(),
        ),
        (
            "proof_bundle",
            "seed-permit.tlog-proof",
            permit_bundle.clone().into_bytes(),
        ),
        (
            "proof_bundle",
            "seed-without-entry.tlog-proof",
            ProofBundle {
                entry: None,
                ..log.bundles[2].clone()
            }
            .to_string()
            .into_bytes(),
        ),
        (
            "checkpoint",
            "seed-checkpoint.note",
            log.bundles[0].checkpoint.clone().into_bytes(),
        ),
        (
            "checkpoint",
            "seed-body.txt",
            log.checkpoint.body().into_bytes(),
        ),
        ("checkpoint", "seed-vkey.txt", f.vkey.clone().into_bytes()),
        (
            "admission",
            "seed-pod-with-permit.json",
            json(&pod(json!("2048"), permit_annotations.clone())),
        ),
        (
            "admission",
            "seed-pod-without-permit.json",
            json(&pod(json!("8k"), json!({}))),
        ),
        ("admission", "seed-job-with-permit.json", json(&job)),
        (
            "decide_request",
            "seed-permitted.json",
            json(
                &json!({"cluster": CLUSTER, "accelerators": 4096, "hours": 72.0, "permit": evidence}),
            ),
        ),
        (
            "decide_request",
            "seed-without-proof.json",
            json(
                &json!({"cluster": CLUSTER, "accelerators": 2048, "permit": {"token": log.token, "proof_bundle": ""}}),
            ),
        ),
    ]
}
