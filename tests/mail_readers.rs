//! Through the real path (import, evaluate, deliver to a real SMTP server): an escalation that
//! came because the person below has no email address says so, in working days for a
//! working-day rule; and a dispute's stage mail says what the disagreement is about.

mod common;

use common::*;
use serde_json::json;

#[test]
fn an_escalation_says_the_person_below_could_not_be_reached() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    let file = case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"},
        {"kind": "strategy_minutes_circulated", "at": "2026-03-02T12:00:00Z"},
    ]));
    // The team manager, who is responsible for convening the conference, has no address.
    let mut doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    for p in doc["people"].as_array_mut().unwrap() {
        if p["id"] == "p-tm1" {
            p.as_object_mut().unwrap().remove("email");
        }
    }
    let file = doc.to_string();
    assert!(!file.contains("tm1@ksc.example.org"), "{file}");
    cp.setup(&file);
    cp.ok(&["evaluate", "--at", "2026-03-25T17:00:00Z"]);
    cp.ok(&["deliver", "--once"]);
    let mail = smtp.wait_for(1, 10);
    let sm = mail
        .iter()
        .find(|m| m.to == ["sm1@ksc.example.org"])
        .expect("the escalation to the senior manager");
    let body = sm.text();
    assert!(
        body.contains("the person below could not be reached: no email address"),
        "{body}"
    );
    assert!(body.contains("Late by:   2 working days"), "{body}");
    assert!(
        !body.contains("hours"),
        "working days, not elapsed hours: {body}"
    );
    let subject = sm.header("Subject").unwrap();
    assert!(
        subject.starts_with("KN-0001 escalated to you: "),
        "{subject}"
    );
    assert!(subject.len() <= 78, "{subject}");
}

#[test]
fn check_renders_every_template_and_names_the_file_and_line_of_an_error() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let own = dir.path().display().to_string();
    let cp = Cpwatch::new(&db, None).with("CPWATCH_PARTNERSHIPS__KNOWSLEY__TEMPLATES", &own);
    let out = cp.ok(&["check"]);
    assert!(
        out.contains("mail templates: 11 kinds render for every reader"),
        "{out}"
    );
    assert!(
        out.contains(&format!("partnerships' own templates: knowsley ({own})")),
        "{out}"
    );

    // A template that does not compile: refused with its file and line.
    std::fs::write(dir.path().join("overdue.txt.j2"), "Overdue.\n{% if %}\n").unwrap();
    let bad = cp.run(&["check"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(&format!("{own}/overdue.txt.j2 line 2: syntax error")),
        "{err}"
    );

    // One that compiles but fails when rendered (a filter given the wrong argument).
    std::fs::write(
        dir.path().join("overdue.txt.j2"),
        "Overdue.\n{{ title|shorten(\"x\") }}\n",
    )
    .unwrap();
    let bad = cp.run(&["check"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("sample overdue: template overdue.txt.j2 line 2"),
        "{err}"
    );
}
