//! Delivery against a relay that misbehaves (tests/relay_support): a wrong password (535 at
//! AUTH), a relay that stalls at the greeting, after RCPT or at the end of DATA, and one slow to
//! answer the end of DATA with two delivery processes. Each prints its figures.

mod common;
mod fault_support;
mod relay_support;

use common::*;
use fault_support::*;
use relay_support::{Relay, Stall};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn load(url: &str, status: &str) -> i64 {
    count(
        url,
        &format!(
            "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = '{status}'"
        ),
    )
}

/// Stop a daemon started with piped stderr; returns how long it took and what it logged.
fn stop_and_read(mut d: Running, secs: u64) -> (Duration, std::process::ExitStatus, String) {
    let started = Instant::now();
    let status = stop(&mut d.0, secs);
    let took = started.elapsed();
    let mut log = String::new();
    if let Some(mut e) = d.0.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut log);
    }
    (took, status, log)
}

#[test]
fn wrong_password_keeps_mail_waiting_turns_health_red_and_the_right_one_sends_it_once() {
    const N: usize = 20;
    let db = TestDb::new();
    let relay = Relay::start();
    relay.require_login("cpwatch", "right-horse-battery");
    let cp = daemon(&db.url, relay.port)
        .with("CPWATCH_SMTP__USERNAME", "cpwatch")
        .with("CPWATCH_SMTP__PASSWORD", "wrong-horse-battery");
    let ids = queue_load(&cp, &db.url, "auth", N);

    // One round from the command line: it says the relay failed and exits 1; nothing failed.
    let out = cp.run(&["deliver", "--once"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("535") && stderr.contains("smtp.username"),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-horse-battery"), "{stderr}");

    // The daemon, for a while: every login is refused, nothing is failed or used up.
    let d = Running(cp.command(&["run"]).stderr(Stdio::piped()).spawn().unwrap());
    assert!(wait_until(20, || relay.refused_logins() >= 3));
    let (_, status, log) = stop_and_read(d, 20);
    assert!(status.success(), "{status:?}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("mail waits") && l.contains("535")),
        "an error-level line says what to fix:\n{log}"
    );
    assert!(!log.contains("wrong-horse-battery"), "{log}");
    assert!(relay.accepted().is_empty());
    assert_eq!(
        count(
            &db.url,
            "SELECT count(*) AS n FROM outbox WHERE status IN ('failed', 'dead')"
        ),
        0,
        "a wrong password is nobody's failure but ours"
    );
    assert_eq!(
        count(
            &db.url,
            "SELECT count(*) AS n FROM notices WHERE kind = 'data_quality'"
        ),
        0,
        "and not a data-quality problem"
    );
    assert_eq!(load(&db.url, "pending"), N as i64);
    assert_eq!(
        count(&db.url, "SELECT coalesce(max(attempts), 0)::int8 AS n FROM outbox WHERE dedupe_key LIKE 'load/%'"),
        0,
        "no attempt used"
    );
    let health = cp.run(&["health", "--max-backlog", "100000"]);
    let text = String::from_utf8_lossy(&health.stdout);
    assert_eq!(health.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("FAIL relay"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("535") && line.contains("smtp.username"),
        "{line}"
    );
    assert!(!text.contains("wrong-horse-battery"));

    // The right password: everything goes, once, and health is green again.
    let fixed = cp.with("CPWATCH_SMTP__PASSWORD", "right-horse-battery");
    let mut d = Running(fixed.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || load(&db.url, "sent") == N as i64));
    assert!(stop(&mut d.0, 20).success());
    let t = tally(&ids, &relay.message_id_counts());
    println!(
        "FIGURES wrong password (535 at AUTH), then fixed: {t}; {} logins refused, 0 failed, 0 dead",
        relay.refused_logins()
    );
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
    let health = fixed.run(&["health", "--max-backlog", "100000"]);
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(text.contains("ok   relay"), "{text}");
}

/// A relay stalled at `stall`: `deliver` returns within the exchange's deadline, two daemons
/// stop promptly on SIGTERM, and once the relay answers again each message arrives once.
fn stalled_relay(stall: Stall, tag: &str) {
    const N: usize = 8;
    let db = TestDb::new();
    let relay = Relay::start();
    relay.set_stall(Some(stall));
    // smtp.timeout_seconds = 2, lease 5 s; one message per claim, so that each daemon holds one.
    let cp = daemon(&db.url, relay.port).with("CPWATCH_DELIVERY__BATCH_SIZE", "1");
    let ids = queue_load(&cp, &db.url, tag, N);

    let started = Instant::now();
    let out = cp.run(&["deliver", "--once"]);
    let once = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        once < Duration::from_secs(10),
        "deliver --once took {once:?}"
    );

    let daemons: Vec<Running> = (0..2)
        .map(|_| Running(cp.command(&["run"]).stderr(Stdio::piped()).spawn().unwrap()))
        .collect();
    assert!(
        wait_until(20, || relay.stalled() >= 2),
        "both daemons are in a stalled exchange"
    );
    let mut stops = Vec::new();
    for d in daemons {
        let (took, status, log) = stop_and_read(d, 30);
        assert!(status.success(), "{status:?}\n{log}");
        stops.push(took);
    }
    let slowest = stops.iter().max().copied().unwrap_or_default();
    // The stop timeout in systemd/cpwatch.service is 60 s; here the exchange's deadline is 2 s.
    assert!(slowest < Duration::from_secs(8), "SIGTERM took {stops:?}");
    let unconfirmed = count(
        &db.url,
        "SELECT count(*) AS n FROM deliveries WHERE unconfirmed",
    );
    if stall != Stall::EndOfData {
        assert_eq!(unconfirmed, 0, "nothing reached the end of DATA");
    }

    relay.set_stall(None);
    let daemons: Vec<Running> = (0..2)
        .map(|_| Running(cp.command(&["run"]).spawn().unwrap()))
        .collect();
    assert!(wait_until(60, || load(&db.url, "sent") == N as i64));
    for mut d in daemons {
        assert!(stop(&mut d.0, 20).success());
    }
    let t = tally(&ids, &relay.message_id_counts());
    println!(
        "FIGURES relay stalled at {stall:?}, two daemons: deliver --once returned in {:.1}s, SIGTERM \
         stopped them in {:.1}s at most; {t}; {unconfirmed} sent unconfirmed (the relay never \
         answered their end)",
        once.as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert_eq!((t.duplicates, t.unexpected), (0, 0), "{t}");
    // A message is lost only if the relay swallowed its end without answering, and then it is
    // flagged unconfirmed.
    assert_eq!(t.lost as i64, unconfirmed, "{t}");
}

#[test]
fn relay_stalled_at_the_greeting_hangs_nothing() {
    stalled_relay(Stall::Greeting, "greeting");
}

#[test]
fn relay_stalled_after_rcpt_hangs_nothing() {
    stalled_relay(Stall::AfterRcpt, "rcpt");
}

#[test]
fn relay_stalled_at_the_end_of_data_hangs_nothing_and_flags_what_it_swallowed() {
    stalled_relay(Stall::EndOfData, "eod");
}

#[test]
fn relay_slow_to_answer_the_end_of_data_with_two_workers_gets_each_message_once() {
    const N: usize = 6;
    let db = TestDb::new();
    let relay = Relay::start();
    // Slower than the lease (5 s) and the exchange's deadline (2 s): the relay queues each
    // message 6 s after its end, whoever is still listening.
    relay.set_slow_end_of_data(Duration::from_secs(6));
    let cp = daemon(&db.url, relay.port);
    let ids = queue_load(&cp, &db.url, "slow", N);
    let started = Instant::now();
    let mut daemons: Vec<Running> = (0..2)
        .map(|_| Running(cp.command(&["run"]).spawn().unwrap()))
        .collect();
    assert!(wait_until(90, || load(&db.url, "sent") == N as i64));
    std::thread::sleep(Duration::from_secs(7)); // let the relay finish the last one
    for d in daemons.iter_mut() {
        assert!(stop(&mut d.0, 20).success());
    }
    let t = tally(&ids, &relay.message_id_counts());
    let unconfirmed = count(
        &db.url,
        "SELECT count(*) AS n FROM deliveries WHERE unconfirmed",
    );
    let health = cp.run(&["health", "--max-backlog", "100000"]);
    let text = String::from_utf8_lossy(&health.stdout);
    println!(
        "FIGURES relay answering the end of DATA after 6 s, deadline 2 s, two workers: {t}; \
         {unconfirmed} sent unconfirmed; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
    assert_eq!(unconfirmed, N as i64);
    assert_eq!(health.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL relay") && text.contains("without the relay's confirmation"),
        "{text}"
    );
}
