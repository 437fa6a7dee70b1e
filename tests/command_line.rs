//! The command line's contract, through the binary on PostgreSQL: a writing `evaluate` prints
//! exactly what it newly queued and the stage changes it made (cases and disputes alike), a dry
//! run exactly what a writing pass would, `--list-due` everything due saying whether it is
//! queued, `--case` one case; and `cpwatch case REF` shows a case's deadlines, disputes and
//! notices on one screen.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// KN-0001: a section 47 strategy discussion on Monday 2 March 2026 (ICPC due Monday 23rd),
/// decisions recorded on time, minutes late, a medical with no consent recorded and its report
/// on time; a Knowsley disagreement about it opened the same day. KN-0002: an enquiry that found
/// no conference needed.
fn file() -> String {
    let events = json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "strategy_decisions_recorded", "at": "2026-03-03T10:00:00Z"},
        {"kind": "strategy_minutes_circulated", "at": "2026-03-04T12:00:00Z"},
        {"kind": "medical_examination", "at": "2026-03-03T10:00:00Z", "examining_doctor": "p-hv1"},
        {"kind": "medical_report_received", "at": "2026-03-05T09:00:00Z"}
    ]);
    let mut f: Value = serde_json::from_str(&case_file(events)).unwrap();
    let roles = f["cases"][0]["roles"].clone();
    f["cases"].as_array_mut().unwrap().push(json!({
        "ref": "KN-0002", "roles": roles, "events": [
            {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
            {"kind": "s47_completed", "at": "2026-03-06T10:00:00Z", "icpc_required": false}
        ]
    }));
    f["disputes"] = json!([{
        "id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
        "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "subject": "threshold decision", "events": []
    }]);
    f.to_string()
}

fn setup(smtp: Option<&SmtpServer>) -> (TestDb, Cpwatch) {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, smtp);
    cp.setup(&file());
    (db, cp)
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// (kind, key or dispute:from->to) of each line.
fn ids(lines: &[Value]) -> BTreeSet<String> {
    lines
        .iter()
        .map(|l| match l["kind"].as_str().unwrap() {
            "stage_change" => format!("stage_change {}:{}->{}", l["dispute"], l["from"], l["to"]),
            _ => l["key"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn evaluate(cp: &Cpwatch, at: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["evaluate", "--at", at, "--format", "json"];
    args.extend_from_slice(extra);
    json_lines(&cp.ok(&args))
}

#[test]
fn each_pass_prints_what_it_newly_queued_and_a_dry_run_what_a_pass_would() {
    let (_db, cp) = setup(None);
    let mut printed = BTreeSet::new();
    for at in [
        "2026-03-03T10:00:00Z",
        "2026-03-05T17:00:00Z",
        "2026-03-11T09:00:00Z",
        "2026-03-12T17:00:00Z",
        "2026-03-20T12:00:00Z",
    ] {
        let dry = evaluate(&cp, at, &["--dry-run"]);
        let wrote = evaluate(&cp, at, &[]);
        assert_eq!(
            ids(&dry),
            ids(&wrote),
            "the dry run at {at} foretold the pass"
        );
        for line in &wrote {
            if line["kind"] != "stage_change" {
                assert!(
                    printed.insert(line["key"].as_str().unwrap().to_owned()),
                    "{at}: {} was printed by an earlier pass",
                    line["key"]
                );
            }
        }
        // The same instant again: nothing new.
        assert!(evaluate(&cp, at, &["--full"]).is_empty(), "{at}");
    }
    // The stage the dispute entered on the 5th is not printed again on later passes, but the
    // stage-2 reminder and the move to stage 3 are, once.
    assert!(printed.contains("knowsley/dispute/D-1/knowsley-escalation-2019:2/entered"));
    assert!(printed.contains("knowsley/dispute/D-1/knowsley-escalation-2019:2/reminder"));
    assert!(printed.contains("knowsley/dispute/D-1/knowsley-escalation-2019:3/entered"));
    assert!(printed.contains("knowsley/case/KN-0001/medical-consent/2026-03-03T10:00:00Z/overdue"));
}

#[test]
fn a_pass_prints_each_stage_change_it_made_once() {
    let (_db, cp) = setup(None);
    let first = evaluate(&cp, "2026-03-12T17:00:00Z", &[]);
    let changes: Vec<&Value> = first
        .iter()
        .filter(|l| l["kind"] == "stage_change")
        .collect();
    assert_eq!(
        changes,
        vec![
            &json!({"kind": "stage_change", "dispute": "D-1", "policy": "knowsley-escalation-2019", "from": 1, "to": 2, "at": "2026-03-05T17:00:00Z"}),
            &json!({"kind": "stage_change", "dispute": "D-1", "policy": "knowsley-escalation-2019", "from": 2, "to": 3, "at": "2026-03-12T17:00:00Z"}),
        ]
    );
    let text = cp.ok(&["evaluate", "--at", "2026-03-13T10:00:00Z", "--full"]);
    assert!(!text.contains("stage_change"), "{text}");
    assert!(text.contains("0 notice(s) newly queued"), "{text}");
}

#[test]
fn list_due_lists_everything_due_saying_which_is_queued() {
    let (_db, cp) = setup(None);
    evaluate(&cp, "2026-03-05T17:00:00Z", &[]);
    let listed = evaluate(&cp, "2026-03-11T09:00:00Z", &["--list-due", "--dry-run"]);
    let queued: BTreeSet<&str> = listed
        .iter()
        .filter(|l| l["queued"] == true)
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    let not_yet: BTreeSet<&str> = listed
        .iter()
        .filter(|l| l["queued"] == false)
        .map(|l| l["key"].as_str().unwrap())
        .collect();
    assert!(
        queued.contains("knowsley/dispute/D-1/knowsley-escalation-2019:2/entered"),
        "{listed:?}"
    );
    assert!(
        not_yet.contains("knowsley/dispute/D-1/knowsley-escalation-2019:2/reminder"),
        "{listed:?}"
    );
    assert!(listed
        .iter()
        .all(|l| l["kind"] == "stage_change" || l["queued"].is_boolean()));
    // Without the option the same dry run prints only what is not queued, and no "queued" field.
    let new = evaluate(&cp, "2026-03-11T09:00:00Z", &["--dry-run"]);
    let new_keys: BTreeSet<&str> = new.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(new_keys, not_yet);
    assert!(new.iter().all(|l| l.get("queued").is_none()));
    // The text form says the same in words.
    let text = cp.ok(&[
        "evaluate",
        "--at",
        "2026-03-11T09:00:00Z",
        "--list-due",
        "--dry-run",
    ]);
    assert!(
        text.lines().any(|l| l.starts_with("already queued  escalation_stage")
            && l.contains("dispute D-1")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("not queued yet  reminder")
                && l.contains("knowsley-escalation-2019:2")),
        "{text}"
    );
    let written = cp.ok(&["evaluate", "--at", "2026-03-11T09:00:00Z"]);
    assert!(
        written
            .lines()
            .any(|l| l.starts_with("queued          reminder")),
        "{written}"
    );
}

#[test]
fn evaluate_case_looks_at_one_case_and_its_disputes() {
    let (db, cp) = setup(None);
    let lines = evaluate(&cp, "2026-03-05T17:00:00Z", &["--case", "KN-0002"]);
    assert!(!lines.is_empty());
    assert!(lines.iter().all(|l| l["case"] == "KN-0002"), "{lines:?}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM notices WHERE case_ref <> 'KN-0002'"),
        0
    );
    let lines = evaluate(&cp, "2026-03-05T17:00:00Z", &["--case", "KN-0001"]);
    assert!(lines
        .iter()
        .any(|l| l["kind"] == "stage_change" && l["dispute"] == "D-1"));
    let out = cp.run(&["evaluate", "--case", "KN-9999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no case \"KN-9999\""));
}

#[test]
fn case_shows_deadlines_disputes_and_who_has_been_told() {
    let smtp = SmtpServer::start();
    let (db, cp) = setup(Some(&smtp));
    smtp.reject("sm1@ksc.example.org", 550);
    cp.ok(&["evaluate", "--at", "2026-03-05T17:00:00Z"]);
    cp.ok(&["deliver", "--once", "--at", "2026-03-06T09:00:00Z"]);
    cp.ok(&["evaluate", "--at", "2026-03-18T09:00:00Z"]);
    // The conference is held before the reminder goes: the reminder is withdrawn.
    let mut f: Value = serde_json::from_str(&file()).unwrap();
    f["cases"][0]["events"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "icpc_held", "at": "2026-03-18T10:00:00Z", "outcome": "plan"}));
    assert!(cp.import_text(&f.to_string()).status.success());
    cp.ok(&["evaluate", "--at", "2026-03-18T11:00:00Z"]);

    let view: Value = serde_json::from_str(&cp.ok(&[
        "case",
        "KN-0001",
        "--at",
        "2026-03-18T11:00:00Z",
        "--format",
        "json",
    ]))
    .unwrap();
    let events: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(events[0], "strategy_discussion_held");
    assert_eq!(*events.last().unwrap(), "icpc_held");
    let rule = |id: &str| -> &Value {
        view["timescales"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    assert_eq!(
        rule("strategy-decisions-recorded")["status"],
        "done_on_time"
    );
    assert_eq!(rule("strategy-minutes-circulated")["status"], "done_late");
    assert_eq!(rule("medical-consent")["status"], "overdue");
    assert_eq!(rule("icpc-within-15wd")["status"], "done_on_time");
    assert_eq!(
        rule("icpc-within-15wd")["deadline_local"],
        "Mon 23 Mar 2026 17:00 GMT"
    );
    let debrief = rule("family-debrief");
    assert_eq!(debrief["status"], "pending");
    assert_eq!(debrief["anchor"]["kind"], "icpc_held");
    // Its next step: the reminder one working day before Monday's deadline, to the social worker.
    assert_eq!(debrief["next"]["step"], "reminder-1");
    assert_eq!(debrief["next"]["to"], json!(["sw1@ksc.example.org"]));
    let d = &view["disputes"][0];
    assert_eq!(d["dispute"], "D-1");
    assert_eq!(d["stage"], 3);
    assert_eq!(d["history"].as_array().unwrap().len(), 2);
    assert_eq!(d["stage_deadline"], "2026-03-19T17:00:00Z");
    assert_eq!(
        d["then"],
        "then stage 4 (Referral to the LSCP Chair via the Strategic Forum)"
    );
    let notices = view["notices"].as_array().unwrap();
    let status_of = |key_part: &str, who: &str| -> Vec<&str> {
        notices
            .iter()
            .filter(|n| n["key"].as_str().unwrap().contains(key_part) && n["recipient"] == who)
            .map(|n| n["status"].as_str().unwrap())
            .collect()
    };
    assert_eq!(
        status_of("strategy-minutes-circulated", "tm1@ksc.example.org"),
        Vec::<&str>::new()
    );
    assert_eq!(
        status_of(
            "medical-consent/2026-03-03T10:00:00Z/overdue",
            "tm1@ksc.example.org"
        ),
        ["sent"]
    );
    assert_eq!(
        status_of(
            "icpc-within-15wd/2026-03-02T10:00:00Z/reminder-1",
            "tm1@ksc.example.org"
        ),
        ["cancelled"]
    );
    assert!(
        notices
            .iter()
            .any(|n| n["status"] == "failed" && n["recipient"] == "sm1@ksc.example.org"),
        "{notices:?}"
    );
    // KN-0002: the conference was found not to be needed.
    let other: Value = serde_json::from_str(&cp.ok(&[
        "case",
        "KN-0002",
        "--at",
        "2026-03-18T11:00:00Z",
        "--format",
        "json",
    ]))
    .unwrap();
    let icpc = other["timescales"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "icpc-within-15wd")
        .unwrap();
    assert_eq!(icpc["status"], "cancelled");
    assert_eq!(icpc["cancelled"]["by"], "s47_completed");

    // The text a chair reads says the same.
    let text = cp.ok(&["case", "KN-0001", "--at", "2026-03-18T11:00:00Z"]);
    for want in [
        "Case KN-0001 (knowsley), as at Wed 18 Mar 2026 11:00 GMT",
        "deadline Tue 3 Mar 2026 17:00 GMT: done late (Wed 4 Mar 2026 12:00 GMT)",
        "medical-consent (S8)",
        "next: reminder-1 (reminder)",
        "D-1 under knowsley-escalation-2019",
        "now at stage 3 (Senior manager to senior manager), deadline Thu 19 Mar 2026 17:00 GMT; then stage 4",
        "stage 1 -> 2 Thu 5 Mar 2026 17:00 GMT (timescale lapsed)",
        "withdrawn",
        "failed",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'failed'"),
        db.count("SELECT count(*) AS n FROM deliveries WHERE recipient = 'sm1@ksc.example.org' AND status = 'failed'")
    );
    let out = cp.run(&["case", "KN-9999"]);
    assert_eq!(out.status.code(), Some(2));
}
