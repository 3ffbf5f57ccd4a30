//! Oversight during training, driven in-process through the HTTP API: signed usage reports
//! from two providers, tranche alerts and milestones, evaluator decisions, reviewer and
//! developer transitions, the status list, incidents with deadlines and split-run flags.
//!
//! Runs on in-memory SQLite; with `RUNPERMIT_TEST_DATABASE_URL` set, the usage and milestone
//! scenarios also run on that PostgreSQL database.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{Api, plan};
use runpermit_authority::domain::clock::Clock;
use runpermit_compute::{AccountingBasis, Flop, HardwareTable, accounting};
use runpermit_permit::SigningKey;
use runpermit_permit::{
    MeterMethod, Metered, PermitStatus, UsageReportClaims, sign_usage_report, verify_status_list,
};
use serde_json::{Value, json};

struct World {
    api: Api,
    lab: String,
    reviewer: String,
    evaluator: String,
    cloud_a: SigningKey,
    cloud_b: SigningKey,
    /// A registered provider the permit does not name.
    cloud_c: SigningKey,
    run_id: String,
    permit_id: String,
    /// The permit's `nbf`: reports' intervals start after it.
    nbf: i64,
    /// How the permit counts compute (the example plan's bf16 at 38%, 35–43%).
    basis: AccountingBasis,
}

/// A standard-tier permit whose run may use `org_cloud_a` (cluster `a-east` only) and
/// `org_cloud_b` (`b-west`, `b-north`), with both providers' reporting keys registered, and
/// which the policy assigns to `org_aisi` to evaluate. Its tranches end at 1e25, 4e25 and
/// its budget.
async fn world(database_url: Option<&str>) -> World {
    world_with(database_url, runpermit_policy::Policy::builtin().clone()).await
}

/// [`world`] under `policy` (its evaluators replaced by `org_aisi`).
async fn world_with(database_url: Option<&str>, mut policy: runpermit_policy::Policy) -> World {
    policy.oversight.evaluators = vec!["org_aisi".to_owned()];
    let api = Api::with_policy(database_url, policy).await;
    let a = &api.authority;
    let (_, _, lab) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, reviewer) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, evaluator) = a
        .member(("org_aisi", "Safety Institute"), "evaluator", "evaluator")
        .await;
    let mut keys = Vec::new();
    for org in ["org_cloud_a", "org_cloud_b", "org_cloud_c"] {
        let (_, _, admin) = a.member((org, org), "provider", "admin").await;
        let key = SigningKey::generate();
        let (status, body) = api
            .call(
                "POST",
                &format!("/v1/orgs/{org}/reporting-keys"),
                Some(&admin),
                Some(json!({"jwk": key.public().to_jwk()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["kid"], key.kid());
        keys.push(key);
    }
    let mut p = plan("standard");
    p["providers"] = json!([
        {"provider": "org_cloud_a", "clusters": ["a-east"]},
        {"provider": "org_cloud_b", "clusters": ["b-west", "b-north"]},
    ]);
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": p})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let permit_id = app["permit_id"].as_str().expect("a permit").to_owned();
    let (status, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    let run = &runs[0];
    assert_eq!(run["permit_id"], permit_id.as_str());
    assert_eq!(run["status"], "active");
    assert_eq!(run["tranche"], 1);
    assert_eq!(run["released_flop"], 1e25);
    let run_id = run["id"].as_str().expect("run id").to_owned();
    let (status, permit) = api
        .call("GET", &format!("/v1/permits/{permit_id}"), Some(&lab), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{permit}");
    let nbf = permit["claims"]["nbf"].as_i64().expect("nbf");
    let basis: AccountingBasis =
        serde_json::from_value(permit["claims"]["accounting"].clone()).expect("a basis");
    assert_eq!(
        (basis.precision, basis.utilization, basis.parameters),
        (runpermit_compute::Precision::Bf16, 0.38, Some(405e9))
    );
    // The run has been under way for ten days: reports cover intervals since `nbf`.
    let now = api.authority.clock.now_s();
    api.authority
        .clock
        .advance_ms((nbf + 10 * 86_400 - now).max(0) * 1000);
    let mut keys = keys.into_iter();
    World {
        api,
        lab,
        reviewer,
        evaluator,
        cloud_a: keys.next().expect("a"),
        cloud_b: keys.next().expect("b"),
        cloud_c: keys.next().expect("c"),
        run_id,
        permit_id,
        nbf,
        basis,
    }
}

impl World {
    /// A scheduler-accounting report of provider `provider` whose central estimate is `flop`:
    /// the H100 accelerator-seconds that count `flop` at the permit's basis, with the bounds
    /// the basis gives (lower at 35%, upper at the chip's fp8 peak: 5.26 × the central).
    fn report(
        &self,
        key: &SigningKey,
        provider: &str,
        cluster: &str,
        seq: u64,
        flop: f64,
    ) -> String {
        let chip = HardwareTable::builtin().lookup("h100-sxm").expect("H100");
        let peak = accounting::declared_peak(chip, Some(&self.basis)).expect("bf16 peak");
        let seconds = flop / (peak * self.basis.utilization);
        let f = accounting::over_time(chip, seconds, Some(&self.basis)).expect("figures");
        let metered = Metered {
            method: MeterMethod::SchedulerAccounting,
            accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
            flop: f.central,
            lower: f.lower,
            upper: f.upper,
        };
        let length = 300.max((seconds / 1e5).ceil() as i64);
        let start = self.nbf + 300 * i64::try_from(seq).expect("seq");
        let claims = UsageReportClaims::new(
            provider,
            &self.run_id,
            &self.permit_id,
            cluster,
            seq,
            (start, start + length),
            start + length + 1,
            metered,
        );
        sign_usage_report(&claims, key).expect("signing")
    }

    fn a(&self, seq: u64, flop: f64) -> String {
        self.report(&self.cloud_a, "org_cloud_a", "a-east", seq, flop)
    }

    fn b(&self, seq: u64, flop: f64) -> String {
        self.report(&self.cloud_b, "org_cloud_b", "b-west", seq, flop)
    }

    async fn ingest(&self, reports: &[String]) -> (StatusCode, Value) {
        self.api
            .call("POST", "/v1/usage", None, Some(json!({"reports": reports})))
            .await
    }

    async fn run(&self) -> Value {
        let (status, run) = self
            .api
            .call(
                "GET",
                &format!("/v1/runs/{}", self.run_id),
                Some(&self.lab),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }

    /// The run's audit trail, as an authority admin reads it.
    async fn audit(&self) -> Value {
        let (status, audit) = self
            .api
            .call(
                "GET",
                &format!("/v1/audit?subject=run/{}", self.run_id),
                Some(&admin_of(self).await),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{audit}");
        audit
    }

    async fn act(&self, token: &str, action: &str, reason: &str) -> (StatusCode, Value) {
        self.api
            .call(
                "POST",
                &format!("/v1/runs/{}/{action}", self.run_id),
                Some(token),
                Some(json!({"reason": reason})),
            )
            .await
    }

    /// The status list's entry for this run's permit, verified with the authority's JWKS.
    async fn listed(&self) -> Option<(PermitStatus, String)> {
        let jwks = self.api.jwks().await;
        let (status, body) = self.api.raw("/v1/status-list").await;
        assert_eq!(status, StatusCode::OK);
        let token = String::from_utf8(body).expect("UTF-8");
        let list = verify_status_list(token.trim(), &jwks).expect("a valid status list");
        list.entries
            .into_iter()
            .find(|e| e.permit_id == self.permit_id)
            .map(|e| (e.status, e.reason))
    }

    async fn submit_milestone(&self) -> String {
        self.submit_milestone_with(json!({})).await["id"]
            .as_str()
            .expect("milestone id")
            .to_owned()
    }

    /// Submits a milestone report with `extra` fields (`tokens`, `cumulative_flop`).
    async fn submit_milestone_with(&self, extra: Value) -> Value {
        let mut body = json!({
            "checkpoint_digest": format!("sha256:{}", "ab".repeat(32)),
            "evals": {"cyber_uplift": {"score": 0.12, "threshold": 0.5}},
        });
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        let (status, m) = self
            .api
            .call(
                "POST",
                &format!("/v1/runs/{}/milestones", self.run_id),
                Some(&self.lab),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        m
    }

    async fn decide(&self, milestone: &str, decision: &str) -> (StatusCode, Value) {
        self.api
            .call(
                "POST",
                &format!("/v1/milestones/{milestone}/{decision}"),
                Some(&self.evaluator),
                Some(json!({"reason": format!("evaluations {decision}ed")})),
            )
            .await
    }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() <= b.abs() * 1e-9)
}

async fn usage_is_idempotent_and_summed_over_providers(w: World) {
    // Stored, then the same report again: a duplicate, nothing changes.
    let (status, body) = w.ingest(&[w.a(1, 1e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["stored"].as_u64(), body["duplicates"].as_u64()),
        (Some(1), Some(0))
    );
    let (status, body) = w.ingest(&[w.a(1, 1e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "duplicate", "{body}");
    // The same seq with other content is refused for good.
    let (status, body) = w.ingest(&[w.a(1, 2e24)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("already stored with other content"),
        "{body}"
    );
    // A gap is reported, then filled late.
    let (status, body) = w.ingest(&[w.a(3, 1e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["gap"], json!([2, 2]), "{body}");
    assert_eq!(
        w.run().await["usage_by_provider"]["org_cloud_a"]["missing_reports"],
        1
    );
    let (_, body) = w.ingest(&[w.a(2, 1e24), w.b(1, 5e23)]).await;
    assert_eq!(body["results"][0]["late"], true, "{body}");
    assert_eq!(body["stored"], 2, "{body}");

    let run = w.run().await;
    assert!(close(&run["cumulative_flop"], 3.5e24), "{run}");
    assert!(
        close(&run["usage_by_provider"]["org_cloud_a"]["flop"], 3e24),
        "{run}"
    );
    assert!(
        close(&run["usage_by_provider"]["org_cloud_b"]["flop"], 5e23),
        "{run}"
    );
    assert_eq!(
        run["usage_by_provider"]["org_cloud_a"]["missing_reports"],
        0
    );
    let (status, usage) = w
        .api
        .call(
            "GET",
            &format!("/v1/runs/{}/usage?limit=2", w.run_id),
            Some(&w.reviewer),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(usage["reports"].as_array().unwrap().len(), 2);
    assert_eq!(
        usage["next"],
        json!({"after_provider": "org_cloud_a", "after_seq": 2})
    );

    // Refusals name what is wrong, and a batch with any refusal stores nothing.
    let stranger = SigningKey::generate();
    let forged = w.report(&stranger, "org_cloud_a", "a-east", 4, 1e24);
    let (status, body) = w.ingest(&[w.a(4, 1e24), forged]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body["results"][0]["status"], "withheld",
        "judged sound, but not stored: {body}"
    );
    assert!(
        body["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("no registered reporting key"),
        "{body}"
    );
    assert!(close(&w.run().await["cumulative_flop"], 3.5e24));
    let (status, body) = w
        .ingest(&[w.report(&w.cloud_a, "org_cloud_a", "a-west", 4, 1e24)])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cluster: a-west"),
        "{body}"
    );
    let (status, body) = w
        .ingest(&[w.report(&w.cloud_b, "org_cloud_a", "a-east", 4, 1e24)])
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a provider cannot report as another: {body}"
    );
    let mut tampered = w.a(4, 1e24);
    tampered.insert(tampered.len() / 2, 'x');
    let (status, _) = w.ingest(&[tampered]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = w.ingest(&[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = w
        .api
        .call("POST", "/v1/usage", None, Some(json!({"report": []})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(close(&w.run().await["cumulative_flop"], 3.5e24));

    // The usage is summarised into the public log once, until it changes.
    let state = &w.api.authority.state;
    assert_eq!(
        runpermit_authority::domain::runs::supervision::summarize_usage(state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        runpermit_authority::domain::runs::supervision::summarize_usage(state)
            .await
            .unwrap(),
        0
    );
}

async fn milestones_hold_and_release_the_run(w: World) {
    assert_eq!(w.listed().await, None);
    // Each caller is told what it may do, not only what the status allows.
    let actions = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let as_lab = w.run().await;
    assert_eq!(
        actions(&as_lab, "your_actions"),
        ["complete", "submit_milestone"],
        "{as_lab}"
    );
    assert!(actions(&as_lab, "allowed_actions").contains(&"pause".to_owned()));
    for (token, expected) in [
        (&w.reviewer, vec!["pause", "suspend", "revoke", "terminate"]),
        // Nothing is due for evaluation while the run is active.
        (&w.evaluator, vec![]),
    ] {
        let (status, view) = w
            .api
            .call("GET", &format!("/v1/runs/{}", w.run_id), Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        let mine = actions(&view, "your_actions");
        assert_eq!(mine, expected, "{view}");
    }
    // 80%: an alert, audited; still in good standing.
    let (status, body) = w.ingest(&[w.a(1, 5e24), w.b(1, 3.2e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert_eq!(
        (run["status"].as_str(), run["alerted_percent"].as_i64()),
        (Some("active"), Some(80))
    );
    let audit = w.audit().await;
    assert!(
        audit.to_string().contains("usage reached 80% of tranche 1"),
        "{audit}"
    );
    assert_eq!(w.listed().await, None);
    // Judged on the central estimate: the upper bound (every accelerator-second at the H100's
    // fp8 peak) is already 4× past the tranche's end, and the run is not held for it; it is
    // flagged for reviewers, once.
    assert_eq!(run["tranche_figure"], "central", "{run}");
    assert!(close(&run["cumulative_flop"], 8.2e24), "{run}");
    assert!(
        close(&run["cumulative_lower_flop"], 8.2e24 * 0.35 / 0.38),
        "{run}"
    );
    let upper = run["cumulative_upper_flop"].as_f64().unwrap();
    assert!(
        (upper / 8.2e24 - 1.979e15 / (9.894e14 * 0.38)).abs() < 1e-6,
        "{run}"
    );
    assert!(upper > 4.0 * 1e25, "{run}");
    let kinds: Vec<&str> = run["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["upper_bound_past_tranche"], "{run}");
    assert_eq!(run["flags"][0]["subject"], "tranche 1");
    assert_eq!(run["accounting"]["precision"], "bf16", "{run}");

    // The end of the tranche by the central estimate: milestone due, on hold in the status
    // list.
    let (status, body) = w.ingest(&[w.b(2, 2e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert_eq!(run["status"], "milestone_due", "{run}");
    assert_eq!(run["in_good_standing"], false);
    let (listed, reason) = w.listed().await.expect("held");
    assert_eq!(listed, PermitStatus::MilestoneHold);
    assert!(reason.contains("milestone 1 due"), "{reason}");

    // Rejected: paused; the developer appeals and resubmits; accepted: tranche 2. The first
    // report states tokens that agree with the metered 1.02e25 FLOP (6 × 405e9 × 4.2e12 =
    // 1.02e25): nothing is flagged.
    let first = w.submit_milestone_with(json!({"tokens": 4.2e12})).await;
    assert!(
        close(&first["operation_count_flop"], 6.0 * 405e9 * 4.2e12),
        "{first}"
    );
    assert!(close(&first["metered_flop"], 1.02e25), "{first}");
    let factor = first["operation_count_factor"].as_f64().unwrap();
    assert!((factor - 1.0).abs() < 0.01, "{first}");
    let first = first["id"].as_str().unwrap().to_owned();
    let (status, body) = w
        .api
        .call(
            "POST",
            &format!("/v1/runs/{}/milestones", w.run_id),
            Some(&w.lab),
            Some(json!({"checkpoint_digest": format!("sha256:{}", "cd".repeat(32)), "evals": {"x": 1}})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one report awaits evaluation: {body}"
    );
    let (status, body) = w
        .api
        .call(
            "POST",
            &format!("/v1/milestones/{first}/accept"),
            Some(&w.reviewer),
            Some(json!({"reason": "reviewers do not evaluate"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, as_evaluator) = w
        .api
        .call(
            "GET",
            &format!("/v1/runs/{}", w.run_id),
            Some(&w.evaluator),
            None,
        )
        .await;
    assert_eq!(
        actions(&as_evaluator, "your_actions"),
        ["accept_milestone", "reject_milestone"],
        "{as_evaluator}"
    );
    let (status, body) = w.decide(&first, "reject").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "rejected");
    assert_eq!(w.run().await["status"], "paused");
    assert_eq!(w.listed().await.expect("paused").0, PermitStatus::Paused);
    let (status, body) = w.decide(&first, "accept").await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once: {body}");
    let (status, body) = w
        .act(&w.lab, "appeal", "the evaluation used the wrong checkpoint")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["appeal_pending"], true);
    // The second states three times the tokens: operation counting (3.06e25) and the metered
    // 1.02e25 differ by 3×, beyond the policy's 1.5×: flagged for the evaluator.
    let second = w.submit_milestone_with(json!({"tokens": 1.26e13})).await;
    let second = second["id"].as_str().unwrap().to_owned();
    let (_, as_evaluator) = w
        .api
        .call(
            "GET",
            &format!("/v1/runs/{}", w.run_id),
            Some(&w.evaluator),
            None,
        )
        .await;
    let gap = as_evaluator["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "operation_count_gap")
        .unwrap_or_else(|| panic!("flagged: {as_evaluator}"));
    assert_eq!(gap["subject"], second.as_str());
    assert!(
        gap["message"].as_str().unwrap().contains("differ by 3.00×"),
        "{gap}"
    );
    let (status, body) = w.decide(&second, "accept").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert_eq!(run["status"], "active", "{run}");
    assert_eq!(run["tranche"], 2);
    assert_eq!(run["released_flop"], 4e25);
    assert_eq!(run["alerted_percent"], 0);
    assert_eq!(
        w.listed().await,
        None,
        "the hold is lifted in the next list"
    );

    // Reviewers pause and resume; invalid transitions say what is allowed.
    let (status, body) = w.act(&w.lab, "pause", "labs cannot pause").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = w
        .act(&w.reviewer, "pause", "incident under investigation")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = w.act(&w.reviewer, "pause", "again").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot pause a run that is paused"),
        "{body}"
    );
    let (status, body) = w.act(&w.reviewer, "resume", "cleared").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "active");
    let (status, body) = w.act(&w.reviewer, "resume", "").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a reason is required: {body}"
    );

    // Revoked: final, listed as revoked.
    let (status, _) = w
        .act(&w.reviewer, "revoke", "weights security failed audit")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        w.listed().await,
        Some((
            PermitStatus::Revoked,
            "weights security failed audit".to_owned()
        ))
    );
    let (status, body) = w.act(&w.reviewer, "resume", "undo").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("revoked is final"),
        "{body}"
    );
    // Usage that arrives after the revocation is still recorded: it is evidence.
    let (status, body) = w.ingest(&[w.a(2, 1e23)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Signs `claims` as they are, without the checks `sign_usage_report` makes: what a provider
/// that wants to break the accounting would send.
fn forge(claims: &UsageReportClaims, key: &SigningKey) -> String {
    runpermit_permit::sign_jws(runpermit_permit::USAGE_TYP, claims, key)
}

/// Runs `sql` on the authority's database, as someone with write access to it would.
async fn tamper(database_url: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url)
            .await
            .expect("connecting");
        sqlx::query(sql).execute(&pool).await.expect("tampering");
    } else {
        let pool = sqlx::SqlitePool::connect(database_url)
            .await
            .expect("connecting");
        sqlx::query(sql).execute(&pool).await.expect("tampering");
    }
}

/// Reports that cannot be true are refused, by field, and change nothing; a batch is all or
/// nothing; the permit's scope is the signed permit's, not a copy in the database.
async fn reports_that_cannot_be_true_change_nothing(w: World, database_url: &str) {
    let (status, body) = w.ingest(&[w.a(1, 1e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = w.run().await;
    let refused = |body: &Value, status: StatusCode, want: StatusCode, field: &str| {
        assert_eq!(status, want, "{body}");
        let error = body["results"][0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(field), "{field}: {body}");
    };
    let good = |seq: u64| {
        let token = w.a(seq, 1e23);
        let (_, claims): (_, UsageReportClaims) = runpermit_permit::verify_jws(
            &token,
            runpermit_permit::USAGE_TYP,
            &runpermit_permit::Jwks::from_keys(&[w.cloud_a.public()]),
        )
        .expect("own report");
        claims
    };

    // 2: FLOP figures that overflow a sum, or that no hardware can compute.
    let mut huge = good(2);
    huge.flop = Flop::new(1e308).unwrap();
    huge.flop_upper = huge.flop;
    let mut huge2 = huge.clone();
    huge2.seq = 3;
    let (status, body) = w
        .ingest(&[forge(&huge, &w.cloud_a), forge(&huge2, &w.cloud_a)])
        .await;
    refused(
        &body,
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "flop_upper",
    );
    let mut fast = good(2);
    fast.accelerator_seconds = BTreeMap::from([("nvidia-h100-sxm".to_owned(), 1.0)]);
    fast.flop = Flop::new(1e24).unwrap();
    fast.flop_upper = fast.flop;
    let (status, body) = w.ingest(&[forge(&fast, &w.cloud_a)]).await;
    refused(
        &body,
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "flop_upper",
    );

    // 10: sequence numbers, intervals and identifiers that cannot be true.
    let mut r = good(2);
    r.seq = (1 << 63) - 1;
    let (status, body) = w.ingest(&[forge(&r, &w.cloud_a)]).await;
    refused(&body, status, StatusCode::UNPROCESSABLE_ENTITY, "seq");
    for (from, field) in [
        (0, "before permit"),              // 1970
        (w.nbf - 86_400, "before permit"), // wholly before the permit was valid
        (4_102_444_800, "in the future"),  // 2100
    ] {
        let mut r = good(2);
        let length = r.to - r.from;
        (r.from, r.to, r.iat) = (from, from + length, from + length + 1);
        let (status, body) = w.ingest(&[forge(&r, &w.cloud_a)]).await;
        refused(&body, status, StatusCode::UNPROCESSABLE_ENTITY, field);
    }
    let mut r = good(2);
    let seconds = r.accelerator_seconds.values().sum::<f64>();
    r.accelerator_seconds = BTreeMap::from([("../../etc/passwd".to_owned(), seconds)]);
    let (status, body) = w.ingest(&[forge(&r, &w.cloud_a)]).await;
    refused(
        &body,
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "accelerator_seconds",
    );
    let mut r = good(2);
    r.cluster = "a-east\u{0}".to_owned();
    let (status, body) = w.ingest(&[forge(&r, &w.cloud_a)]).await;
    refused(&body, status, StatusCode::UNPROCESSABLE_ENTITY, "cluster");

    // 4: one new report with one conflicting resend: 409, and neither is stored.
    let (status, body) = w.ingest(&[w.a(2, 1e23), w.a(1, 2e24)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["results"][0]["status"], "withheld", "{body}");
    assert_eq!(body["results"][1]["status"], "refused", "{body}");
    let after = w.run().await;
    assert_eq!(
        after["cumulative_flop"], before["cumulative_flop"],
        "{after}"
    );
    assert_eq!(after["status"], "active");
    // Sent again alone, the new report is stored: nothing was half-written.
    let (status, body) = w.ingest(&[w.a(2, 1e23)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "stored", "{body}");

    // 6: a provider added to the database's copy of the permit is still not in its scope.
    let mut claims: Value = serde_json::from_str(
        w.api
            .authority
            .state
            .store
            .permit(&w.permit_id)
            .await
            .unwrap()
            .unwrap()
            .claims_json
            .as_str(),
    )
    .unwrap();
    claims["providers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"provider": "org_cloud_c", "clusters": ["c-1"]}));
    tamper(
        database_url,
        &format!(
            "UPDATE permits SET claims_json = '{}' WHERE id = '{}'",
            claims.to_string().replace('\'', "''"),
            w.permit_id
        ),
    )
    .await;
    let (status, body) = w
        .ingest(&[w.report(&w.cloud_c, "org_cloud_c", "c-1", 1, 1e23)])
        .await;
    refused(
        &body,
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not allowed for run",
    );

    let after = w.run().await;
    assert!(close(&after["cumulative_flop"], 1.1e24), "{after}");
    assert_eq!(after["status"], "active");

    // 2: a stored figure that is not a number (only a database writer can make one) holds the
    // run rather than frees it, and the usage summary skips it instead of failing every cycle.
    let state = &w.api.authority.state;
    let infinity = if database_url.starts_with("postgres") {
        "'Infinity'"
    } else {
        "9e999"
    };
    tamper(
        database_url,
        &format!(
            "UPDATE runs SET cumulative_flop = {infinity} WHERE id = '{}'",
            w.run_id
        ),
    )
    .await;
    assert_eq!(
        runpermit_authority::domain::runs::supervision::summarize_usage(state)
            .await
            .expect("the summary job carries on"),
        0
    );
    runpermit_authority::domain::runs::supervision::evaluate_all(state)
        .await
        .unwrap();
    assert_eq!(w.run().await["status"], "milestone_due");
}

#[tokio::test]
async fn reports_that_cannot_be_true_on_sqlite() {
    let dir = std::env::temp_dir().join(format!(
        "runpermit-oversight-{}",
        runpermit_authority::domain::ids::new_id("t")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("authority.db").display());
    reports_that_cannot_be_true_change_nothing(world(Some(&url)).await, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reports_that_cannot_be_true_on_postgres() {
    if let Some(db) = common::PgSchema::create("oversight_implausible") {
        reports_that_cannot_be_true_change_nothing(world(Some(&db.url)).await, &db.url).await;
    }
}

#[tokio::test]
async fn free_text_with_controls_bidi_or_excess_length_is_refused_by_field() {
    let w = world(None).await;
    let long = "x".repeat(200 * 1024);
    let cases = [
        (
            "POST",
            format!("/v1/runs/{}/pause", w.run_id),
            w.reviewer.clone(),
            json!({"reason": "routine\u{0}check"}),
            "reason",
        ),
        (
            "POST",
            format!("/v1/runs/{}/pause", w.run_id),
            w.reviewer.clone(),
            json!({"reason": "approved \u{202E}devorppa ton"}),
            "reason",
        ),
        (
            "POST",
            "/v1/incidents".to_owned(),
            w.lab.clone(),
            json!({"category": "weights_stolen", "summary": long, "run_id": w.run_id}),
            "summary",
        ),
        (
            "POST",
            "/v1/incidents".to_owned(),
            w.lab.clone(),
            json!({"category": "weights_stolen", "summary": "s", "details": {"blob": long}}),
            "details",
        ),
        (
            "POST",
            format!("/v1/runs/{}/milestones", w.run_id),
            w.lab.clone(),
            json!({"checkpoint_digest": format!("sha256:{}", "ab".repeat(32)),
                "evals": {"x": 1}, "cumulative_flop": 1e300}),
            "cumulative_flop",
        ),
    ];
    for (method, path, token, body, field) in cases {
        let (status, answer) = w.api.call(method, &path, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert_eq!(common::error_fields(&answer), [field], "{path}: {answer}");
    }
    let admin = admin_of(&w).await;
    let (status, answer) = w
        .api
        .call(
            "POST",
            "/v1/orgs",
            Some(&admin),
            Some(json!({"name": "Frontier \u{202E}baL", "kind": "developer"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(common::error_fields(&answer), ["name"], "{answer}");
    assert_eq!(w.run().await["status"], "active");
}

async fn admin_of(w: &World) -> String {
    w.api
        .authority
        .member(("org_authority", "Authority"), "authority", "admin")
        .await
        .2
}

#[tokio::test]
async fn usage_on_sqlite() {
    usage_is_idempotent_and_summed_over_providers(world(None).await).await;
}

#[tokio::test]
async fn milestones_on_sqlite() {
    milestones_hold_and_release_the_run(world(None).await).await;
}

#[tokio::test]
async fn usage_on_postgres() {
    if let Some(db) = common::PgSchema::create("oversight_usage") {
        usage_is_idempotent_and_summed_over_providers(world(Some(&db.url)).await).await;
    }
}

#[tokio::test]
async fn milestones_on_postgres() {
    if let Some(db) = common::PgSchema::create("oversight_milestones") {
        milestones_hold_and_release_the_run(world(Some(&db.url)).await).await;
    }
}

#[tokio::test]
async fn an_overrun_opens_an_incident_and_incidents_have_deadlines() {
    let w = world(None).await;
    let overruns = || async {
        let (status, incidents) = w
            .api
            .call("GET", "/v1/incidents", Some(&w.reviewer), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{incidents}");
        incidents
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["category"] == "overrun")
            .count()
    };
    // A central estimate of 1.12e25 against a tranche ending at 1e25: due. Its lower bound
    // (35/38 of it, 1.03e25) is within the 5% tolerance: no overrun incident.
    let (status, body) = w.ingest(&[w.a(1, 5.6e24), w.b(1, 5.6e24)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.run().await["status"], "milestone_due");
    assert_eq!(overruns().await, 0);
    // 1.2e25: the lower bound (1.105e25) is past the tolerance: an overrun incident.
    let (status, body) = w.ingest(&[w.a(2, 4e23), w.b(2, 4e23)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, incidents) = w
        .api
        .call("GET", "/v1/incidents", Some(&w.reviewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{incidents}");
    let overruns: Vec<&Value> = incidents
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["category"] == "overrun")
        .collect();
    assert_eq!(overruns.len(), 1, "{incidents}");
    assert_eq!(overruns[0]["run_id"], w.run_id.as_str());
    // Evaluated again (the supervisor's tick): no second incident.
    runpermit_authority::domain::runs::supervision::evaluate_all(&w.api.authority.state)
        .await
        .unwrap();
    let (_, again) = w
        .api
        .call("GET", "/v1/incidents", Some(&w.reviewer), None)
        .await;
    assert_eq!(again.as_array().unwrap().len(), 1, "{again}");

    // A developer's incident, discovered three days before it was reported: late.
    let three_days_ago = runpermit_permit::utc(w.api.authority.clock.now_s() - 3 * 86_400);
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/incidents",
            Some(&w.lab),
            Some(
                json!({"category": "weights_stolen", "summary": "a checkpoint was copied out",
                        "run_id": w.run_id, "occurred_at": three_days_ago}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["reported_late"], true, "{body}");
    assert_eq!(body["overdue"], false);
    let id = body["id"].as_str().unwrap().to_owned();
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/incidents",
            Some(&w.lab),
            Some(json!({"category": "alien_invasion", "summary": "?"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.to_string().contains("weights_stolen, weights_leaked"),
        "{body}"
    );

    // Eight days later the follow-up (due in 7) is overdue, until it is filed.
    w.api.authority.clock.advance_ms(8 * 86_400_000);
    let (_, overdue) = w
        .api
        .call("GET", "/v1/incidents?overdue=true", Some(&w.reviewer), None)
        .await;
    let ids: Vec<&str> = overdue
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()), "{overdue}");
    let (status, body) = w
        .api
        .call(
            "POST",
            &format!("/v1/incidents/{id}/follow-up"),
            Some(&w.lab),
            Some(json!({"text": "keys rotated; the copy was destroyed"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["overdue"].as_bool()),
        (Some("closed"), Some(false))
    );
    let (status, _) = w
        .api
        .call(
            "POST",
            &format!("/v1/incidents/{id}/follow-up"),
            Some(&w.lab),
            Some(json!({"text": "again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// A report whose interval starts before the permit was valid, or ends after it expired, is
/// counted (it is evidence) and flags the run for its reviewers; a gate counting less than the
/// permit's basis is refused by name.
#[tokio::test]
async fn usage_outside_the_permit_is_counted_and_flagged() {
    let w = world(None).await;
    let jwks = runpermit_permit::Jwks::from_keys(&[w.cloud_a.public()]);
    let claims = |token: &str| -> UsageReportClaims {
        runpermit_permit::verify_jws(token, runpermit_permit::USAGE_TYP, &jwks)
            .expect("own report")
            .1
    };
    let mut early = claims(&w.a(1, 1e23));
    let length = early.to - early.from;
    early.from = w.nbf - 120;
    early.to = early.from + length.max(600);
    let (status, body) = w.ingest(&[forge(&early, &w.cloud_a)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert!(close(&run["cumulative_flop"], 1e23), "{run}");
    let flag = &run["flags"][0];
    assert_eq!(
        (flag["kind"].as_str(), flag["subject"].as_str()),
        (Some("usage_before_permit"), Some("permit")),
        "{run}"
    );
    assert!(
        flag["message"].as_str().unwrap().contains("120 s before"),
        "{flag}"
    );
    // Raised once: another early report adds no second flag.
    let mut again = claims(&w.a(2, 1e23));
    again.from = w.nbf - 60;
    let (status, body) = w.ingest(&[forge(&again, &w.cloud_a)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.run().await["flags"].as_array().unwrap().len(), 1);

    // Counted at 30% when the permit declares 38%: refused, naming the field.
    let mut low = claims(&w.a(3, 1e23));
    low.flop = Flop::new(low.flop.get() * 0.30 / 0.38).unwrap();
    low.flop_lower = Flop::ZERO;
    let (status, body) = w.ingest(&[forge(&low, &w.cloud_a)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["results"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("flop:") && error.contains("accounting basis"),
        "{body}"
    );

    // After the permit expired: counted and flagged.
    let (_, permit) = w
        .api
        .call(
            "GET",
            &format!("/v1/permits/{}", w.permit_id),
            Some(&w.lab),
            None,
        )
        .await;
    let exp = permit["claims"]["exp"].as_i64().expect("exp");
    let now = w.api.authority.clock.now_s();
    w.api.authority.clock.advance_ms((exp + 3_600 - now) * 1000);
    let mut late = claims(&w.a(3, 1e23));
    (late.from, late.to, late.iat) = (exp - 600, exp + 600, exp + 601);
    let (status, body) = w.ingest(&[forge(&late, &w.cloud_a)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    let kinds: Vec<&str> = run["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["usage_before_permit", "usage_after_expiry"],
        "{run}"
    );
    // Each raising is audited.
    let audit = w.audit().await;
    assert_eq!(
        audit.to_string().matches("\"run.flag\"").count(),
        2,
        "{audit}"
    );
}

/// Tensor-pipe activity measured far above the declared utilization flags the run (a lab
/// under-declaring to stretch its tranches); activity within the declared range does not.
#[tokio::test]
async fn measured_utilization_far_above_the_declared_range_is_flagged() {
    let w = world(None).await;
    let chip = HardwareTable::builtin().lookup("h100-sxm").expect("H100");
    let dcgm = |seq: u64, activity: f64| {
        // One hour of 1000 GPUs at this tensor-pipe activity.
        let seconds = 1000.0 * 3600.0;
        let f = accounting::tensor_activity(chip, activity * seconds, seconds, Some(&w.basis))
            .expect("figures");
        let metered = Metered {
            method: MeterMethod::DcgmTensorActivity,
            accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
            flop: f.central,
            lower: f.lower,
            upper: f.upper,
        };
        let start = w.nbf + 3600 * i64::try_from(seq).expect("seq");
        let claims = UsageReportClaims::new(
            "org_cloud_a",
            &w.run_id,
            &w.permit_id,
            "a-east",
            seq,
            (start, start + 3600),
            start + 3601,
            metered,
        );
        sign_usage_report(&claims, &w.cloud_a).expect("signing")
    };
    // 40%: within the declared 35–43%.
    let (status, body) = w.ingest(&[dcgm(1, 0.40)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert!(
        (run["measured_utilization"].as_f64().unwrap() - 0.40).abs() < 1e-9,
        "{run}"
    );
    assert!(run["flags"].as_array().unwrap().is_empty(), "{run}");
    // Another hour at 90%: 65% over both hours, above 43% × 1.2.
    let (status, body) = w.ingest(&[dcgm(2, 0.90)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = w.run().await;
    assert!(
        (run["measured_utilization"].as_f64().unwrap() - 0.65).abs() < 1e-9,
        "{run}"
    );
    let flag = &run["flags"][0];
    assert_eq!(flag["kind"], "utilization_above_declared", "{run}");
    assert_eq!(flag["subject"], "tranche 1");
    assert!(
        flag["message"]
            .as_str()
            .unwrap()
            .contains("measured utilization is 65%"),
        "{flag}"
    );
    assert!((flag["details"]["declared_utilization"].as_f64().unwrap() - 0.38).abs() < 1e-12);
}

#[tokio::test]
async fn a_run_already_past_the_released_tranche_is_held_again_at_once() {
    let w = world(None).await;
    // 4.1e25 reported while tranche 1 (1e25) was released: due at once.
    let (status, body) = w.ingest(&[w.a(1, 2.05e25), w.b(1, 2.05e25)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let milestone = w.submit_milestone().await;
    let (status, body) = w.decide(&milestone, "accept").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Tranche 2 ends at 4e25, below what was used: milestone 2 is due immediately.
    let run = w.run().await;
    assert_eq!(
        (run["status"].as_str(), run["tranche"].as_i64()),
        (Some("milestone_due"), Some(2)),
        "{run}"
    );
    assert!(
        run["reason"].as_str().unwrap().contains("milestone 2 due"),
        "{run}"
    );
    assert_eq!(w.listed().await.unwrap().0, PermitStatus::MilestoneHold);
}

#[tokio::test]
async fn split_runs_across_providers_are_flagged() {
    let w = world(None).await;
    let mut operators = Vec::new();
    for org in ["org_cloud_a", "org_cloud_b"] {
        let member = w
            .api
            .authority
            .member((org, org), "provider", "provider_operator");
        operators.push(member.await.2);
    }
    let (a, b) = (&operators[0], &operators[1]);
    let now = w.api.authority.clock.now_s();
    let kyc = |customer: &str, flop: f64| {
        json!({"customer": customer, "from": now - 80_000, "to": now, "jobs": 3,
               "accelerator_seconds": flop / 1.979e15, "flop": flop})
    };
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/kyc-reports",
            Some(a),
            Some(kyc("LEI-SPLIT", 6e24)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["flag"].is_null(),
        "one provider's share is below the threshold: {body}"
    );
    let (_, body) = w
        .api
        .call(
            "POST",
            "/v1/kyc-reports",
            Some(b),
            Some(kyc("LEI-SPLIT", 5e24)),
        )
        .await;
    assert_eq!(body["flag"]["split"], true, "{body}");
    let (_, body) = w
        .api
        .call(
            "POST",
            "/v1/kyc-reports",
            Some(a),
            Some(kyc("LEI-BIG", 2e25)),
        )
        .await;
    assert_eq!(body["flag"]["split"], false, "{body}");
    let (_, body) = w
        .api
        .call(
            "POST",
            "/v1/kyc-reports",
            Some(b),
            Some(kyc("LEI-SMALL", 1e24)),
        )
        .await;
    assert!(body["flag"].is_null(), "{body}");
    let (status, flags) = w
        .api
        .call("GET", "/v1/kyc/flags", Some(&w.reviewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{flags}");
    let customers: Vec<&str> = flags["flags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["customer"].as_str())
        .collect();
    assert_eq!(customers, ["LEI-BIG", "LEI-SPLIT"], "{flags}");
    let (status, body) = w.api.call("POST", "/v1/kyc-reports", Some(a), Some(json!({"customer": "", "from": 5, "to": 1, "jobs": 0, "accelerator_seconds": -1.0, "flop": 1e20}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in ["customer", "to", "jobs", "accelerator_seconds"] {
        assert!(
            body.to_string().contains(&format!("\"field\":\"{field}\"")),
            "{field}: {body}"
        );
    }
    // Figures no cluster can produce cannot overflow the window's sums and erase a flag.
    for (report, field) in [
        (
            json!({"customer": "LEI-SPLIT", "from": now - 60, "to": now, "jobs": 1,
                "accelerator_seconds": 1.0, "flop": 1e308}),
            "flop",
        ),
        (
            json!({"customer": "LEI-SPLIT", "from": now - 60, "to": now, "jobs": 1,
                "accelerator_seconds": 1e300, "flop": 1e20}),
            "accelerator_seconds",
        ),
        (
            json!({"customer": "LEI-SPLIT", "from": now, "to": now + 86_400, "jobs": 1,
                "accelerator_seconds": 1.0, "flop": 1e12}),
            "to",
        ),
        (
            json!({"customer": "LEI\u{202E}TILPS", "from": now - 60, "to": now, "jobs": 1,
                "accelerator_seconds": 1.0, "flop": 1e12}),
            "customer",
        ),
    ] {
        let (status, body) = w
            .api
            .call("POST", "/v1/kyc-reports", Some(a), Some(report))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(common::error_fields(&body), [field], "{body}");
    }
    let (_, flags) = w
        .api
        .call("GET", "/v1/kyc/flags", Some(&w.reviewer), None)
        .await;
    assert_eq!(flags["flags"].as_array().unwrap().len(), 2, "{flags}");
    // Outside the window (90 days), the reports no longer count.
    w.api.authority.clock.advance_ms(91 * 86_400_000);
    let (_, flags) = w
        .api
        .call("GET", "/v1/kyc/flags", Some(&w.reviewer), None)
        .await;
    assert_eq!(flags["flags"], json!([]), "{flags}");
}

#[tokio::test]
async fn a_run_is_evaluated_again_after_a_crash_between_usage_and_evaluation() {
    let w = world(None).await;
    let state = &w.api.authority.state;
    // Usage stored as ingestion stores it, but the process "died" before evaluating.
    let token = w.a(1, 1.01e25);
    let claims = runpermit_permit::verify_usage_report(
        &token,
        &runpermit_permit::Jwks::from_keys(&[w.cloud_a.public()]),
    )
    .unwrap();
    state
        .store
        .ingest_usage(vec![runpermit_store::UsageRecord {
            provider_id: claims.iss.clone(),
            run_id: claims.sub.clone(),
            seq: 1,
            permit_id: claims.permit_id.clone(),
            cluster: claims.cluster.clone(),
            from_s: claims.from,
            to_s: claims.to,
            flop: claims.flop.get(),
            flop_lower: 0.0,
            flop_upper: claims.flop_upper.get(),
            method: "scheduler_accounting".into(),
            accelerator_seconds_json: "{}".into(),
            capacity_flop: 0.0,
            digest: runpermit_authority::domain::ids::sha256_hex(token.as_bytes()),
            token,
            received_at: runpermit_authority::testing::T0_MS,
        }])
        .await
        .unwrap();
    assert_eq!(w.run().await["status"], "active");
    assert_eq!(
        runpermit_authority::domain::runs::supervision::evaluate_all(state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(w.run().await["status"], "milestone_due");
    assert_eq!(w.listed().await.unwrap().0, PermitStatus::MilestoneHold);
}

/// Real `inspect-ai` output (integrations/inspect/mock_eval.py): task `arithmetic` on
/// `mockllm/model`, scorer `includes`, accuracy 0.5.
const INSPECT_FIXTURE: &[u8] =
    include_bytes!("../../runpermit-policy/tests/data/inspect/arithmetic-mockllm.eval");

/// CI sets this to a `.eval` file it has just produced with `inspect-ai` from PyPI.
const INSPECT_LOG_ENV: &str = "RUNPERMIT_TEST_INSPECT_LOG";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Submits `log` as a milestone report's only evidence under a policy whose threshold
/// (`arithmetic` accuracy above 0.4) it crosses: the authority extracts the results itself and
/// flags the report to the evaluator with the task, metric, value and threshold.
async fn inspect_log_is_evidence_and_flagged(log: &[u8]) {
    let mut policy = runpermit_policy::Policy::builtin().clone();
    policy.oversight.evaluation_threshold = vec![runpermit_policy::inspect::EvaluationThreshold {
        task: "arithmetic".into(),
        metric: "accuracy".into(),
        scorer: None,
        above: Some(0.4),
        below: None,
    }];
    let w = world_with(None, policy).await;
    let path = format!("/v1/runs/{}/milestones", w.run_id);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let refused = |body: Value| {
        let (w, path) = (&w, &path);
        async move {
            let (status, answer) = w.api.call("POST", path, Some(&w.lab), Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            answer
        }
    };
    // Neither free-form results nor a log; a log that is not one; the reserved key; the same
    // file twice.
    let a = refused(json!({"checkpoint_digest": digest})).await;
    assert_eq!(common::error_fields(&a), ["evals"], "{a}");
    let a = refused(json!({"checkpoint_digest": digest, "inspect_logs": [b64(b"{}")]})).await;
    assert_eq!(common::error_fields(&a), ["inspect_logs[0]"], "{a}");
    assert!(a.to_string().contains("not a zip archive"), "{a}");
    let a = refused(json!({"checkpoint_digest": digest, "inspect_logs": ["%%%"]})).await;
    assert!(a.to_string().contains("not base64"), "{a}");
    let a = refused(json!({"checkpoint_digest": digest, "evals": {"inspect": 1},
                          "inspect_logs": [b64(log)]}))
    .await;
    assert!(a.to_string().contains("reserved"), "{a}");
    let a = refused(json!({"checkpoint_digest": digest,
                          "inspect_logs": [b64(log), b64(log)]}))
    .await;
    assert_eq!(common::error_fields(&a), ["inspect_logs[1]"], "{a}");

    let m = w
        .submit_milestone_with(json!({"inspect_logs": [b64(log)]}))
        .await;
    let extracted = &m["evals"]["inspect"][0];
    let summary = runpermit_policy::inspect::parse_eval_log(log).expect("a finished log");
    assert_eq!(extracted["digest"], summary.digest.as_str(), "{m}");
    assert_eq!(extracted["task"], "arithmetic", "{m}");
    assert_eq!(extracted["model"], "mockllm/model", "{m}");
    assert_eq!(extracted["status"], "success", "{m}");
    assert_eq!(extracted["scores"][0]["scorer"], "includes", "{m}");
    assert_eq!(extracted["scores"][0]["metrics"]["accuracy"], 0.5, "{m}");
    // The free-form results stay beside the extracted ones.
    assert_eq!(m["evals"]["cyber_uplift"]["score"], 0.12, "{m}");
    let (_, as_evaluator) = w
        .api
        .call(
            "GET",
            &format!("/v1/runs/{}", w.run_id),
            Some(&w.evaluator),
            None,
        )
        .await;
    let crossed = as_evaluator["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "evaluation_threshold_crossed")
        .unwrap_or_else(|| panic!("flagged: {as_evaluator}"));
    assert_eq!(crossed["subject"], m["id"]);
    let message = crossed["message"].as_str().unwrap();
    for part in [
        "\"arithmetic\"",
        "accuracy = 0.5",
        "above the threshold 0.4",
        &summary.digest,
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
}

#[tokio::test]
async fn inspect_logs_are_milestone_evidence() {
    inspect_log_is_evidence_and_flagged(INSPECT_FIXTURE).await;
}

/// A `.eval` file CI has just produced with the `inspect-ai` release it installs: the format
/// this authority reads is the one Inspect writes today, not only the committed fixture's.
#[tokio::test]
async fn a_fresh_inspect_log_is_milestone_evidence() {
    let Some(path) = std::env::var_os(INSPECT_LOG_ENV) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{INSPECT_LOG_ENV} must name a fresh .eval file under CI (see .ci/run)"
        );
        println!(
            "skipped: set {INSPECT_LOG_ENV} to a .eval file from integrations/inspect/mock_eval.py"
        );
        return;
    };
    let log = std::fs::read(&path).expect("the .eval file named by RUNPERMIT_TEST_INSPECT_LOG");
    inspect_log_is_evidence_and_flagged(&log).await;
}
