use super::*;
use crate::check::tests::{NOW, request as permit_request};
use crate::check::{check, sign};
use crate::verify::verify_permit;

const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A sound request, valid from `now` for 90 days.
pub(crate) fn request(now: i64) -> AccessGrantRequest {
    AccessGrantRequest {
        iss: "https://authority.example".into(),
        jti: "grant-01".into(),
        nbf: now,
        exp: now + 90 * 86_400,
        grantee: Grantee {
            org_id: "org-university".into(),
            member_id: "member-ada".into(),
            name: "Example University".into(),
        },
        developer: "org-lab".into(),
        model: GrantedModel {
            model_id: "model-01".into(),
            name: "Example Model 2".into(),
            checkpoint_digest: DIGEST.into(),
        },
        tier: AccessTier::Logprobs,
        quotas: Quotas {
            tokens: Some(50_000_000),
            requests: Some(100_000),
            accelerator_hours: None,
        },
        rate: Rate {
            burst: 10,
            count: 60,
            period_seconds: 60,
        },
        purpose: "Measure calibration of token probabilities on held-out exams.".into(),
        research_plan_digest: format!("sha256:{}", "a".repeat(64)),
        agreement_digest: format!("sha256:{}", "b".repeat(64)),
        duties: Duties {
            usage_report_interval_seconds: 3600,
            publication_review_days: 30,
            incident_report_hours: 72,
        },
        origin: GrantOrigin::Application {
            application_id: "access-app-01".into(),
        },
    }
}

fn setup() -> (SigningKey, Jwks) {
    let key = SigningKey::generate();
    let jwks = Jwks::from_keys(&[key.public()]);
    (key, jwks)
}

fn grant(key: &SigningKey) -> SignedAccessGrant {
    sign_access_grant(check_access_grant(request(NOW), NOW).unwrap(), key)
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn a_sound_request_becomes_claims_with_iat_and_rpv() {
    let checked = check_access_grant(request(NOW - 10), NOW).unwrap();
    let claims = checked.claims();
    assert_eq!((claims.iat, claims.rpv, claims.nbf), (NOW, 1, NOW - 10));
    assert_eq!(claims.jti, "grant-01");
    assert!(claims.allows(AccessTier::ApiSampling));
    assert!(claims.allows(AccessTier::Logprobs));
    assert!(!claims.allows(AccessTier::Finetune));
}

#[test]
fn round_trip_signs_and_verifies() {
    let (key, jwks) = setup();
    let signed = grant(&key);
    assert_eq!(signed.kid, key.kid());
    assert_eq!(
        verify_access_grant(&signed.token, &jwks, NOW + 60, 0),
        Ok(signed.claims.clone())
    );
    assert_eq!(
        verify_access_grant_signature(&signed.token, &jwks),
        Ok(signed.claims)
    );
}

#[test]
fn json_shape_is_stable() {
    let claims = check_access_grant(request(NOW), NOW)
        .unwrap()
        .claims()
        .clone();
    let json = serde_json::to_value(&claims).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = [
        "iss",
        "jti",
        "iat",
        "nbf",
        "exp",
        "rpv",
        "grantee",
        "developer",
        "model",
        "tier",
        "quotas",
        "rate",
        "purpose",
        "research_plan_digest",
        "agreement_digest",
        "duties",
        "origin",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["tier"], "logprobs");
    // An unset quota is absent, not null.
    assert_eq!(
        json["quotas"],
        serde_json::json!({"tokens": 50_000_000, "requests": 100_000})
    );
    assert_eq!(
        json["rate"],
        serde_json::json!({"burst": 10, "count": 60, "period_seconds": 60})
    );
    assert_eq!(
        json["origin"],
        serde_json::json!({"kind": "application", "application_id": "access-app-01"})
    );
    let evaluation = GrantOrigin::Evaluation {
        milestone_id: "ms-7".into(),
    };
    assert_eq!(
        serde_json::to_value(&evaluation).unwrap(),
        serde_json::json!({"kind": "evaluation", "milestone_id": "ms-7"})
    );
    assert_eq!(
        json["grantee"],
        serde_json::json!({"org_id": "org-university", "member_id": "member-ada",
                           "name": "Example University"})
    );
}

#[test]
fn a_permit_is_not_a_grant_and_a_grant_is_not_a_permit() {
    let (key, jwks) = setup();
    let permit = sign(check(permit_request(NOW), NOW).unwrap(), &key);
    let grant = grant(&key);
    assert_eq!(
        verify_access_grant(&permit.token, &jwks, NOW, 0),
        Err(VerifyError::WrongType {
            expected: ACCESS_TYP.into(),
            found: Some(crate::PERMIT_TYP.into()),
        })
    );
    assert_eq!(
        verify_permit(&grant.token, &jwks, NOW, 0),
        Err(VerifyError::WrongType {
            expected: crate::PERMIT_TYP.into(),
            found: Some(ACCESS_TYP.into()),
        })
    );
    // A grant's claims under a permit's typ, or a permit's under a grant's, are refused
    // by their fields even when signed by the authority's own key.
    let as_permit = sign_jws(crate::PERMIT_TYP, &grant.claims, &key);
    assert!(matches!(
        verify_permit(&as_permit, &jwks, NOW, 0),
        Err(VerifyError::Claims(_))
    ));
    let mut permit_claims = serde_json::to_value(&permit.claims).unwrap();
    permit_claims["rpv"] = 1.into();
    let as_grant = sign_jws(ACCESS_TYP, &permit_claims, &key);
    let err = verify_access_grant(&as_grant, &jwks, NOW, 0).unwrap_err();
    assert!(matches!(err, VerifyError::Claims(_)), "{err}");
    // Other token kinds and plain JWTs are refused by typ.
    for typ in [crate::EXEMPTION_TYP, crate::STATUS_TYP, "JWT"] {
        let token = sign_jws(typ, &grant.claims, &key);
        assert!(
            matches!(
                verify_access_grant(&token, &jwks, NOW, 0),
                Err(VerifyError::WrongType { .. })
            ),
            "{typ}"
        );
    }
}

#[test]
fn tampering_and_other_keys_are_refused() {
    let (key, jwks) = setup();
    let signed = grant(&key);
    let mut claims = signed.claims.clone();
    claims.tier = AccessTier::Weights;
    let payload = sign_jws(ACCESS_TYP, &claims, &key);
    let [h, _, s]: [&str; 3] = signed
        .token
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let p = payload.split('.').nth(1).unwrap();
    assert_eq!(
        verify_access_grant(&format!("{h}.{p}.{s}"), &jwks, NOW, 0),
        Err(VerifyError::BadSignature)
    );
    let stranger = SigningKey::generate();
    assert_eq!(
        verify_access_grant(&grant(&stranger).token, &jwks, NOW, 0),
        Err(VerifyError::UnknownKey(stranger.kid().into()))
    );
}

#[test]
fn unknown_fields_missing_fields_and_versions_are_refused() {
    let (key, jwks) = setup();
    let claims = serde_json::to_value(grant(&key).claims).unwrap();
    let verify =
        |payload: &Value| verify_access_grant(&sign_jws(ACCESS_TYP, payload, &key), &jwks, NOW, 0);

    let mut extra = claims.clone();
    extra["scopes"] = "everything".into();
    let err = verify(&extra).unwrap_err();
    assert!(err.to_string().contains("unknown field `scopes`"), "{err}");

    // Unknown fields are refused inside nested objects too, the origin included.
    for (path, field) in [
        ("grantee", "role"),
        ("model", "revision"),
        ("quotas", "images"),
        ("rate", "jitter"),
        ("duties", "other"),
        ("origin", "run_id"),
    ] {
        let mut nested = claims.clone();
        nested[path][field] = 1.into();
        let err = verify(&nested).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("unknown field `{field}`")),
            "{path}.{field}: {err}"
        );
    }

    let mut origin = claims.clone();
    origin["origin"] = serde_json::json!({"kind": "gift", "application_id": "a"});
    let err = verify(&origin).unwrap_err();
    assert!(err.to_string().contains("unknown variant `gift`"), "{err}");

    let mut tier = claims.clone();
    tier["tier"] = "root".into();
    let err = verify(&tier).unwrap_err();
    assert!(err.to_string().contains("unknown variant `root`"), "{err}");

    let mut missing = claims.clone();
    missing.as_object_mut().unwrap().remove("agreement_digest");
    let err = verify(&missing).unwrap_err();
    assert!(
        err.to_string().contains("missing field `agreement_digest`"),
        "{err}"
    );

    let mut v2 = claims.clone();
    v2["rpv"] = 2.into();
    let err = verify(&v2).unwrap_err();
    assert!(
        err.to_string()
            .contains("rpv is 2, but this verifier reads version 1: upgrade"),
        "{err}"
    );

    // An unset quota may be absent (as written) or null; both read as unlimited.
    let mut null = claims;
    null["quotas"]["accelerator_hours"] = Value::Null;
    assert_eq!(verify(&null).unwrap().quotas.accelerator_hours, None);
}

#[test]
fn every_field_problem_is_named_at_once() {
    let mut r = request(NOW);
    r.iss = String::new();
    r.jti = "grant 01".into();
    r.grantee.org_id = "org/university".into();
    r.grantee.member_id = String::new();
    r.grantee.name = "Example\u{202E}University".into();
    r.developer = "x".repeat(129);
    r.model.model_id = String::new();
    r.model.name = " ".into();
    r.model.checkpoint_digest = DIGEST.to_uppercase();
    r.nbf = NOW - 10;
    r.exp = NOW - 20;
    r.tier = AccessTier::Activations;
    r.quotas = Quotas {
        tokens: Some(0),
        requests: Some(10_000_000_000_000),
        accelerator_hours: Some(f64::NAN),
    };
    r.rate = Rate {
        burst: 0,
        count: 0,
        period_seconds: 86_401,
    };
    r.purpose = "a\u{0}b".into();
    r.research_plan_digest = format!("sha256:{}", "a".repeat(63));
    r.agreement_digest = format!("sha512:{}", "b".repeat(64));
    r.duties = Duties {
        usage_report_interval_seconds: 59,
        publication_review_days: 366,
        incident_report_hours: 0,
    };
    r.origin = GrantOrigin::Evaluation {
        milestone_id: String::new(),
    };

    let errors = check_access_grant(r, NOW).unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "iss",
            "jti",
            "grantee.org_id",
            "grantee.member_id",
            "grantee.name",
            "developer",
            "model.model_id",
            "model.name",
            "model.checkpoint_digest",
            "exp",
            "exp",
            "quotas.tokens",
            "quotas.requests",
            "quotas.accelerator_hours",
            "rate.burst",
            "rate.count",
            "rate.period_seconds",
            "purpose",
            "research_plan_digest",
            "agreement_digest",
            "duties.usage_report_interval_seconds",
            "duties.publication_review_days",
            "duties.incident_report_hours",
            "origin.milestone_id",
        ]
    );
    let message = |field: &str| {
        errors
            .iter()
            .filter(|e| e.field == field)
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        message("exp").contains("later than nbf"),
        "{}",
        message("exp")
    );
    assert!(
        message("exp").contains("must be in the future"),
        "{}",
        message("exp")
    );
    assert!(
        message("jti").contains("without spaces"),
        "{}",
        message("jti")
    );
    assert!(
        message("grantee.name").contains("U+202E"),
        "{}",
        message("grantee.name")
    );
    assert!(
        message("model.checkpoint_digest").contains("64 lowercase hex digits"),
        "{}",
        message("model.checkpoint_digest")
    );
    assert_eq!(
        message("rate.period_seconds"),
        "must be between 1 and 86400 seconds (got 86401)"
    );
    assert_eq!(
        message("quotas.tokens"),
        "must be between 1 and 1e13 tokens, leave the quota out for no token limit (got 0)"
    );
    assert!(message("quotas.accelerator_hours").contains("got NaN"));
}

#[test]
fn the_developer_needs_no_grant_to_its_own_model() {
    let mut r = request(NOW);
    r.grantee.org_id = r.developer.clone();
    let errors = check_access_grant(r, NOW).unwrap_err();
    assert_eq!(fields(&errors), ["grantee.org_id"]);
    assert!(errors[0].message.contains("developer"), "{errors:?}");
}

#[test]
fn quotas_may_be_unlimited_only_for_api_sampling() {
    let unlimited = |tier| AccessGrantRequest {
        tier,
        quotas: Quotas::default(),
        ..request(NOW)
    };
    assert!(check_access_grant(unlimited(AccessTier::ApiSampling), NOW).is_ok());
    for tier in &AccessTier::ALL[1..] {
        let errors = check_access_grant(unlimited(*tier), NOW).unwrap_err();
        assert_eq!(fields(&errors), ["quotas"], "{tier}");
        assert!(errors[0].message.contains(&format!("a {tier} grant")));
    }
    // One quota is enough, at the edges of its range.
    for quotas in [
        Quotas {
            accelerator_hours: Some(0.01),
            ..Quotas::default()
        },
        Quotas {
            tokens: Some(10_000_000_000_000),
            ..Quotas::default()
        },
        Quotas {
            requests: Some(1),
            ..Quotas::default()
        },
    ] {
        let r = AccessGrantRequest {
            tier: AccessTier::Weights,
            quotas: quotas.clone(),
            ..request(NOW)
        };
        assert!(check_access_grant(r, NOW).is_ok(), "{quotas:?}");
    }
    let r = AccessGrantRequest {
        quotas: Quotas {
            accelerator_hours: Some(1e7 * 1.000_001),
            ..Quotas::default()
        },
        ..request(NOW)
    };
    assert_eq!(
        fields(&check_access_grant(r, NOW).unwrap_err()),
        ["quotas.accelerator_hours"]
    );
}

#[test]
fn rate_and_validity_edges() {
    let ok = |r: AccessGrantRequest| check_access_grant(r, NOW).map(|_| ());
    let rate = |burst, count, period_seconds| AccessGrantRequest {
        rate: Rate {
            burst,
            count,
            period_seconds,
        },
        ..request(NOW)
    };
    assert!(ok(rate(1, 1, 1)).is_ok());
    assert!(ok(rate(1, 1, 86_400)).is_ok());
    assert_eq!(
        fields(&check_access_grant(rate(1, 1, 0), NOW).unwrap_err()),
        ["rate.period_seconds"]
    );

    // Validity: at most MAX_GRANT_VALIDITY_SECONDS, and exp strictly after now.
    let window = |nbf, exp| AccessGrantRequest {
        nbf,
        exp,
        ..request(NOW)
    };
    assert!(ok(window(NOW, NOW + MAX_GRANT_VALIDITY_SECONDS)).is_ok());
    let errors =
        check_access_grant(window(NOW, NOW + MAX_GRANT_VALIDITY_SECONDS + 1), NOW).unwrap_err();
    assert_eq!(fields(&errors), ["exp"]);
    assert!(errors[0].message.contains("at most 731 days"), "{errors:?}");
    let errors = check_access_grant(window(NOW - 100, NOW), NOW).unwrap_err();
    assert_eq!(fields(&errors), ["exp"]);
    assert!(
        errors[0]
            .message
            .starts_with("must be in the future (now is 2026-01-01T00:00:00Z"),
        "{errors:?}"
    );
    // Extremes do not overflow.
    let errors = check_access_grant(window(i64::MAX, i64::MIN), NOW).unwrap_err();
    assert_eq!(fields(&errors), ["exp", "exp"]);
    let errors = check_access_grant(window(i64::MIN, i64::MAX), NOW).unwrap_err();
    assert_eq!(fields(&errors), ["exp"]);
}

#[test]
fn time_rules_are_the_permits() {
    let (key, jwks) = setup();
    let mut r = request(NOW);
    r.nbf = NOW + 100;
    r.exp = NOW + 1000;
    let token = sign_access_grant(check_access_grant(r, NOW).unwrap(), &key).token;
    let at = |now: i64, leeway: i64| verify_access_grant(&token, &jwks, now, leeway);
    let grant = TokenKind::AccessGrant;

    assert_eq!(
        at(NOW + 99, 0),
        Err(VerifyError::NotYetValid {
            token: grant,
            nbf: NOW + 100,
            now: NOW + 99
        })
    );
    assert!(at(NOW + 99, 1).is_ok());
    assert!(at(NOW + 100, 0).is_ok());
    assert!(at(NOW + 999, 0).is_ok());
    let expired = at(NOW + 1000, 0).unwrap_err();
    assert_eq!(
        expired,
        VerifyError::Expired {
            token: grant,
            exp: NOW + 1000,
            now: NOW + 1000
        }
    );
    assert_eq!(
        expired.to_string(),
        "access grant expired at 2026-01-01T00:16:40Z (unix 1767226600); now is \
         2026-01-01T00:16:40Z (unix 1767226600): ask the authority for a new access grant"
    );
    assert!(at(NOW + 1000, 1).is_ok());
    assert!(at(NOW + 1000, -5).is_err());
    assert!(at(i64::MAX, i64::MAX).is_ok());
    assert!(at(i64::MIN, 0).is_err());

    // Issued in the future (nbf in the past, iat ahead of the verifier's clock).
    let mut r = request(NOW);
    r.nbf = NOW - 3600;
    let token = sign_access_grant(check_access_grant(r, NOW).unwrap(), &key).token;
    let err = verify_access_grant(&token, &jwks, NOW - 60, 30).unwrap_err();
    assert_eq!(
        err,
        VerifyError::IssuedInFuture {
            token: grant,
            iat: NOW,
            now: NOW - 60
        }
    );
    assert!(
        err.to_string()
            .starts_with("access grant issued in the future")
    );
    assert!(verify_access_grant(&token, &jwks, NOW - 60, 60).is_ok());

    // The signature half does not look at time; the validity half only at time.
    let claims = verify_access_grant_signature(&token, &jwks).unwrap();
    assert!(check_access_grant_validity(&claims, NOW + 89 * 86_400, 0).is_ok());
    assert!(check_access_grant_validity(&claims, NOW + 90 * 86_400, 0).is_err());
}

#[test]
fn tiers_are_ordered_by_depth_and_named() {
    use AccessTier::*;
    assert_eq!(
        AccessTier::ALL,
        [ApiSampling, Logprobs, Finetune, Activations, Weights]
    );
    for (i, deeper) in AccessTier::ALL.iter().enumerate() {
        for (j, shallower) in AccessTier::ALL.iter().enumerate() {
            assert_eq!(
                deeper.includes(*shallower),
                i >= j,
                "{deeper} ⊇ {shallower}"
            );
        }
        assert_eq!(deeper.as_str().parse::<AccessTier>(), Ok(*deeper));
        assert_eq!(
            serde_json::to_value(deeper).unwrap(),
            Value::from(deeper.as_str())
        );
        assert_eq!(deeper.to_string(), deeper.as_str());
    }
    assert!(!ApiSampling.includes(Logprobs));
    assert!(Weights.includes(ApiSampling));
    assert_eq!(
        "Weights".parse::<AccessTier>(),
        Err(
            "unknown access tier \"Weights\": the tiers are api_sampling, logprobs, finetune, \
             activations, weights"
                .to_owned()
        )
    );
}

#[test]
fn digests_are_sha256_lowercase_hex() {
    assert!(is_sha256_digest(DIGEST));
    for bad in [
        "",
        "sha256:",
        &DIGEST[..DIGEST.len() - 1],
        &format!("{DIGEST}0"),
        &DIGEST.replace("sha256:", "SHA256:"),
        &DIGEST.replace('f', "F"),
        &DIGEST.replace('9', "g"),
        &format!("sha256:{}", "é".repeat(32)),
    ] {
        assert!(!is_sha256_digest(bad), "{bad:?}");
    }
}
