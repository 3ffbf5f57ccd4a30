//! What the text views of the real `runpermit` binary tell people: an application's run,
//! organization, plan, safeguards and reviewers' conditions; a run's next steps and which of
//! them the caller may take; incidents with their deadlines; and every FLOP figure written the
//! one way (`2.18e26 FLOP`, never `2.1810799999999998e+26`).

mod common;

use common::*;
use serde_json::Value;

/// Whether every figure in `text` with an exponent is written `D.DDeN`: three significant
/// digits, no `e+`, no long mantissa.
fn figures_are_uniform(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | ';' | ':'))
        .filter(|word| {
            word.contains('e')
                && word.starts_with(|c: char| c.is_ascii_digit())
                && word
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
        })
        .all(|figure| {
            let (mantissa, exponent) = figure.split_once('e').expect("an exponent");
            mantissa.len() == 4
                && mantissa.as_bytes()[1] == b'.'
                && exponent.chars().all(|c| c.is_ascii_digit())
        })
}

#[test]
fn the_uniformity_check_catches_what_the_issue_saw() {
    assert!(figures_are_uniform(
        "usage 2.18e26 FLOP (1.0% of 1.00e25 FLOP)"
    ));
    assert!(!figures_are_uniform("usage 2.1810799999999998e+26 FLOP"));
    assert!(!figures_are_uniform("usage 2.18108e26 FLOP"));
    assert!(!figures_are_uniform("total 4.999999999999999e+24 FLOP"));
}

fn org(a: &Authority, name: &str, kind: &str) -> String {
    id_of(&json(
        &["org", "create", name, "--kind", kind],
        a,
        &a.admin_token,
    ))
}

/// The run of the only permit the lab holds, once it is public.
fn the_run(a: &Authority, lab: &str) -> String {
    for _ in 0..200 {
        let runs = json(&["run", "list"], a, lab);
        if let Some(id) = runs[0]["id"].as_str() {
            return id.to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("no run appeared");
}

#[test]
fn text_views_tell_what_people_need() {
    let a = start_in(
        std::env::temp_dir().join(format!("runpermit-views-{}", std::process::id())),
        None,
    );
    let lab_id = org(&a, "Frontier Lab", "developer");
    let lab = member_token(&a, &lab_id, "alice", "applicant");
    let institute = org(&a, "Safety Institute", "evaluator");
    let rev1 = member_token(&a, "org_authority", "rev1", "reviewer");
    let rev2 = member_token(&a, "org_authority", "rev2", "reviewer");

    // The full tier: two reviewers, one with a condition and an evaluator.
    let plan = examples().join("full.toml");
    let app = id_of(&json(
        &["apply", path_str(&plan), "--start", "today"],
        &a,
        &lab,
    ));
    ok(
        &[
            "review",
            &app,
            "approve",
            "--reason",
            "safeguards adequate",
            "--condition",
            "weekly reports",
            "--evaluator",
            &institute,
        ],
        &a,
        &rev1,
    );
    ok(&["review", &app, "approve", "--reason", "agree"], &a, &rev2);

    // `applications show`: run, organization, plan, safeguards, reviews with conditions.
    let shown = ok(&["applications", "show", &app], &a, &lab);
    for expected in [
        "run:          kestrel-2t",
        &format!("organization: Frontier Lab ({lab_id})"),
        "model:        2T parameters (600B active), 55T tokens",
        "compute:      32768 × B200 for 78 days at 40% utilization",
        "provider:     northwind-cloud (nw-central-3)",
        "safeguards:   weights security SL4; full shutdown capability; incident response plan; \
         3 evaluation milestone(s) at 1.00e25 FLOP, 4.00e25 FLOP, 1.60e26 FLOP",
        "affordances:  tool_use, internet_access, code_execution, autonomous_agents",
        "estimate:     1.98e26 FLOP",
        "approve by ",
        "  condition:  weekly reports",
        &format!("  evaluator:  {institute}"),
    ] {
        assert!(shown.contains(expected), "{expected:?} in:\n{shown}");
    }
    assert!(figures_are_uniform(&shown), "{shown}");

    // `applications list`: organization and run name, for the lab and for the authority.
    for token in [&lab, &rev1] {
        let listed = ok(&["applications", "list"], &a, token);
        let header = listed.lines().next().expect("a header");
        assert!(
            header.contains("ORGANIZATION") && header.contains("RUN"),
            "{listed}"
        );
        let row = listed
            .lines()
            .find(|l| l.starts_with(&app))
            .unwrap_or_else(|| panic!("{app} listed:\n{listed}"));
        assert!(
            row.contains("Frontier Lab") && row.contains("kestrel-2t") && row.contains("1.98e26"),
            "{row}"
        );
    }

    // `run show`: what the status allows, by whom, and what the caller may do.
    let run_id = the_run(&a, &lab);
    let by_lab = ok(&["run", "show", &run_id], &a, &lab);
    assert!(
        by_lab.contains("next        pause, suspend, revoke, terminate (a reviewer)")
            && by_lab.contains("next        complete, submit_milestone (the developer)")
            && by_lab
                .contains("you may     complete, submit_milestone (as applicant of Frontier Lab)")
            && by_lab.contains(&format!("holder      Frontier Lab ({lab_id})")),
        "{by_lab}"
    );
    assert!(figures_are_uniform(&by_lab), "{by_lab}");
    let by_reviewer = ok(&["run", "show", &run_id], &a, &rev1);
    assert!(
        by_reviewer.contains(
            "you may     pause, suspend, revoke, terminate (as reviewer of Licensing Authority)"
        ),
        "{by_reviewer}"
    );
    let by_admin = ok(&["run", "show", &run_id], &a, &a.admin_token);
    assert!(
        by_admin.contains("you may     none of these (as admin of Licensing Authority)"),
        "{by_admin}"
    );
    // JSON keeps the API's numbers as they are.
    let run_json = json(&["run", "show", &run_id], &a, &lab);
    assert!(run_json["released_flop"].is_f64(), "{run_json}");

    // `incident list`: when it was due and when its follow-up is.
    let occurred = (time::OffsetDateTime::now_utc() - time::Duration::hours(3))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let incident: Value = json(
        &[
            "incident",
            "file",
            "--category",
            "security_breach",
            "--summary",
            "a scheduler credential was phished",
            "--run",
            &run_id,
            "--occurred-at",
            &occurred,
        ],
        &a,
        &lab,
    );
    let listed = ok(&["incident", "list"], &a, &rev1);
    for expected in [
        format!(
            "reported {} (due {})",
            incident["reported_at"].as_str().unwrap(),
            incident["report_due"].as_str().unwrap()
        ),
        format!(
            "follow-up due {}",
            incident["follow_up_due"].as_str().unwrap()
        ),
        format!("run {run_id}"),
    ] {
        assert!(listed.contains(&expected), "{expected:?} in:\n{listed}");
    }
}

#[test]
fn kyc_flags_write_figures_the_one_way() {
    let a = start_in(
        std::env::temp_dir().join(format!("runpermit-views-kyc-{}", std::process::id())),
        None,
    );
    let reviewer = member_token(&a, "org_authority", "rev", "reviewer");
    let now = time::OffsetDateTime::now_utc();
    let (from, to) = (
        (now - time::Duration::days(30)).date().to_string(),
        (now - time::Duration::days(2)).date().to_string(),
    );
    // Two providers, each under the threshold; 3.3e24 + 7.1e24 is not exact in f64.
    for (name, flop) in [
        ("Northwind Cloud", "3.3e24"),
        ("Westbrook Compute", "7.1e24"),
    ] {
        let provider = org(&a, name, "provider");
        let operator = member_token(&a, &provider, "op", "provider_operator");
        kyc_report(&a, &operator, &from, &to, flop);
    }
    let flags = ok(&["kyc", "flags"], &a, &reviewer);
    assert!(
        flags.contains("1.04e25 FLOP  SPLIT RUN SUSPECTED")
            && flags.contains("3.30e24 FLOP")
            && flags.contains("7.10e24 FLOP"),
        "{flags}"
    );
    assert!(figures_are_uniform(&flags), "{flags}");
}
