//! Runs on both databases: runs, milestones, incidents, KYC reports, and batches of run
//! writes (usage reports are in `usage.rs`).

mod common;

use common::{
    Db, UNIT, audit, expect_err, org, permit, run, seed, seed_application, seed_runs, usage,
};
use runpermit_store::{
    Incident, KycReport, KycTotal, Milestone, ProviderKey, Run, RunFlag, StoreError, Write,
};
use runpermit_types::UsageFigure;

common::suite!(
    runs_insert_read_and_order,
    update_run_is_optimistic_and_leaves_usage_alone,
    set_run_summarized_and_runs_to_summarize,
    runs_to_summarize_reads_the_figure_asked_for,
    run_flags_are_raised_once,
    runs_not_in_good_standing_filters,
    milestones_are_decided_once,
    incidents_follow_up_until_closed,
    kyc_totals_window_and_grouping,
    oversight_batch_is_all_or_nothing,
    oversight_writes_are_validated,
    a_stored_status_that_is_no_known_name_is_an_error,
);

fn milestone(id: &str, run_id: &str, at: i64) -> Milestone {
    Milestone {
        id: id.into(),
        run_id: run_id.into(),
        tranche: 2,
        status: "submitted".parse().expect("a status"),
        checkpoint_digest: format!("sha256:{id}"),
        cumulative_flop: 60.0 * UNIT,
        evals_json: r#"{"cyber":0.1}"#.into(),
        submitted_by: "m_app".into(),
        submitted_at: at,
        decided_by: None,
        decided_org: None,
        decided_at: None,
        reason: None,
        tokens: Some(1.5e12),
        metered_flop: Some(58.0 * UNIT),
        operation_count_flop: Some(63.0 * UNIT),
    }
}

fn incident(id: &str, org_id: &str, at: i64) -> Incident {
    Incident {
        id: id.into(),
        org_id: org_id.into(),
        reported_by: "m_app".into(),
        run_id: Some("run_1".into()),
        category: "model_weights_exfiltration".into(),
        summary: format!("{id} summary"),
        details_json: r#"{"hosts":2}"#.into(),
        occurred_at: at - 50,
        reported_at: at,
        follow_up_due: at + 1_000,
        followed_up_at: None,
        follow_up: None,
        status: "open".parse().expect("a status"),
        tranche: None,
    }
}

fn kyc(id: &str, provider_id: &str, customer: &str, to_s: i64, jobs: i64) -> KycReport {
    KycReport {
        id: id.into(),
        provider_id: provider_id.into(),
        customer: customer.into(),
        from_s: to_s - 86_400,
        to_s,
        jobs,
        accelerator_seconds: jobs as f64 * 1_024.0,
        flop: jobs as f64 * UNIT,
        received_at: to_s * 1_000 + 5,
    }
}

async fn runs_insert_read_and_order(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_dev2", "developer", 70)),
            Write::InsertPermit(permit("p_3", "app_1", 220)),
            Write::InsertRun(Run {
                org_id: "o_dev2".into(),
                ..run("run_3", "p_3", 400)
            }),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.run("run_1").await.unwrap(),
        Some(run("run_1", "p_1", 300))
    );
    assert_eq!(store.run("nope").await.unwrap(), None);
    assert_eq!(
        store.run_by_permit("p_2").await.unwrap(),
        Some(run("run_2", "p_2", 400))
    );
    assert_eq!(store.run_by_permit("p_nope").await.unwrap(), None);
    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs(None).await.unwrap()),
        ["run_3", "run_2", "run_1"]
    );
    assert_eq!(
        ids(store.runs(Some("o_dev")).await.unwrap()),
        ["run_2", "run_1"]
    );
    assert_eq!(ids(store.runs(Some("o_dev2")).await.unwrap()), ["run_3"]);
    assert!(store.runs(Some("o_auth")).await.unwrap().is_empty());

    let stored = store.run("run_3").await.unwrap().unwrap();
    assert_eq!(stored.org_id, "o_dev2");
    assert!(!stored.appeal_pending);

    let e = expect_err(
        store
            .commit(vec![Write::InsertRun(run("run_9", "p_1", 500))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "run \"run_9\": permit \"p_1\" already has a run"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertPermit(permit("p_4", "app_1", 230)),
                Write::InsertRun(run("run_1", "p_4", 500)),
            ])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "run id \"run_1\" already exists"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertRun(run("run_9", "p_missing", 500))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("permit_id \"p_missing\" names no permit")),
        "{e}"
    );
}

async fn update_run_is_optimistic_and_leaves_usage_alone(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let read = store.run("run_1").await.unwrap().unwrap();
    // Usage arrives after the read: it must survive the update.
    store
        .ingest_usage(vec![
            usage("prov_a", "run_1", 1, 3.0),
            usage("prov_a", "run_1", 2, 5.0),
        ])
        .await
        .unwrap();

    let mut changed = read.clone();
    changed.status = "suspended".parse().expect("a status");
    changed.reason = "milestone overdue".into();
    changed.status_since = 900;
    changed.tranche = 2;
    changed.released_flop = 128.0 * UNIT;
    changed.alerted_percent = 90;
    changed.appeal_pending = true;
    changed.updated_at = 901;
    // Ignored: identity, usage figures, budget, expiry, version.
    changed.permit_id = "p_2".into();
    changed.org_id = "o_auth".into();
    changed.budget_flop = 1.0;
    changed.cumulative_flop = 1.0;
    changed.cumulative_upper_flop = 1.0;
    changed.summarized_flop = 1.0;
    changed.permit_exp_s = 1;
    changed.version = 77;
    changed.created_at = 1;
    store
        .commit(vec![Write::UpdateRun {
            run: changed.clone(),
            expected_version: 1,
        }])
        .await
        .unwrap();
    let expected = Run {
        status: "suspended".parse().expect("a status"),
        reason: "milestone overdue".into(),
        status_since: 900,
        tranche: 2,
        released_flop: 128.0 * UNIT,
        alerted_percent: 90,
        appeal_pending: true,
        updated_at: 901,
        version: 2,
        cumulative_flop: 8.0 * UNIT,
        cumulative_lower_flop: 4.0 * UNIT,
        cumulative_upper_flop: 16.0 * UNIT,
        first_usage_s: Some(1_700_000_000 + 3_600),
        last_usage_s: Some(1_700_000_000 + 3 * 3_600),
        ..run("run_1", "p_1", 300)
    };
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), expected);

    // A writer that also read version 1 loses, and changes nothing.
    let e = expect_err(
        store
            .commit(vec![Write::UpdateRun {
                run: Run {
                    status: "revoked".parse().expect("a status"),
                    ..read.clone()
                },
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"run_1\"") && m.contains("expected version 1, stored version 2")),
        "{e}"
    );
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), expected);
    // Ingestion does not bump the version: version 2 is still current.
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 3, 1.0)])
        .await
        .unwrap();
    store
        .commit(vec![Write::UpdateRun {
            run: Run {
                status: "active".parse().expect("a status"),
                appeal_pending: false,
                ..expected.clone()
            },
            expected_version: 2,
        }])
        .await
        .unwrap();
    let now = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (
            now.status.as_str(),
            now.appeal_pending,
            now.version,
            now.cumulative_flop
        ),
        ("active", false, 3, 9.0 * UNIT)
    );

    let e = expect_err(
        store
            .commit(vec![Write::UpdateRun {
                run: run("run_nope", "p_1", 1),
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run_nope")),
        "{e}"
    );
}

async fn set_run_summarized_and_runs_to_summarize(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    assert!(
        store
            .runs_to_summarize(UsageFigure::Central)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .ingest_usage(vec![usage("prov_a", "run_2", 1, 3.0)])
        .await
        .unwrap();
    let due = store.runs_to_summarize(UsageFigure::Central).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].id.as_str(),
            due[0].cumulative_flop,
            due[0].summarized_flop
        ),
        ("run_2", 3.0 * UNIT, 0.0)
    );
    store
        .commit(vec![Write::SetRunSummarized {
            id: "run_2".into(),
            flop: 3.0 * UNIT,
            expected_flop: 0.0,
            at: 20_000,
        }])
        .await
        .unwrap();
    // A second summariser that read the same state loses.
    let e = expect_err(
        store
            .commit(vec![Write::SetRunSummarized {
                id: "run_2".into(),
                flop: 3.0 * UNIT,
                expected_flop: 0.0,
                at: 20_001,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let stored = store.run("run_2").await.unwrap().unwrap();
    assert_eq!(
        (stored.summarized_flop, stored.updated_at, stored.version),
        (3.0 * UNIT, 20_000, 1)
    );
    assert!(
        store
            .runs_to_summarize(UsageFigure::Central)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .ingest_usage(vec![
            usage("prov_a", "run_2", 2, 1.0),
            usage("prov_a", "run_1", 1, 1.0),
        ])
        .await
        .unwrap();
    let due: Vec<String> = store
        .runs_to_summarize(UsageFigure::Central)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, ["run_1", "run_2"]);
    let e = expect_err(
        store
            .commit(vec![Write::SetRunSummarized {
                id: "run_nope".into(),
                flop: 1.0,
                expected_flop: 0.0,
                at: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run_nope")),
        "{e}"
    );
}

async fn runs_to_summarize_reads_the_figure_asked_for(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    // 3 units central, 1.5 lower, 6 upper.
    store
        .ingest_usage(vec![usage("prov_a", "run_2", 1, 3.0)])
        .await
        .unwrap();
    // Summarised at the lower bound: due by the central and upper figures, not the lower.
    store
        .commit(vec![Write::SetRunSummarized {
            id: "run_2".into(),
            flop: 1.5 * UNIT,
            expected_flop: 0.0,
            at: 20_000,
        }])
        .await
        .unwrap();
    let due = |figure| async move {
        store
            .runs_to_summarize(figure)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert!(due(UsageFigure::Lower).await.is_empty());
    assert_eq!(due(UsageFigure::Central).await, ["run_2"]);
    assert_eq!(due(UsageFigure::Upper).await, ["run_2"]);
}

async fn run_flags_are_raised_once(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let flag = |kind: &str, subject: &str, at: i64, message: &str| RunFlag {
        run_id: "run_1".into(),
        kind: kind.into(),
        subject: subject.into(),
        raised_at: at,
        message: message.into(),
        details_json: r#"{"factor":2.5}"#.into(),
    };
    assert!(store.run_flags("run_1").await.unwrap().is_empty());
    store
        .commit(vec![
            Write::InsertRunFlag(flag("operation_count_gap", "mst_1", 30, "first")),
            Write::InsertRunFlag(flag("usage_before_permit", "permit", 20, "early")),
        ])
        .await
        .unwrap();
    // The same (run, kind, subject) again changes nothing and is no error.
    store
        .commit(vec![Write::InsertRunFlag(flag(
            "operation_count_gap",
            "mst_1",
            40,
            "again",
        ))])
        .await
        .unwrap();
    let flags = store.run_flags("run_1").await.unwrap();
    assert_eq!(
        flags,
        [
            flag("usage_before_permit", "permit", 20, "early"),
            flag("operation_count_gap", "mst_1", 30, "first"),
        ]
    );
    assert!(store.run_flags("run_2").await.unwrap().is_empty());
    // A flag on a run that does not exist is refused, and nothing of its batch is written.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertRunFlag(flag("usage_after_expiry", "permit", 50, "late")),
                Write::InsertRunFlag(RunFlag {
                    run_id: "run_nope".into(),
                    ..flag("usage_after_expiry", "permit", 50, "late")
                }),
            ])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(_) | StoreError::Invalid(_)),
        "{e}"
    );
    assert_eq!(store.run_flags("run_1").await.unwrap().len(), 2);
    // An empty message or malformed details are refused by field.
    let e = expect_err(
        store
            .commit(vec![Write::InsertRunFlag(RunFlag {
                message: String::new(),
                details_json: "{".into(),
                ..flag("usage_after_expiry", "permit", 50, "late")
            })])
            .await,
    );
    let text = e.to_string();
    assert!(
        text.contains("message") && text.contains("details_json"),
        "{text}"
    );
}

async fn runs_not_in_good_standing_filters(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let mut writes = Vec::new();
    for (id, status, exp) in [
        ("r_active", "active", 5_000),
        ("r_suspended", "suspended", 5_000),
        ("r_paused_old", "paused", 1_000),
        ("r_revoked", "revoked", 3_000),
        ("r_due", "milestone_due", 4_000),
    ] {
        let permit_id = format!("p_{id}");
        writes.push(Write::InsertPermit(permit(&permit_id, "app_1", 1)));
        writes.push(Write::InsertRun(Run {
            status: status.parse().expect("a status"),
            permit_exp_s: exp,
            ..run(id, &permit_id, 10)
        }));
    }
    store.commit(writes).await.unwrap();
    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs_not_in_good_standing(0).await.unwrap()),
        ["r_due", "r_paused_old", "r_revoked", "r_suspended"]
    );
    assert_eq!(
        ids(store.runs_not_in_good_standing(2_000).await.unwrap()),
        ["r_due", "r_revoked", "r_suspended"]
    );
    // Strictly later than the bound.
    assert_eq!(
        ids(store.runs_not_in_good_standing(4_000).await.unwrap()),
        ["r_suspended"]
    );
    assert!(
        store
            .runs_not_in_good_standing(5_000)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn milestones_are_decided_once(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertMilestone(milestone("ms_b", "run_1", 200)),
            Write::InsertMilestone(milestone("ms_a", "run_1", 200)),
            Write::InsertMilestone(milestone("ms_0", "run_1", 100)),
            Write::InsertMilestone(milestone("ms_x", "run_2", 50)),
        ])
        .await
        .unwrap();
    let ids = |ms: Vec<Milestone>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.milestones("run_1").await.unwrap()),
        ["ms_0", "ms_a", "ms_b"]
    );
    assert_eq!(ids(store.milestones("run_2").await.unwrap()), ["ms_x"]);
    assert_eq!(
        store.milestone("ms_a").await.unwrap(),
        Some(milestone("ms_a", "run_1", 200))
    );
    assert_eq!(store.milestone("nope").await.unwrap(), None);

    let decide = |id: &str, status: &str, at| Write::DecideMilestone {
        id: id.into(),
        status: status.parse().expect("a decision"),
        decided_by: "m_rev".into(),
        decided_org: "o_auth".into(),
        decided_at: at,
        reason: format!("{status} at {at}"),
    };
    store
        .commit(vec![decide("ms_a", "accepted", 300)])
        .await
        .unwrap();
    let decided = Milestone {
        status: "accepted".parse().expect("a status"),
        decided_by: Some("m_rev".into()),
        decided_org: Some("o_auth".into()),
        decided_at: Some(300),
        reason: Some("accepted at 300".into()),
        ..milestone("ms_a", "run_1", 200)
    };
    assert_eq!(
        store.milestone("ms_a").await.unwrap(),
        Some(decided.clone())
    );
    let e = expect_err(store.commit(vec![decide("ms_a", "rejected", 400)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"ms_a\" is already decided (\"accepted\")")),
        "{e}"
    );
    assert_eq!(store.milestone("ms_a").await.unwrap(), Some(decided));
    store
        .commit(vec![decide("ms_b", "rejected", 410)])
        .await
        .unwrap();
    assert_eq!(
        store.milestone("ms_b").await.unwrap().unwrap().status,
        runpermit_types::MilestoneStatus::Rejected
    );
    let e = expect_err(store.commit(vec![decide("nope", "accepted", 1)]).await);
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(store.commit(vec![decide("ms_0", "submitted", 1)]).await);
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("status: must be one of accepted, rejected (got \"submitted\")")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertMilestone(milestone(
                "ms_y", "run_nope", 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("run_id \"run_nope\" names no run")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertMilestone(milestone("ms_0", "run_1", 1))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "milestone id \"ms_0\" already exists"),
        "{e}"
    );
}

async fn incidents_follow_up_until_closed(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertIncident(incident("inc_1", "o_dev", 500)),
            Write::InsertIncident(Incident {
                run_id: None,
                ..incident("inc_2", "o_prov", 700)
            }),
            Write::InsertIncident(Incident {
                category: "overrun".into(),
                tranche: Some(2),
                ..incident("inc_3", "o_dev", 600)
            }),
        ])
        .await
        .unwrap();
    assert_eq!(
        store
            .incident("inc_3")
            .await
            .unwrap()
            .and_then(|i| i.tranche),
        Some(2)
    );
    let ids = |all: Vec<Incident>| all.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.incidents(None).await.unwrap()),
        ["inc_2", "inc_3", "inc_1"]
    );
    assert_eq!(
        ids(store.incidents(Some("o_dev")).await.unwrap()),
        ["inc_3", "inc_1"]
    );
    assert!(store.incidents(Some("o_auth")).await.unwrap().is_empty());
    assert_eq!(
        store.incident("inc_2").await.unwrap(),
        Some(Incident {
            run_id: None,
            ..incident("inc_2", "o_prov", 700)
        })
    );
    assert_eq!(store.incident("nope").await.unwrap(), None);

    let follow_up = |at, text: &str, close| Write::FollowUpIncident {
        id: "inc_1".into(),
        at,
        text: text.into(),
        close,
    };
    store
        .commit(vec![follow_up(800, "contained", false)])
        .await
        .unwrap();
    assert_eq!(
        store.incident("inc_1").await.unwrap().unwrap(),
        Incident {
            followed_up_at: Some(800),
            follow_up: Some("contained".into()),
            ..incident("inc_1", "o_dev", 500)
        }
    );
    store
        .commit(vec![follow_up(900, "root cause fixed", true)])
        .await
        .unwrap();
    let closed = Incident {
        followed_up_at: Some(900),
        follow_up: Some("root cause fixed".into()),
        status: "closed".parse().expect("a status"),
        ..incident("inc_1", "o_dev", 500)
    };
    assert_eq!(store.incident("inc_1").await.unwrap().unwrap(), closed);
    let e = expect_err(store.commit(vec![follow_up(950, "again", false)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"inc_1\" is closed")),
        "{e}"
    );
    assert_eq!(store.incident("inc_1").await.unwrap().unwrap(), closed);
    let e = expect_err(
        store
            .commit(vec![Write::FollowUpIncident {
                id: "nope".into(),
                at: 1,
                text: "x".into(),
                close: true,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertIncident(incident("inc_9", "o_nope", 1))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("org_id \"o_nope\" names no organization")),
        "{e}"
    );
}

async fn kyc_totals_window_and_grouping(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_prov", "provider", 60)),
            Write::InsertOrganization(org("o_prov2", "provider", 61)),
            Write::InsertKycReport(kyc("k1", "o_prov", "LEI-B", 1_000, 1)),
            Write::InsertKycReport(kyc("k2", "o_prov", "LEI-B", 2_000, 2)),
            Write::InsertKycReport(kyc("k3", "o_prov2", "LEI-B", 3_000, 4)),
            Write::InsertKycReport(kyc("k4", "o_prov", "LEI-A", 3_000, 8)),
            Write::InsertKycReport(kyc("k5", "o_prov", "LEI-A", 500, 16)),
            Write::InsertKycReport(kyc("k6", "o_prov", "LEI-B", 4_000, 32)),
        ])
        .await
        .unwrap();
    let total = |customer: &str, provider_id: &str, reports, jobs: i64| KycTotal {
        customer: customer.into(),
        provider_id: provider_id.into(),
        reports,
        jobs,
        accelerator_seconds: jobs as f64 * 1_024.0,
        flop: jobs as f64 * UNIT,
    };
    assert_eq!(
        store.kyc_totals(0).await.unwrap(),
        [
            total("LEI-A", "o_prov", 2, 24),
            total("LEI-B", "o_prov", 3, 35),
            total("LEI-B", "o_prov2", 1, 4)
        ]
    );
    // Periods ending after `since_s` only: k1 (to_s 1,000) and k5 are out.
    assert_eq!(
        store.kyc_totals(1_000).await.unwrap(),
        [
            total("LEI-A", "o_prov", 1, 8),
            total("LEI-B", "o_prov", 2, 34),
            total("LEI-B", "o_prov2", 1, 4)
        ]
    );
    assert_eq!(
        store.kyc_totals(3_000).await.unwrap(),
        [total("LEI-B", "o_prov", 1, 32)]
    );
    assert!(store.kyc_totals(4_000).await.unwrap().is_empty());
    let e = expect_err(
        store
            .commit(vec![Write::InsertKycReport(kyc(
                "k9", "o_nope", "LEI-A", 1, 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("provider_id \"o_nope\" names no organization")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertKycReport(kyc(
                "k1", "o_prov", "LEI-A", 1, 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "KYC report id \"k1\" already exists"),
        "{e}"
    );
}

async fn oversight_batch_is_all_or_nothing(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertProviderKey(ProviderKey {
                kid: "pk_1".into(),
                org_id: "o_prov".into(),
                public_key: vec![1; 32],
                created_at: 1,
                revoked_at: None,
            }),
            Write::InsertMilestone(milestone("ms_1", "run_1", 1)),
            Write::InsertIncident(incident("inc_1", "o_dev", 1)),
        ])
        .await
        .unwrap();
    let runs_before = store.runs(None).await.unwrap();
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertPermit(permit("p_9", "app_1", 1)),
                Write::InsertRun(run("run_9", "p_9", 1)),
                Write::UpdateRun {
                    run: Run {
                        status: "paused".parse().expect("a status"),
                        ..run("run_1", "p_1", 1)
                    },
                    expected_version: 1,
                },
                Write::SetRunSummarized {
                    id: "run_2".into(),
                    flop: 5.0,
                    expected_flop: 0.0,
                    at: 7,
                },
                Write::InsertProviderKey(ProviderKey {
                    kid: "pk_2".into(),
                    org_id: "o_prov".into(),
                    public_key: vec![2; 32],
                    created_at: 2,
                    revoked_at: None,
                }),
                Write::RevokeProviderKey {
                    kid: "pk_1".into(),
                    at: 3,
                },
                Write::InsertMilestone(milestone("ms_2", "run_9", 1)),
                Write::DecideMilestone {
                    id: "ms_1".into(),
                    status: "accepted".parse().expect("a status"),
                    decided_by: "m_rev".into(),
                    decided_org: "o_auth".into(),
                    decided_at: 4,
                    reason: "ok".into(),
                },
                Write::InsertIncident(incident("inc_2", "o_dev", 2)),
                Write::FollowUpIncident {
                    id: "inc_1".into(),
                    at: 5,
                    text: "done".into(),
                    close: true,
                },
                Write::InsertKycReport(kyc("k1", "o_prov", "LEI-A", 1_000, 1)),
                Write::InsertAudit(audit("run.update", "run/run_1", 6)),
                // Already decided within this batch: a conflict at the very end.
                Write::DecideMilestone {
                    id: "ms_1".into(),
                    status: "rejected".parse().expect("a status"),
                    decided_by: "m_rev".into(),
                    decided_org: "o_auth".into(),
                    decided_at: 8,
                    reason: "no".into(),
                },
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    assert_eq!(store.runs(None).await.unwrap(), runs_before);
    assert_eq!(store.permit("p_9").await.unwrap(), None);
    assert_eq!(store.all_provider_keys().await.unwrap().len(), 1);
    assert_eq!(
        store
            .provider_key("pk_1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        store.milestones("run_1").await.unwrap(),
        [milestone("ms_1", "run_1", 1)]
    );
    assert_eq!(
        store.incidents(None).await.unwrap(),
        [incident("inc_1", "o_dev", 1)]
    );
    assert!(store.kyc_totals(0).await.unwrap().is_empty());
    assert!(store.audit(None, 0, 10).await.unwrap().is_empty());
}

async fn oversight_writes_are_validated(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertProviderKey(ProviderKey {
                    kid: String::new(),
                    org_id: "o_prov".into(),
                    public_key: vec![0; 33],
                    created_at: 1,
                    revoked_at: None,
                }),
                Write::InsertRun(Run {
                    tranche: 0,
                    released_flop: -1.0,
                    budget_flop: f64::INFINITY,
                    alerted_percent: 101,
                    ..run("run_x", "p_x", 1)
                }),
                // UpdateRun writes the run's state, never its usage figures or permit: those
                // are not checked (a run whose stored usage is broken can still be held).
                Write::UpdateRun {
                    run: Run {
                        cumulative_flop: f64::NAN,
                        released_flop: f64::NAN,
                        ..run("run_1", "", 1)
                    },
                    expected_version: -1,
                },
                Write::SetRunSummarized {
                    id: "run_1".into(),
                    flop: -2.0,
                    expected_flop: 0.0,
                    at: 1,
                },
                Write::InsertMilestone(Milestone {
                    status: "submitted".parse().expect("a status"),
                    decided_by: Some("m_rev".into()),
                    evals_json: "nope".into(),
                    tranche: 0,
                    ..milestone("ms_x", "run_1", 1)
                }),
                Write::InsertIncident(Incident {
                    category: String::new(),
                    follow_up: Some("x".into()),
                    ..incident("inc_x", "o_dev", 1)
                }),
                Write::FollowUpIncident {
                    id: "inc_x".into(),
                    at: 1,
                    text: String::new(),
                    close: false,
                },
                Write::InsertKycReport(KycReport {
                    customer: String::new(),
                    jobs: -1,
                    accelerator_seconds: f64::NAN,
                    ..kyc("k_x", "o_prov", "LEI-A", 1_000, 1)
                }),
                Write::RevokeProviderKey {
                    kid: String::new(),
                    at: 1,
                },
            ])
            .await,
    );
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "writes[0] (InsertProviderKey ) kid: must not be empty",
        "writes[0] (InsertProviderKey ) public_key: must be the 32 raw bytes of an Ed25519 public key (got 33 bytes)",
        "writes[1] (InsertRun run_x) tranche: must be 1 or more (got 0)",
        "writes[1] (InsertRun run_x) released_flop: must be a finite number of FLOP, 0 or more (got -1)",
        "writes[1] (InsertRun run_x) budget_flop: must be a finite number of FLOP",
        "writes[1] (InsertRun run_x) alerted_percent: must be 0 to 100 (got 101)",
        "writes[2] (UpdateRun run_1) released_flop: must be a finite number of FLOP",
        "writes[2] (UpdateRun run_1) expected_version: must be 0 or more (got -1)",
        "writes[3] (SetRunSummarized run_1) flop: must be a finite number of FLOP",
        "writes[4] (InsertMilestone ms_x) tranche: must be 1 or more",
        "writes[4] (InsertMilestone ms_x) evals_json: must be JSON text",
        "writes[4] (InsertMilestone ms_x) decided_by, decided_org, decided_at, reason: must all be None for a submitted milestone",
        "writes[5] (InsertIncident inc_x) category: must not be empty",
        "writes[5] (InsertIncident inc_x) followed_up_at, follow_up: must both be set or both be None",
        "writes[6] (FollowUpIncident inc_x) text: must not be empty",
        "writes[7] (InsertKycReport k_x) customer: must not be empty",
        "writes[7] (InsertKycReport k_x) jobs: must be 0 or more (got -1)",
        "writes[7] (InsertKycReport k_x) accelerator_seconds: must be finite and 0 or more",
        "writes[8] (RevokeProviderKey ) kid: must not be empty",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    for unchecked in [
        "(UpdateRun run_1) permit_id",
        "(UpdateRun run_1) cumulative_flop",
    ] {
        assert!(!message.contains(unchecked), "{unchecked:?} in {message}");
    }
    assert_eq!(store.run("run_x").await.unwrap(), None);
}

/// Statuses are read through the shared vocabulary: a row changed behind the store's back to
/// a status nobody knows fails to read, naming the value, instead of being taken for another.
async fn a_stored_status_that_is_no_known_name_is_an_error(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    db.raw("UPDATE runs SET status = 'halted' WHERE id = 'run_1'")
        .await
        .expect("tampering");
    let e = store.run("run_1").await.expect_err("an unknown status");
    assert!(
        e.to_string().contains("unknown run status \"halted\""),
        "{e}"
    );
}
