//! A small, real world for the agent (after runpermit-gate's `tests/common`): an authority key
//! that signs permits and status lists, a log key, a transparency log holding the permits'
//! `permit_issued` entries, their proof bundles, a gate configuration, and agents over them.
//! No crypto is mocked.

#![allow(dead_code)] // Shared by several test files; each uses part of it.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use runpermit_compute::Flop;
use runpermit_gate::{GateConfig, GateParams};
use runpermit_gate_agent::Agent;
use runpermit_log::{
    Checkpoint, Hash, LogEntry, LogKey, ProofBundle, append, encode, inclusion_proof, leaf_hash,
    sign_checkpoint,
};
use runpermit_permit::{
    Holder, Jwks, PermitClaims, PermitRequest, ProviderScope, SigningKey, StatusListClaims,
    Tranche, check, sign, sign_status_list,
};
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z: the agents' clock.
pub const NOW: i64 = 1_767_225_600;
/// When the permits were issued.
pub const ISSUED: i64 = NOW - 3600;
/// The log's name (checkpoint origin).
pub const LOG_NAME: &str = "log.example.org/runpermit";
/// The authority.
pub const AUTHORITY: &str = "https://authority.example";
/// The status lists' TTL.
pub const TTL: i64 = 3600;
/// The cluster the agents admit for.
pub const CLUSTER: &str = "us-east-1";

/// The gate's configuration, with `{VKEY}` for the log's verifier key and `{AUTHORITY}`.
pub const CONFIG: &str = r#"
authority_url = "{AUTHORITY}"
jwks = "jwks.json"
log_vkey = "{VKEY}"
provider_id = "org-cloud"
reporting_key = "reporting-key.pem"

[thresholds]
min_accelerators = 1024
min_projected_flop = 1e24

[[clusters]]
name = "us-east-1"
accelerator = "H100 SXM"
accelerators = 16384
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

/// Keys, two logged permits and the configuration.
pub struct World {
    pub authority: SigningKey,
    pub jwks: Jwks,
    pub vkey: String,
    pub params: GateParams,
    /// `pmt_main`: org-cloud on us-east-1, at most 4096 accelerators.
    pub main: Logged,
    /// `pmt_small`: the same scope, at most 16 accelerators.
    pub small: Logged,
}

fn request(jti: &str, sub: &str, max_accelerators: u64) -> PermitRequest {
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
        providers: vec![ProviderScope {
            provider: "org-cloud".into(),
            clusters: vec![CLUSTER.into()],
        }],
        evaluators: Vec::new(),
        accounting: Some(runpermit_compute::AccountingBasis::assumed(
            runpermit_compute::Precision::Bf16,
        )),
        max_accelerators,
        flop_budget: flop(3.2e25),
        tranches: vec![Tranche {
            index: 1,
            flop: flop(3.2e25),
        }],
        policy_version: "2026.1".into(),
        tier: "standard".into(),
        conditions: vec![],
    }
}

fn permit_entry(token: &str, claims: &PermitClaims) -> LogEntry {
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

/// The proof bundle text of every entry of a log of `entries` signed by `key`.
fn log(entries: &[LogEntry], key: &LogKey) -> Vec<String> {
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

/// The configuration's text for `authority` and `vkey`.
pub fn config_text(authority: &str, vkey: &str) -> String {
    CONFIG
        .replace("{AUTHORITY}", authority)
        .replace("{VKEY}", vkey)
}

impl World {
    /// Fixed keys, two permits in a two-entry log, the authority at `authority`.
    pub fn new(authority: &str) -> World {
        let authority_key = SigningKey::from_seed(&[1; 32]);
        let jwks = Jwks::from_keys(&[authority_key.public()]);
        let log_key = LogKey::from_seed(LOG_NAME, &[2; 32]).unwrap();
        let vkey = log_key.verifier_key();
        let issue = |r: PermitRequest| {
            let signed = sign(check(r, ISSUED).unwrap(), &authority_key);
            (signed.token, signed.claims)
        };
        let (main_token, main) = issue(request("pmt_main", "run_main", 4096));
        let (small_token, small) = issue(request("pmt_small", "run_small", 16));
        let proofs = log(
            &[
                permit_entry(&main_token, &main),
                permit_entry(&small_token, &small),
            ],
            &log_key,
        );
        let params = GateConfig::from_toml(&config_text(authority, &vkey))
            .unwrap()
            .params(runpermit_compute::HardwareTable::builtin())
            .unwrap();
        World {
            jwks,
            vkey,
            params,
            main: Logged {
                token: main_token,
                claims: main,
                proof: proofs[0].clone(),
            },
            small: Logged {
                token: small_token,
                claims: small,
                proof: proofs[1].clone(),
            },
            authority: authority_key,
        }
    }

    /// A signed status list, version `version`, issued a minute before [`NOW`].
    pub fn status_token(&self, version: u64) -> String {
        let claims = StatusListClaims::new(AUTHORITY, NOW - 60, TTL, version, vec![]);
        sign_status_list(&claims, &self.authority)
    }

    /// An agent for [`CLUSTER`] at [`NOW`], keeping its status list in `dir`, with no list.
    pub fn bare_agent(&self, dir: &Path) -> Agent {
        Agent::new(
            self.params.clone(),
            self.jwks.clone(),
            self.vkey.clone(),
            CLUSTER,
            dir.join("status-list.jwt"),
        )
        .unwrap()
        .with_clock(|| NOW)
    }

    /// An agent holding a fresh status list (version 1).
    pub fn agent(&self, dir: &Path) -> Arc<Agent> {
        let agent = self.bare_agent(dir);
        agent.accept_status_token(&self.status_token(1)).unwrap();
        Arc::new(agent)
    }
}

/// Sends a POST of `body` to `path` through the agent's router in-process; the status and
/// the body.
pub async fn post(agent: &Arc<Agent>, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = runpermit_gate_agent::router(Arc::clone(agent))
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}
