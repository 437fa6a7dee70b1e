//! What delivery does with each outcome, and the operator's view: a permanent rejection becomes a
//! `failed` row plus a data-quality notice, a temporary one a dead letter after max_attempts;
//! one replica evaluates at a time; a daemon that was down for months catches up once, without
//! stale reminders; `cpwatch health`.

mod common;
mod fault_support;

use common::*;
use fault_support::*;

fn settled(url: &str) -> bool {
    count(
        url,
        "SELECT count(*) AS n FROM outbox WHERE status = 'pending'",
    ) == 0
}

#[test]
fn permanent_rejection_fails_the_row_and_tells_the_team_manager_temporary_ones_dead_letter() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    smtp.reject("sm1@ksc.example.org", 550);
    smtp.reject("chair1@ksc.example.org", 451);
    let cp = daemon(&db.url, smtp.port).with("CPWATCH_DELIVERY__MAX_ATTEMPTS", "3");
    cp.ok(&["migrate"]);
    assert!(cp.import_text(&overdue_case_file()).status.success());
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(
        wait_until(60, || count(&db.url, "SELECT count(*) AS n FROM outbox")
            > 0
            && settled(&db.url)),
        "every row reached a final state"
    );
    assert!(stop(&mut d.0, 20).success());

    let failed = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE status = 'failed'",
    );
    let failed_sm1 = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE status = 'failed' AND recipient = 'sm1@ksc.example.org'",
    );
    assert!(
        failed_sm1 >= 1 && failed == failed_sm1,
        "only the refused address fails"
    );
    // One data-quality notice per refused address and case, to the team manager, delivered.
    let dq = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE kind = 'data_quality' AND status = 'sent' \
         AND recipient = 'tm1@ksc.example.org' \
         AND dedupe_key LIKE '%/data-quality/undeliverable/sm1@ksc.example.org/%'",
    );
    assert_eq!(dq, 1);
    let notice = smtp
        .received()
        .into_iter()
        .find(|m| m.text().contains("sm1@ksc.example.org"))
        .expect("the data-quality notice arrived");
    assert_eq!(notice.to, ["tm1@ksc.example.org"]);

    let dead = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE status = 'dead'",
    );
    let dead_chair = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE status = 'dead' AND recipient = 'chair1@ksc.example.org' AND attempts = 3",
    );
    assert!(
        dead >= 1 && dead == dead_chair,
        "dead after exactly 3 attempts"
    );
    let total = count(&db.url, "SELECT count(*) AS n FROM outbox");
    println!(
        "FIGURES rejections: {total} rows, {failed} failed (550) with {dq} data-quality notice, {dead} dead after 3 attempts (451), {} received",
        smtp.received().len()
    );

    // Nothing is deleted, and the operator probe reports the dead letters.
    let health = cp.run(&["health"]);
    let text = String::from_utf8_lossy(&health.stdout);
    println!("{text}");
    assert_eq!(health.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL dead-letter"), "{text}");
    assert!(text.contains("ok   evaluation"), "{text}");
    let ok = cp.run(&["health", "--max-dead", "100"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

#[test]
fn only_one_replica_evaluates_at_a_time() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&overdue_case_file());
    // Another replica holds the pass lock (the key cpwatch uses: "cpwatch" in ASCII).
    let mut holder = connect(&db.url);
    exec(&mut holder, "SELECT pg_advisory_lock(27989680732791656)");
    // The skipped pass says so on stdout and in its exit status (75, EX_TEMPFAIL).
    let out = cp.run(&["evaluate"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(75), "{stdout}");
    assert!(
        stdout.contains("skipped: another cpwatch is running an evaluation pass"),
        "{stdout}"
    );
    let json = cp.run(&["evaluate", "--format", "json"]);
    assert_eq!(json.status.code(), Some(75));
    let line: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON line");
    assert_eq!(line["kind"], "pass_skipped");
    let passes = |db: &TestDb| {
        db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'")
    };
    assert_eq!(passes(&db), 0, "the pass was skipped");
    assert_eq!(db.count("SELECT count(*) AS n FROM outbox"), 0);
    exec(&mut holder, "SELECT pg_advisory_unlock(27989680732791656)");
    cp.ok(&["evaluate"]);
    assert_eq!(passes(&db), 1);
    assert!(db.count("SELECT count(*) AS n FROM outbox") > 0);
}

#[test]
fn down_for_months_catches_up_once_without_stale_reminders() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = daemon(&db.url, smtp.port);
    cp.ok(&["migrate"]);
    assert!(cp.import_text(&overdue_case_file()).status.success());
    // The last pass before going down queued the reminder (deadline 23 March); it never went out.
    cp.ok(&["evaluate", "--at", "2026-03-18T09:30:00Z"]);
    let queued_reminders = db.count(
        "SELECT count(*) AS n FROM outbox WHERE kind IN ('reminder', 'due') AND status = 'pending'",
    );
    assert!(queued_reminders >= 1);
    let started = chrono::Utc::now();

    // Months later, the daemon starts at the real clock.
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || settled(&db.url)
        && db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'"
        ) >= 2));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(stop(&mut d.0, 20).success());
    let first = smtp.received().len();
    let stale_sent = db.count(
        "SELECT count(*) AS n FROM outbox WHERE kind IN ('reminder', 'due') AND status = 'sent' AND due_at <= sent_at",
    );
    let cancelled = db.count(
        "SELECT count(*) AS n FROM outbox WHERE kind IN ('reminder', 'due') AND status = 'cancelled'",
    );
    let new_stale = db.count(&format!(
        "SELECT count(*) AS n FROM outbox WHERE kind IN ('reminder', 'due') AND due_at <= now() \
         AND created_at >= '{}'",
        started.to_rfc3339()
    ));
    assert_eq!(stale_sent, 0, "no reminder for a passed deadline went out");
    assert_eq!(
        cancelled, queued_reminders,
        "the queued stale ones were cancelled"
    );
    assert_eq!(
        new_stale, 0,
        "the catch-up pass decided no reminder for a passed deadline"
    );
    assert!(first >= 1, "the overdue notices went out");
    assert!(smtp.received().iter().all(|m| !m
        .header("Subject")
        .unwrap_or_default()
        .contains(" reminder")));

    // Started again: the pass finds nothing new; nothing is sent twice.
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    let passes = db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'");
    assert!(wait_until(30, || db.count(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'"
    ) > passes));
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(stop(&mut d.0, 20).success());
    let t = tally(&[], &smtp.message_id_counts());
    println!(
        "FIGURES down for months: {first} messages on catch-up, {cancelled} stale reminder(s) cancelled, 0 stale sent; \
         second start sent {} more; duplicates {}",
        smtp.received().len() - first,
        t.duplicates
    );
    assert_eq!(smtp.received().len(), first);
    assert_eq!(t.duplicates, 0);
}

#[test]
fn health_reports_each_check_and_exits_1_when_unhealthy() {
    // Unreachable database.
    let nowhere = daemon("postgres://postgres@127.0.0.1:1/none", 1);
    let out = nowhere.run(&["health"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("FAIL database"), "{text}");

    // Schema behind, no pass yet. (A relay that answers: `health` logs in to it.)
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = daemon(&db.url, smtp.port);
    let out = cp.run(&["health"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("ok   database"), "{text}");
    assert!(text.contains("FAIL schema"), "{text}");

    // Migrated and evaluated: healthy.
    cp.ok(&["migrate"]);
    assert!(cp.import_text(&overdue_case_file()).status.success());
    cp.ok(&["evaluate"]);
    let out = cp.run(&["health", "--max-backlog", "100000000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    for check in [
        "database",
        "schema",
        "evaluation",
        "outbox",
        "delivery",
        "dead-letter",
        "failed",
        "data-quality",
        "holidays",
        "relay-login",
    ] {
        assert!(text.contains(&format!("ok   {check}")), "{check}: {text}");
    }
    // The relay gone: unhealthy, and it says what to fix.
    let no_relay = daemon(&db.url, free_port());
    let out = no_relay.run(&["health", "--max-backlog", "100000000"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL relay-login"), "{text}");
    assert!(text.contains("smtp.host and smtp.port"), "{text}");
    let out = no_relay.run(&["health", "--max-backlog", "100000000", "--no-relay-login"]);
    assert_eq!(out.status.code(), Some(0));
    // Mail due long ago and still queued: delivery is stuck.
    exec(
        &mut connect(&db.url),
        "UPDATE deliveries SET send_after = now() - interval '3 hours' WHERE status = 'pending'",
    );
    let out = cp.run(&["health"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL delivery"), "{text}");
}
