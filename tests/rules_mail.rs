//! Case rules end to end: letters through a real SMTP server, and data quality that never stops
//! the evaluation of other cases.

mod common;

use common::*;
use serde_json::json;

fn file(cases: serde_json::Value) -> String {
    let mut f: serde_json::Value = serde_json::from_str(&case_file(json!([]))).unwrap();
    f["agencies"] = json!([
        {"id": "ksc", "name": "Children's Social Care"},
        {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl"}},
        {"id": "school", "name": "School", "roles": {"safeguarding_lead": "p-dsl", "senior_manager": "p-head"}}
    ]);
    f["people"].as_array_mut().unwrap().extend([
        json!({"id": "p-dsl", "name": "D Lead", "email": "dsl@school.example.org", "agency": "school"}),
        json!({"id": "p-head", "name": "Head Teacher", "email": "head@school.example.org", "agency": "school"}),
    ]);
    f["people"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["id"] != "p-sl1");
    f["cases"] = cases;
    f.to_string()
}

fn roles() -> serde_json::Value {
    json!({"social_worker": "p-sw1", "team_manager": "p-tm1", "conference_chair": "p-ch1", "senior_manager": "p-sm1"})
}

#[test]
fn a_late_agency_report_brings_one_cause_for_concern_letter_from_the_chair() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    let events = json!([
        {"kind": "strategy_discussion_held", "at": "2026-02-02T10:00:00Z", "s47_initiated": true},
        {"kind": "icpc_scheduled", "at": "2026-02-23T10:00:00Z", "recorded_at": "2026-02-09T10:00:00Z",
         "meeting": "icpc-1", "invited_agencies": ["school"]}
    ]);
    cp.setup(&file(
        json!([{"ref": "KN-0001", "roles": roles(), "events": events}]),
    ));
    // After both the report deadline (18th) and the shared-with-family deadline (20th).
    cp.ok(&["evaluate", "--at", "2026-02-20T17:00:00Z"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE kind = 'cause_for_concern'"),
        3,
        "to the head, cc chair and DSL"
    );
    cp.ok(&["deliver", "--once"]);
    let mail = smtp.wait_for(1, 10);
    let letters: Vec<_> = mail
        .iter()
        .filter(|m| {
            m.header("Subject")
                .unwrap()
                .starts_with("KN-0001 cause for concern:")
        })
        .collect();
    assert_eq!(
        letters.len(),
        3,
        "{:?}",
        mail.iter().map(|m| m.header("Subject")).collect::<Vec<_>>()
    );
    let head = letters
        .iter()
        .find(|m| m.to == ["head@school.example.org"])
        .expect("the letter goes to the agency's manager");
    let body = head.text();
    assert!(body.contains("Dear colleague"), "{body}");
    assert!(
        body.contains("I chair the child protection conference for case KN-0001"),
        "{body}"
    );
    assert!(
        body.contains(
            "By Wednesday 18 February 2026, 17:00 GMT this had not been received from your agency"
        ),
        "{body}"
    );
    assert!(
        body.contains("Conference chair, Safeguarding and Quality Assurance unit"),
        "{body}"
    );
    assert!(
        body.contains(
            "Also told: the conference chair and the agency's representative at the meeting"
        ),
        "{body}"
    );
    let chair = letters
        .iter()
        .find(|m| m.to == ["chair1@ksc.example.org"])
        .unwrap();
    assert!(
        chair
            .text()
            .contains("You are copied for information: this letter went in your name"),
        "{}",
        chair.text()
    );
}

#[test]
fn the_chairs_challenge_goes_to_team_and_senior_manager_together() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let events = json!([
        {"kind": "strategy_discussion_held", "at": "2026-01-05T10:00:00Z", "s47_initiated": true},
        {"kind": "icpc_held", "at": "2026-01-27T10:00:00Z", "outcome": "plan"},
        {"kind": "core_group_held", "at": "2026-02-02T10:00:00Z"},
        {"kind": "child_seen", "at": "2026-02-02T10:00:00Z"}
    ]);
    cp.setup(&file(
        json!([{"ref": "KN-0001", "roles": roles(), "events": events}]),
    ));
    let notes = cp.dry_run("2026-03-04T17:00:00Z");
    let challenges: Vec<_> = notes
        .iter()
        .filter(|n| n["step"] == "chair-challenge-1")
        .collect();
    assert_eq!(challenges.len(), 2, "core groups and visits: {notes:?}");
    for c in challenges {
        assert_eq!(c["kind"], "overdue_escalation");
        assert_eq!(
            c["to"],
            json!(["tm1@ksc.example.org", "sm1@ksc.example.org"])
        );
        assert_eq!(c["cc"], json!(["chair1@ksc.example.org"]));
        assert_eq!(c["due"], "2026-03-02T17:00:00Z");
    }
}

#[test]
fn histories_that_make_no_sense_are_reported_and_other_cases_go_on() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let good = json!([{"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}]);
    // An ICPC with no strategy discussion before it, and a core group with no plan.
    let odd = json!([
        {"kind": "icpc_held", "at": "2026-03-02T10:00:00Z", "outcome": "no_plan"},
        {"kind": "strategy_discussion_held", "at": "2026-03-03T10:00:00Z", "s47_initiated": false},
        {"kind": "core_group_held", "at": "2026-03-04T10:00:00Z"}
    ]);
    cp.setup(&file(json!([
        {"ref": "KN-ODD", "roles": roles(), "events": odd},
        {"ref": "KN-GOOD", "roles": roles(), "events": good}
    ])));
    let notes = cp.dry_run("2026-03-18T09:00:00Z");
    let mut dq: Vec<_> = notes
        .iter()
        .filter(|n| n["kind"] == "data_quality")
        .map(|n| {
            (
                n["case"].as_str().unwrap().to_owned(),
                n["step"].as_str().unwrap().to_owned(),
                n["to"].to_string(),
            )
        })
        .collect();
    dq.sort();
    assert_eq!(
        dq,
        vec![
            (
                "KN-ODD".into(),
                "icpc-without-strategy-discussion".into(),
                json!(["tm1@ksc.example.org"]).to_string()
            ),
            (
                "KN-ODD".into(),
                "plan-without-start".into(),
                json!(["tm1@ksc.example.org"]).to_string()
            ),
        ]
    );
    assert!(
        notes.iter().any(|n| n["case"] == "KN-GOOD"
            && n["rule"] == "icpc-within-15wd"
            && n["kind"] == "reminder"),
        "{notes:?}"
    );
    // Written once: a second pass at a later hour adds no second notice.
    cp.ok(&["evaluate", "--at", "2026-03-18T09:00:00Z"]);
    cp.ok(&["evaluate", "--at", "2026-03-18T10:00:00Z", "--full"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE kind = 'data_quality'"),
        2
    );
}
