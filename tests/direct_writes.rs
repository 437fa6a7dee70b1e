//! Direct writes: a case system writing rows into cpwatch's tables (the contract in README)
//! is evaluated within seconds by a running daemon, not at the next hourly pass. The delay
//! from insert to queued notice (and to the mail relay) is measured and printed; the bound
//! asserted is generous (the pass itself takes milliseconds here).

mod common;

use common::*;
use diesel::RunQueryDsl;
use serde_json::json;
use std::time::{Duration, Instant};

fn sql(db: &TestDb, q: &str) {
    diesel::sql_query(q)
        .execute(&mut db.conn())
        .unwrap_or_else(|e| panic!("{q}: {e}"));
}

/// Wait until `count` returns at least 1; how long that took.
fn wait_for(db: &TestDb, count: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while db.count(count) < 1 {
        assert!(start.elapsed() < limit, "not within {limit:?}: {count}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

#[test]
fn rows_written_directly_are_evaluated_within_seconds() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp))
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
        .with("CPWATCH_DELIVERY__INTERVAL_SECONDS", "1")
        // Hourly ticks only: anything sooner is the listener's doing.
        .with("CPWATCH_SCHEDULE__EVALUATE_CRON", "0 0 * * * *")
        .with(
            "CPWATCH_CALENDAR__HOLIDAY_FEED_URL",
            "http://127.0.0.1:9/bank-holidays.json",
        );
    cp.setup(&case_file(json!([])));
    let mut child = cp.command(&["run"]).spawn().unwrap();
    // The start-up pass has run (and the listener is up before it is reported).
    wait_for(
        &db,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(500));

    // An immediate-risk dispute, written by the case system as it is raised.
    let started = Instant::now();
    sql(
        &db,
        "INSERT INTO disputes (partnership_id, ref, case_id, policy, raised_by, respondent_person, \
                               opened_at, immediate_risk, subject) \
         SELECT 'knowsley', 'D-77', id, 'knowsley-escalation-2019', 'p-hv1', 'p-sw1', now(), true, \
                'threshold decision' FROM cases WHERE ref = 'KN-0001'",
    );
    let queued = wait_for(
        &db,
        "SELECT count(*) AS n FROM notices WHERE dispute_ref = 'D-77'",
        Duration::from_secs(30),
    );
    let mail = smtp.wait_for(1, 30);
    let mailed = started.elapsed();
    assert!(
        !mail.is_empty(),
        "the immediate-risk notice reached the relay"
    );
    eprintln!(
        "direct write → queued notice: {} ms; → at the mail relay: {} ms",
        queued.as_millis(),
        mailed.as_millis()
    );
    assert!(queued < Duration::from_secs(10), "{queued:?}");

    // A case event written directly (it must carry the sender's id).
    let refused = diesel::sql_query(
        "INSERT INTO case_events (case_id, kind, at) SELECT id, 'child_seen', now() FROM cases",
    )
    .execute(&mut db.conn());
    assert!(
        refused.is_err(),
        "a direct write without source_id is refused"
    );
    let started = Instant::now();
    sql(
        &db,
        "INSERT INTO case_events (case_id, kind, at, data, source_id) \
         SELECT id, 'strategy_discussion_held', now() - interval '30 days', '{\"s47_initiated\": true}', 'sd-900' \
         FROM cases WHERE ref = 'KN-0001'",
    );
    let queued = wait_for(
        &db,
        "SELECT count(*) AS n FROM notices WHERE case_ref = 'KN-0001' AND rule = 'icpc-within-15wd'",
        Duration::from_secs(30),
    );
    eprintln!(
        "direct case event → queued notice: {} ms",
        queued.as_millis()
    );
    assert!(queued < Duration::from_secs(10), "{queued:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(db.count("SELECT count(*) AS n FROM check_requests"), 0);

    let _ = std::process::Command::new("kill")
        .arg("-15")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
