//! Fault tests of delivery, through the real binary, PostgreSQL and an SMTP server on loopback:
//! the relay down then up, several replicas with one SIGKILLed, a crash between send and mark,
//! SIGTERM during a send, PostgreSQL restarted mid-run. Each prints its figures.

mod common;
mod fault_support;

use common::*;
use fault_support::*;

fn load_sent(url: &str) -> i64 {
    count(
        url,
        "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = 'sent'",
    )
}

#[test]
fn relay_refusing_connections_then_421_then_up_loses_nothing() {
    let db = TestDb::new();
    let port = free_port(); // nothing listens: connections are refused
    let cp = daemon(&db.url, port);
    let ids = queue_load(&cp, &db.url, "outage", 200);
    let _d = Running(cp.command(&["run"]).spawn().unwrap());

    // Refused for 4 seconds: the mail waits, and the outage uses up none of its attempts.
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(load_sent(&db.url), 0);
    let errors = count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND last_error IS NOT NULL",
    );
    assert!(errors >= 1, "the refusals were recorded");
    assert_eq!(
        count(&db.url, "SELECT coalesce(max(attempts), 0)::int8 AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = 'pending' AND (locked_until IS NULL OR locked_until < now())"),
        0,
        "an unreachable relay must not use up attempts"
    );

    // Listening, but refusing service (421) for 3 seconds.
    let smtp = SmtpServer::start_on(port);
    smtp.set_down(true);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(smtp.received().len(), 0);
    assert_eq!(load_sent(&db.url), 0);

    // Up: everything flows, once.
    smtp.set_down(false);
    assert!(
        wait_until(60, || load_sent(&db.url) == 200),
        "sent {}",
        load_sent(&db.url)
    );
    let t = tally(&ids, &smtp.message_id_counts());
    println!("FIGURES relay down then up: {t}");
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
    assert_eq!(
        count(
            &db.url,
            "SELECT count(*) AS n FROM outbox WHERE status IN ('dead', 'failed')"
        ),
        0
    );
}

#[test]
fn three_replicas_one_sigkilled_deliver_every_message_once() {
    const N: usize = 3000;
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = daemon(&db.url, smtp.port);
    let ids = queue_load(&cp, &db.url, "replicas", N);
    let started = std::time::Instant::now();
    let mut daemons: Vec<Running> = (0..3)
        .map(|_| Running(cp.command(&["run"]).spawn().unwrap()))
        .collect();

    assert!(wait_until(120, || smtp.received().len() >= N / 3));
    let victim = &mut daemons[1].0;
    signal(victim, 9);
    let status = victim.wait().unwrap();
    let at_kill = smtp.received().len();
    assert!(!status.success());

    assert!(
        wait_until(180, || load_sent(&db.url) == N as i64),
        "sent {} of {N}",
        load_sent(&db.url)
    );
    std::thread::sleep(std::time::Duration::from_secs(1)); // let any straggler arrive
    let t = tally(&ids, &smtp.message_id_counts());
    let per_worker = count(
        &db.url,
        "SELECT count(DISTINCT claimed_by) AS n FROM outbox WHERE dedupe_key LIKE 'load/%'",
    );
    println!(
        "FIGURES three replicas, one SIGKILLed after {at_kill} messages: {t}; {per_worker} workers claimed rows; {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for d in daemons.iter_mut() {
        if d.0.try_wait().unwrap().is_none() {
            assert!(stop(&mut d.0, 30).success());
        }
    }
    assert_eq!(t.lost, 0, "{t}");
    assert_eq!(t.unexpected, 0, "{t}");
    // Marks are batched (delivery.mark_every, default 20): the SIGKILLed replica's messages
    // sent since its last mark go out once more, at most 20 (they were one before batching).
    assert!(
        t.duplicates <= 20,
        "at most the unmarked ones of the killed replica: {t}"
    );
    assert!(per_worker >= 3, "every replica delivered");
}

#[test]
fn crash_between_send_and_mark_sends_that_one_message_again_and_loses_none() {
    const N: usize = 20;
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    // Each message marked as it is sent: the window of one this test pins down (batched marks,
    // the default, are tests/delivery_session.rs's).
    let cp = daemon(&db.url, smtp.port).with("CPWATCH_DELIVERY__MARK_EVERY", "1");
    let ids = queue_load(&cp, &db.url, "crash", N);

    // The fault point aborts the process right after its 5th accepted message, before marking it.
    let out = cp
        .command(&["run"])
        .env(cpwatch::jobs::delivery::FAULT_ABORT_AFTER_SEND, "5")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point aborts the process");
    assert!(String::from_utf8_lossy(&out.stderr).contains("aborting after a send"));
    assert_eq!(smtp.received().len(), 5);
    assert_eq!(load_sent(&db.url), 4, "the 5th was sent but not marked");

    // A fresh process takes the crashed one's rows once their lease has ended.
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || load_sent(&db.url) == N as i64));
    assert!(stop(&mut d.0, 20).success());
    let counts = smtp.message_id_counts();
    let t = tally(&ids, &counts);
    println!("FIGURES crash between send and mark: {t}");
    assert_eq!((t.lost, t.unexpected), (0, 0), "{t}");
    assert_eq!(t.duplicates, 1, "exactly the message in flight: {t}");
    assert_eq!(
        counts.get(&ids[4]),
        Some(&2),
        "the 5th, with the same Message-ID"
    );
}

#[test]
fn sigterm_during_a_send_finishes_it_and_releases_the_rest() {
    const N: usize = 10;
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    smtp.set_delay_ms(1500);
    let cp = daemon(&db.url, smtp.port);
    let ids = queue_load(&cp, &db.url, "term", N);
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());

    // Wait until a message is in the middle of its exchange, then SIGTERM.
    assert!(wait_until(30, || {
        count(
        &db.url,
        "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND locked_until IS NOT NULL"
    ) > 0
    }));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = stop(&mut d.0, 20);
    assert!(status.success(), "{status:?}");
    let received = smtp.received().len() as i64;
    assert!(received >= 1);
    assert_eq!(load_sent(&db.url), received, "what was sent is marked sent");
    assert_eq!(
        count(&db.url, "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = 'pending' AND locked_until IS NOT NULL"),
        0,
        "the rest of the batch is released, not left leased"
    );
    assert_eq!(
        count(&db.url, "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = 'pending' AND attempts > 0"),
        0,
        "released rows keep their attempts"
    );

    smtp.set_delay_ms(0);
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || load_sent(&db.url) == N as i64));
    assert!(stop(&mut d.0, 20).success());
    let t = tally(&ids, &smtp.message_id_counts());
    println!("FIGURES SIGTERM during a send ({received} sent before the stop): {t}");
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
}

#[test]
fn postgresql_restarted_mid_run_daemon_reconnects_and_catches_up() {
    const N: usize = 300;
    let pg = PrivatePg::start();
    let smtp = SmtpServer::start();
    smtp.set_delay_ms(15);
    let cp = daemon(&pg.url(), smtp.port)
        .with("CPWATCH_DELIVERY__LEASE_SECONDS", "10")
        // A pass every 2 seconds, to see passes resume after the restart.
        .with("CPWATCH_SCHEDULE__EVALUATE_CRON", "*/2 * * * * *");
    let ids = queue_load(&cp, &pg.url(), "pgrestart", N);
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());

    assert!(wait_until(60, || smtp.received().len() >= N / 4));
    pg.stop("fast");
    let at_stop = smtp.received().len();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        d.0.try_wait().unwrap().is_none(),
        "the daemon survives the database going away"
    );
    pg.start_again();
    let restarted = chrono::Utc::now();

    assert!(
        wait_until(120, || load_sent(&pg.url()) == N as i64),
        "sent {} of {N}",
        load_sent(&pg.url())
    );
    assert!(
        wait_until(30, || {
            count(
            &pg.url(),
            &format!(
                "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass' AND at > '{}'",
                restarted.to_rfc3339()
            )
        ) >= 1
        }),
        "evaluation passes resume after the restart"
    );
    let health = cp.run(&["health"]);
    let health_text = String::from_utf8_lossy(&health.stdout).into_owned();
    assert!(d.0.try_wait().unwrap().is_none(), "still running");
    assert!(stop(&mut d.0, 20).success());
    let t = tally(&ids, &smtp.message_id_counts());
    println!("FIGURES PostgreSQL restarted after {at_stop} messages: {t}");
    println!("health after the restart:\n{health_text}");
    assert!(health.status.success(), "{health_text}");
    assert_eq!((t.lost, t.unexpected), (0, 0), "{t}");
    assert!(t.duplicates <= 1, "at most the one message in flight: {t}");
}
