//! Mail at speed: one SMTP connection kept across messages, reopened once when the relay closed
//! it while idle (not a failure), closed after a failure; sent messages marked in batches, so a
//! crash between send and mark re-sends at most `delivery.mark_every` of them. Through the real
//! binary, PostgreSQL and a relay on loopback (tests/relay_support). Each prints its figures.

mod common;
mod fault_support;
mod relay_support;

use common::*;
use fault_support::*;
use relay_support::Relay;

fn load(url: &str, status: &str) -> i64 {
    count(
        url,
        &format!(
            "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = '{status}'"
        ),
    )
}

#[test]
fn one_connection_carries_a_whole_backlog_each_message_once() {
    const N: usize = 120; // more than one claim (batch_size 20) and one mark (mark_every 20)
    let db = TestDb::new();
    let relay = Relay::start();
    let cp = daemon(&db.url, relay.port);
    let ids = queue_load(&cp, &db.url, "session", N);

    let out = cp.ok(&["deliver", "--once"]);
    let t = tally(&ids, &relay.message_id_counts());
    println!(
        "FIGURES one process, {N} messages: {t}; {} connection(s)",
        relay.connections()
    );
    assert!(out.contains(&format!("sent {N},")), "{out}");
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
    assert_eq!(load(&db.url, "sent"), N as i64);
    assert_eq!(
        relay.connections(),
        1,
        "every message over the one connection"
    );
    assert_eq!(
        count(&db.url, "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND (attempts <> 1 OR last_error IS NOT NULL)"),
        0,
        "one attempt each, no error"
    );
}

#[test]
fn a_connection_the_relay_dropped_while_idle_is_reopened_and_is_not_a_failure() {
    const N: usize = 10;
    let db = TestDb::new();
    let relay = Relay::start();
    let cp = daemon(&db.url, relay.port);
    let ids = queue_load(&cp, &db.url, "idle", N);
    // The second half waits until the relay has dropped the daemon's connection.
    let mut conn = connect(&db.url);
    let held = "UPDATE deliveries SET status = 'cancelled' WHERE message_id IN \
                (SELECT message_id FROM outbox WHERE dedupe_key LIKE 'load/%' ORDER BY id OFFSET 5)";
    assert_eq!(exec(&mut conn, held), 5);
    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || relay.accepted().len() == 5));
    assert_eq!(relay.connections(), 1);

    relay.drop_connections();
    let release = "UPDATE deliveries SET status = 'pending' WHERE status = 'cancelled' \
                   AND message_id LIKE '<load-%'";
    assert_eq!(exec(&mut conn, release), 5);
    assert!(
        wait_until(60, || load(&db.url, "sent") == N as i64),
        "sent {}",
        load(&db.url, "sent")
    );
    // Counted before `health`, which logs in to the relay over a connection of its own.
    let connections = relay.connections();
    let health = cp.run(&["health", "--max-backlog", "100000"]);
    assert!(stop(&mut d.0, 20).success());
    let t = tally(&ids, &relay.message_id_counts());
    println!("FIGURES relay dropped the idle connection: {t}; {connections} connections");
    assert_eq!((t.lost, t.duplicates, t.unexpected), (0, 0, 0), "{t}");
    assert_eq!(connections, 2, "one fresh connection after the drop");
    assert_eq!(
        count(&db.url, "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND (attempts <> 1 OR last_error IS NOT NULL)"),
        0,
        "the reconnection used no attempt and recorded no error"
    );
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(
        text.contains("ok   relay") && !text.contains("FAIL relay"),
        "the relay is healthy:\n{text}"
    );
}

#[test]
fn a_refused_recipient_closes_the_connection_and_the_next_message_opens_a_fresh_one() {
    const N: usize = 3;
    let db = TestDb::new();
    let relay = Relay::start();
    relay.refuse("r2@load.example.org", 550);
    let cp = daemon(&db.url, relay.port);
    let ids = queue_load(&cp, &db.url, "refused", N);

    cp.ok(&["deliver", "--once"]);
    let counts = relay.message_id_counts();
    println!(
        "FIGURES a refusal mid-session: accepted {:?}; {} connections",
        counts,
        relay.connections()
    );
    assert_eq!(counts.get(&ids[0]), Some(&1));
    assert_eq!(counts.get(&ids[1]), None, "refused at RCPT TO");
    assert_eq!(counts.get(&ids[2]), Some(&1));
    assert_eq!(load(&db.url, "sent"), 2);
    assert_eq!(load(&db.url, "failed"), 1);
    // Connection 1 carried the first message and the refusal; the third went over a fresh one
    // (and the data-quality notice about the refusal, if it was due, over that one too).
    assert_eq!(relay.connections(), 2);
}

/// A crash between send and mark with marks batched: the messages sent since the last mark go
/// out once more (same Message-ID), never more than `mark_every`, and none is lost.
#[test]
fn crash_between_send_and_mark_resends_at_most_mark_every_messages() {
    const N: usize = 20;
    const MARK_EVERY: i64 = 3;
    let db = TestDb::new();
    let relay = Relay::start();
    let cp =
        daemon(&db.url, relay.port).with("CPWATCH_DELIVERY__MARK_EVERY", &MARK_EVERY.to_string());
    let ids = queue_load(&cp, &db.url, "batched", N);

    // Abort right after the 5th accepted message, before marking it.
    let out = cp
        .command(&["deliver", "--once"])
        .env(cpwatch::jobs::delivery::FAULT_ABORT_AFTER_SEND, "5")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault point aborts the process");
    assert_eq!(relay.accepted().len(), 5);
    let marked = load(&db.url, "sent");
    // Marked at every 3rd message, and at once after an exchange slower than 50 ms (the first,
    // which opens the connection, may be on a loaded machine): 3 or 4 of the 5, or 2 when
    // the first two were slow.
    assert!((2..5).contains(&marked), "marked {marked}");

    let mut d = Running(cp.command(&["run"]).spawn().unwrap());
    assert!(wait_until(60, || load(&db.url, "sent") == N as i64));
    assert!(stop(&mut d.0, 20).success());
    let counts = relay.message_id_counts();
    let t = tally(&ids, &counts);
    println!("FIGURES crash with mark_every = {MARK_EVERY}, {marked} of 5 marked: {t}");
    assert_eq!((t.lost, t.unexpected), (0, 0), "{t}");
    assert_eq!(
        t.duplicates as i64,
        5 - marked,
        "exactly the unmarked ones: {t}"
    );
    assert!(t.duplicates as i64 <= MARK_EVERY, "{t}");
    for id in &ids[marked as usize..5] {
        assert_eq!(
            counts.get(id),
            Some(&2),
            "{id}: sent again, same Message-ID"
        );
    }
}
