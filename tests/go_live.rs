//! Going live over a year of history without a flood: for deadlines that lapsed before the
//! go-live instant no reminder or overdue notice of their own, one summary per team manager of
//! what was already overdue on their cases (by case and rule, oldest first), and open
//! disagreements continuing from their current stage. Pure tests of the pieces, then a year of
//! history (24 cases, 3 team managers, 3 disputes) through the binary on PostgreSQL.

mod common;
mod ladder_support;

use chrono::{DateTime, Duration, Utc};
use common::*;
use cpwatch::evaluate::dispute::evaluate_dispute_from;
use cpwatch::evaluate::go_live::{keep, summaries, Lapsed};
use cpwatch::evaluate::{Kind, Recipient};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Monday 1 June 2026, 09:00 BST.
const GO_LIVE: &str = "2026-06-01T08:00:00Z";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn rfc(t: DateTime<Utc>) -> String {
    cpwatch::evaluate::rfc3339(t)
}

// ---- Pure ----

#[test]
fn only_case_notices_about_deadlines_that_lapsed_before_go_live_are_left_out() {
    use ladder_support::*;
    // Any notices will do: a Knowsley dispute's, relabelled as case-rule kinds.
    let p = policy("knowsley-escalation-2019");
    let d = dispute("knowsley-escalation-2019", "2026-03-02T10:00:00Z", None);
    let mut notes = eval(&p, &d, "2026-03-20T12:00:00Z").notifications;
    assert!(notes.len() >= 3);
    notes[0].kind = Kind::Overdue;
    notes[0].due = t("2026-05-29T16:00:00Z");
    notes[1].kind = Kind::Reminder;
    notes[1].due = t(GO_LIVE) + Duration::days(2);
    notes[2].kind = Kind::DataQuality;
    notes[2].due = t("2026-01-05T09:00:00Z");
    let kept: Vec<Kind> = keep(notes[..3].to_vec(), t(GO_LIVE))
        .iter()
        .map(|n| n.kind)
        .collect();
    // The overdue notice of a lapsed deadline goes; a reminder of a deadline still ahead and a
    // data-quality notice stay.
    assert_eq!(kept, [Kind::Reminder, Kind::DataQuality]);
}

#[test]
fn one_summary_per_recipient_by_case_and_rule_oldest_first() {
    let email = |e: &str| cpwatch::domain::Email::parse(e).unwrap();
    let to = |e: &str| Recipient {
        email: email(e),
        person: None,
        name: None,
        role: "team_manager".into(),
    };
    let lapsed = |case: &str, rule: &str, deadline: &str| Lapsed {
        case: cpwatch::domain::CaseRef::parse(case).unwrap(),
        rule: rule.into(),
        standard: "S10".into(),
        title: format!("the {rule} timescale"),
        occurrence: "-".into(),
        deadline: t(deadline),
    };
    let cal = ladder_support::calendar();
    let p = cpwatch::domain::PartnershipId::parse("knowsley").unwrap();
    let notes = summaries(
        &p,
        t(GO_LIVE),
        vec![
            (
                to("a@x.org"),
                vec![
                    lapsed("KN-2", "minutes", "2026-05-01T16:00:00Z"),
                    lapsed("KN-2", "debrief", "2026-05-20T16:00:00Z"),
                ],
            ),
            (
                to("b@x.org"),
                vec![lapsed("KN-3", "visit", "2026-05-25T16:00:00Z")],
            ),
            (
                to("a@x.org"),
                vec![lapsed("KN-1", "review", "2026-04-01T16:00:00Z")],
            ),
        ],
        &cal,
    );
    assert_eq!(notes.len(), 2);
    let a = &notes[0];
    assert_eq!(a.kind, Kind::GoLiveSummary);
    assert_eq!(a.key, "knowsley/go-live/2026-06-01T08:00:00Z/a@x.org");
    // The evaluator decides the facts: when, and which timescales of which cases.
    let facts = a.facts.go_live.as_ref().expect("the summary's facts");
    assert_eq!(facts.started, t(GO_LIVE));
    let listed: Vec<(&str, Vec<&str>)> = facts
        .cases
        .iter()
        .map(|c| {
            let rules = c.lapsed.iter().map(|l| l.rule.as_str()).collect();
            (c.case.as_str(), rules)
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("KN-1", vec!["review"]),
            ("KN-2", vec!["minutes", "debrief"])
        ]
    );
    // The templates word them.
    let m = cpwatch::mail::Renderer::new(false)
        .render(a, "a@x.org", false, a.due, chrono_tz::Europe::London)
        .unwrap();
    assert_eq!(
        m.subject,
        "Already overdue when cpwatch started: 3 timescales on 2 of your cases"
    );
    assert!(
        m.text
            .contains("cpwatch started watching these cases on Monday 1 June 2026, 09:00 BST."),
        "{}",
        m.text
    );
    // KN-1's lapse is the oldest, so KN-1 first; within KN-2, oldest first.
    let body: Vec<&str> = m
        .text
        .lines()
        .filter(|l| l.starts_with("Case ") || l.starts_with("  - "))
        .collect();
    assert_eq!(
        body,
        [
            "Case KN-1:",
            "  - due Wed 1 Apr 2026 17:00: the review timescale (review, standard S10)",
            "Case KN-2:",
            "  - due Fri 1 May 2026 17:00: the minutes timescale (minutes, standard S10)",
            "  - due Wed 20 May 2026 17:00: the debrief timescale (debrief, standard S10)",
        ]
    );
    assert!(a.case.is_none() && !a.urgent);
    assert_eq!(
        a.send_after,
        t(GO_LIVE),
        "09:00 on a Monday is in working hours"
    );
    assert_eq!(notes[1].to[0].email.as_str(), "b@x.org");
}

#[test]
fn a_dispute_continues_from_its_current_stage_without_replaying_the_passed_ones() {
    use ladder_support::*;
    let p = policy("knowsley-escalation-2019");
    let mut d = dispute("knowsley-escalation-2019", "2026-01-12T10:00:00Z", None);
    let mut by_hand = event(
        cpwatch::domain::DisputeEventKind::Escalated,
        "2026-01-20T10:00:00Z",
        Some(2),
    );
    by_hand.outcome = None;
    d.events.push(by_hand);
    let cal = calendar();
    let dir = directory();
    let ctx = |now: &str| cpwatch::evaluate::Context {
        calendar: &cal,
        directory: &dir,
        now: t(now),
    };
    // Without go-live: replayed to the top, with every stage's mail.
    let replayed = eval(&p, &d, GO_LIVE);
    assert_eq!(replayed.state.stage, 4);
    // With go-live: still at stage 2 (escalated by hand in January), its timescale resumed:
    // until close of the working day after go-live (Tuesday 2 June, 17:00 BST).
    let o = evaluate_dispute_from(&p, &d, &ctx(GO_LIVE), Some(t(GO_LIVE)));
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-01-20T10:00:00Z".into(), "escalated by hand")]
    );
    assert_eq!(o.state.stage, 2);
    assert_eq!(o.state.stage_deadline, t("2026-06-02T16:00:00Z"));
    // Nothing whose moment came before go-live; the stage's reminder, due at go-live, goes.
    assert_eq!(
        steps(&o),
        [(
            "knowsley-escalation-2019:2".to_owned(),
            "reminder".to_owned()
        )]
    );
    // Then it moves on by itself as if watched all along.
    let later = evaluate_dispute_from(&p, &d, &ctx("2026-06-02T16:00:00Z"), Some(t(GO_LIVE)));
    assert_eq!(
        changes(&later)[1],
        (2, 3, "2026-06-02T16:00:00Z".into(), "timescale lapsed")
    );
}

// ---- A year of history through the binary ----

fn at(start: DateTime<Utc>, days: i64, hours: i64) -> String {
    rfc(start + Duration::days(days) + Duration::hours(hours))
}

/// Case i starts on a Monday, 14 days after case i-1 (2 June 2025 for case 0); three team
/// managers share them. Most work is on time; odd cases never circulate strategy minutes, core
/// groups stop after the second, every third case's visits stop after three months, and even
/// cases end their plan after 200 days (with a CIN plan).
fn history_case(i: i64) -> Value {
    let s = t("2025-06-02T09:00:00Z") + Duration::days(14 * i);
    let mut ev = vec![
        json!({"kind": "referral_received", "at": at(s, 0, 0)}),
        json!({"kind": "referral_actioned", "at": at(s, 0, 2)}),
        json!({"kind": "strategy_discussion_decided", "at": at(s, 1, 0)}),
        json!({"kind": "strategy_discussion_held", "at": at(s, 1, 3), "s47_initiated": true}),
        json!({"kind": "strategy_decisions_recorded", "at": at(s, 2, 0)}),
        json!({"kind": "icpc_held", "at": at(s, 18, 1), "outcome": "plan"}),
        json!({"kind": "decisions_circulated", "at": at(s, 19, 0)}),
        json!({"kind": "outline_plan_recorded", "at": at(s, 19, 1)}),
        json!({"kind": "family_debriefed", "at": at(s, 20, 0)}),
        json!({"kind": "minutes_circulated", "at": at(s, 30, 0)}),
        json!({"kind": "minutes_sent_to_family", "at": at(s, 30, 1)}),
        json!({"kind": "core_group_held", "at": at(s, 25, 0)}),
        json!({"kind": "core_group_minutes_circulated", "at": at(s, 26, 0)}),
        json!({"kind": "core_group_held", "at": at(s, 50, 0)}),
        json!({"kind": "core_group_minutes_circulated", "at": at(s, 51, 0)}),
    ];
    if i % 2 == 0 {
        ev.push(json!({"kind": "strategy_minutes_circulated", "at": at(s, 2, 1)}));
    }
    let visits_until = if i % 3 == 0 { 90 } else { 400 };
    let mut day = 39;
    while day < visits_until.min(365) && t(&at(s, day, 0)) < t(GO_LIVE) {
        ev.push(json!({"kind": "child_seen", "at": at(s, day, 0)}));
        day += 21;
    }
    if i % 2 == 0 {
        ev.push(json!({"kind": "cp_plan_ended", "at": at(s, 200, 0)}));
        ev.push(json!({"kind": "cin_plan_started", "at": at(s, 200, 2)}));
    }
    // Only what happened before go-live is known.
    ev.retain(|e| t(e["at"].as_str().unwrap()) < t(GO_LIVE));
    let tm = ["p-tma", "p-tmb", "p-tmc"][(i % 3) as usize];
    json!({
        "ref": format!("KN-{:04}", 100 + i),
        "roles": {"social_worker": "p-sw1", "team_manager": tm, "conference_chair": "p-ch1",
                  "senior_manager": "p-sm1", "head_of_service_safeguarding": "p-hos"},
        "events": ev
    })
}

fn year_file() -> String {
    let mut f: Value = serde_json::from_str(&case_file(json!([]))).unwrap();
    let people = f["people"].as_array_mut().unwrap();
    for (id, email) in [
        ("p-tma", "tm.a@ksc.example.org"),
        ("p-tmb", "tm.b@ksc.example.org"),
        ("p-tmc", "tm.c@ksc.example.org"),
        ("p-hos", "hos@ksc.example.org"),
    ] {
        people.push(json!({"id": id, "name": format!("Person {id}"), "email": email, "agency": "ksc", "manager": "p-sm1"}));
    }
    f["cases"] = Value::Array((0..24).map(history_case).collect());
    f["disputes"] = json!([
        // Escalated by hand to stage 2 in January; nobody moved it since.
        {"id": "D-OLD", "case": "KN-0100", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
         "respondent": "p-sw1", "opened_at": "2026-01-12T10:00:00Z", "subject": "threshold",
         "events": [{"kind": "escalated", "at": "2026-01-20T10:00:00Z", "stage": 2, "by": "p-hv1"}]},
        // Raised the Thursday before go-live; stage 1 ("on the day") lapsed unwatched.
        {"id": "D-NEW", "case": "KN-0101", "policy": "liverpool-school-escalation", "raised_by": "p-hv1",
         "respondent": "p-sw1", "opened_at": "2026-05-28T10:00:00Z", "subject": "referral not accepted", "events": []},
        // Resolved in March: nothing to say at go-live.
        {"id": "D-RES", "case": "KN-0102", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1",
         "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "subject": "plan progress",
         "events": [{"kind": "resolved", "at": "2026-03-03T12:00:00Z", "stage": 1, "outcome": "agreed"}]}
    ]);
    f.to_string()
}

const CASE_KINDS: [&str; 5] = [
    "reminder",
    "due",
    "overdue",
    "overdue_escalation",
    "cause_for_concern",
];

#[test]
fn a_year_of_history_goes_live_with_one_summary_per_team_manager() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.ok(&["migrate"]);
    let out = cp.ok(&["import", "--go-live", GO_LIVE, &write(&year_file())]);
    assert!(
        out.contains("knowsley goes live at 2026-06-01T08:00:00Z"),
        "{out}"
    );

    // Without going live, the same history at the same instant is a flood of overdue mail.
    let flood = Cpwatch::new(&db, None)
        .ok(&[
            "evaluate",
            "--at",
            GO_LIVE,
            "--dry-run",
            "--format",
            "json",
            "--go-live",
            "2020-01-01T00:00:00Z",
        ])
        .lines()
        .filter(|l| l.contains("\"kind\":\"overdue"))
        .count();
    assert!(flood > 40, "{flood} overdue notices without go-live");

    let lines = json_lines(&cp.ok(&["evaluate", "--at", GO_LIVE, "--format", "json"]));
    let go_live = t(GO_LIVE);
    for l in &lines {
        if CASE_KINDS.contains(&l["kind"].as_str().unwrap_or("")) {
            assert!(
                t(l["due"].as_str().unwrap()) >= go_live,
                "lapsed before go-live: {l}"
            );
        }
        if l["kind"] == "stage_change" {
            // Only the January escalation by hand; no timescale lapsed before go-live moved a stage.
            assert!(
                t(l["at"].as_str().unwrap()) >= go_live || l["dispute"] == "D-OLD",
                "{l}"
            );
        }
    }
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "go_live_summary")
        .collect();
    let mut to: Vec<&str> = summaries
        .iter()
        .map(|s| s["to"][0].as_str().unwrap())
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "tm.a@ksc.example.org",
            "tm.b@ksc.example.org",
            "tm.c@ksc.example.org"
        ]
    );
    check_disputes_continue(&db, &cp, &lines);

    // The next pass sends nothing again: no second summary, no replay.
    let again = cp.ok(&["evaluate", "--at", "2026-06-01T09:00:00Z", "--full"]);
    assert!(again.contains("0 notice(s) newly queued"), "{again}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM notices WHERE kind = 'go_live_summary'"),
        3
    );

    // Each team manager receives one message about it, with no names in it.
    let sent = cp.ok(&["deliver", "--once", "--at", "2026-06-01T08:05:00Z"]);
    assert!(sent.starts_with("sent "), "{sent}");
    smtp.wait_for(3, 10);
    let mail = smtp.received();
    check_summaries_against_the_case_screens(&cp, &mail);
    let to_a: Vec<_> = mail
        .iter()
        .filter(|m| m.to == ["tm.a@ksc.example.org"])
        .filter(|m| {
            m.header("Subject")
                .unwrap()
                .starts_with("Already overdue when cpwatch started:")
        })
        .collect();
    assert_eq!(to_a.len(), 1);
    let subject = to_a[0].header("Subject").unwrap();
    assert!(subject.ends_with(" of your cases"), "{subject}");
    assert!(!subject.contains("(case"), "{subject}");
    let body = to_a[0].text();
    assert!(
        body.contains("cpwatch started watching these cases on Monday 1 June 2026, 09:00 BST"),
        "{body}"
    );
    assert!(body.contains("Case KN-0103:"), "{body}");
    assert!(
        body.contains("- due Wed 16 Jul 2025 17:00: Strategy meeting minutes circulated"),
        "{body}"
    );
    assert!(!body.contains("Person p-"), "no names: {body}");

    // Deadlines after go-live are watched as usual.
    let later = json_lines(&cp.ok(&[
        "evaluate",
        "--at",
        "2026-06-30T16:00:00Z",
        "--format",
        "json",
    ]));
    assert!(
        later
            .iter()
            .any(|l| CASE_KINDS.contains(&l["kind"].as_str().unwrap_or(""))),
        "{later:?}"
    );
}

/// Each summary, as its team manager receives it, lists exactly the timescales that `cpwatch
/// case` shows as overdue as at go-live on that team manager's cases, cases by their oldest
/// lapse, each oldest first.
fn check_summaries_against_the_case_screens(cp: &Cpwatch, mail: &[Received]) {
    let mut expected: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for i in 0..24 {
        let reference = format!("KN-{:04}", 100 + i);
        let view: Value = serde_json::from_str(
            &cp.ok(&["case", &reference, "--at", GO_LIVE, "--format", "json"]),
        )
        .unwrap();
        let tm = ["tm.a", "tm.b", "tm.c"][(i % 3) as usize];
        for r in view["timescales"].as_array().unwrap() {
            if r["status"] == "overdue" && r["cancelled"].is_null() {
                let d = r["deadline"].as_str().unwrap().to_owned();
                expected.entry(tm.into()).or_default().push((
                    reference.clone(),
                    d,
                    r["rule"].as_str().unwrap().into(),
                ));
            }
        }
    }
    for (tm, mut items) in expected {
        let action: Vec<String> = mail
            .iter()
            .filter(|m| m.to == [format!("{tm}@ksc.example.org")])
            .filter(|m| {
                m.header("Subject")
                    .is_some_and(|s| s.starts_with("Already overdue when cpwatch started:"))
            })
            .map(|m| m.text())
            .collect();
        assert_eq!(action.len(), 1, "{tm}");
        let listed: Vec<&str> = action[0]
            .lines()
            .filter(|l| l.starts_with("  - "))
            .collect();
        assert_eq!(listed.len(), items.len(), "{tm}: {}", action[0]);
        // Cases in the order of their oldest lapse; within a case, oldest first.
        items.sort_by(|a, b| (&a.1, &a.2).cmp(&(&b.1, &b.2)));
        let mut cases: Vec<String> = Vec::new();
        for (c, _, _) in &items {
            if !cases.contains(c) {
                cases.push(c.clone());
            }
        }
        let headers: Vec<String> = action[0]
            .lines()
            .filter(|l| l.starts_with("Case "))
            .map(|l| {
                l.trim_start_matches("Case ")
                    .trim_end_matches(':')
                    .to_owned()
            })
            .collect();
        assert_eq!(headers, cases, "{tm}");
        for (c, _, rule) in &items {
            assert!(
                action[0].contains(&format!("({rule}, standard")),
                "{tm} {c} {rule}"
            );
        }
    }
}

fn check_disputes_continue(db: &TestDb, cp: &Cpwatch, lines: &[Value]) {
    // D-OLD: still at stage 2 (the January escalation is recorded), its timescale resumed.
    assert_eq!(
        texts(db, "SELECT stage || ' ' || to_char(stage_deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS v FROM disputes WHERE ref = 'D-OLD'"),
        ["2 2026-06-02 16:00"]
    );
    let old: Vec<&Value> = lines.iter().filter(|l| l["dispute"] == "D-OLD").collect();
    assert!(
        old.iter()
            .any(|l| l["kind"] == "stage_change" && l["at"] == "2026-01-20T10:00:00Z"),
        "{old:?}"
    );
    assert!(
        old.iter().all(|l| l["kind"] != "escalation_stage"),
        "stage 2's people are not told again that it began in January: {old:?}"
    );
    // D-NEW: stage 1 lapsed on 28 May unwatched; it stays at stage 1 until Tuesday's close.
    assert_eq!(
        texts(
            db,
            "SELECT stage::text AS v FROM disputes WHERE ref = 'D-NEW'"
        ),
        ["1"]
    );
    assert!(lines.iter().all(|l| l["dispute"] != "D-RES"));
    // Then the ladders move on by themselves.
    let tuesday = json_lines(&cp.ok(&[
        "evaluate",
        "--at",
        "2026-06-02T16:00:00Z",
        "--format",
        "json",
    ]));
    let moves: Vec<(String, i64)> = tuesday
        .iter()
        .filter(|l| l["kind"] == "stage_change")
        .map(|l| {
            (
                l["dispute"].as_str().unwrap().to_owned(),
                l["to"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(moves, [("D-OLD".to_owned(), 3), ("D-NEW".to_owned(), 2)]);
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    diesel::sql_query(sql)
        .load::<V>(&mut db.conn())
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.v)
        .collect()
}

/// Write a case file where the binary can read it; the path lives for the test.
fn write(text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("cpwatch-go-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.json", text.len()));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn the_go_live_instant_can_be_configured_and_a_bad_one_is_refused() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None).with("CPWATCH_PARTNERSHIPS__KNOWSLEY__GO_LIVE", GO_LIVE);
    cp.ok(&["migrate"]);
    assert!(cp.import_text(&year_file()).status.success());
    // Before go-live nothing is evaluated for the partnership.
    let before = cp.ok(&["evaluate", "--at", "2026-05-29T12:00:00Z"]);
    assert!(before.contains("0 case(s) evaluated"), "{before}");
    assert_eq!(db.count("SELECT count(*) AS n FROM notices"), 0);
    let lines = json_lines(&cp.ok(&["evaluate", "--at", GO_LIVE, "--format", "json"]));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["kind"] == "go_live_summary")
            .count(),
        3
    );
    let bad =
        Cpwatch::new(&db, None).with("CPWATCH_PARTNERSHIPS__KNOWSLEY__GO_LIVE", "next Monday");
    let out = bad.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("partnerships.knowsley.go_live: \"next Monday\" is not an RFC 3339 instant"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
