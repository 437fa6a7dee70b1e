//! Issue 11, "Input": files that are odd rather than malformed are refused with exit 2 and the
//! place named (on the previous main each of these was exit 1 "database error", or accepted
//! and wrong later), or, for very many events, accepted and written in chunks.

mod common;

use common::*;
use serde_json::{json, Value};

fn file_with(patch: impl FnOnce(&mut Value)) -> String {
    let mut f: Value = serde_json::from_str(&case_file(json!([]))).unwrap();
    patch(&mut f);
    f.to_string()
}

fn setup() -> (TestDb, Cpwatch) {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    (db, cp)
}

#[test]
fn a_nul_byte_in_a_name_is_refused_with_its_place() {
    let (db, cp) = setup();
    let err = cp.rejected(&file_with(|f| {
        f["people"][0]["name"] = json!("A\u{0}Worker")
    }));
    assert!(
        err.contains("person p-sw1, field name: contains a NUL byte"),
        "{err}"
    );
    let err = cp.rejected(&file_with(|f| {
        f["cases"][0]["events"] = json!([{"kind": "core_group_held", "at": "2026-03-02T10:00:00Z", "meeting": "m\u{0}1"}])
    }));
    assert!(err.contains("field meeting: contains a NUL byte"), "{err}");
    assert_eq!(db.count("SELECT count(*) AS n FROM people"), 0);
}

#[test]
fn strings_over_their_documented_length_are_refused() {
    let (_db, cp) = setup();
    let err = cp.rejected(&file_with(|f| {
        f["people"][0]["name"] = json!("x".repeat(201))
    }));
    assert!(
        err.contains("person p-sw1, field name: is 201 characters long; the limit is 200"),
        "{err}"
    );
    let err = cp.rejected(&file_with(|f| {
        f["cases"][0]["events"] = json!([{"kind": "core_group_held", "at": "2026-03-02T10:00:00Z", "meeting": "m".repeat(101)}])
    }));
    assert!(
        err.contains("field meeting: is 101 characters long; the limit is 100"),
        "{err}"
    );
}

#[test]
fn names_with_line_breaks_or_bidirectional_controls_are_refused() {
    let (_db, cp) = setup();
    for (name, what) in [
        ("A Worker\r\nBcc: someone", "a line break"),
        ("A Worker\nTo: x", "a line break"),
        ("A \u{202E}rekroW", "a bidirectional-text control character"),
        ("A\u{7}Worker", "a control character"),
    ] {
        let err = cp.rejected(&file_with(|f| f["people"][0]["name"] = json!(name)));
        assert!(
            err.contains(&format!("person p-sw1, field name: contains {what}")),
            "{err}"
        );
    }
    let err = cp.rejected(&file_with(|f| {
        f["agencies"][0]["name"] = json!("Social\nCare")
    }));
    assert!(
        err.contains("agency ksc, field name: contains a line break"),
        "{err}"
    );
}

#[test]
fn implausible_dates_are_refused_with_the_field_named() {
    let (_db, cp) = setup();
    for at in [
        "0000-01-01T00:00:00Z",
        "9999-12-31T00:00:00Z",
        "2016-12-31T23:59:60Z",
        "1989-12-31T12:00:00Z",
    ] {
        let err = cp.rejected(&file_with(|f| {
            f["cases"][0]["events"] = json!([{"kind": "child_seen", "at": at}])
        }));
        assert!(
            err.contains(&format!(
                "case KN-0001, event 0 (child_seen), field at: \"{at}\""
            )),
            "{at}: {err}"
        );
        assert!(
            err.contains("leap second") || err.contains("outside the dates cpwatch accepts"),
            "{err}"
        );
    }
}

#[test]
fn duplicate_dispute_and_agency_ids_are_refused() {
    let (db, cp) = setup();
    let dispute = |risk: bool| {
        json!({"id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019",
        "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "immediate_risk": risk})
    };
    let err = cp.rejected(&file_with(|f| {
        f["disputes"] = json!([dispute(false), dispute(true)])
    }));
    assert!(
        err.contains("dispute D-1: appears twice in disputes"),
        "{err}"
    );
    let err = cp.rejected(&file_with(|f| {
        f["agencies"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "ksc", "name": "Again"}))
    }));
    assert!(
        err.contains("agency ksc: appears twice in agencies"),
        "{err}"
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM disputes"), 0);
}

#[test]
fn very_many_events_are_written_in_chunks_and_too_many_refused() {
    let (db, cp) = setup();
    // 13,108 dispute events hit PostgreSQL's bind-parameter limit in one statement.
    let events: Vec<Value> = (0..13_108)
        .map(|i| json!({"kind": "outcome_confirmed", "at": format!("2026-03-03T10:00:{:02}.{:06}Z", i % 60, i)}))
        .collect();
    let text = file_with(|f| {
        f["disputes"] = json!([{"id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019",
            "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "events": events}])
    });
    let out = cp.import_text(&text);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM dispute_events"), 13_108);
    let events: Vec<Value> = (0..50_001)
        .map(|i| json!({"kind": "child_seen", "at": "2026-03-03T10:00:00Z", "id": format!("e{i}")}))
        .collect();
    let err = cp.rejected(&file_with(|f| f["cases"][0]["events"] = json!(events)));
    assert!(
        err.contains("case KN-0001: has 50001 events; the limit is 50000 per case or dispute"),
        "{err}"
    );
}

#[test]
fn an_endless_or_oversized_case_file_is_refused_before_it_fills_memory() {
    let (_db, cp) = setup();
    let out = cp.run(&["import", "/dev/zero"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/zero: larger than the 100 MB a case file may be"),
        "{err}"
    );
}
