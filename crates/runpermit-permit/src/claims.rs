//! The permit claim set, version 3. These doc comments are its specification.
//!
//! A permit is a compact JWS (see [`crate::jws`]) whose header `typ` is [`PERMIT_TYP`] and
//! whose payload is one JSON object with exactly the fields of [`PermitClaims`]: a verifier
//! refuses unknown fields, so a field is never silently ignored. Times are integer unix
//! seconds (RFC 7519 NumericDate). FLOP quantities are JSON numbers (`3.8e25`).
//!
//! Compatibility: adding, removing or changing the meaning of a field makes a new claim
//! set version, with a new value of `rpv`. Version 2 added [`PermitClaims::evaluators`];
//! version 3 added [`PermitClaims::accounting`]. Verifiers still read versions 1 and 2 (a
//! field a version lacks reads as absent), so permits signed before a change keep verifying
//! until they expire.

use runpermit_compute::{AccountingBasis, Flop};
use serde::{Deserialize, Serialize};

/// The header `typ` of a permit token (RFC 8725 §3.11 explicit typing).
pub const PERMIT_TYP: &str = "runpermit-permit+jwt";

/// The claim set version this crate writes: the value of `rpv`. (A permit whose intent was
/// recorded before version 3, so without an accounting basis, is written as version 2.)
pub const PERMIT_CLAIMS_VERSION: u32 = 3;

/// The claim set versions this crate reads: version 1 (without `evaluators`), version 2
/// (without `accounting`) and version 3.
pub const PERMIT_CLAIMS_VERSIONS_READ: &[u32] = &[1, 2, 3];

/// What a permit authorizes: one training run, by one holder, on named providers, up to a
/// FLOP budget released in tranches, within a validity window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PermitClaims {
    /// Issuer: the authority that signed the permit, as its base URL or name. Verifiers
    /// fetch this authority's JWKS to check the signature.
    pub iss: String,
    /// Subject: the id of the training run the permit authorizes.
    pub sub: String,
    /// JWT id: the permit's own id, unique per authority. Status lists and the
    /// transparency log refer to the permit by it.
    pub jti: String,
    /// Issued at: when the authority signed the permit (unix seconds).
    pub iat: i64,
    /// Not before: the permit authorizes nothing before this time (unix seconds).
    pub nbf: i64,
    /// Expiry: the permit authorizes nothing at or after this time (unix seconds). Always
    /// later than `nbf`.
    pub exp: i64,
    /// runpermit claim-set version: [`PERMIT_CLAIMS_VERSION`] (3) for this layout; 2 for
    /// permits signed before `accounting` existed, 1 before `evaluators` existed.
    pub rpv: u32,
    /// The id of the application (the reviewed run plan) the permit was granted on.
    pub application_id: String,
    /// The organization that holds the permit, and so answers for the run.
    pub holder: Holder,
    /// The compute providers (and, per provider, the clusters) on which the run may use
    /// compute. At least one; each provider appears once. A gate admits a job only if its
    /// own provider id (and cluster) is listed here.
    pub providers: Vec<ProviderScope>,
    /// The evaluator organizations (their ids at the authority) assigned to the run, by the
    /// policy or by the reviewers who approved it: only they may accept or reject its
    /// milestone reports, and so release its tranches after the first. Never the holder;
    /// each appears once. May be empty: then nobody can release a tranche beyond the first.
    /// Added in version 2, where it is always present (`Some`, perhaps empty); a version-1
    /// permit has no such field (`None`) and names nobody. Read it with
    /// [`PermitClaims::evaluators`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluators: Option<Vec<String>>,
    /// How the run's compute is counted: what the holder declared in its plan (the training
    /// precision, expected model FLOP utilization and its range, parameters active per
    /// token). Gates meter with it (accelerator-time × the peak at `precision` × `utilization`
    /// is the central figure, `utilization_low` the lower bound; runpermit-compute's
    /// `accounting` module), and the authority checks reports and milestones against it.
    /// Added in version 3, where it is always present; earlier permits have none (`None`),
    /// and their compute counts at the chip's highest peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<AccountingBasis>,
    /// The most accelerators the run may use at once, summed over all providers. At least 1.
    pub max_accelerators: u64,
    /// The run's total FLOP budget: cumulative compute over all providers for this run,
    /// counted as in `runpermit-compute` (every operation whatever its precision; a
    /// multiply-add is 2 FLOP). Greater than zero; equal to the last tranche's `flop`.
    pub flop_budget: Flop,
    /// The budget's release schedule, in order. Compute up to tranche 1's `flop` is released
    /// at issuance; each later tranche is released only when the authority accepts the
    /// milestone evaluation due at the end of the one before. At least one tranche.
    pub tranches: Vec<Tranche>,
    /// The version of the authority's policy file the permit was decided under.
    pub policy_version: String,
    /// The policy tier the run fell into (for example `standard` or `full-review`).
    pub tier: String,
    /// Conditions of the permit, in words, each a non-empty line (for example a required
    /// weights security level). May be empty.
    pub conditions: Vec<String>,
}

/// The organization a permit or exemption receipt is issued to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The organization's id at the authority.
    pub org_id: String,
    /// Its name, for people reading the token.
    pub name: String,
}

/// Where a permitted run may use compute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProviderScope {
    /// The compute provider's organization id at the authority.
    pub provider: String,
    /// The provider's cluster ids the run may use; empty means any cluster of this provider.
    pub clusters: Vec<String>,
}

impl ProviderScope {
    /// Whether this scope covers `cluster`.
    pub fn allows_cluster(&self, cluster: &str) -> bool {
        self.clusters.is_empty() || self.clusters.iter().any(|c| c == cluster)
    }
}

/// One slice of the FLOP budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tranche {
    /// Position in the schedule: 1 for the first tranche, then 2, 3, … with no gaps.
    pub index: u32,
    /// Cumulative FLOP (since the run began) at which this tranche ends; strictly greater
    /// than the previous tranche's. The last tranche ends at `flop_budget`.
    pub flop: Flop,
}

impl PermitClaims {
    /// The scope for `provider`, if the permit names it.
    pub fn provider(&self, provider: &str) -> Option<&ProviderScope> {
        self.providers.iter().find(|p| p.provider == provider)
    }

    /// The evaluator organizations the permit names (none for a version-1 permit).
    pub fn evaluators(&self) -> &[String] {
        self.evaluators.as_deref().unwrap_or_default()
    }

    /// Whether the permit names `org_id` among its evaluators.
    pub fn names_evaluator(&self, org_id: &str) -> bool {
        self.evaluators().iter().any(|e| e == org_id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid claim set, valid from `now` for a day.
    pub(crate) fn sample(now: i64) -> PermitClaims {
        let flop = |v: f64| Flop::new(v).unwrap();
        PermitClaims {
            iss: "https://authority.example".into(),
            sub: "run-01".into(),
            jti: "permit-01".into(),
            iat: now,
            nbf: now,
            exp: now + 86_400,
            rpv: PERMIT_CLAIMS_VERSION,
            application_id: "app-01".into(),
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
            evaluators: Some(vec!["org-institute".into()]),
            accounting: Some(AccountingBasis {
                parameters: Some(4.05e11),
                ..AccountingBasis::assumed(runpermit_compute::Precision::Bf16)
            }),
            max_accelerators: 16_384,
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
            conditions: vec!["weights security level SL3 or higher".into()],
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let json = serde_json::to_value(sample(1_767_225_600)).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "iss",
            "sub",
            "jti",
            "iat",
            "nbf",
            "exp",
            "rpv",
            "application_id",
            "holder",
            "providers",
            "evaluators",
            "accounting",
            "max_accelerators",
            "flop_budget",
            "tranches",
            "policy_version",
            "tier",
            "conditions",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(json["flop_budget"], serde_json::json!(3.2e25));
        assert_eq!(
            json["tranches"][0],
            serde_json::json!({"index": 1, "flop": 2e24})
        );
        assert_eq!(
            json["holder"],
            serde_json::json!({"org_id": "org-lab", "name": "Example Lab"})
        );
        assert_eq!(
            json["accounting"],
            serde_json::json!({"precision": "bf16", "utilization": 0.4, "utilization_low": 0.3,
                               "utilization_high": 0.5, "parameters": 4.05e11})
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = serde_json::to_value(sample(0)).unwrap();
        json["extra"] = 1.into();
        let err = serde_json::from_value::<PermitClaims>(json).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn scopes() {
        let claims = sample(0);
        assert!(
            claims
                .provider("org-cloud")
                .unwrap()
                .allows_cluster("us-east-1")
        );
        assert!(
            !claims
                .provider("org-cloud")
                .unwrap()
                .allows_cluster("eu-west-1")
        );
        assert!(
            claims
                .provider("org-hpc")
                .unwrap()
                .allows_cluster("anything")
        );
        assert!(claims.provider("org-other").is_none());
        assert!(claims.names_evaluator("org-institute"));
        assert!(!claims.names_evaluator("org-lab"));
    }
}
