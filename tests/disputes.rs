//! Professional disagreements end to end: the real binary, PostgreSQL and (for the urgent case)
//! an SMTP server. March 2026 has no bank holidays; GMT until Sunday 29 March.

mod common;

use common::*;
use diesel::prelude::*;
use serde_json::{json, Value};

/// Raiser p-hv1 (health, manager p-hlm), respondent p-sw1 (children's social care, manager
/// p-tm1, senior manager p-sm1); health names p-hsl, p-hsm, p-hrep; ksc names p-sl1, p-krep.
fn file(disputes: Value) -> String {
    let person = |id: &str, agency: &str, manager: Option<&str>| {
        let mut p = json!({"id": id, "name": format!("Person {id}"), "email": format!("{id}@example.org"), "agency": agency});
        if let Some(m) = manager {
            p["manager"] = json!(m);
        }
        p
    };
    json!({
        "partnership": "knowsley",
        "agencies": [
            {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl", "senior_manager": "p-hsm", "lscp_representative": "p-hrep"}},
            {"id": "ksc", "name": "Children's Social Care", "roles": {"safeguarding_lead": "p-sl1", "lscp_representative": "p-krep"}},
            {"id": "vcs", "name": "A small charity", "roles": {"safeguarding_lead": "p-vol"}},
            {"id": "lscp", "name": "The partnership"}
        ],
        "people": [
            person("p-hv1", "health", Some("p-hlm")), person("p-hlm", "health", Some("p-hsm")),
            person("p-hsl", "health", None), person("p-hsm", "health", None), person("p-hrep", "health", None),
            person("p-sw1", "ksc", Some("p-tm1")), person("p-tm1", "ksc", Some("p-sm1")),
            person("p-sm1", "ksc", None), person("p-sl1", "ksc", None), person("p-krep", "ksc", None),
            person("p-rlm", "health", None), person("p-rr", "health", Some("p-hsl")),
            person("p-vol", "vcs", None),
            person("p-chair", "lscp", None), person("p-vice", "lscp", None), person("p-pm", "lscp", None),
            person("p-bm", "lscp", None), person("p-qa", "lscp", None), person("p-scr", "lscp", None),
            person("p-lead", "lscp", None), person("p-crt", "ksc", None)
        ],
        "partnership_roles": {
            "partnership_chair": "p-chair", "partnership_vice_chair": "p-vice", "partnership_manager": "p-pm",
            "business_manager": "p-bm", "qa_subgroup_chair": "p-qa", "scr_subgroup": "p-scr",
            "strategic_leads": "p-lead", "contact_and_referral_team": "p-crt"
        },
        "cases": [{"ref": "KN-0001", "roles": {"social_worker": "p-sw1", "team_manager": "p-tm1"}, "events": []}],
        "disputes": disputes
    })
    .to_string()
}

fn dispute(id: &str, policy: &str, extra: Value) -> Value {
    let mut d = json!({
        "id": id, "case": "KN-0001", "policy": policy, "raised_by": "p-hv1", "respondent": "p-sw1",
        "opened_at": "2026-03-02T10:00:00Z", "disagreement_at": "2026-03-02T09:00:00Z",
        "immediate_risk": false, "subject": "threshold decision", "events": []
    });
    if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            d.insert(k.clone(), v.clone());
        }
    }
    d
}

fn setup(disputes: Value) -> (TestDb, Cpwatch) {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&file(disputes));
    (db, cp)
}

#[derive(QueryableByName, Debug, PartialEq)]
struct History {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Int4>)]
    from_stage: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    to_stage: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    at: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    why: String,
}

fn history(db: &TestDb, dispute: &str) -> Vec<(Option<i32>, i32, String, String)> {
    diesel::sql_query(
        "SELECT h.from_stage, h.to_stage, to_char(h.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS at, h.why \
         FROM dispute_stage_history h JOIN disputes d ON d.id = h.dispute_id WHERE d.ref = $1 ORDER BY h.at, h.id",
    )
    .bind::<diesel::sql_types::Text, _>(dispute)
    .load::<History>(&mut db.conn())
    .unwrap()
    .into_iter()
    .map(|h| (h.from_stage, h.to_stage, h.at, h.why))
    .collect()
}

#[derive(QueryableByName)]
struct Text1 {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    diesel::sql_query(sql)
        .load::<Text1>(&mut db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|t| t.v)
        .collect()
}

fn stage_and_deadline(db: &TestDb, dispute: &str) -> String {
    texts(
        db,
        &format!(
            "SELECT stage || ' ' || to_char(stage_deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS v \
             FROM disputes WHERE ref = '{dispute}'"
        ),
    )
    .pop()
    .unwrap_or_default()
}

/// Recipients of an outbox notification (by the dedupe key's prefix), sorted.
fn outbox_to(db: &TestDb, key: &str) -> Vec<String> {
    let mut v = texts(
        db,
        &format!(
            "SELECT recipient AS v FROM outbox WHERE dedupe_key LIKE '{key}/%' AND recipient_role = 'to'"
        ),
    );
    v.sort();
    v
}

fn dispute_lines<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

/// Walk a ladder at successive instants: a dry run first (the stage change and the stage's
/// notice as JSON, nothing written), then a real pass (state, history and outbox written).
fn walk(policy: &str, steps: &[(&str, u32, &str, &[&str])]) {
    let (db, cp) = setup(json!([dispute("D-1", policy, json!({}))]));
    let mut from = 1;
    for (i, (at, to, deadline, people)) in steps.iter().enumerate() {
        let outbox_before = db.count("SELECT count(*) AS n FROM outbox");
        let lines = cp.dry_run(at);
        let changes = dispute_lines(&lines, "stage_change");
        assert_eq!(
            changes,
            vec![
                &json!({"kind": "stage_change", "dispute": "D-1", "policy": policy, "from": from, "to": to, "at": at})
            ],
            "{policy} at {at}: {lines:?}"
        );
        let rule = format!("{policy}:{to}");
        let notice = lines
            .iter()
            .find(|l| l["rule"] == rule.as_str() && l["kind"] == "escalation_stage")
            .unwrap_or_else(|| panic!("{rule} notice at {at}: {lines:?}"));
        assert_eq!(notice["dispute"], "D-1");
        assert_eq!(notice["case"], "KN-0001");
        assert_eq!(notice["due"], *deadline, "{rule}");
        let mut to_people: Vec<String> = notice["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        to_people.sort();
        let mut want: Vec<String> = people.iter().map(|p| p.to_string()).collect();
        want.sort();
        assert_eq!(to_people, want, "{rule} recipients");
        assert_eq!(
            db.count("SELECT count(*) AS n FROM outbox"),
            outbox_before,
            "dry run wrote"
        );
        assert_eq!(
            db.count("SELECT count(*) AS n FROM dispute_stage_history"),
            i as i64,
            "dry run wrote history"
        );

        let out = cp.ok(&["evaluate", "--at", at]);
        assert!(out.contains("1 stage change(s)"), "{out}");
        assert_eq!(stage_and_deadline(&db, "D-1"), format!("{to} {deadline}"));
        assert_eq!(
            outbox_to(&db, &format!("knowsley/dispute/D-1/{rule}/entered")),
            want,
            "{rule} queued"
        );
        let h = history(&db, "D-1");
        assert_eq!(h.len(), i + 1);
        assert_eq!(
            h[i],
            (
                Some(from as i32),
                *to as i32,
                at.to_string(),
                "timescale lapsed".to_string()
            )
        );
        // The same instant again: nothing moves twice.
        let again = cp.dry_run(at);
        assert!(
            dispute_lines(&again, "stage_change").is_empty(),
            "{again:?}"
        );
        from = *to;
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'dispute_stage_change'"),
        steps.len() as i64
    );
}

#[test]
fn knowsley_lapses_through_every_stage_to_the_chair() {
    walk(
        "knowsley-escalation-2019",
        &[
            (
                "2026-03-05T17:00:00Z",
                2,
                "2026-03-12T17:00:00Z",
                &["p-hlm@example.org", "p-tm1@example.org"],
            ),
            (
                "2026-03-12T17:00:00Z",
                3,
                "2026-03-19T17:00:00Z",
                &["p-hsm@example.org", "p-sm1@example.org"],
            ),
            (
                "2026-03-19T17:00:00Z",
                4,
                "2026-03-26T17:00:00Z",
                &["p-chair@example.org"],
            ),
        ],
    );
}

#[test]
fn liverpool_lapses_through_every_stage_to_the_chair() {
    walk(
        "liverpool-school-escalation",
        &[
            // Stages 2 and 3 share the working week from stage 2's start (seed 001): stage 2
            // its 3 working days, stage 3 to the end of the week.
            (
                "2026-03-02T17:00:00Z",
                2,
                "2026-03-05T17:00:00Z",
                &["p-hsl@example.org", "p-sl1@example.org"],
            ),
            (
                "2026-03-05T17:00:00Z",
                3,
                "2026-03-09T17:00:00Z",
                &["p-hrep@example.org", "p-krep@example.org"],
            ),
            (
                "2026-03-09T17:00:00Z",
                4,
                "2026-03-10T17:00:00Z",
                &["p-bm@example.org", "p-chair@example.org"],
            ),
        ],
    );
}

#[test]
fn richmond_kingston_lapses_through_every_step_to_the_chair() {
    walk(
        "richmond-kingston-6-step",
        &[
            (
                "2026-03-04T17:00:00Z",
                2,
                "2026-03-05T17:00:00Z",
                &["p-hlm@example.org", "p-hsl@example.org"],
            ),
            (
                "2026-03-05T17:00:00Z",
                3,
                "2026-03-09T17:00:00Z",
                &["p-hsl@example.org", "p-sw1@example.org"],
            ),
            (
                "2026-03-09T17:00:00Z",
                4,
                "2026-03-10T17:00:00Z",
                &["p-sm1@example.org"],
            ),
            (
                "2026-03-10T17:00:00Z",
                5,
                "2026-03-12T17:00:00Z",
                &["p-qa@example.org", "p-chair@example.org"],
            ),
            (
                "2026-03-12T17:00:00Z",
                6,
                "2026-03-16T17:00:00Z",
                &["p-chair@example.org"],
            ),
        ],
    );
}

#[test]
fn pan_cheshire_lapses_through_every_step_to_the_chair() {
    walk(
        "pan-cheshire-escalation",
        &[
            (
                "2026-03-03T17:00:00Z",
                2,
                "2026-03-10T17:00:00Z",
                &["p-hsl@example.org", "p-sl1@example.org"],
            ),
            (
                "2026-03-10T17:00:00Z",
                3,
                "2026-03-17T17:00:00Z",
                &[
                    "p-hsm@example.org",
                    "p-sm1@example.org",
                    "p-hrep@example.org",
                    "p-krep@example.org",
                ],
            ),
            (
                "2026-03-17T17:00:00Z",
                4,
                "2026-03-24T17:00:00Z",
                &["p-bm@example.org", "p-chair@example.org"],
            ),
        ],
    );
}

#[test]
fn a_ladder_that_lapsed_while_down_is_caught_up_in_one_pass_then_weekly_notices() {
    let (db, cp) = setup(json!([dispute(
        "D-1",
        "knowsley-escalation-2019",
        json!({})
    )]));
    cp.ok(&["evaluate", "--at", "2026-03-26T17:00:00Z"]);
    assert_eq!(
        history(&db, "D-1"),
        vec![
            (
                Some(1),
                2,
                "2026-03-05T17:00:00Z".into(),
                "timescale lapsed".into()
            ),
            (
                Some(2),
                3,
                "2026-03-12T17:00:00Z".into(),
                "timescale lapsed".into()
            ),
            (
                Some(3),
                4,
                "2026-03-19T17:00:00Z".into(),
                "timescale lapsed".into()
            ),
        ]
    );
    let weekly = "knowsley/dispute/D-1/knowsley-escalation-2019:4/weekly";
    assert_eq!(
        outbox_to(&db, &format!("{weekly}-0")),
        ["p-chair@example.org", "p-pm@example.org"]
    );
    // The next notice a week later, 17:00 BST.
    let idle = cp.ok(&["evaluate", "--at", "2026-04-02T15:00:00Z"]);
    assert!(idle.contains("0 new message(s)"), "{idle}");
    cp.ok(&["evaluate", "--at", "2026-04-02T16:00:00Z"]);
    assert_eq!(outbox_to(&db, &format!("{weekly}-1")).len(), 2);
    assert_eq!(
        texts(&db, "SELECT kind AS v FROM dispute_records ORDER BY stage"),
        ["escalation_notice"]
    );
}

#[test]
fn resolved_at_stage_one_sends_no_escalation_mail_under_any_policy() {
    for policy in [
        "knowsley-escalation-2019",
        "liverpool-school-escalation",
        "richmond-kingston-6-step",
        "pan-cheshire-escalation",
    ] {
        let resolved = json!({"events": [{"kind": "resolved", "at": "2026-03-02T12:00:00Z", "stage": 1, "outcome": "agreed"}]});
        let (db, cp) = setup(json!([dispute("D-1", policy, resolved)]));
        let lines = cp.dry_run("2026-04-30T12:00:00Z");
        assert!(
            lines.iter().all(|l| l["dispute"] != "D-1"),
            "{policy}: {lines:?}"
        );
        cp.ok(&["evaluate", "--at", "2026-04-30T12:00:00Z"]);
        assert_eq!(
            db.count("SELECT count(*) AS n FROM outbox WHERE dispute_ref IS NOT NULL"),
            0
        );
        assert_eq!(
            db.count("SELECT count(*) AS n FROM dispute_stage_history"),
            0
        );
        assert_eq!(
            db.count("SELECT count(*) AS n FROM disputes WHERE resolved_stage = 1 AND resolved_at IS NOT NULL AND next_check_at IS NULL"),
            1,
            "{policy}"
        );
    }
}

#[test]
fn immediate_risk_is_told_at_once_at_any_hour_and_mailed_at_once() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.setup(&file(json!([dispute(
        "D-9",
        "knowsley-escalation-2019",
        json!({"immediate_risk": true, "opened_at": "2026-03-07T02:00:00Z", "disagreement_at": null})
    )])));
    let lines = cp.dry_run("2026-03-07T02:00:00Z");
    assert_eq!(
        dispute_lines(&lines, "stage_change"),
        vec![
            &json!({"kind": "stage_change", "dispute": "D-9", "policy": "knowsley-escalation-2019", "from": 1, "to": 2, "at": "2026-03-07T02:00:00Z"})
        ]
    );
    cp.ok(&["evaluate", "--at", "2026-03-07T02:00:00Z"]);
    assert_eq!(
        history(&db, "D-9"),
        vec![(
            Some(1),
            2,
            "2026-03-07T02:00:00Z".into(),
            "immediate risk".into()
        )]
    );
    let key = "knowsley/dispute/D-9/knowsley-escalation-2019:2/entered";
    assert_eq!(
        outbox_to(&db, key),
        [
            "p-hlm@example.org",
            "p-hsl@example.org",
            "p-sl1@example.org",
            "p-tm1@example.org"
        ]
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE '{key}/%' AND urgent \
             AND send_after = '2026-03-07T02:00:00Z'"
        )),
        6,
        "four to, two cc (the parties), all urgent and due at once"
    );
    // Same working day from a Saturday: close of Monday.
    assert_eq!(stage_and_deadline(&db, "D-9"), "2 2026-03-09T17:00:00Z");
    // Delivered at 02:05 on a Saturday.
    let sent = cp.ok(&["deliver", "--once", "--at", "2026-03-07T02:05:00Z"]);
    assert!(sent.contains("sent 6"), "{sent}");
    assert_eq!(smtp.wait_for(6, 10).len(), 6);
    // The later stages run on same-working-day deadlines.
    cp.ok(&["evaluate", "--at", "2026-03-10T17:00:00Z"]);
    assert_eq!(stage_and_deadline(&db, "D-9"), "4 2026-03-11T17:00:00Z");
}

#[test]
fn coalesced_roles_richmond_skips_step_two_pan_cheshire_mails_once() {
    // Richmond & Kingston: the referrer's line manager is the agency safeguarding lead.
    let (db, cp) = setup(json!([dispute(
        "D-R",
        "richmond-kingston-6-step",
        json!({"raised_by": "p-rr"})
    )]));
    let lines = cp.dry_run("2026-03-04T17:00:00Z");
    assert_eq!(
        dispute_lines(&lines, "stage_change"),
        vec![
            &json!({"kind": "stage_change", "dispute": "D-R", "policy": "richmond-kingston-6-step", "from": 1, "to": 3, "at": "2026-03-04T17:00:00Z"})
        ]
    );
    cp.ok(&["evaluate", "--at", "2026-03-04T17:00:00Z"]);
    assert_eq!(
        history(&db, "D-R"),
        vec![(
            Some(1),
            3,
            "2026-03-04T17:00:00Z".into(),
            "timescale lapsed".into()
        )]
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE rule = 'richmond-kingston-6-step:2'"),
        0
    );
    // p-hsl is told once, as safeguarding lead and line manager.
    assert_eq!(
        texts(&db, "SELECT recipient AS v FROM outbox WHERE rule = 'richmond-kingston-6-step:3' ORDER BY recipient"),
        ["p-hsl@example.org", "p-sw1@example.org"]
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM dispute_records WHERE kind = 'stage_skipped' AND stage = 2"
        ),
        1
    );

    // Pan-Cheshire: the practitioner is their small agency's designated lead. Step 2 runs.
    let (db, cp) = setup(json!([dispute(
        "D-P",
        "pan-cheshire-escalation",
        json!({"raised_by": "p-vol"})
    )]));
    cp.ok(&["evaluate", "--at", "2026-03-03T17:00:00Z"]);
    assert_eq!(
        history(&db, "D-P"),
        vec![(
            Some(1),
            2,
            "2026-03-03T17:00:00Z".into(),
            "timescale lapsed".into()
        )]
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE rule = 'pan-cheshire-escalation:2' AND kind = 'escalation_stage' AND recipient = 'p-vol@example.org'"),
        1,
        "mailed once, not as lead and again as the raiser"
    );
    assert_eq!(stage_and_deadline(&db, "D-P"), "2 2026-03-10T17:00:00Z");
}

#[test]
fn bad_dispute_input_is_rejected_with_a_clear_message_and_nothing_written() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let err = cp.rejected(&file(json!([dispute(
        "D-1",
        "knowsley-escalation-2018",
        json!({})
    )])));
    assert!(
        err.contains("dispute D-1, field policy: unknown escalation policy \"knowsley-escalation-2018\" (known: knowsley-escalation-2019, liverpool-school-escalation, pan-cheshire-escalation, richmond-kingston-6-step)"),
        "{err}"
    );
    let err = cp.rejected(&file(json!([dispute(
        "D-1",
        "knowsley-escalation-2019",
        json!({"raised_by": "p-ghost"})
    )])));
    assert!(
        err.contains("dispute D-1, field raised_by: unknown person \"p-ghost\""),
        "{err}"
    );
    let err = cp.rejected(&file(json!([dispute(
        "D-1",
        "knowsley-escalation-2019",
        json!({"events": [{"kind": "resolved", "at": "2026-03-01T12:00:00Z", "stage": 1}]})
    )])));
    assert!(
        err.contains("dispute D-1, event 0 (resolved), field at: 2026-03-01T12:00:00+00:00 is before the dispute was opened"),
        "{err}"
    );
    let err = cp.rejected(&file(json!([dispute(
        "D-1",
        "pan-cheshire-escalation",
        json!({"events": [{"kind": "escalated", "at": "2026-03-03T12:00:00Z", "stage": 5}]})
    )])));
    assert!(
        err.contains(
            "dispute D-1, event 0 (escalated), field stage: must be a stage number from 1 to 4"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    for table in ["people", "cases", "disputes", "dispute_events"] {
        assert_eq!(
            db.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table} must be empty"
        );
    }
}

#[test]
fn knowsley_outcome_must_be_confirmed_in_writing_within_two_working_days() {
    let resolved = |id: &str| {
        dispute(
            id,
            "knowsley-escalation-2019",
            json!({"events": [{"kind": "resolved", "at": "2026-03-10T12:00:00Z", "stage": 2, "outcome": "agreed a strategy discussion"}]}),
        )
    };
    let (db, cp) = setup(json!([resolved("D-1"), resolved("D-2")]));
    cp.ok(&["evaluate", "--at", "2026-03-10T12:00:00Z"]);
    let rule = "knowsley-escalation-2019:2";
    assert_eq!(
        outbox_to(&db, &format!("knowsley/dispute/D-1/{rule}/outcome")),
        [
            "p-hlm@example.org",
            "p-hv1@example.org",
            "p-sw1@example.org",
            "p-tm1@example.org"
        ]
    );
    assert_eq!(
        outbox_to(&db, &format!("knowsley/dispute/D-1/{rule}/confirm-outcome")),
        ["p-tm1@example.org"]
    );
    // D-1's receiving manager confirms; D-2's does not.
    let mut f: Value =
        serde_json::from_str(&file(json!([resolved("D-1"), resolved("D-2")]))).unwrap();
    f["disputes"][0]["events"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "outcome_confirmed", "at": "2026-03-11T15:00:00Z", "by": "p-tm1"}));
    assert!(cp.import_text(&f.to_string()).status.success());
    cp.ok(&["evaluate", "--at", "2026-03-12T17:00:00Z"]);
    assert!(outbox_to(
        &db,
        &format!("knowsley/dispute/D-1/{rule}/confirm-outcome-overdue")
    )
    .is_empty());
    assert_eq!(
        outbox_to(
            &db,
            &format!("knowsley/dispute/D-2/{rule}/confirm-outcome-overdue")
        ),
        ["p-tm1@example.org"]
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM disputes WHERE ref = 'D-1' AND next_check_at IS NULL AND resolved_stage = 2"),
        1
    );
}

#[test]
fn manual_escalation_before_the_deadline() {
    let (db, cp) = setup(json!([dispute(
        "D-1",
        "knowsley-escalation-2019",
        json!({"events": [{"kind": "escalated", "at": "2026-03-03T11:00:00Z", "stage": 2, "by": "p-hv1"}]})
    )]));
    let lines = cp.dry_run("2026-03-03T11:00:00Z");
    assert_eq!(dispute_lines(&lines, "stage_change").len(), 1);
    cp.ok(&["evaluate", "--at", "2026-03-03T11:00:00Z"]);
    assert_eq!(
        history(&db, "D-1"),
        vec![(
            Some(1),
            2,
            "2026-03-03T11:00:00Z".into(),
            "escalated by hand".into()
        )]
    );
    assert_eq!(
        texts(&db, "SELECT by_person AS v FROM dispute_stage_history"),
        ["p-hv1"]
    );
    assert_eq!(stage_and_deadline(&db, "D-1"), "2 2026-03-10T17:00:00Z");
    // Non-urgent mail waits for working hours: 11:00 on a Tuesday is in them.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE rule = 'knowsley-escalation-2019:2' AND send_after = '2026-03-03T11:00:00Z' AND NOT urgent"),
        4
    );
}

#[test]
fn report_gives_figures_per_policy_and_the_logs() {
    let (db, cp) = setup(json!([
        dispute("D-1", "knowsley-escalation-2019", json!({})),
        dispute(
            "D-2",
            "knowsley-escalation-2019",
            json!({"events": [{"kind": "resolved", "at": "2026-03-10T12:00:00Z", "outcome": "agreed"}]})
        ),
        dispute(
            "D-3",
            "liverpool-school-escalation",
            json!({"subject": "referral not accepted, level 4"})
        ),
        dispute(
            "D-4",
            "pan-cheshire-escalation",
            json!({"events": [{"kind": "resolved", "at": "2026-03-20T12:00:00Z", "outcome": "chair recommended a strategy discussion"}]})
        ),
    ]));
    cp.ok(&["evaluate", "--at", "2026-03-27T12:00:00Z"]);
    assert!(db.count("SELECT count(*) AS n FROM dispute_stage_history") > 0);
    let text = cp.ok(&["report"]);
    assert!(
        text.contains("knowsley-escalation-2019 (Knowsley Safeguarding Children Partnership escalation policy (2019)): 2 dispute(s), 1 resolved, 1 open"),
        "{text}"
    );
    // Both Knowsley disputes reached stage 2 (D-1 took 5 working days there, D-2 was resolved
    // after 3); only D-1 went on.
    assert!(
        text.contains(
            "      2        2         1     0        4.0       5  Line manager to line manager"
        ),
        "{text}"
    );
    assert!(
        text.contains("      4        1         0     1          -       -  Referral to the LSCP Chair via the Strategic Forum"),
        "{text}"
    );
    assert!(
        text.contains("Summary log: cases escalated to the LSCB"),
        "{text}"
    );
    assert!(
        // Liverpool: stage 3 (the LSCB's log) begins when stage 2's share of the week ends.
        text.contains("2026-03-05T17:00:00Z  dispute D-3  case KN-0001  liverpool-school-escalation  stage 4  raised by p-hv1 (health) with ksc  concern: referral not accepted, level 4  outcome: open"),
        "{text}"
    );
    assert!(
        text.contains("2026-03-17T17:00:00Z  dispute D-4  case KN-0001  pan-cheshire-escalation  stage 4  raised by p-hv1 (health) with ksc  concern: threshold decision  outcome: chair recommended a strategy discussion"),
        "{text}"
    );
    // CSV: one table per --table, each with a single header row.
    let timeliness = cp.ok(&["report", "--format", "csv", "--table", "timeliness"]);
    assert!(
        timeliness.starts_with("partnership,policy,rule,standard,"),
        "{timeliness}"
    );
    let stages = cp.ok(&["report", "--format", "csv", "--table", "escalation_stages"]);
    assert!(
        stages.starts_with("policy,stage,stage_name,reached,completed,resolved_here,open_here,median_working_days,max_working_days\n"),
        "{stages}"
    );
    assert!(
        stages
            .contains("\nknowsley-escalation-2019,2,Line manager to line manager,2,2,1,0,4.0,5\n"),
        "{stages}"
    );
    let csv = cp.ok(&["report", "--format", "csv", "--table", "records"]);
    assert!(
        csv.contains("summary_log.safeguarding_leadership_team,D-3,KN-0001,liverpool-school-escalation,2026-03-02T17:00:00Z,2,p-hv1,health,ksc,\"referral not accepted, level 4\",open\n"),
        "{csv}"
    );
    assert!(
        csv.contains("step4_record,D-4,KN-0001,pan-cheshire-escalation,2026-03-17T17:00:00Z,4,p-hv1,health,ksc,threshold decision,chair recommended a strategy discussion\n"),
        "{csv}"
    );
}
