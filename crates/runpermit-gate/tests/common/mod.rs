//! A small, real world for gate decisions: an authority key that signs permits and status
//! lists, a log key, a transparency log holding the permits' `permit_issued` entries, proof
//! bundles from it, and a gate configuration. No crypto is mocked.

#![allow(dead_code)] // Shared by the tests and the example; each uses part of it.

use runpermit_compute::Flop;
use runpermit_gate::{
    Decision, Gate, GateConfig, GateParams, JobRequest, PermitEvidence, TrustAnchors, Usage,
};
use runpermit_log::{
    Checkpoint, CosignerKey, DecisionKind, Hash, LogEntry, LogKey, ProofBundle, WitnessPolicy,
    add_signature_lines, append, encode, inclusion_proof, leaf_hash, sign_checkpoint,
};
use runpermit_permit::{
    Holder, Jwks, PermitClaims, PermitRequest, ProviderScope, SigningKey, StatusEntry,
    StatusListClaims, Tranche, check, sign, sign_status_list, verify_status_list,
};

/// 2026-01-01T00:00:00Z: the time decisions are made at, unless a test says otherwise.
pub const NOW: i64 = 1_767_225_600;
/// When the permits were issued.
pub const ISSUED: i64 = NOW - 3600;
/// The log's name (checkpoint origin).
pub const LOG_NAME: &str = "log.example.org/runpermit";
/// The authority.
pub const AUTHORITY: &str = "https://authority.example";
/// The status lists' TTL.
pub const TTL: i64 = 3600;

/// The gate's configuration, with `{VKEY}` for the log's verifier key.
pub const CONFIG: &str = r#"
authority_url = "https://authority.example"
jwks = "jwks.json"
log_vkey = "{VKEY}"
provider_id = "org-cloud"
reporting_key = "reporting-key.pem"
clock_skew_seconds = 60
status_grace_seconds = 300

[thresholds]
min_accelerators = 1024
min_projected_flop = 1e24

[[clusters]]
name = "us-east-1"
accelerator = "H100 SXM"
accelerators = 16384

[[clusters]]
name = "eu-west-1"
accelerator = "H100 SXM"
accelerators = 4096
"#;

/// A permit as issued and logged.
#[derive(Clone, Debug)]
pub struct Logged {
    /// The compact JWS.
    pub token: String,
    /// Its claims.
    pub claims: PermitClaims,
    /// Its `c2sp.org/tlog-proof@v1` bundle.
    pub proof: String,
}

/// Everything a decision needs, built for real.
pub struct World {
    pub authority: SigningKey,
    pub jwks: Jwks,
    pub log_key: LogKey,
    pub vkey: String,
    pub params: GateParams,
    /// The gate, with the world's anchors and `params`, holding the newest list published.
    /// One gate (so one evidence cache) for every decision this world makes, so that each
    /// scenario also runs warm, after others have filled it.
    pub gate: std::cell::RefCell<Gate>,
    /// `main` (run_main, org-cloud restricted to us-east-1, 4096 accelerators, 3.2e25 FLOP
    /// in three tranches), `other` (another run), `short` (expires at NOW + 100),
    /// `future` (valid from NOW + 600).
    pub main: Logged,
    pub other: Logged,
    pub short: Logged,
    pub future: Logged,
    /// The proof of the log's `decision` entry (not a permit).
    pub decision_proof: String,
    /// The gate's witness policy (none unless [`World::require_witnesses`]).
    pub witness_policy: Option<WitnessPolicy>,
}

/// Three witnesses, `w1.example` to `w3.example`, from fixed seeds.
pub fn witnesses() -> [CosignerKey; 3] {
    [1u8, 2, 3].map(|i| CosignerKey::from_seed(&format!("w{i}.example"), &[0x40 + i; 32]).unwrap())
}

/// A policy naming the log key `vkey` and [`witnesses`], requiring two of the three.
pub fn two_of_three(vkey: &str) -> WitnessPolicy {
    let mut text = format!("log {vkey}\n");
    for w in witnesses() {
        text.push_str(&format!("witness {} {}\n", w.name(), w.verifier_key()));
    }
    text.push_str("group witnesses 2 w1.example w2.example w3.example\nquorum witnesses\n");
    WitnessPolicy::parse(&text).unwrap()
}

/// `proof` with its checkpoint cosigned by `by`.
pub fn cosigned(proof: &str, by: &[&CosignerKey]) -> String {
    let mut bundle = ProofBundle::parse(proof).unwrap();
    let body = bundle.checkpoint.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let lines: Vec<String> = by
        .iter()
        .map(|w| w.cosign_body(&body, NOW as u64 - 5).unwrap())
        .collect();
    bundle.checkpoint = add_signature_lines(&bundle.checkpoint, &lines);
    bundle.to_string()
}

/// The main permit's request; others are variations of it.
pub fn request(jti: &str, sub: &str) -> PermitRequest {
    let flop = |v: f64| Flop::new(v).unwrap();
    PermitRequest {
        iss: AUTHORITY.into(),
        sub: sub.into(),
        jti: jti.into(),
        nbf: ISSUED,
        exp: NOW + 30 * 86_400,
        application_id: format!("app_{sub}"),
        holder: Holder {
            org_id: "org-lab".into(),
            name: "Example Lab".into(),
        },
        providers: vec![
            ProviderScope {
                provider: "org-cloud".into(),
                clusters: vec!["us-east-1".into()],
            },
            ProviderScope {
                provider: "org-hpc".into(),
                clusters: vec![],
            },
        ],
        evaluators: Vec::new(),
        accounting: Some(runpermit_compute::AccountingBasis::assumed(
            runpermit_compute::Precision::Bf16,
        )),
        max_accelerators: 4096,
        flop_budget: flop(3.2e25),
        tranches: vec![
            Tranche {
                index: 1,
                flop: flop(2e24),
            },
            Tranche {
                index: 2,
                flop: flop(8e24),
            },
            Tranche {
                index: 3,
                flop: flop(3.2e25),
            },
        ],
        policy_version: "2026.1".into(),
        tier: "standard".into(),
        conditions: vec![],
    }
}

/// Signs `request` with `key` as of [`ISSUED`].
pub fn issue(request: PermitRequest, key: &SigningKey) -> (String, PermitClaims) {
    let signed = sign(check(request, ISSUED).unwrap(), key);
    (signed.token, signed.claims)
}

/// The `permit_issued` entry of a permit.
pub fn permit_entry(token: &str, claims: &PermitClaims) -> LogEntry {
    LogEntry::PermitIssued {
        permit_id: claims.jti.clone(),
        application_id: claims.application_id.clone(),
        run_id: claims.sub.clone(),
        holder_org_id: claims.holder.org_id.clone(),
        token: token.to_owned(),
        flop_budget: claims.flop_budget,
        nbf: claims.nbf,
        exp: claims.exp,
        policy_version: claims.policy_version.clone(),
    }
}

/// A log of `entries` (appended at [`ISSUED`]) under a checkpoint signed by `key`, and the
/// proof bundle text of every entry.
pub fn log(entries: &[LogEntry], key: &LogKey) -> Vec<String> {
    let bytes: Vec<Vec<u8>> = entries.iter().map(|e| encode(e, ISSUED).unwrap()).collect();
    let leaves: Vec<Hash> = bytes.iter().map(|b| leaf_hash(b)).collect();
    let mut stored: Vec<Hash> = Vec::new();
    let appended = append(0, &leaves, &stored).unwrap();
    stored.extend(appended.hashes);
    let size = entries.len() as u64;
    let checkpoint = sign_checkpoint(
        &Checkpoint {
            origin: key.name().to_owned(),
            size,
            root_hash: appended.root,
        },
        key,
    )
    .unwrap();
    (0..size)
        .map(|i| {
            ProofBundle {
                index: i,
                entry: Some(bytes[i as usize].clone()),
                proof: inclusion_proof(i, size, &stored).unwrap(),
                checkpoint: checkpoint.clone(),
            }
            .to_string()
        })
        .collect()
}

/// The gate's parameters for [`CONFIG`] edited by `edit`, with `vkey` pinned.
pub fn params(vkey: &str, edit: impl FnOnce(String) -> String) -> GateParams {
    let text = edit(CONFIG.replace("{VKEY}", vkey));
    GateConfig::from_toml(&text)
        .unwrap()
        .params(runpermit_compute::HardwareTable::builtin())
        .unwrap()
}

impl World {
    /// Keys from fixed seeds, four permits and a decision entry in a five-entry log, the
    /// default configuration, and a fresh empty status list (version 1, issued a minute ago).
    pub fn new() -> World {
        let authority = SigningKey::from_seed(&[1; 32]);
        let jwks = Jwks::from_keys(&[authority.public()]);
        let log_key = LogKey::from_seed(LOG_NAME, &[2; 32]).unwrap();
        let vkey = log_key.verifier_key();

        let (main_token, main) = issue(request("pmt_main", "run_main"), &authority);
        let (other_token, other) = issue(request("pmt_other", "run_other"), &authority);
        let mut short = request("pmt_short", "run_short");
        short.exp = NOW + 100;
        let (short_token, short) = issue(short, &authority);
        let mut future = request("pmt_future", "run_future");
        future.nbf = NOW + 600;
        let (future_token, future) = issue(future, &authority);

        let entries = [
            LogEntry::Decision {
                application_id: "app_run_main".into(),
                decision: DecisionKind::Approved,
                tier: "standard".into(),
                policy_version: "2026.1".into(),
                reason: None,
            },
            permit_entry(&main_token, &main),
            permit_entry(&other_token, &other),
            permit_entry(&short_token, &short),
            permit_entry(&future_token, &future),
        ];
        let proofs = log(&entries, &log_key);
        let logged = |token: String, claims: PermitClaims, proof: &String| Logged {
            token,
            claims,
            proof: proof.clone(),
        };
        let params = params(&vkey, |c| c);
        let anchors = TrustAnchors {
            jwks: jwks.clone(),
            log_vkey: vkey.clone(),
            witness_policy: None,
        };
        let mut world = World {
            gate: Gate::new(params.clone(), anchors).into(),
            params,
            main: logged(main_token, main, &proofs[1]),
            other: logged(other_token, other, &proofs[2]),
            short: logged(short_token, short, &proofs[3]),
            future: logged(future_token, future, &proofs[4]),
            decision_proof: proofs[0].clone(),
            authority,
            jwks,
            log_key,
            vkey,
            witness_policy: None,
        };
        world.publish(1, NOW - 60, vec![]);
        world
    }

    /// Signs a status list, verifies it as a gate does, and accepts it into the cache.
    pub fn publish(&mut self, version: u64, iat: i64, entries: Vec<StatusEntry>) {
        let token = self.status_token(version, iat, entries);
        let claims = verify_status_list(&token, &self.jwks).unwrap();
        self.gate.get_mut().accept_status(claims).unwrap();
    }

    /// The world's anchors.
    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors {
            jwks: self.jwks.clone(),
            log_vkey: self.vkey.clone(),
            witness_policy: self.witness_policy.clone(),
        }
    }

    /// A fresh gate whose anchors include `policy` (or none), holding the world's current
    /// status list: a gate restarted with another `witness_policy`.
    pub fn require_witnesses(&mut self, policy: Option<WitnessPolicy>) {
        self.witness_policy = policy;
        let held = self.gate.borrow().status().current().cloned();
        let mut gate = Gate::new(self.params.clone(), self.anchors());
        if let Some(list) = held {
            gate.accept_status(list).unwrap();
        }
        *self.gate.get_mut() = gate;
    }

    /// A fresh gate with `params` and no status list: as if the gate had just started.
    pub fn set_params(&mut self, params: GateParams) {
        self.params = params.clone();
        *self.gate.get_mut() = Gate::new(params, self.anchors());
    }

    /// Drops the held status list (a fresh gate with the same configuration).
    pub fn forget_status(&mut self) {
        self.set_params(self.params.clone());
    }

    /// A signed status list token.
    pub fn status_token(&self, version: u64, iat: i64, entries: Vec<StatusEntry>) -> String {
        let claims = StatusListClaims::new(AUTHORITY, iat, TTL, version, entries);
        assert!(claims.problems().is_empty(), "{:?}", claims.problems());
        sign_status_list(&claims, &self.authority)
    }

    /// A job of `accelerators` on `cluster` for 24 h carrying `permit`'s token and proof.
    pub fn job(&self, cluster: &str, accelerators: u64, permit: &Logged) -> JobRequest {
        JobRequest {
            cluster: cluster.into(),
            accelerators,
            hours: Some(24.0),
            permit: Some(PermitEvidence {
                token: permit.token.clone(),
                proof_bundle: permit.proof.clone(),
            }),
        }
    }

    /// The main permit's allowed job: 2048 accelerators on us-east-1 for 24 h.
    pub fn allowed_job(&self) -> JobRequest {
        self.job("us-east-1", 2048, &self.main)
    }

    /// Decides `job` at `now` with no usage known.
    pub fn decide_at(&self, job: &JobRequest, now: i64) -> Decision {
        self.decide_using(job, &Usage::new(), now)
    }

    /// Decides `job` at `now` with `usage`, uncached and through the world's gate's evidence
    /// cache, cold (or shared with earlier scenarios) and warm, and checks that all three
    /// decisions are the same: the cache changes the work, never the answer.
    pub fn decide_using(&self, job: &JobRequest, usage: &Usage, now: i64) -> Decision {
        let plain = self.gate.borrow().decide_uncached(job, usage, now);
        for round in ["cold or shared", "warm"] {
            let cached = self.gate.borrow_mut().decide(job, usage, now);
            assert_eq!(
                cached, plain,
                "Gate::decide ({round}) differs from decide_uncached"
            );
        }
        plain
    }

    /// Decides as [`decide_using`](Self::decide_using) would with `params` instead of the
    /// world's (the same anchors and status list), through a gate of its own.
    pub fn decide_as(
        &self,
        params: &GateParams,
        job: &JobRequest,
        usage: &Usage,
        now: i64,
    ) -> Decision {
        let mut gate = Gate::new(params.clone(), self.anchors());
        if let Some(list) = self.gate.borrow().status().current() {
            gate.accept_status(list.clone()).unwrap();
        }
        let plain = gate.decide_uncached(job, usage, now);
        for round in ["cold", "warm"] {
            let cached = gate.decide(job, usage, now);
            assert_eq!(
                cached, plain,
                "Gate::decide ({round}) differs from decide_uncached"
            );
        }
        plain
    }

    /// Decides `job` at [`NOW`] with no usage known.
    pub fn decide(&self, job: &JobRequest) -> Decision {
        self.decide_at(job, NOW)
    }
}
