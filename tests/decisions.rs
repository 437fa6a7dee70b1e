//! What cpwatch decides, against the seeds: the chair's cause-for-concern letter always goes (to
//! the agency's appropriate manager even when that is the invitee), a data-quality notice keeps
//! the instant its problem was first seen, and a dispute's own protective timescale shortens the
//! Knowsley stages that allow it. Each against the pure evaluator, then through the binary on
//! PostgreSQL. (Liverpool's shared week is in ladder_liverpool.rs and disputes.rs; the duties
//! added to the Knowsley standards are rows of rules_knowsley.rs.)

mod common;
mod ladder_support;

use chrono::{DateTime, NaiveTime, Utc};
use common::*;
use cpwatch::calendar::{BankHolidays, Calendar};
use cpwatch::domain::{
    AgencyId, Case, CaseRef, Directory, Email, Event, EventKind, PartnershipId, Person, PersonId,
};
use cpwatch::evaluate::{evaluate_case, Context, Kind, Notice};
use cpwatch::policy::{Catalogue, StandardsPolicy};
use serde_json::{json, Value};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn pid(s: &str) -> PersonId {
    PersonId::parse(s).unwrap()
}

fn standards() -> StandardsPolicy {
    Catalogue::load(None)
        .unwrap()
        .standards
        .remove("knowsley-cp-2019")
        .unwrap()
}

fn calendar() -> Calendar {
    Calendar::new(
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        BankHolidays::snapshot().dates("england-and-wales").unwrap(),
    )
}

/// Children's social care (p-sw1, p-tm1, p-sm1, the chair p-ch1 and their manager p-sqa) and a
/// small primary school whose head teacher p-head is both its DSL and its senior manager.
/// `people` adds or replaces people: (id, email, agency, manager).
fn directory(people: &[(&str, Option<&str>, &str, Option<&str>)]) -> Directory {
    let mut d = Directory::default();
    let base = [
        ("p-sw1", Some("sw1@ksc.example.org"), "ksc", Some("p-tm1")),
        ("p-tm1", Some("tm1@ksc.example.org"), "ksc", Some("p-sm1")),
        ("p-sm1", Some("sm1@ksc.example.org"), "ksc", None),
        (
            "p-ch1",
            Some("chair1@ksc.example.org"),
            "ksc",
            Some("p-sqa"),
        ),
        ("p-sqa", Some("sqa@ksc.example.org"), "ksc", None),
        ("p-head", Some("head@school.example.org"), "school", None),
    ];
    for (id, email, agency, manager) in base.iter().chain(people) {
        d.people.insert(
            pid(id),
            Person {
                id: pid(id),
                name: format!("Name of {id}"),
                email: email.map(|e| Email::parse(e).unwrap()),
                agency: Some(AgencyId::parse(agency).unwrap()),
                manager: manager.map(pid),
            },
        );
    }
    let school = AgencyId::parse("school").unwrap();
    d.agency_roles
        .insert((school.clone(), "safeguarding_lead".into()), pid("p-head"));
    d.agency_roles
        .insert((school, "senior_manager".into()), pid("p-head"));
    d.admin_email = Some(Email::parse("admin@lscp.example.org").unwrap());
    d
}

fn event(kind: EventKind, at: &str, data: Value) -> Event {
    let data = data.as_object().cloned().unwrap_or_default();
    let recorded_at = data
        .get("recorded_at")
        .and_then(|v| v.as_str())
        .map(|s| s.parse().unwrap());
    Event {
        kind,
        at: t(at),
        recorded_at,
        data,
        origin: Default::default(),
    }
}

fn case(roles: &[(&str, &str)], events: Vec<Event>) -> Case {
    Case {
        partnership: PartnershipId::parse("knowsley").unwrap(),
        reference: CaseRef::parse("KN-0001").unwrap(),
        unborn: false,
        visit_interval_days: None,
        roles: roles.iter().map(|(r, p)| (r.to_string(), pid(p))).collect(),
        events,
    }
}

const ROLES: &[(&str, &str)] = &[
    ("social_worker", "p-sw1"),
    ("team_manager", "p-tm1"),
    ("conference_chair", "p-ch1"),
    ("senior_manager", "p-sm1"),
];

/// An ICPC on Monday 23 February 2026, booked on the 9th, the school invited: its report was
/// due by Wednesday 18 February 17:00 (3 working days before) and never came.
fn school_invited(invitees: Value) -> Vec<Event> {
    vec![
        event(
            EventKind::StrategyDiscussionHeld,
            "2026-02-02T10:00:00Z",
            json!({"s47_initiated": true}),
        ),
        event(
            EventKind::IcpcScheduled,
            "2026-02-23T10:00:00Z",
            json!({"recorded_at": "2026-02-09T10:00:00Z", "meeting": "icpc-1",
                   "invited_agencies": ["school"], "invitees": invitees}),
        ),
    ]
}

fn evaluate(c: &Case, d: &Directory, now: &str) -> Vec<Notice> {
    let cal = calendar();
    let ctx = Context {
        calendar: &cal,
        directory: d,
        now: t(now),
    };
    evaluate_case(&standards(), c, &ctx).notifications
}

fn emails_roles(list: &[cpwatch::evaluate::Recipient]) -> Vec<(String, String)> {
    list.iter()
        .map(|r| (r.email.to_string(), r.role.clone()))
        .collect()
}

#[test]
fn the_chairs_letter_goes_to_a_head_teacher_who_is_both_dsl_and_senior_manager() {
    let c = case(ROLES, school_invited(json!({})));
    let notes = evaluate(&c, &directory(&[]), "2026-02-18T17:00:00Z");
    let letters: Vec<&Notice> = notes
        .iter()
        .filter(|n| n.kind == Kind::CauseForConcern)
        .collect();
    assert_eq!(letters.len(), 1, "{notes:#?}");
    let letter = letters[0];
    assert_eq!(letter.rule, "icpc-agency-report");
    assert_eq!(
        letter.key,
        "knowsley/case/KN-0001/cause-for-concern/icpc-1:school"
    );
    // Once, as the agency's manager and the invitee; the chair copied.
    assert_eq!(
        emails_roles(&letter.to),
        [(
            "head@school.example.org".to_owned(),
            "invitee_manager+invitee".to_owned()
        )]
    );
    assert_eq!(
        emails_roles(&letter.cc),
        [(
            "chair1@ksc.example.org".to_owned(),
            "conference_chair".to_owned()
        )]
    );
    assert!(
        notes.iter().all(|n| n.kind != Kind::DataQuality),
        "the agency has someone, so no data-quality notice: {notes:#?}"
    );
}

#[test]
fn the_letter_goes_to_the_invitees_line_manager_first() {
    // The school sends its deputy p-dep, whose line manager is p-head.
    let d = directory(&[(
        "p-dep",
        Some("deputy@school.example.org"),
        "school",
        Some("p-head"),
    )]);
    let c = case(ROLES, school_invited(json!({"school": "p-dep"})));
    let notes = evaluate(&c, &d, "2026-02-18T17:00:00Z");
    let letter = notes
        .iter()
        .find(|n| n.kind == Kind::CauseForConcern)
        .expect("a letter");
    assert_eq!(
        emails_roles(&letter.to),
        [(
            "head@school.example.org".to_owned(),
            "invitee_manager".to_owned()
        )]
    );
    let mut cc: Vec<String> = letter.cc.iter().map(|r| r.email.to_string()).collect();
    cc.sort();
    assert_eq!(cc, ["chair1@ksc.example.org", "deputy@school.example.org"]);
}

#[test]
fn an_agency_with_nobody_to_write_to_gets_one_data_quality_notice_and_no_letter() {
    // A voluntary agency with no named roles sends p-vol, who has no line manager.
    let mut d = directory(&[("p-vol", Some("vol@charity.example.org"), "charity", None)]);
    d.agency_roles.clear();
    let mut events = school_invited(json!({"charity": "p-vol"}));
    events[1].data["invited_agencies"] = json!(["charity"]);
    let c = case(ROLES, events);
    let notes = evaluate(&c, &d, "2026-02-18T17:00:00Z");
    assert!(notes.iter().all(|n| n.kind != Kind::CauseForConcern));
    let dq: Vec<&str> = notes
        .iter()
        .filter(|n| n.kind == Kind::DataQuality)
        .map(|n| n.step.as_str())
        .collect();
    assert_eq!(
        dq,
        ["no-manager-for-cause-for-concern-charity"],
        "{notes:#?}"
    );
}

#[test]
fn a_data_quality_notice_keeps_the_instant_its_problem_was_first_seen() {
    // The social worker has no address: met when the first notice for them fell due, the
    // reminder to send the single assessment to the chair (Monday 16 February 09:00).
    let d = directory(&[("p-sw1", None, "ksc", Some("p-tm1"))]);
    let c = case(ROLES, school_invited(json!({})));
    let dq_at = |now: &str| -> Vec<(String, DateTime<Utc>)> {
        evaluate(&c, &d, now)
            .into_iter()
            .filter(|n| n.kind == Kind::DataQuality)
            .map(|n| (n.key.to_string(), n.due))
            .collect()
    };
    let first = dq_at("2026-02-16T09:00:00Z");
    assert_eq!(
        first,
        [(
            "knowsley/case/KN-0001/data-quality/no-email-p-sw1".to_owned(),
            t("2026-02-16T09:00:00Z")
        )]
    );
    assert_eq!(dq_at("2026-02-16T15:00:00Z"), first);
    assert_eq!(dq_at("2026-03-02T12:00:00Z"), first);
}

#[test]
fn a_protective_timescale_shortens_knowsley_stages_one_to_three_only() {
    use ladder_support::*;
    let p = policy("knowsley-escalation-2019");
    let mut d = dispute(
        "knowsley-escalation-2019",
        "2026-03-02T10:00:00Z",
        Some("2026-03-02T09:00:00Z"),
    );
    d.protective = Some("1 working day".parse().unwrap());
    let o = eval(&p, &d, "2026-03-20T12:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            // Stage 1: 1 working day (not 3) from the opening; stages 2 and 3: 1 (not 5) each.
            (1, 2, "2026-03-03T17:00:00Z".into(), "timescale lapsed"),
            (2, 3, "2026-03-04T17:00:00Z".into(), "timescale lapsed"),
            (3, 4, "2026-03-05T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
    // Stage 4 (the LSCP Chair) keeps its own 5 working days.
    assert_eq!(o.state.stage_deadline, t("2026-03-12T17:00:00Z"));
    // A longer protective timescale changes nothing: the policy's is less.
    d.protective = Some("10 working days".parse().unwrap());
    let o = eval(&p, &d, "2026-03-20T12:00:00Z");
    assert_eq!(
        changes(&o)[0],
        (1, 2, "2026-03-05T17:00:00Z".into(), "timescale lapsed")
    );
}

// ---- Through the binary, on PostgreSQL ----

/// The shared case file's people, plus the small school of the tests above.
fn school_file(events: Value, disputes: Value) -> String {
    let mut f: Value = serde_json::from_str(&case_file(events)).unwrap();
    f["agencies"].as_array_mut().unwrap().push(json!(
        {"id": "school", "name": "Primary school", "roles": {"safeguarding_lead": "p-head", "senior_manager": "p-head"}}
    ));
    f["people"].as_array_mut().unwrap().push(json!(
        {"id": "p-head", "name": "Head Teacher", "email": "head@school.example.org", "agency": "school"}
    ));
    f["disputes"] = disputes;
    f.to_string()
}

fn school_invited_json() -> Value {
    json!([
        {"kind": "strategy_discussion_held", "at": "2026-02-02T10:00:00Z", "s47_initiated": true},
        {"kind": "icpc_scheduled", "at": "2026-02-23T10:00:00Z", "recorded_at": "2026-02-09T10:00:00Z",
         "meeting": "icpc-1", "invited_agencies": ["school"]}
    ])
}

#[test]
fn the_head_teacher_receives_the_chairs_letter_once_by_mail() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.setup(&school_file(school_invited_json(), json!([])));
    cp.ok(&["evaluate", "--at", "2026-02-18T17:00:00Z"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE kind = 'cause_for_concern'"),
        2,
        "the head once, the chair copied"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE kind = 'data_quality'"),
        0
    );
    let sent = cp.ok(&["deliver", "--once", "--at", "2026-02-19T09:00:00Z"]);
    assert!(sent.starts_with("sent "), "{sent}");
    let mail = smtp.wait_for(1, 10);
    let to_head: Vec<_> = mail
        .iter()
        .filter(|m| m.to == ["head@school.example.org"])
        .filter(|m| {
            m.header("Subject")
                .unwrap()
                .starts_with("KN-0001 cause for concern:")
        })
        .collect();
    assert_eq!(to_head.len(), 1, "one letter, not one per role");
    let body = to_head[0].text();
    assert!(
        body.contains("I chair the child protection conference for case KN-0001"),
        "{body}"
    );
    assert!(
        mail.iter().any(|m| m.to == ["chair1@ksc.example.org"]
            && m.header("Subject")
                .unwrap()
                .starts_with("KN-0001 cause for concern:")),
        "the chair is copied"
    );
}

#[test]
fn a_data_quality_notice_printed_on_two_passes_has_one_due() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let mut f: Value =
        serde_json::from_str(&school_file(school_invited_json(), json!([]))).unwrap();
    for p in f["people"].as_array_mut().unwrap() {
        if p["id"] == "p-sw1" {
            p.as_object_mut().unwrap().remove("email");
        }
    }
    cp.setup(&f.to_string());
    let due = |at: &str| -> Vec<String> {
        cp.dry_run(at)
            .iter()
            .filter(|n| n["kind"] == "data_quality")
            .map(|n| format!("{} {}", n["key"], n["due"]))
            .collect()
    };
    let first = due("2026-02-16T10:00:00Z");
    assert_eq!(
        first,
        ["\"knowsley/case/KN-0001/data-quality/no-email-p-sw1\" \"2026-02-16T09:00:00Z\""]
    );
    assert_eq!(due("2026-02-20T16:00:00Z"), first);
    cp.ok(&["evaluate", "--at", "2026-02-16T10:00:00Z"]);
    cp.ok(&["evaluate", "--at", "2026-02-20T16:00:00Z", "--full"]);
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM notices WHERE kind = 'data_quality' \
             AND due_at = '2026-02-16T09:00:00Z'"
        ),
        1
    );
}

#[test]
fn a_dispute_with_a_protective_timescale_moves_on_that_timescale() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let d = |protective: &str| {
        json!([{"id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019",
                "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z",
                "protective_timescale": protective, "subject": "threshold", "events": []}])
    };
    cp.ok(&["migrate"]);
    // A phrase that counts back, and one that is not a timescale, are refused with the field.
    let err = cp.rejected(&school_file(json!([]), d("1 working day before")));
    assert!(
        err.contains(
            "dispute D-1, field protective_timescale: \"1 working day before\" counts back"
        ),
        "{err}"
    );
    let err = cp.rejected(&school_file(json!([]), d("soon")));
    assert!(
        err.contains("dispute D-1, field protective_timescale: unrecognised timescale \"soon\""),
        "{err}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM disputes"), 0);
    cp.import_text(&school_file(json!([]), d("1 working day")));
    let lines = cp.dry_run("2026-03-03T17:00:00Z");
    assert!(
        lines.iter().any(|l| l["kind"] == "stage_change"
            && l["from"] == 1
            && l["to"] == 2
            && l["at"] == "2026-03-03T17:00:00Z"),
        "{lines:?}"
    );
    cp.ok(&["evaluate", "--at", "2026-03-04T17:00:00Z"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM disputes WHERE stage = 3 AND stage_deadline = '2026-03-05T17:00:00Z'"),
        1
    );
}

#[test]
fn a_cases_timescales_say_how_each_stands_and_what_comes_next() {
    // What `cpwatch case` shows, from the evaluator: KN-0001 with a school report outstanding.
    let c = case(ROLES, school_invited(json!({})));
    let cal = calendar();
    let d = directory(&[]);
    let ctx = Context {
        calendar: &cal,
        directory: &d,
        now: t("2026-02-16T12:00:00Z"),
    };
    let views = cpwatch::evaluate::occurrences(&standards(), &c, &ctx);
    let view = |rule: &str| {
        views
            .iter()
            .find(|v| v.fact.rule == rule)
            .unwrap_or_else(|| panic!("{rule}"))
    };
    let icpc = view("icpc-within-15wd");
    assert_eq!(icpc.fact.status, cpwatch::evaluate::Timeliness::Pending);
    assert_eq!(icpc.fact.anchor, EventKind::StrategyDiscussionHeld);
    assert_eq!(icpc.fact.deadline, t("2026-02-23T17:00:00Z"));
    assert_eq!(icpc.standard, "S10");
    let next = icpc.next.as_ref().expect("a reminder to come");
    assert_eq!(
        (next.step.as_str(), next.at),
        ("reminder-1", t("2026-02-18T09:00:00Z"))
    );
    assert_eq!(emails_roles(&next.to)[0].0, "tm1@ksc.example.org");
    // The school's report: the reminder went this morning; next comes "due today".
    let report = view("icpc-agency-report");
    assert_eq!(report.fact.occurrence, "icpc-1:school");
    let next = report.next.as_ref().unwrap();
    assert_eq!(
        (next.step.as_str(), next.at),
        ("due", t("2026-02-18T09:00:00Z"))
    );
    // Once overdue, the next step is the chair's letter, and it says to whom.
    let ctx = Context {
        now: t("2026-02-18T12:00:00Z"),
        ..ctx
    };
    let views = cpwatch::evaluate::occurrences(&standards(), &c, &ctx);
    let report = views
        .iter()
        .find(|v| v.fact.rule == "icpc-agency-report")
        .unwrap();
    let next = report.next.as_ref().unwrap();
    assert_eq!(next.step, "overdue");
    let ctx = Context {
        now: t("2026-02-18T17:00:00Z"),
        ..ctx
    };
    let views = cpwatch::evaluate::occurrences(&standards(), &c, &ctx);
    let report = views
        .iter()
        .find(|v| v.fact.rule == "icpc-agency-report")
        .unwrap();
    assert_eq!(report.fact.status, cpwatch::evaluate::Timeliness::Overdue);
    assert!(
        report.next.is_none(),
        "the letter has gone: nothing further"
    );
}

#[test]
fn a_scottish_deadline_across_the_world_cup_holiday_is_a_day_later() {
    // Strategy decisions are due 1 working day after Friday 12 June 2026: Monday 15 June is a
    // bank holiday in Scotland (not in England and Wales), so Tuesday 16 June at close.
    let events = json!([
        {"kind": "strategy_discussion_held", "at": "2026-06-12T10:00:00Z", "s47_initiated": true}
    ]);
    let due_of = |division: &str| -> String {
        let db = TestDb::new();
        let cp = Cpwatch::new(&db, None).with("CPWATCH_PARTNERSHIPS__KNOWSLEY__DIVISION", division);
        cp.setup(&case_file(events.clone()));
        cp.dry_run("2026-06-20T12:00:00Z")
            .iter()
            .find(|n| n["rule"] == "strategy-decisions-recorded" && n["step"] == "overdue")
            .map(|n| n["due"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(due_of("scotland"), "2026-06-16T16:00:00Z");
    assert_eq!(due_of("england-and-wales"), "2026-06-15T16:00:00Z");
}
