//! `cpwatch outbox`, end to end through the binary on PostgreSQL and a real SMTP server: list
//! with filters that combine (table and JSON), show a message exactly as it was sent, retry
//! failed and dead deliveries (by id, or by filter after a confirmation) but never a sent one,
//! cancel with a reason; every retry, cancel and show in the audit log with who ran it.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write as _;
use std::process::{Output, Stdio};

const AT: &str = "2026-04-01T12:00:00Z";

/// A case whose conference is overdue, queued and delivered once: the senior manager's address
/// refused for good (550: failed), the chair's for now (451, one attempt allowed: dead), the
/// rest sent. Delivered on the real clock, so a message's "late by" is worded at its sent_at.
fn delivered() -> (TestDb, SmtpServer, Cpwatch) {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    smtp.reject("sm1@ksc.example.org", 550);
    smtp.reject("chair1@ksc.example.org", 451);
    let cp = Cpwatch::new(&db, Some(&smtp))
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
        .with("CPWATCH_DELIVERY__MAX_ATTEMPTS", "1");
    cp.setup(&case_file(serde_json::json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ])));
    cp.ok(&["evaluate", "--at", AT]);
    cp.ok(&["deliver", "--once"]);
    (db, smtp, cp)
}

fn lines(cp: &Cpwatch, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["outbox", "list", "--format", "json"];
    all.extend_from_slice(args);
    cp.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn ids_of(lines: &[Value]) -> Vec<i64> {
    lines.iter().map(|l| l["id"].as_i64().unwrap()).collect()
}

/// Run with `input` on standard input (None: no input at all).
fn with_input(cp: &Cpwatch, args: &[&str], input: Option<&str>) -> Output {
    let mut cmd = cp.command(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run cpwatch");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(text) = input {
        stdin.write_all(text.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn list_filters_combine_in_a_table_and_as_json() {
    let (db, _smtp, cp) = delivered();
    let all = lines(&cp, &[]);
    let total = db.count("SELECT count(*) AS n FROM deliveries");
    assert_eq!(all.len() as i64, total);
    let status = |s: &str| all.iter().filter(|l| l["status"] == s).count();
    assert!(status("sent") >= 1, "{all:?}");
    assert!(status("failed") >= 1 && status("dead") >= 1, "{all:?}");

    let failed = lines(&cp, &["--status", "failed"]);
    assert!(failed
        .iter()
        .all(|l| l["recipient"] == "sm1@ksc.example.org"));
    assert_eq!(failed.len(), status("failed"));
    // Filters combine: failed AND to the chair matches nothing (the chair's are dead).
    assert!(lines(&cp, &["--status", "failed", "--recipient", "CHAIR1@"]).is_empty());
    let dead_chair = lines(&cp, &["--status", "dead", "--recipient", "CHAIR1@"]);
    assert_eq!(dead_chair.len(), status("dead"));
    assert_eq!(
        lines(&cp, &["--status", "failed", "--status", "dead"]).len(),
        status("failed") + status("dead")
    );
    assert_eq!(lines(&cp, &["--case", "KN-0001"]).len(), all.len());
    assert!(lines(&cp, &["--case", "KN-9999"]).is_empty());
    let overdue = lines(&cp, &["--kind", "overdue", "--case", "KN-0001"]);
    assert!(!overdue.is_empty() && overdue.iter().all(|l| l["kind"] == "overdue"));
    // Everything was queued moments ago.
    assert_eq!(lines(&cp, &["--older-than", "1h"]).len(), 0);
    assert_eq!(lines(&cp, &["--newer-than", "1h"]).len(), all.len());
    let sent = all.iter().find(|l| l["status"] == "sent").unwrap();
    assert!(
        sent["sent_at"].is_string() && sent["next_attempt"].is_null(),
        "{sent}"
    );
    assert!(sent["attempts"].as_i64() == Some(1));

    let table = cp.ok(&["outbox", "list", "--status", "failed"]);
    for column in [
        "id",
        "status",
        "kind",
        "case/dispute",
        "recipient",
        "attempts",
        "next attempt / sent at",
        "age",
    ] {
        assert!(table.contains(column), "{column}: {table}");
    }
    assert!(
        table.contains("sm1@ksc.example.org (to)") && table.contains("KN-0001"),
        "{table}"
    );
    assert!(!table.contains("chair1@"), "{table}");
    let n = status("failed");
    let last = table.lines().last().unwrap();
    assert_eq!(
        last,
        if n == 1 {
            "1 delivery".to_owned()
        } else {
            format!("{n} deliveries")
        }
    );
    let cut = cp.ok(&["outbox", "list", "--limit", "1"]);
    assert!(
        cut.contains(&format!("1 of {total} deliveries shown")),
        "{cut}"
    );

    let bad = cp.run(&["outbox", "list", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("90m, 6h, 3d"), "{}", stderr(&bad));
}

#[test]
fn show_prints_the_message_exactly_as_it_was_sent() {
    let (db, smtp, cp) = delivered();
    let sent = lines(&cp, &["--status", "sent"]);
    let received = smtp.received();
    assert_eq!(received.len(), sent.len());
    for line in &sent {
        let id = line["id"].as_i64().unwrap().to_string();
        let shown = cp.ok(&["outbox", "show", &id, "--by", "auditor"]);
        let header = |name: &str| {
            shown
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {shown}"))
                .to_owned()
        };
        let mid = header("Message-ID");
        let m = received
            .iter()
            .find(|m| m.header("Message-ID").as_deref() == Some(mid.as_str()))
            .unwrap_or_else(|| panic!("{mid} was not received"));
        assert_eq!(m.to, [line["recipient"].as_str().unwrap()]);
        assert_eq!(Some(header("Subject")), m.header("Subject"));
        assert_eq!(header("To"), line["recipient"].as_str().unwrap());
        assert_eq!(header("Auto-Submitted"), "auto-generated");
        let body = shown.split_once("\n\n").unwrap().1;
        let normalise = |t: &str| t.replace("\r\n", "\n").trim().to_owned();
        assert_eq!(normalise(body), normalise(&m.text()), "delivery {id}");
        assert!(
            shown.starts_with(&format!("Delivery {id} (")) && shown.contains(": sent "),
            "{shown}"
        );
    }
    assert_eq!(
        db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'outbox_show' AND actor = 'auditor'"),
        sent.len() as i64
    );
    // A failed one is shown as it would go now, with why it failed.
    let failed = ids_of(&lines(&cp, &["--status", "failed"]))[0].to_string();
    let shown = cp.ok(&["outbox", "show", &failed]);
    assert!(
        shown.contains("failed after 1 attempt(s): ") && shown.contains("550"),
        "{shown}"
    );
    let missing = cp.run(&["outbox", "show", "999999"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("there is no delivery 999999"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn retry_puts_failed_and_dead_back_never_a_sent_one_and_asks_first() {
    let (db, smtp, cp) = delivered();
    let sent = ids_of(&lines(&cp, &["--status", "sent"]));
    let dead = ids_of(&lines(&cp, &["--status", "dead"]));
    let failed = ids_of(&lines(&cp, &["--status", "failed"]));
    assert!(!dead.is_empty() && !failed.is_empty());

    // Never a sent one, by id or by filter.
    let refused = cp.run(&["outbox", "retry", &sent[0].to_string(), "--by", "ops"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("it was sent"),
        "{}",
        stderr(&refused)
    );
    let refused = cp.run(&["outbox", "retry", "--status", "sent", "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    // Neither an id nor a filter: refused, not "everything".
    let refused = cp.run(&["outbox", "retry", "--yes"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("give a delivery id"),
        "{}",
        stderr(&refused)
    );

    // A filter asks first; "n" changes nothing, no answer at all is a usage error.
    let args = [
        "outbox",
        "retry",
        "--recipient",
        "ksc.example.org",
        "--by",
        "ops",
    ];
    let n = dead.len() + failed.len();
    let no = with_input(&cp, &args, Some("n\n"));
    assert!(no.status.success(), "{}", stderr(&no));
    assert!(
        stderr(&no).contains(&format!("{n} deliveries match; retry them? [y/N]")),
        "{}",
        stderr(&no)
    );
    assert!(stdout(&no).contains("nothing changed"));
    let silent = with_input(&cp, &args, None);
    assert_eq!(silent.status.code(), Some(2));
    assert!(stderr(&silent).contains("--yes"), "{}", stderr(&silent));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status IN ('failed', 'dead')"),
        n as i64
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM audit_log WHERE action LIKE 'outbox_%'"),
        0
    );

    // "y": exactly the failed and dead ones go back, attempts reset; the sent ones stay sent.
    let yes = with_input(&cp, &args, Some("y\n"));
    assert!(yes.status.success(), "{}", stderr(&yes));
    assert!(
        stdout(&yes).contains(&format!(
            "{n} delivery(ies) queued again, recorded in the audit log as ops"
        )),
        "{}",
        stdout(&yes)
    );
    let pending = db.count(&format!(
        "SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND attempts = 0 \
         AND last_error IS NULL AND id IN ({})",
        dead.iter()
            .chain(&failed)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    assert_eq!(pending, n as i64);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'sent'"),
        sent.len() as i64
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'outbox_retry' AND actor = 'ops' \
                  AND subject LIKE 'delivery/%' AND detail->>'was' IN ('failed', 'dead')"
        ),
        n as i64
    );

    // The relay takes them now: delivered, once each.
    smtp.reject("sm1@ksc.example.org", 250);
    smtp.reject("chair1@ksc.example.org", 250);
    let before = smtp.received().len();
    cp.ok(&["deliver", "--once"]);
    assert_eq!(smtp.received().len(), before + n);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status <> 'sent'"),
        0
    );
    assert!(smtp.message_id_counts().values().all(|&c| c == 1));
}

#[test]
fn retry_by_id_and_who_ran_it_comes_from_sudo_user() {
    let (db, _smtp, cp) = delivered();
    let dead = ids_of(&lines(&cp, &["--status", "dead"]))[0];
    let cp = cp.with("SUDO_USER", "jsmith");
    let out = cp.ok(&["outbox", "retry", &dead.to_string()]);
    assert!(
        out.contains(&format!("delivery {dead} (dead before): queued again")),
        "{out}"
    );
    let who = db.count(&format!(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'outbox_retry' AND actor = 'jsmith' \
         AND subject = 'delivery/{dead}'"
    ));
    assert_eq!(who, 1);
    // It is pending now: retrying it again is refused.
    let again = cp.run(&["outbox", "retry", &dead.to_string()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("still queued"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn cancel_needs_a_reason_and_never_touches_a_sent_one() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&case_file(serde_json::json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ])));
    cp.ok(&["evaluate", "--at", AT]);
    let pending = ids_of(&lines(&cp, &["--status", "pending"]));
    assert!(pending.len() >= 2);
    let first = pending[0].to_string();

    let no_reason = cp.run(&["outbox", "cancel", &first]);
    assert_eq!(no_reason.status.code(), Some(2));
    assert!(
        stderr(&no_reason).contains("--reason"),
        "{}",
        stderr(&no_reason)
    );
    let blank = cp.run(&["outbox", "cancel", &first, "--reason", "  "]);
    assert_eq!(blank.status.code(), Some(2));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'cancelled'"),
        0
    );

    let reason = "ICPC held; recorded late in the case system";
    let out = cp.ok(&[
        "outbox", "cancel", &first, "--reason", reason, "--by", "alice",
    ]);
    assert!(out.contains("1 delivery(ies) cancelled"), "{out}");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM deliveries WHERE id = {first} AND status = 'cancelled' \
             AND last_error = 'cancelled by alice: {reason}'"
        )),
        1
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'outbox_cancel' AND actor = 'alice' \
             AND subject = 'delivery/{first}' AND detail->>'reason' = '{reason}' AND detail->>'was' = 'pending'"
        )),
        1
    );
    // A cancelled one is not retried; a sent one is not cancelled.
    let r = cp.run(&["outbox", "retry", &first]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("it was cancelled"), "{}", stderr(&r));
    let second = pending[1];
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "UPDATE deliveries SET status = 'sent', sent_at = now() WHERE id = {second}"
        )),
        &mut db.conn(),
    )
    .unwrap();
    let c = cp.run(&["outbox", "cancel", &second.to_string(), "--reason", "x"]);
    assert_eq!(c.status.code(), Some(2));
    assert!(stderr(&c).contains("it was sent"), "{}", stderr(&c));

    // By filter, with --yes: every other pending one, and nothing else.
    let rest = pending.len() - 2;
    let out = cp.ok(&[
        "outbox",
        "cancel",
        "--case",
        "KN-0001",
        "--yes",
        "--reason",
        "case closed",
        "--by",
        "alice",
    ]);
    assert!(
        out.contains(&format!("{rest} delivery(ies) cancelled")),
        "{out}"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'sent'"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'outbox_cancel'"),
        rest as i64 + 1
    );
}

#[test]
fn show_says_when_a_queued_reminder_will_be_withdrawn_instead_of_sent() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    cp.ok(&["import", "config/sample/knowsley-sample.json"]);
    cp.ok(&["evaluate", "--at", AT]);
    // Its deadline passed long before today, so delivery would cancel it, not send it.
    let reminders = lines(&cp, &["--kind", "reminder", "--status", "pending"]);
    assert!(
        !reminders.is_empty(),
        "the sample queues a reminder at {AT}"
    );
    let id = reminders[0]["id"].as_i64().unwrap().to_string();
    let shown = cp.ok(&["outbox", "show", &id]);
    assert!(
        shown.contains(": queued; as it will be sent at "),
        "{shown}"
    );
    assert!(
        shown.contains("It will not be sent: its deadline"),
        "{shown}"
    );
    // Subjects start with the reference (issue 13): this reminder is a step of dispute D-P1.
    assert!(shown.contains("Subject: D-P1 tell the family"), "{shown}");
    // An overdue notice has no such note.
    let overdue = lines(&cp, &["--kind", "overdue", "--status", "pending"]);
    let shown = cp.ok(&[
        "outbox",
        "show",
        &overdue[0]["id"].as_i64().unwrap().to_string(),
    ]);
    assert!(!shown.contains("It will not be sent"), "{shown}");
}
