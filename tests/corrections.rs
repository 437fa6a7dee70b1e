//! Corrections: an event sent again with the sender's id and another time replaces the stored
//! one (not a second event), a retraction removes it, the queued notices the change made moot
//! are withdrawn on the next pass, and each change is in the audit log with its source.

mod common;

use common::*;
use serde_json::json;

const PENDING_OLD: &str = "SELECT count(*) AS n FROM outbox WHERE status = 'pending' \
     AND rule = 'icpc-within-15wd' AND occurrence = '2026-03-02T10:00:00Z'";

#[test]
fn a_corrected_time_replaces_the_event_and_withdraws_its_notices() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let sent = |at: &str| {
        case_file(json!([
            {"id": "sd-1", "kind": "strategy_discussion_held", "at": at, "s47_initiated": true},
            {"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"},
            {"kind": "strategy_minutes_circulated", "at": "2026-03-02T12:00:00Z"}
        ]))
    };
    cp.setup(&sent("2026-03-02T10:00:00Z"));
    cp.ok(&["evaluate", "--at", "2026-03-25T10:00:00Z"]);
    assert!(
        db.count(PENDING_OLD) >= 1,
        "the conference is overdue and queued"
    );

    // The case system corrects the strategy discussion's date.
    let out = cp.import_text(&sent("2026-03-16T10:00:00Z"));
    assert!(out.status.success());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM case_events WHERE kind = 'strategy_discussion_held'"),
        1,
        "one event, moved"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM case_events WHERE source_id = 'sd-1' AND at = '2026-03-16T10:00:00Z'"),
        1
    );
    let out = cp.ok(&["evaluate", "--at", "2026-03-25T10:05:00Z"]);
    assert_eq!(db.count(PENDING_OLD), 0, "moot: withdrawn\n{out}");
    assert!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'cancelled' AND occurrence = '2026-03-02T10:00:00Z'") >= 1
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'events_changed' AND actor = 'case-file' \
             AND subject = 'knowsley/case/KN-0001' AND detail->'corrected'->0->'from'->>'at' = '2026-03-02T10:00:00Z' \
             AND detail->'corrected'->0->'to'->>'at' = '2026-03-16T10:00:00Z'"
        ),
        1
    );

    // Sending the corrected file again changes nothing.
    let audits = db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'events_changed'");
    assert!(cp
        .import_text(&sent("2026-03-16T10:00:00Z"))
        .status
        .success());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'events_changed'"),
        audits
    );

    // A retraction removes it, and with it the conference's clock.
    let retract = case_file(json!([{"id": "sd-1", "retracted": true}]));
    let out = cp.import_text(&retract);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM case_events WHERE kind = 'strategy_discussion_held'"),
        0
    );
    let notes = cp.dry_run("2026-04-20T10:00:00Z");
    assert!(
        !notes.iter().any(|n| n["rule"] == "icpc-within-15wd"),
        "{notes:?}"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'events_changed' \
             AND detail->'removed'->0->>'id' = 'sd-1'"
        ),
        1
    );
}

#[test]
fn ids_are_checked() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let err = cp.rejected(&case_file(json!([
        {"id": "e-1", "kind": "child_seen", "at": "2026-03-02T10:00:00Z"},
        {"id": "e-1", "kind": "child_seen", "at": "2026-03-03T10:00:00Z"}
    ])));
    assert!(
        err.contains("case KN-0001, event 1 (child_seen): its id appears twice"),
        "{err}"
    );
    let err = cp.rejected(&case_file(json!([{"retracted": true}])));
    assert!(
        err.contains("field id: is required to retract an event"),
        "{err}"
    );
    let err = cp.rejected(&case_file(
        json!([{"id": 7, "kind": "child_seen", "at": "2026-03-02T10:00:00Z"}]),
    ));
    assert!(err.contains("field id: must be a string"), "{err}");
}

#[test]
fn a_dispute_event_is_corrected_by_its_id() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let with = |at: &str| {
        let mut f: serde_json::Value = serde_json::from_str(&case_file(json!([]))).unwrap();
        f["disputes"] = json!([{"id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019",
            "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z",
            "events": [{"id": "r-1", "kind": "resolved", "at": at, "outcome": "agreed"}]}]);
        f.to_string()
    };
    cp.setup(&with("2026-03-03T10:00:00Z"));
    assert!(cp
        .import_text(&with("2026-03-04T10:00:00Z"))
        .status
        .success());
    assert_eq!(db.count("SELECT count(*) AS n FROM dispute_events"), 1);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM dispute_events WHERE at = '2026-03-04T10:00:00Z' AND source_id = 'r-1'"),
        1
    );
}
