//! A small, real world for access decisions: an authority key signing grants and status
//! lists, a log key, a transparency log holding the grants' `access_granted` entries, proof
//! bundles from it, and a gateway configuration. No crypto is mocked.

#![allow(dead_code)]

use runpermit_access::{Anchors, GatewayConfig, Served};
use runpermit_gate::StatusListCache;
use runpermit_log::{
    Checkpoint, Hash, LogEntry, LogKey, ProofBundle, append, encode, inclusion_proof, leaf_hash,
    sign_checkpoint,
};
use runpermit_permit::{
    AccessGrantRequest, AccessTier, Duties, GrantOrigin, GrantedModel, Grantee, Jwks, Quotas, Rate,
    SigningKey, StatusEntry, StatusListClaims, check_access_grant, sign_access_grant,
    sign_status_list,
};

pub const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const ISSUED: i64 = NOW - 3600;
pub const LOG_NAME: &str = "log.example.org/runpermit";
pub const AUTHORITY: &str = "https://authority.example";
pub const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
pub const OTHER_DIGEST: &str =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// A grant as issued, with its log proof.
#[derive(Clone, Debug)]
pub struct Logged {
    pub token: String,
    pub proof: String,
}

pub fn grant_request(jti: &str, tier: AccessTier) -> AccessGrantRequest {
    AccessGrantRequest {
        iss: AUTHORITY.into(),
        jti: jti.into(),
        nbf: ISSUED,
        exp: NOW + 30 * 86_400,
        grantee: Grantee {
            org_id: "org_uni".into(),
            member_id: "mem_ada".into(),
            name: "Example University".into(),
        },
        developer: "org_dev".into(),
        model: GrantedModel {
            model_id: "mdl_1".into(),
            name: "example-7b".into(),
            checkpoint_digest: DIGEST.into(),
        },
        tier,
        quotas: Quotas {
            tokens: Some(1000),
            requests: Some(3),
            accelerator_hours: None,
        },
        rate: Rate {
            burst: 10,
            count: 10,
            period_seconds: 60,
        },
        purpose: "Evaluating refusal behaviour.".into(),
        research_plan_digest: DIGEST.into(),
        agreement_digest: DIGEST.into(),
        duties: Duties {
            usage_report_interval_seconds: 3600,
            publication_review_days: 30,
            incident_report_hours: 72,
        },
        origin: GrantOrigin::Application {
            application_id: "aap_1".into(),
        },
    }
}

pub fn issue(request: AccessGrantRequest, key: &SigningKey, at: i64) -> String {
    sign_access_grant(check_access_grant(request, at).unwrap(), key).token
}

pub fn granted_entry(token: &str, jti: &str, tier: AccessTier) -> LogEntry {
    LogEntry::AccessGranted {
        grant_id: jti.into(),
        model_id: "mdl_1".into(),
        grantee_org_id: "org_uni".into(),
        tier: tier.as_str().into(),
        token: token.into(),
    }
}

/// A log of `entries` under a checkpoint signed by `key`, and every entry's proof bundle.
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

/// Keys, grants and their proofs.
pub struct World {
    pub authority: SigningKey,
    pub jwks: Jwks,
    pub log_key: LogKey,
    pub vkey: String,
    /// `api_sampling` grant `agr_main`, quotas 3 requests / 1000 tokens.
    pub main: Logged,
    /// `logprobs` grant `agr_deep`.
    pub deep: Logged,
    /// A grant for another checkpoint, logged.
    pub other_model: Logged,
    /// A grant that expires at NOW + 100, logged.
    pub short: Logged,
    /// A grant signed but never logged (carries `main`'s proof).
    pub unlogged: Logged,
}

impl World {
    pub fn new() -> World {
        let authority = SigningKey::from_seed(&[1; 32]);
        let jwks = Jwks::from_keys(&[authority.public()]);
        let log_key = LogKey::from_seed(LOG_NAME, &[2; 32]).unwrap();
        let vkey = log_key.verifier_key();
        let main = issue(
            grant_request("agr_main", AccessTier::ApiSampling),
            &authority,
            ISSUED,
        );
        let deep = issue(
            grant_request("agr_deep", AccessTier::Logprobs),
            &authority,
            ISSUED,
        );
        let mut other = grant_request("agr_other", AccessTier::ApiSampling);
        other.model.checkpoint_digest = OTHER_DIGEST.into();
        let other = issue(other, &authority, ISSUED);
        let mut short = grant_request("agr_short", AccessTier::ApiSampling);
        short.exp = NOW + 100;
        let short = issue(short, &authority, ISSUED);
        let unlogged = issue(
            grant_request("agr_unlogged", AccessTier::ApiSampling),
            &authority,
            ISSUED,
        );
        let proofs = log(
            &[
                granted_entry(&main, "agr_main", AccessTier::ApiSampling),
                granted_entry(&deep, "agr_deep", AccessTier::Logprobs),
                granted_entry(&other, "agr_other", AccessTier::ApiSampling),
                granted_entry(&short, "agr_short", AccessTier::ApiSampling),
            ],
            &log_key,
        );
        World {
            main: Logged {
                token: main,
                proof: proofs[0].clone(),
            },
            deep: Logged {
                token: deep,
                proof: proofs[1].clone(),
            },
            other_model: Logged {
                token: other,
                proof: proofs[2].clone(),
            },
            short: Logged {
                token: short,
                proof: proofs[3].clone(),
            },
            unlogged: Logged {
                token: unlogged,
                proof: proofs[0].clone(),
            },
            authority,
            jwks,
            log_key,
            vkey,
        }
    }

    pub fn anchors(&self) -> Anchors {
        Anchors {
            jwks: self.jwks.clone(),
            log_vkey: self.vkey.clone(),
        }
    }

    /// A signed status list, version `version`, issued at `iat` (one hour TTL).
    pub fn status_token(&self, version: u64, iat: i64, entries: Vec<StatusEntry>) -> String {
        sign_status_list(
            &StatusListClaims::new(AUTHORITY, iat, 3600, version, entries),
            &self.authority,
        )
    }

    pub fn status(&self, entries: Vec<StatusEntry>) -> StatusListCache {
        let mut cache = StatusListCache::new(300);
        cache
            .accept(StatusListClaims::new(AUTHORITY, NOW - 60, 3600, 1, entries))
            .unwrap();
        cache
    }

    /// The gateway configuration text, with `{VKEY}` replaced, upstream at `upstream`.
    pub fn config_text(&self, upstream: &str) -> String {
        format!(
            r#"
authority_url = "http://127.0.0.1:9"
jwks = "jwks.json"
log_vkey = "{}"
developer_id = "org_dev"
model_id = "mdl_1"
checkpoint_digest = "{DIGEST}"
served_model = "example-7b"
upstream_url = "{upstream}"
upstream_model = "local-model"
reporting_key = "reporting-key.pem"
state_dir = "state"
report_interval_seconds = 600
"#,
            self.vkey
        )
    }

    pub fn served(&self) -> Served {
        GatewayConfig::from_toml(&self.config_text("http://127.0.0.1:1"))
            .unwrap()
            .served()
    }
}
