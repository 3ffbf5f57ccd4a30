//! The standing rules, entry type by entry type, and what `check_status_list` and `reconcile`
//! make of them.

use crate::{Holder, PermitRequest, ProviderScope, SigningKey, Tranche, check, sign};

use super::*;

const T: i64 = 1_796_083_200;

fn f(x: f64) -> Flop {
    Flop::new(x).unwrap()
}

struct Log {
    key: SigningKey,
    jwks: Jwks,
    standing: LogStanding,
    next: u64,
}

impl Log {
    fn new() -> Log {
        let key = SigningKey::from_seed(&[7; 32]);
        let jwks = Jwks::from_keys(&[key.public()]);
        Log {
            key,
            jwks,
            standing: LogStanding::default(),
            next: 0,
        }
    }

    fn add(&mut self, entry: LogEntry, at: i64) -> u64 {
        let index = self.next;
        self.standing.apply(index, &entry, at, &self.jwks);
        self.next += 1;
        index
    }

    /// Issues permit `id` (run `run_<id>`), tranches ending at 1e25 and 4e25.
    fn issue(&mut self, id: &str, at: i64) -> u64 {
        let request = PermitRequest {
            iss: "https://authority.test".into(),
            sub: format!("run_{id}"),
            jti: id.into(),
            nbf: T,
            exp: T + 180 * 86_400,
            application_id: "app_1".into(),
            holder: Holder {
                org_id: "org_lab".into(),
                name: "Lab".into(),
            },
            providers: vec![ProviderScope {
                provider: "org_cloud".into(),
                clusters: vec![],
            }],
            evaluators: Vec::new(),
            accounting: Some(runpermit_compute::AccountingBasis::assumed(
                runpermit_compute::Precision::Bf16,
            )),
            max_accelerators: 1024,
            flop_budget: f(4e25),
            tranches: vec![
                Tranche {
                    index: 1,
                    flop: f(1e25),
                },
                Tranche {
                    index: 2,
                    flop: f(4e25),
                },
            ],
            policy_version: "p1".into(),
            tier: "standard".into(),
            conditions: vec![],
        };
        let signed = sign(check(request, T).expect("a checked permit"), &self.key);
        self.add(
            LogEntry::PermitIssued {
                permit_id: id.into(),
                application_id: "app_1".into(),
                run_id: format!("run_{id}"),
                holder_org_id: "org_lab".into(),
                token: signed.token.clone(),
                flop_budget: f(4e25),
                nbf: T,
                exp: T + 180 * 86_400,
                policy_version: "p1".into(),
            },
            at,
        )
    }

    fn run(&mut self, kind: &str, id: &str, at: i64) -> u64 {
        let (permit_id, run_id, reason) = (id.to_owned(), format!("run_{id}"), kind.to_owned());
        let entry = match kind {
            "paused" => LogEntry::RunPaused {
                permit_id,
                run_id,
                reason,
            },
            "resumed" => LogEntry::RunResumed {
                permit_id,
                run_id,
                reason,
            },
            "revoked" => LogEntry::RunRevoked {
                permit_id,
                run_id,
                reason,
            },
            "completed" => LogEntry::RunCompleted {
                permit_id,
                run_id,
                reason,
            },
            other => panic!("{other}"),
        };
        self.add(entry, at)
    }

    fn usage(&mut self, id: &str, flop: f64, at: i64) -> u64 {
        self.add(
            LogEntry::UsageSummary {
                run_id: format!("run_{id}"),
                cumulative_flop: f(flop),
                providers: 1,
                through: at,
            },
            at,
        )
    }

    fn release(&mut self, id: &str, tranche: u32, flop: f64, at: i64) -> u64 {
        self.add(
            LogEntry::TrancheReleased {
                permit_id: id.into(),
                run_id: format!("run_{id}"),
                tranche,
                flop: f(flop),
            },
            at,
        )
    }

    fn hold(&self, id: &str) -> Option<(Hold, u64)> {
        self.standing.verdict(id).map(|v| (v.hold, v.entry.index))
    }
}

fn list(iat: i64, entries: &[(&str, PermitStatus)]) -> StatusListClaims {
    StatusListClaims::new(
        "https://authority.test",
        iat,
        300,
        7,
        entries
            .iter()
            .map(|(id, status)| StatusEntry {
                permit_id: (*id).into(),
                status: *status,
                reason: String::new(),
                since: iat,
            })
            .collect(),
    )
}

#[test]
fn a_permit_is_in_good_standing_until_the_log_says_otherwise() {
    let mut log = Log::new();
    log.issue("p1", T);
    assert_eq!(log.hold("p1"), None);
    assert_eq!(
        log.standing.permit("p1").unwrap().released.map(|r| r.0),
        Some(f(1e25)),
        "tranche 1 read from the verified token"
    );
    log.usage("p1", 5e24, T + 10);
    assert_eq!(log.hold("p1"), None);
    assert_eq!(log.standing.holds().count(), 0);
}

#[test]
fn a_pause_holds_until_a_resumption() {
    let mut log = Log::new();
    log.issue("p1", T);
    let paused = log.run("paused", "p1", T + 10);
    assert_eq!(log.hold("p1"), Some((Hold::Paused, paused)));
    let again = log.run("paused", "p1", T + 20);
    assert_eq!(log.hold("p1"), Some((Hold::Paused, again)));
    log.run("resumed", "p1", T + 30);
    assert_eq!(log.hold("p1"), None);
}

#[test]
fn revoked_and_completed_are_final() {
    let mut log = Log::new();
    log.issue("p1", T);
    log.issue("p2", T);
    log.run("paused", "p1", T + 5);
    let revoked = log.run("revoked", "p1", T + 10);
    let completed = log.run("completed", "p2", T + 10);
    for (kind, id) in [("resumed", "p1"), ("paused", "p1"), ("resumed", "p2")] {
        log.run(kind, id, T + 20);
    }
    log.release("p1", 2, 4e25, T + 30);
    assert_eq!(
        log.hold("p1"),
        Some((Hold::Final(Ending::Revoked), revoked))
    );
    assert_eq!(
        log.hold("p2"),
        Some((Hold::Final(Ending::Completed), completed))
    );
    let v = log.standing.verdict("p1").unwrap();
    assert_eq!(v.status(), PermitStatus::Revoked);
    assert_eq!(v.entry_type, "run_revoked");
    assert!(
        v.describe().contains("entry 3 (run_revoked"),
        "{}",
        v.describe()
    );
}

#[test]
fn usage_at_the_released_end_holds_until_the_next_tranche() {
    let mut log = Log::new();
    log.issue("p1", T);
    let at_end = log.usage("p1", 1e25, T + 10);
    assert_eq!(
        log.hold("p1"),
        Some((
            Hold::MilestoneHold {
                used: f(1e25),
                released: f(1e25)
            },
            at_end
        ))
    );
    // The authority's own pause, then acceptance: tranche 2 and a resumption.
    log.run("paused", "p1", T + 11);
    assert_eq!(log.hold("p1").unwrap().0, Hold::Paused);
    log.release("p1", 2, 4e25, T + 20);
    log.run("resumed", "p1", T + 20);
    assert_eq!(log.hold("p1"), None);
    // A resumption without a release does not lift a milestone hold.
    log.usage("p1", 4e25, T + 30);
    log.run("paused", "p1", T + 31);
    log.run("resumed", "p1", T + 40);
    let v = log.standing.verdict("p1").unwrap();
    assert_eq!(v.status(), PermitStatus::MilestoneHold);
    assert_eq!(v.since, T + 40, "held again from the resumption");
}

#[test]
fn an_unverified_token_leaves_tranche_one_unknown() {
    let mut log = Log::new();
    log.jwks = Jwks::from_keys(&[SigningKey::from_seed(&[9; 32]).public()]);
    log.issue("p1", T);
    log.usage("p1", 1e30, T + 10);
    assert_eq!(log.hold("p1"), None, "usage unjudged without tranche 1");
    log.release("p1", 2, 4e25, T + 20);
    assert!(matches!(
        log.hold("p1"),
        Some((Hold::MilestoneHold { .. }, _))
    ));
}

#[test]
fn entries_about_permits_the_log_never_issued_are_ignored() {
    let mut log = Log::new();
    log.run("revoked", "ghost", T);
    log.usage("ghost", 1e30, T);
    assert!(log.standing.permits.is_empty());
}

#[test]
fn the_standing_round_trips_through_json() {
    let mut log = Log::new();
    log.issue("p1", T);
    log.run("paused", "p1", T + 1);
    log.usage("p1", 3e24, T + 2);
    let text = serde_json::to_string(&log.standing).unwrap();
    let back: LogStanding = serde_json::from_str(&text).unwrap();
    assert_eq!(back, log.standing);
}

#[test]
fn expired_permits_are_pruned() {
    let mut log = Log::new();
    log.issue("p1", T);
    log.run("revoked", "p1", T + 1);
    log.standing.prune_expired(T + 180 * 86_400 - 1);
    assert_eq!(log.standing.holds().count(), 1);
    log.standing.prune_expired(T + 180 * 86_400);
    assert!(log.standing.permits.is_empty() && log.standing.runs.is_empty());
}

#[test]
fn a_list_that_hides_a_logged_revocation_is_drift() {
    let mut log = Log::new();
    log.issue("p1", T);
    log.issue("p2", T);
    log.issue("p3", T);
    let revoked = log.run("revoked", "p1", T + 10);
    log.run("paused", "p2", T + 10);
    let iat = T + 3600;
    // The list agrees: p1 revoked, p2 any hold.
    let agreeing = list(
        iat,
        &[
            ("p1", PermitStatus::Revoked),
            ("p2", PermitStatus::Suspended),
        ],
    );
    assert_eq!(check_status_list(&log.standing, &agreeing, 60), []);
    // The database set p1 back to active: the list no longer names it.
    let drift = check_status_list(
        &log.standing,
        &list(iat, &[("p2", PermitStatus::Paused)]),
        60,
    );
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].permit_id, "p1");
    assert_eq!(drift[0].entry.index, revoked);
    assert_eq!(drift[0].listed, None);
    let text = drift[0].to_string();
    for needle in [
        "permit p1",
        "run_p1",
        "entry 3",
        "run_revoked",
        "does not list it",
    ] {
        assert!(text.contains(needle), "{needle:?}: {text}");
    }
    // Or shows it merely paused, which a resumption could lift.
    let drift = check_status_list(
        &log.standing,
        &list(
            iat,
            &[("p1", PermitStatus::Paused), ("p2", PermitStatus::Paused)],
        ),
        60,
    );
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].listed, Some(PermitStatus::Paused));
    // A paused run shown in good standing.
    let drift = check_status_list(
        &log.standing,
        &list(iat, &[("p1", PermitStatus::Revoked)]),
        60,
    );
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].permit_id, "p2");
    assert!(drift[0].to_string().contains("run_paused"));
}

#[test]
fn recent_and_expired_verdicts_are_not_judged() {
    let mut log = Log::new();
    log.issue("p1", T);
    log.run("paused", "p1", T + 100);
    let empty = |iat| list(iat, &[]);
    // Within the settling time of the list: not judged yet; after it, judged.
    assert_eq!(check_status_list(&log.standing, &empty(T + 130), 60), []);
    assert_eq!(
        check_status_list(&log.standing, &empty(T + 161), 60).len(),
        1
    );
    // After the permit's expiry no list needs to name it.
    assert_eq!(
        check_status_list(&log.standing, &empty(T + 180 * 86_400), 60),
        []
    );
}

#[test]
fn reconcile_adds_what_the_log_holds_and_makes_final_entries_revoked() {
    let mut log = Log::new();
    for id in ["p1", "p2", "p3", "p4"] {
        log.issue(id, T);
    }
    log.run("revoked", "p1", T + 10);
    log.run("completed", "p2", T + 10);
    log.run("paused", "p3", T + 10);
    let iat = T + 100;
    let mut entries = vec![
        StatusEntry {
            permit_id: "p2".into(),
            status: PermitStatus::Paused,
            reason: "edited".into(),
            since: T + 50,
        },
        StatusEntry {
            permit_id: "p3".into(),
            status: PermitStatus::Suspended,
            reason: "suspended: audit".into(),
            since: T + 10,
        },
        StatusEntry {
            permit_id: "p4".into(),
            status: PermitStatus::Paused,
            reason: "not yet logged".into(),
            since: T + 99,
        },
    ];
    let corrections = reconcile(&mut entries, &log.standing, iat, iat - 60);
    let changed: Vec<(&str, Option<PermitStatus>, PermitStatus)> = corrections
        .iter()
        .map(|c| (c.permit_id.as_str(), c.was, c.now))
        .collect();
    assert_eq!(
        changed,
        [
            ("p1", None, PermitStatus::Revoked),
            ("p2", Some(PermitStatus::Paused), PermitStatus::Revoked),
        ]
    );
    let find = |id: &str| entries.iter().find(|e| e.permit_id == id).unwrap().clone();
    assert_eq!(find("p1").reason, "revoked");
    assert_eq!(find("p1").since, T + 10);
    assert_eq!(find("p2").reason, "completed: completed");
    // What the log agrees with stays as the database said it.
    assert_eq!(find("p3").status, PermitStatus::Suspended);
    assert_eq!(find("p4").reason, "not yet logged");
    let list = StatusListClaims::new("https://authority.test", iat, 300, 1, entries);
    assert_eq!(list.problems(), []);
    assert_eq!(check_status_list(&log.standing, &list, 0), []);
    // Expired permits are left off.
    let mut none = Vec::new();
    assert_eq!(
        reconcile(&mut none, &log.standing, iat, T + 180 * 86_400).len(),
        0
    );
}
