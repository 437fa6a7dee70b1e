//! The import validator on its own: case files checked against a set of known ids, with no
//! database. Each test names a problem the validator must find (or must not).

use cpwatch::domain::{DisputeEventKind, EventKind, PersonId};
use cpwatch::import::{json, validate, Ladders};
use cpwatch::records::{ImportBatch, Known};
use serde_json::{json, Value};

fn ladders() -> Ladders {
    cpwatch::policy::Catalogue::load(None)
        .expect("the shipped policies load")
        .ladders
}

fn check(file: &Value, known: &Known) -> Result<ImportBatch, Vec<String>> {
    let doc = json::parse(&file.to_string()).expect("well-formed JSON always parses");
    validate::validate(&doc, &["knowsley".to_owned()], &ladders(), known)
}

/// The problems of a file that must be rejected.
fn problems(file: &Value, known: &Known) -> Vec<String> {
    match check(file, known) {
        Ok(_) => panic!("accepted: {file}"),
        Err(p) => p,
    }
}

fn known(people: &[&str], agencies: &[&str], cases: &[&str]) -> Known {
    let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect();
    Known {
        people: set(people),
        agencies: set(agencies),
        cases: set(cases),
    }
}

fn good() -> Value {
    json!({
        "partnership": "knowsley",
        "agencies": [{"id": "ksc", "name": "Children's Social Care", "roles": {"safeguarding_lead": "p-sl1"}}],
        "people": [
            {"id": "p-sw1", "name": "Worker", "email": "sw1@ksc.example.org", "agency": "ksc", "manager": "p-tm1"},
            {"id": "p-tm1", "name": "Manager", "agency": "ksc"},
            {"id": "p-sl1", "name": "Lead", "agency": "ksc"},
            {"id": "p-hv1", "name": "Health visitor"}
        ],
        "partnership_roles": {"partnership_chair": "p-tm1"},
        "cases": [{
            "ref": "KN-0001", "visit_interval_days": 10,
            "roles": {"social_worker": "p-sw1", "core_group_member": ["p-hv1", "p-sl1"]},
            "events": [
                {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
                {"kind": "icpc_held", "at": "2026-03-20T10:00:00+01:00", "outcome": "plan"}
            ]
        }],
        "disputes": [{
            "id": "D-1", "case": "KN-0001", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1",
            "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z",
            "events": [
                {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 2, "by": "p-hv1"},
                {"kind": "resolved", "at": "2026-03-04T10:00:00Z", "outcome": "agreed"}
            ]
        }]
    })
}

#[test]
fn a_good_file_becomes_typed_records() {
    let batch = check(&good(), &Known::default()).expect("valid");
    assert_eq!(batch.partnership.as_str(), "knowsley");
    assert_eq!(batch.people.len(), 4);
    assert_eq!(batch.agencies[0].roles[0].0, "safeguarding_lead");
    let case = &batch.cases[0];
    assert_eq!(case.visit_interval_days, Some(10));
    assert_eq!(
        case.roles,
        vec![
            (
                "core_group_member".to_owned(),
                PersonId::parse("p-hv1").unwrap()
            ),
            (
                "core_group_member".to_owned(),
                PersonId::parse("p-sl1").unwrap()
            ),
            (
                "social_worker".to_owned(),
                PersonId::parse("p-sw1").unwrap()
            ),
        ]
    );
    let kinds: Vec<EventKind> = case.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::StrategyDiscussionHeld, EventKind::IcpcHeld]
    );
    assert_eq!(case.events[1].at.to_rfc3339(), "2026-03-20T09:00:00+00:00");
    assert_eq!(
        case.events[1].data,
        json!({"outcome": "plan"}).as_object().unwrap().clone()
    );
    let d = &batch.disputes[0];
    assert_eq!(d.case.as_ref().map(|c| c.as_str()), Some("KN-0001"));
    assert_eq!(d.events[0].kind, DisputeEventKind::Escalated);
    assert_eq!(d.events[0].stage, Some(2));
    assert_eq!(d.events[1].kind, DisputeEventKind::Resolved);
    assert_eq!(d.events[1].outcome.as_deref(), Some("agreed"));
}

#[test]
fn an_unknown_person_is_named_with_its_place() {
    let mut f = good();
    f["cases"][0]["events"][0] = json!({"kind": "medical_examination", "at": "2026-03-03T10:00:00Z", "examining_doctor": "p-nobody"});
    assert_eq!(
        problems(&f, &Known::default()),
        ["case KN-0001, event 0 (medical_examination), field examining_doctor: unknown person \"p-nobody\" (not in this file's people nor already imported)"]
    );
}

#[test]
fn an_unknown_event_kind_is_a_problem_and_its_fields_go_unchecked() {
    let mut f = good();
    f["cases"][0]["events"][1] =
        json!({"kind": "icpc_hold", "at": "2026-03-20T10:00:00Z", "whatever": 1});
    assert_eq!(
        problems(&f, &Known::default()),
        ["case KN-0001, event 1 (icpc_hold), field kind: \"icpc_hold\" is not an event kind"]
    );
}

#[test]
fn a_bad_date_is_named_with_what_it_was() {
    let mut f = good();
    f["cases"][0]["events"][1]["at"] = json!("20/03/2026");
    f["disputes"][0]["opened_at"] = json!("2026-03-02");
    let p = problems(&f, &Known::default());
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with(
        "case KN-0001, event 1 (icpc_held), field at: \"20/03/2026\" is not an RFC 3339 date-time"
    ));
    assert!(p[1]
        .starts_with("dispute D-1, field opened_at: \"2026-03-02\" is not an RFC 3339 date-time"));
}

#[test]
fn a_person_given_twice_is_a_problem() {
    let mut f = good();
    f["people"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "p-sw1", "name": "Again"}));
    assert_eq!(
        problems(&f, &Known::default()),
        ["person p-sw1: appears twice in people"]
    );
}

#[test]
fn references_may_point_forwards_within_the_file() {
    let f = json!({
        "partnership": "knowsley",
        "agencies": [{"id": "ksc", "name": "CSC", "roles": {"safeguarding_lead": "p-later"}}],
        "people": [
            {"id": "p-first", "name": "First", "agency": "ksc", "manager": "p-later"},
            {"id": "p-later", "name": "Later", "agency": "ksc"}
        ],
        "cases": [{"ref": "KN-0001", "roles": {"social_worker": "p-first"}}],
        "disputes": [{"id": "D-1", "case": "KN-0001", "policy": "pan-cheshire-escalation",
                      "raised_by": "p-later", "respondent_agency": "ksc", "opened_at": "2026-03-02T10:00:00Z"}]
    });
    let batch = check(&f, &Known::default()).expect("valid");
    assert_eq!(
        batch.people[0].manager.as_ref().unwrap().as_str(),
        "p-later"
    );
    assert_eq!(
        batch.disputes[0]
            .respondent_agency
            .as_ref()
            .unwrap()
            .as_str(),
        "ksc"
    );
}

#[test]
fn ids_already_in_the_database_may_be_named_without_being_declared() {
    let f = json!({
        "partnership": "knowsley",
        "cases": [{"ref": "KN-0002", "roles": {"social_worker": "p-sw1"},
                   "events": [{"kind": "report_received", "at": "2026-03-18T10:00:00Z", "meeting": "m1", "agency": "health"}]}],
        "disputes": [{"id": "D-1", "case": "KN-0001", "policy": "pan-cheshire-escalation",
                      "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z"}]
    });
    let db = known(&["p-sw1", "p-hv1"], &["health"], &["KN-0001"]);
    let batch = check(&f, &db).expect("valid against what the database holds");
    assert_eq!(batch.cases.len(), 1);
    assert_eq!(
        problems(&f, &Known::default()),
        [
            "case KN-0002, field roles.social_worker: unknown person \"p-sw1\" (not in this file's people nor already imported)",
            "case KN-0002, event 0 (report_received), field agency: unknown agency \"health\"",
            "dispute D-1, field case: unknown case \"KN-0001\"",
            "dispute D-1, field raised_by: unknown person \"p-hv1\" (not in this file's people nor already imported)",
            "dispute D-1, field respondent: unknown person \"p-sw1\" (not in this file's people nor already imported)",
        ]
    );
}

#[test]
fn a_resolution_before_the_dispute_was_opened_is_a_problem() {
    let mut f = good();
    f["disputes"][0]["events"][1]["at"] = json!("2026-03-02T09:59:59Z");
    assert_eq!(
        problems(&f, &Known::default()),
        ["dispute D-1, event 1 (resolved), field at: 2026-03-02T09:59:59+00:00 is before the dispute was opened (2026-03-02T10:00:00+00:00)"]
    );
}

#[test]
fn wrong_types_and_unknown_fields_are_all_reported_at_once() {
    let f = json!({
        "partnership": "knowsley",
        "colour": "red",
        "agencies": [{"id": 7}],
        "people": [{"id": "p-1", "name": ["x"], "email": "nobody"}],
        "cases": [{"ref": "KN-0001", "unborn": "no", "visit_interval_days": 0, "roles": {"janitor": "p-1"},
                   "events": [{"kind": "icpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "maybe", "venue": "hall"}]}],
        "disputes": [{"id": "D-1", "policy": "pan-cheshire-escalation", "raised_by": "p-1", "respondent": "p-1",
                      "opened_at": "2026-03-02T10:00:00Z", "events": [{"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 9}]}]
    });
    assert_eq!(
        problems(&f, &Known::default()),
        [
            "the file, field colour: unknown field (expected one of: partnership, agencies, people, partnership_roles, cases, disputes)",
            "agencies[0], field id: is required",
            "agency #0, field id: must be a string",
            "agency #0, field name: is required",
            "person p-1, field name: must be a string",
            "person p-1, field email: \"nobody\" is not an email address",
            "case KN-0001, field unborn: must be true or false",
            "case KN-0001, field visit_interval_days: must be a whole number of days from 1 to 366",
            "case KN-0001, field roles.janitor: unknown role (expected one of: social_worker, team_manager, assistant_team_manager, conference_chair, senior_manager, head_of_service_safeguarding, legal, core_group_member, mash_team_manager)",
            "case KN-0001, event 0 (icpc_held), field venue: unknown field (expected one of: kind, at, recorded_at, id, retracted, outcome, meeting, enquiry)",
            "case KN-0001, event 0 (icpc_held), field outcome: must be one of plan, no_plan",
            "dispute D-1, event 0 (escalated), field stage: must be a stage number from 1 to 4",
            "dispute D-1, event 0 (escalated), field stage: is required for an escalation",
        ]
    );
}

#[test]
fn the_partnership_is_found_before_anything_is_looked_up() {
    let parse = |v: Value| json::parse(&v.to_string()).unwrap();
    // Unconfigured: still looked up (its problem is reported with the rest).
    let doc = parse(json!({"partnership": "nowhere"}));
    assert_eq!(validate::partnership(&doc).unwrap().as_str(), "nowhere");
    assert_eq!(
        validate::validate(&doc, &["knowsley".into()], &ladders(), &Known::default()).unwrap_err(),
        ["the file, field partnership: \"nowhere\" is not a configured partnership (configured: knowsley)"]
    );
    assert_eq!(
        validate::partnership(&parse(json!({"cases": []}))).unwrap_err(),
        ["the file, field partnership: is required"]
    );
    assert_eq!(
        validate::partnership(&parse(json!(["knowsley"]))).unwrap_err(),
        ["the file: must be a JSON object"]
    );
}

#[test]
fn only_malformed_json_fails_to_parse_and_a_repeated_key_keeps_its_last_value() {
    assert!(json::parse("{ not json").is_err());
    assert!(json::parse(r#"{"partnership": "knowsley"} x"#).is_err());
    let doc = json::parse(r#"{"partnership": "a b", "partnership": "knowsley"}"#).unwrap();
    assert_eq!(validate::partnership(&doc).unwrap().as_str(), "knowsley");
}
