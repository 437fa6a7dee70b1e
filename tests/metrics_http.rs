//! `cpwatch run`'s HTTP listener: `/metrics` scraped after a pass and delivery rounds with
//! known counts, `/healthz` and `/readyz` under a good and a broken relay, and the JSON log
//! lines that carry a pass's id.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `cpwatch run` with its log lines (JSON, one a line) collected.
struct Daemon {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    base: String,
}

impl Daemon {
    fn start(cp: &Cpwatch) -> Daemon {
        let mut child = cp
            .command(&["--log-format", "json", "run"])
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let until = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let found = lines.lock().unwrap().iter().find_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                let m = v["fields"]["message"].as_str()?;
                let rest = m.strip_prefix("metrics on http://")?;
                Some(format!("http://{}", rest.split('/').next()?))
            });
            if let Some(b) = found {
                break b;
            }
            assert!(
                Instant::now() < until,
                "no listening address logged: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        Daemon { child, lines, base }
    }

    fn get(&self, path: &str, json: bool) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut req = reqwest::Client::new().get(format!("{}{path}", self.base));
            if json {
                req = req.header("Accept", "application/json");
            }
            let resp = req.send().await.expect("the listener answers");
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        })
    }

    fn stop(mut self) -> Vec<String> {
        unsafe_kill(self.child.id());
        let until = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "cpwatch did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        let lines = self.lines.lock().unwrap().clone();
        lines
    }
}

fn unsafe_kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn daemon_env(db: &TestDb, smtp_port: Option<u16>) -> Cpwatch {
    let mut cp = Cpwatch::new(db, None)
        .with("CPWATCH_DATABASE__AUTO_MIGRATE", "true")
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
        .with("CPWATCH_DELIVERY__INTERVAL_SECONDS", "1")
        .with("CPWATCH_METRICS__LISTEN", "127.0.0.1:0")
        .with(
            "CPWATCH_CALENDAR__HOLIDAY_FEED_URL",
            "http://127.0.0.1:9/bank-holidays.json",
        );
    cp.env.retain(|(k, _)| k != "CPWATCH_SMTP__PORT");
    let port = smtp_port.unwrap_or_else(free_port);
    cp.with("CPWATCH_SMTP__PORT", &port.to_string())
}

/// One overdue case and one disagreement long past its stages: mail of several kinds.
fn case_with_dispute() -> String {
    let mut f: Value = serde_json::from_str(&case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"},
        {"kind": "strategy_minutes_circulated", "at": "2026-03-02T12:00:00Z"}
    ])))
    .unwrap();
    f["disputes"] = json!([{
        "id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
        "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "subject": "threshold decision",
        "events": []
    }]);
    f.to_string()
}

/// The value of the sample `name{labels}` (labels in the exporter's order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn rows(db: &TestDb, sql: &str) -> Vec<(String, i64)> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Text)]
        k: String,
        #[diesel(sql_type = diesel::sql_types::Int8)]
        n: i64,
    }
    let r: Vec<R> = diesel::sql_query(sql).load(&mut db.conn()).unwrap();
    r.into_iter().map(|r| (r.k, r.n)).collect()
}

fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn metrics_after_a_pass_and_delivery_rounds_say_what_happened() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = daemon_env(&db, Some(smtp.port));
    cp.ok(&["migrate"]);
    assert!(cp.import_text(&case_with_dispute()).status.success());
    let d = Daemon::start(&cp);

    let pending = "SELECT count(*) AS n FROM deliveries WHERE status = 'pending'";
    let sent = "SELECT count(*) AS n FROM deliveries WHERE status = 'sent'";
    assert!(
        wait_until(60, || db.count(sent) > 0 && db.count(pending) == 0),
        "the mail went out"
    );
    let sent_n = db.count(sent);
    let by_kind = rows(
        &db,
        "SELECT n.kind AS k, count(*) AS n FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE d.status = 'sent' GROUP BY n.kind",
    );
    assert!(by_kind.len() >= 2, "mail of several kinds: {by_kind:?}");
    let mut text = String::new();
    // The counter follows the row's mark by a moment.
    assert!(wait_until(10, || {
        text = d.get("/metrics", false).1;
        sample(
            &text,
            r#"cpwatch_delivery_latency_seconds_count{channel="smtp"}"#,
        ) == Some(sent_n as f64)
    }));
    println!("{text}");
    for (kind, n) in &by_kind {
        let series = format!(r#"cpwatch_notifications_sent_total{{kind="{kind}",channel="smtp"}}"#);
        assert_eq!(sample(&text, &series), Some(*n as f64), "{series}\n{text}");
    }
    let queued = db.count("SELECT count(*) AS n FROM deliveries");
    assert_eq!(
        sample(&text, "cpwatch_notifications_queued_total"),
        Some(queued as f64)
    );
    let notices_by_kind = rows(
        &db,
        "SELECT kind AS k, count(*) AS n FROM notices GROUP BY kind",
    );
    for (kind, n) in &notices_by_kind {
        let series = format!(r#"cpwatch_notices_queued_total{{kind="{kind}"}}"#);
        assert_eq!(sample(&text, &series), Some(*n as f64), "{series}");
    }
    assert_eq!(
        sample(&text, r#"cpwatch_outbox_notifications{status="sent"}"#),
        Some(sent_n as f64)
    );
    assert_eq!(
        sample(&text, r#"cpwatch_outbox_notifications{status="pending"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "cpwatch_oldest_due_unsent_age_seconds"),
        Some(0.0)
    );
    // Latency counts from when a message could go (queued today), not from its deadline in March.
    let latency = sample(
        &text,
        r#"cpwatch_delivery_latency_seconds_sum{channel="smtp"}"#,
    )
    .unwrap();
    assert!(latency < 3600.0 * sent_n as f64, "{latency}");
    assert_eq!(
        sample(
            &text,
            r#"cpwatch_notifications_failed_total{kind="overdue",channel="smtp"}"#
        ),
        None,
        "nothing failed"
    );
    let stage = db.count("SELECT stage::bigint AS n FROM disputes");
    let series =
        format!(r#"cpwatch_disputes_open{{policy="knowsley-escalation-2019",stage="{stage}"}}"#);
    assert_eq!(sample(&text, &series), Some(1.0), "{series}");
    // The first pass evaluated the one case and the one dispute.
    let done = sample(&text, r#"cpwatch_passes_total{result="done"}"#).unwrap();
    assert!(done >= 1.0);
    assert!(sample(&text, "cpwatch_cases_evaluated_total").unwrap() >= 1.0);
    assert!(sample(&text, "cpwatch_disputes_evaluated_total").unwrap() >= 1.0);
    assert_eq!(
        sample(&text, "cpwatch_pass_duration_seconds_count"),
        Some(done)
    );
    assert!(sample(&text, "cpwatch_last_pass_timestamp_seconds").unwrap() > 1.7e9);
    assert!(sample(&text, "cpwatch_last_successful_pass_timestamp_seconds").unwrap() > 1.7e9);
    assert_eq!(sample(&text, "cpwatch_database_up"), Some(1.0));
    let build = format!(
        r#"cpwatch_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &build), Some(1.0));
    assert!(sample(&text, "cpwatch_bank_holidays_known_until_timestamp_seconds").unwrap() > 1.7e9);
    // No case reference, dispute reference or address in any label.
    for secret in ["KN-0001", "D-1", "@", "Worker"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    let lines = d.stop();
    // Every line of the pass carries its id; the JSON lines are JSON.
    let pass_lines: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "evaluation pass done")
        .collect();
    assert!(!pass_lines.is_empty(), "{lines:?}");
    for v in &pass_lines {
        let id = v["span"]["pass_id"].as_str().unwrap_or_default();
        assert!(id.len() > 10, "a pass id: {v}");
    }
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "{lines:?}"
    );
}

#[test]
fn health_endpoints_under_a_good_and_a_broken_relay() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let good = daemon_env(&db, Some(smtp.port));
    good.ok(&["migrate"]);
    assert!(good.import_text(&case_with_dispute()).status.success());
    let d = Daemon::start(&good);
    assert!(wait_until(60, || db.count(
        "SELECT count(*) AS n FROM deliveries WHERE status = 'pending'"
    ) == 0
        && db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'"
        ) > 0));
    let (code, body) = d.get("/healthz", false);
    assert_eq!(code, 200, "{body}");
    let (code, body) = d.get("/readyz", false);
    println!("{body}");
    assert_eq!(code, 200, "{body}");
    for check in [
        "database",
        "evaluation",
        "relay",
        "relay-login",
        "holidays",
        "data-quality",
    ] {
        assert!(body.contains(&format!("ok   {check} ")), "{check}: {body}");
    }
    let (code, body) = d.get("/readyz", true);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["healthy"], true);
    d.stop();

    // The relay gone: the process is alive, but not ready, and says why.
    let broken = daemon_env(&db, None);
    let d = Daemon::start(&broken);
    let (code, body) = d.get("/healthz", false);
    assert_eq!(code, 200, "{body}");
    let (code, body) = d.get("/readyz", false);
    println!("{body}");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("FAIL relay-login"), "{body}");
    assert!(body.contains("connection failed"), "{body}");
    let (_, body) = d.get("/readyz", true);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["healthy"], false);
    let login = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "relay-login")
        .unwrap();
    assert_eq!(login["ok"], false);
    d.stop();

    // `cpwatch health` says the same, as JSON too.
    let out = broken.run(&["health", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    let out = good.run(&["health", "--format", "json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], true, "{doc}");
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in ["failed", "data-quality", "holidays", "relay-login"] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    assert_eq!(out.status.code(), Some(0));
}
