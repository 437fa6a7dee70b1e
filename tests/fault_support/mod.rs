//! Helpers for the delivery fault tests: daemons configured for fast retries, thousands of queued
//! rows, a private PostgreSQL server that can be restarted, and exactly-once bookkeeping.
#![allow(dead_code)]

use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The daemon, tuned so a test sees retries and lease expiries in seconds.
pub fn daemon(db_url: &str, smtp_port: u16) -> Cpwatch {
    let mut cp = Cpwatch { env: Vec::new() };
    cp.env = vec![
        ("CPWATCH_DATABASE__URL".into(), db_url.to_owned()),
        ("CPWATCH_SMTP__HOST".into(), "127.0.0.1".into()),
        ("CPWATCH_SMTP__PORT".into(), smtp_port.to_string()),
        ("CPWATCH_SMTP__SECURITY".into(), "plain".into()),
        (
            "CPWATCH_SMTP__FROM".into(),
            "cpwatch <cpwatch@lscp.example.org>".into(),
        ),
        ("CPWATCH_SMTP__TIMEOUT_SECONDS".into(), "2".into()),
        (
            "CPWATCH_MAIL__ADMIN_ADDRESS".into(),
            "admin@lscp.example.org".into(),
        ),
        (
            "CPWATCH_DELIVERY__WORKING_HOURS_ONLY".into(),
            "false".into(),
        ),
        ("CPWATCH_DELIVERY__INTERVAL_SECONDS".into(), "1".into()),
        // Daemons of parallel tests must not contend for the default metrics port.
        ("CPWATCH_METRICS__LISTEN".into(), "127.0.0.1:0".into()),
        ("CPWATCH_DELIVERY__LEASE_SECONDS".into(), "5".into()),
        ("CPWATCH_DELIVERY__BATCH_SIZE".into(), "20".into()),
        ("CPWATCH_DELIVERY__RETRY_BASE_SECONDS".into(), "1".into()),
        ("CPWATCH_DELIVERY__RETRY_MAX_SECONDS".into(), "2".into()),
        (
            "CPWATCH_CALENDAR__HOLIDAY_FEED_URL".into(),
            "http://127.0.0.1:9/bank-holidays.json".into(),
        ),
        ("RUST_LOG".into(), "warn".into()),
    ];
    cp
}

/// A case whose ICPC is long overdue at the real clock (strategy discussion on 2 March 2026).
pub fn overdue_case_file() -> String {
    case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ]))
}

/// Queue `n` distinct messages (keys `load/<tag>/<i>`, one recipient each) by copying the payload
/// of a row the evaluator wrote, straight into the outbox with SQL. Every other row is cancelled
/// so only these are delivered. Returns their Message-IDs.
pub fn queue_load(cp: &Cpwatch, db_url: &str, tag: &str, n: usize) -> Vec<String> {
    cp.ok(&["migrate"]);
    let out = cp.import_text(&overdue_case_file());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let mut conn = connect(db_url);
    exec(
        &mut conn,
        &format!(
            "INSERT INTO notices (key, partnership_id, kind, rule, case_ref, occurrence, step, due_at, \
                                  trigger_at, send_after, urgent, payload) \
             SELECT 'load/{tag}/' || i, 'knowsley', 'overdue', 'icpc-within-15wd', 'KN-0001', t.occurrence, \
                    t.step, '2026-03-23T17:00:00Z', t.trigger_at, now() - interval '1 minute', false, t.payload \
             FROM (SELECT * FROM notices WHERE key NOT LIKE 'load/%' AND kind = 'overdue' ORDER BY id LIMIT 1) t, \
                  generate_series(1, {n}) AS i"
        ),
    );
    exec(
        &mut conn,
        &format!(
            "INSERT INTO deliveries (notice_id, recipient, position, send_after, urgent, message_id) \
             SELECT id, 'r' || split_part(key, '/', 3) || '@load.example.org', 'to', send_after, false, \
                    '<load-{tag}-' || split_part(key, '/', 3) || '@cpwatch.test>' \
             FROM notices WHERE key LIKE 'load/{tag}/%' ORDER BY id"
        ),
    );
    exec(
        &mut conn,
        "UPDATE deliveries d SET status = 'cancelled' FROM notices n \
         WHERE n.id = d.notice_id AND n.key NOT LIKE 'load/%'",
    );
    // Nothing for the daemon's own passes to decide: only the queued load is delivered.
    exec(&mut conn, "UPDATE cases SET next_check_at = NULL");
    (1..=n)
        .map(|i| format!("<load-{tag}-{i}@cpwatch.test>"))
        .collect()
}

pub fn connect(url: &str) -> diesel::PgConnection {
    use diesel::Connection;
    diesel::PgConnection::establish(url).expect("connect")
}

pub fn exec(conn: &mut diesel::PgConnection, sql: &str) -> usize {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(conn).expect(sql)
}

pub fn count(url: &str, sql: &str) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::Int8)]
        n: i64,
    }
    let r: N = diesel::sql_query(sql)
        .get_result(&mut connect(url))
        .expect(sql);
    r.n
}

/// What the SMTP sink received against what was queued.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub queued: usize,
    pub received: usize,
    pub distinct: usize,
    /// Extra copies beyond the first, over all messages.
    pub duplicates: usize,
    /// Queued messages that never arrived.
    pub lost: usize,
    /// Messages that arrived but were never queued.
    pub unexpected: usize,
}

pub fn tally(expected: &[String], got: &BTreeMap<String, usize>) -> Tally {
    let expected_set: std::collections::BTreeSet<&String> = expected.iter().collect();
    Tally {
        queued: expected.len(),
        received: got.values().sum(),
        distinct: got.keys().filter(|k| expected_set.contains(k)).count(),
        duplicates: got.values().map(|n| n.saturating_sub(1)).sum(),
        lost: expected.iter().filter(|m| !got.contains_key(*m)).count(),
        unexpected: got.keys().filter(|k| !expected_set.contains(k)).count(),
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "messages queued {}, received {} ({} distinct), duplicates {}, losses {}, unexpected {}",
            self.queued, self.received, self.distinct, self.duplicates, self.lost, self.unexpected
        )
    }
}

/// Wait up to `secs` for `cond`; returns whether it came true.
pub fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn signal(child: &Child, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// SIGTERM and wait for the exit status (at most `secs`).
pub fn stop(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    signal(child, 15);
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("cpwatch did not stop within {secs}s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a daemon that a failing test left running.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A PostgreSQL server of this test's own (`cpwatch::pgserver`: initdb + pg_ctl in a temporary
/// directory; as root it runs as an unprivileged system user), so that restarting it disturbs no
/// other test.
pub struct PrivatePg {
    server: cpwatch::pgserver::PrivateServer,
    pub port: u16,
}

impl PrivatePg {
    pub fn start() -> PrivatePg {
        let server = cpwatch::pgserver::PrivateServer::start().unwrap_or_else(|e| panic!("{e}"));
        PrivatePg {
            port: server.port(),
            server,
        }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Stop the server (`fast`: connections are cut, as in a restart by an administrator).
    pub fn stop(&self, mode: &str) {
        self.server.stop(mode).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn start_again(&self) {
        self.server.start_again().unwrap_or_else(|e| panic!("{e}"));
    }
}
