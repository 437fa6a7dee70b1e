//! `cpwatch run` as systemd runs it: READY over NOTIFY_SOCKET, a pass at start-up, delivery,
//! and a clean stop on SIGTERM.

mod common;

use common::*;
use serde_json::json;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn daemon_notifies_ready_delivers_and_stops_on_sigterm() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp))
        .with("CPWATCH_DATABASE__AUTO_MIGRATE", "true")
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
        .with("CPWATCH_DELIVERY__INTERVAL_SECONDS", "1")
        // Keep the test off the network: the refresh fails fast and the snapshot is used.
        .with(
            "CPWATCH_CALENDAR__HOLIDAY_FEED_URL",
            "http://127.0.0.1:9/bank-holidays.json",
        );
    cp.ok(&["migrate"]);
    let file = case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"},
        {"kind": "strategy_minutes_circulated", "at": "2026-03-02T12:00:00Z"}
    ]));
    assert!(cp.import_text(&file).status.success());

    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();

    let mut child = cp
        .command(&["run"])
        .env("NOTIFY_SOCKET", &socket_path)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a READY notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));

    // The start-up pass finds the ICPC long overdue (it is evaluated at the real clock):
    // the overdue notice and the escalation arrive without any command.
    let mail = smtp.wait_for(4, 30);
    assert_eq!(mail.len(), 4, "{mail:?}");
    assert!(mail.iter().any(|m| m.to == ["sm1@ksc.example.org"]));

    let started = Instant::now();
    send_signal(child.id(), 15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "cpwatch did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    let n = socket.recv(&mut buf).expect("a STOPPING notification");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent'"),
        4
    );
    assert!(db.count("SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass'") >= 1);
}

#[test]
fn daemon_refuses_a_schema_that_is_behind() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let out = cp.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `cpwatch migrate`"));
}

fn send_signal(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
