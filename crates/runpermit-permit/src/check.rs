//! "Checked, then signed": only [`check`] makes a [`CheckedPermit`], and only a
//! `CheckedPermit` can be [`sign`]ed, so no unchecked claim set is ever signed.

use std::collections::HashSet;

use runpermit_compute::{AccountingBasis, FieldError, Flop};
use serde::{Deserialize, Serialize};

use crate::claims::{
    Holder, PERMIT_CLAIMS_VERSION, PERMIT_TYP, PermitClaims, ProviderScope, Tranche,
};
use crate::error::utc;
use crate::jws::sign_jws;
use crate::keys::SigningKey;

/// What the authority intends to sign: a [`PermitClaims`] without `iat` and `rpv`, which
/// [`check`] sets. Each field means what the claim of the same name means.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PermitRequest {
    /// See [`PermitClaims::iss`].
    pub iss: String,
    /// See [`PermitClaims::sub`].
    pub sub: String,
    /// See [`PermitClaims::jti`].
    pub jti: String,
    /// See [`PermitClaims::nbf`].
    pub nbf: i64,
    /// See [`PermitClaims::exp`].
    pub exp: i64,
    /// See [`PermitClaims::application_id`].
    pub application_id: String,
    /// See [`PermitClaims::holder`].
    pub holder: Holder,
    /// See [`PermitClaims::providers`].
    pub providers: Vec<ProviderScope>,
    /// See [`PermitClaims::evaluators`]. Absent in intents recorded before version 2: none.
    #[serde(default)]
    pub evaluators: Vec<String>,
    /// See [`PermitClaims::accounting`]. Absent in intents recorded before version 3: such a
    /// permit is signed as version 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting: Option<AccountingBasis>,
    /// See [`PermitClaims::max_accelerators`].
    pub max_accelerators: u64,
    /// See [`PermitClaims::flop_budget`].
    pub flop_budget: Flop,
    /// See [`PermitClaims::tranches`].
    pub tranches: Vec<Tranche>,
    /// See [`PermitClaims::policy_version`].
    pub policy_version: String,
    /// See [`PermitClaims::tier`].
    pub tier: String,
    /// See [`PermitClaims::conditions`].
    pub conditions: Vec<String>,
}

/// A claim set that passed [`check`]. It cannot be built any other way, cloned or
/// deserialized: the only route to a signature is `check` then [`sign`].
#[derive(Debug, PartialEq)]
pub struct CheckedPermit {
    claims: PermitClaims,
}

impl CheckedPermit {
    /// The claims that [`sign`] will sign, for persisting the intent before signing.
    pub fn claims(&self) -> &PermitClaims {
        &self.claims
    }
}

/// A signed permit: the compact JWS, the claims it carries, and the signing key's id.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedPermit {
    /// The compact JWS (`header.payload.signature`).
    pub token: String,
    /// The claims in the token.
    pub claims: PermitClaims,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

/// Checks `request` at time `now` (unix seconds) and, if it is sound, returns it as claims
/// with `iat = now` and `rpv` = [`PERMIT_CLAIMS_VERSION`]. Otherwise returns every problem at once, each naming its
/// claim field (`providers[1].provider`, `tranches[2].flop`).
pub fn check(request: PermitRequest, now: i64) -> Result<CheckedPermit, Vec<FieldError>> {
    let mut errors = Errors::default();
    for (field, value) in [
        ("iss", &request.iss),
        ("sub", &request.sub),
        ("jti", &request.jti),
        ("application_id", &request.application_id),
        ("holder.org_id", &request.holder.org_id),
        ("holder.name", &request.holder.name),
    ] {
        errors.non_empty(field, value, "an id");
    }
    if request.nbf >= request.exp {
        errors.push(
            "exp",
            format!(
                "must be later than nbf ({}, unix {}); got {} (unix {})",
                utc(request.nbf),
                request.nbf,
                utc(request.exp),
                request.exp
            ),
        );
    }
    if request.exp <= now {
        errors.push(
            "exp",
            format!(
                "must be in the future (now is {}, unix {now}); got {} (unix {})",
                utc(now),
                utc(request.exp),
                request.exp
            ),
        );
    }
    check_providers(&mut errors, &request.providers);
    check_evaluators(&mut errors, &request.evaluators, &request.holder.org_id);
    if let Some(basis) = &request.accounting {
        errors.0.extend(basis.problems("accounting"));
    }
    if request.max_accelerators == 0 {
        errors.push("max_accelerators", "must be at least 1".to_owned());
    }
    if request.flop_budget == Flop::ZERO {
        errors.push(
            "flop_budget",
            "must be greater than 0 FLOP, such as 3.2e25".to_owned(),
        );
    }
    check_tranches(&mut errors, &request.tranches, request.flop_budget);
    errors.non_empty(
        "policy_version",
        &request.policy_version,
        "the policy file's version",
    );
    errors.non_empty("tier", &request.tier, "the policy tier");
    for (i, condition) in request.conditions.iter().enumerate() {
        errors.non_empty(
            &format!("conditions[{i}]"),
            condition,
            "a condition in words",
        );
    }
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let PermitRequest {
        iss,
        sub,
        jti,
        nbf,
        exp,
        application_id,
        holder,
        providers,
        evaluators,
        accounting,
        max_accelerators,
        flop_budget,
        tranches,
        policy_version,
        tier,
        conditions,
    } = request;
    // Each version's fields are exactly its own: without a basis, version 2.
    let rpv = if accounting.is_some() {
        PERMIT_CLAIMS_VERSION
    } else {
        2
    };
    Ok(CheckedPermit {
        claims: PermitClaims {
            iss,
            sub,
            jti,
            iat: now,
            nbf,
            exp,
            rpv,
            application_id,
            holder,
            providers,
            evaluators: Some(evaluators),
            accounting,
            max_accelerators,
            flop_budget,
            tranches,
            policy_version,
            tier,
            conditions,
        },
    })
}

/// Signs a checked permit with `key`.
pub fn sign(checked: CheckedPermit, key: &SigningKey) -> SignedPermit {
    SignedPermit {
        token: sign_jws(PERMIT_TYP, &checked.claims, key),
        claims: checked.claims,
        kid: key.kid().to_owned(),
    }
}

fn check_providers(errors: &mut Errors, providers: &[ProviderScope]) {
    if providers.is_empty() {
        errors.push(
            "providers",
            "must name at least one compute provider, such as [{\"provider\": \"org-cloud\", \"clusters\": []}]"
                .to_owned(),
        );
    }
    let mut seen = HashSet::new();
    for (i, scope) in providers.iter().enumerate() {
        let field = format!("providers[{i}].provider");
        errors.non_empty(&field, &scope.provider, "the provider's organization id");
        if !scope.provider.trim().is_empty() && !seen.insert(scope.provider.as_str()) {
            errors.push(
                &field,
                format!(
                    "{:?} is listed twice: list each provider once, with all its clusters",
                    scope.provider
                ),
            );
        }
        for (j, cluster) in scope.clusters.iter().enumerate() {
            let what = "a cluster id (or leave clusters empty for any cluster)";
            errors.non_empty(&format!("providers[{i}].clusters[{j}]"), cluster, what);
        }
    }
}

/// Each evaluator once, never the holder: nobody evaluates their own organization's run.
fn check_evaluators(errors: &mut Errors, evaluators: &[String], holder: &str) {
    let mut seen = HashSet::new();
    for (i, evaluator) in evaluators.iter().enumerate() {
        let field = format!("evaluators[{i}]");
        errors.non_empty(&field, evaluator, "the evaluator's organization id");
        if evaluator.trim().is_empty() {
            continue;
        }
        if evaluator == holder {
            errors.push(
                &field,
                format!(
                    "{evaluator:?} holds the permit: nobody evaluates their own organization's run"
                ),
            );
        } else if !seen.insert(evaluator.as_str()) {
            errors.push(&field, format!("{evaluator:?} is listed twice"));
        }
    }
}

fn check_tranches(errors: &mut Errors, tranches: &[Tranche], budget: Flop) {
    let Some(last) = tranches.last() else {
        errors.push(
            "tranches",
            format!("must hold at least one tranche; a single tranche is [{{\"index\": 1, \"flop\": {}}}]", budget.get()),
        );
        return;
    };
    let mut previous = Flop::ZERO;
    for (i, tranche) in tranches.iter().enumerate() {
        let expected = i + 1;
        if usize::try_from(tranche.index).ok() != Some(expected) {
            errors.push(
                &format!("tranches[{i}].index"),
                format!(
                    "must be {expected} (tranches are numbered 1, 2, 3, … in order); got {}",
                    tranche.index
                ),
            );
        }
        if tranche.flop <= previous {
            errors.push(
                &format!("tranches[{i}].flop"),
                format!(
                    "must be greater than {} (tranche ends are cumulative FLOP, strictly increasing); got {}",
                    if i == 0 { "0".to_owned() } else { previous.to_string() },
                    tranche.flop
                ),
            );
        }
        previous = tranche.flop;
    }
    if last.flop != budget {
        errors.push(
            &format!("tranches[{}].flop", tranches.len() - 1),
            format!(
                "the last tranche must end exactly at flop_budget ({:e}); got {:e}",
                budget.get(),
                last.flop.get()
            ),
        );
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, message: String) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message,
            suggestions: Vec::new(),
        });
    }

    fn non_empty(&mut self, field: &str, value: &str, what: &str) {
        if value.trim().is_empty() {
            self.push(field, format!("must not be empty: give {what}"));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::claims::tests::sample;

    pub(crate) const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    pub(crate) fn request(now: i64) -> PermitRequest {
        let c = sample(now);
        PermitRequest {
            iss: c.iss,
            sub: c.sub,
            jti: c.jti,
            nbf: c.nbf,
            exp: c.exp,
            application_id: c.application_id,
            holder: c.holder,
            providers: c.providers,
            evaluators: c.evaluators.unwrap_or_default(),
            accounting: c.accounting,
            max_accelerators: c.max_accelerators,
            flop_budget: c.flop_budget,
            tranches: c.tranches,
            policy_version: c.policy_version,
            tier: c.tier,
            conditions: c.conditions,
        }
    }

    #[test]
    fn a_sound_request_becomes_claims_with_iat_and_rpv() {
        let checked = check(request(NOW - 10), NOW).unwrap();
        let expected = PermitClaims {
            iat: NOW,
            ..sample(NOW - 10)
        };
        assert_eq!(checked.claims(), &expected);
        assert_eq!(checked.claims().rpv, 3);
        // An intent recorded before version 3 has no accounting basis: version 2.
        let old = PermitRequest {
            accounting: None,
            ..request(NOW - 10)
        };
        assert_eq!(check(old, NOW).unwrap().claims().rpv, 2);
        // A basis is checked like every other claim.
        let mut bad = request(NOW - 10);
        if let Some(b) = bad.accounting.as_mut() {
            b.utilization = 0.9;
        }
        let errors = check(bad, NOW).unwrap_err();
        assert_eq!(errors[0].field, "accounting.utilization");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let flop = |v: f64| Flop::new(v).unwrap();
        let mut r = request(NOW);
        r.iss = String::new();
        r.sub = " ".into();
        r.jti = String::new();
        r.application_id = String::new();
        r.holder.org_id = String::new();
        r.holder.name = String::new();
        r.nbf = NOW - 10;
        r.exp = NOW - 20;
        r.providers[1].provider = String::new();
        r.providers[0].clusters.push(String::new());
        r.providers.push(r.providers[0].clone());
        r.evaluators = vec![
            "org-institute".into(),
            String::new(),
            "org-institute".into(),
            "org-lab".into(),
        ];
        r.max_accelerators = 0;
        r.flop_budget = flop(1e25);
        r.tranches[0].index = 2;
        r.tranches[2].flop = flop(5e24);
        r.policy_version = String::new();
        r.tier = String::new();
        r.conditions.push(String::new());

        let errors = check(r, NOW).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "iss",
                "sub",
                "jti",
                "application_id",
                "holder.org_id",
                "holder.name",
                "exp",
                "exp",
                "providers[0].clusters[1]",
                "providers[1].provider",
                "providers[2].provider",
                "providers[2].clusters[1]",
                "evaluators[1]",
                "evaluators[2]",
                "max_accelerators",
                "tranches[0].index",
                "tranches[2].flop",
                "tranches[2].flop",
                "policy_version",
                "tier",
                "conditions[1]",
            ]
        );
        let message = |field: &str| &errors.iter().find(|e| e.field == field).unwrap().message;
        assert!(
            message("exp").contains("later than nbf"),
            "{}",
            message("exp")
        );
        assert_eq!(
            message("tranches[0].index"),
            "must be 1 (tranches are numbered 1, 2, 3, … in order); got 2"
        );
        assert!(message("providers[2].provider").contains("listed twice"));
        assert!(message("evaluators[2]").contains("listed twice"));
        assert!(errors.iter().any(|e| {
            e.message
                .contains("exactly at flop_budget (1e25); got 5e24")
        }));
    }

    #[test]
    fn the_holder_never_evaluates_its_own_run() {
        let mut r = request(NOW);
        r.evaluators.push(r.holder.org_id.clone());
        let errors = check(r, NOW).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "evaluators[1]");
        assert!(errors[0].message.contains("holds the permit"), "{errors:?}");

        let mut r = request(NOW);
        r.evaluators.clear();
        assert!(check(r, NOW).is_ok(), "no evaluator is a sound permit");
    }

    #[test]
    fn empty_lists_and_zero_budget() {
        let mut r = request(NOW);
        r.providers.clear();
        r.tranches.clear();
        r.flop_budget = Flop::ZERO;
        let errors = check(r, NOW).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["providers", "flop_budget", "tranches"]);
    }

    #[test]
    fn tranches_must_increase_and_end_exactly_at_the_budget() {
        let flop = |v: f64| Flop::new(v).unwrap();
        let mut r = request(NOW);
        r.tranches[1].flop = r.tranches[0].flop;
        let errors = check(r, NOW).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "tranches[1].flop");

        let mut r = request(NOW);
        r.tranches[2].flop = flop(3.2e25 * (1.0 + f64::EPSILON));
        let errors = check(r, NOW).unwrap_err();
        assert_eq!(errors[0].field, "tranches[2].flop");

        let mut r = request(NOW);
        r.tranches = vec![Tranche {
            index: 1,
            flop: r.flop_budget,
        }];
        assert!(check(r, NOW).is_ok());
    }

    #[test]
    fn exp_at_now_is_refused() {
        let mut r = request(NOW - 100);
        r.exp = NOW;
        let errors = check(r, NOW).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0]
                .message
                .starts_with("must be in the future (now is 2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn signing_keeps_claims_and_kid() {
        let key = SigningKey::generate();
        let checked = check(request(NOW), NOW).unwrap();
        let claims = checked.claims().clone();
        let signed = sign(checked, &key);
        assert_eq!(signed.claims, claims);
        assert_eq!(signed.kid, key.kid());
        assert_eq!(signed.token.split('.').count(), 3);
    }
}
