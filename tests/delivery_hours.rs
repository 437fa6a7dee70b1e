//! Non-urgent mail goes out only inside working hours on working days of its own partnership,
//! whatever its `send_after`; urgent mail at any hour.

mod common;
mod fault_support;

use common::*;
use fault_support::*;

#[test]
fn non_urgent_mail_waits_for_its_partnerships_working_hours_urgent_mail_does_not() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    // A second partnership, in Scotland: 2 January is a bank holiday there, not in England.
    let cp = daemon(&db.url, smtp.port)
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "true")
        .with(
            "CPWATCH_PARTNERSHIPS__ALBA__STANDARDS_POLICY",
            "knowsley-cp-2019",
        )
        .with("CPWATCH_PARTNERSHIPS__ALBA__DIVISION", "scotland");
    // Ten messages whose send_after (1 January 2026) has long passed by the instants below;
    // one of them urgent.
    let ids = queue_load(&cp, &db.url, "hours", 10);
    let mut conn = connect(&db.url);
    exec(
        &mut conn,
        "UPDATE deliveries SET send_after = '2026-01-01T00:00:00Z' WHERE message_id LIKE '<load-hours-%'",
    );
    exec(
        &mut conn,
        "UPDATE deliveries SET urgent = true WHERE message_id = '<load-hours-10@cpwatch.test>'",
    );
    exec(
        &mut conn,
        "UPDATE notices SET partnership_id = 'alba' WHERE key IN ('load/hours/1', 'load/hours/2', \
         'load/hours/3', 'load/hours/4')",
    );
    let sent = || {
        count(
            &db.url,
            "SELECT count(*) AS n FROM outbox WHERE dedupe_key LIKE 'load/%' AND status = 'sent'",
        )
    };
    // Knowsley's calendar (Europe/London, 09:00-17:00, Monday to Friday less bank holidays).
    for (at, what) in [
        ("2026-03-01T12:00:00Z", "a Sunday at noon"),
        ("2026-03-02T07:30:00Z", "a Monday at 07:30"),
        ("2026-03-02T17:00:00Z", "a Monday at 17:00 (close)"),
        ("2026-03-02T23:30:00Z", "a Monday at 23:30"),
        (
            "2026-04-03T10:00:00Z",
            "Good Friday (a bank holiday) at 11:00 BST",
        ),
        (
            "2026-04-06T07:30:00Z",
            "Easter Monday (a bank holiday) at 08:30 BST",
        ),
    ] {
        cp.ok(&["deliver", "--once", "--at", at]);
        assert_eq!(smtp.received().len(), 1, "{what}: only the urgent message");
    }
    assert_eq!(sent(), 1);
    assert_eq!(
        smtp.received()[0].header("Message-ID").as_deref(),
        Some("<load-hours-10@cpwatch.test>")
    );
    cp.ok(&["deliver", "--once", "--at", "2026-01-02T10:00:00Z"]);
    assert_eq!(
        sent(),
        6,
        "Friday 2 January, 10:00: Knowsley's go, the Scottish ones wait"
    );
    cp.ok(&["deliver", "--once", "--at", "2026-03-02T09:00:00Z"]);
    assert_eq!(sent(), 10, "Monday 09:00: the rest go");
    let t = tally(&ids, &smtp.message_id_counts());
    assert_eq!((t.lost, t.duplicates), (0, 0), "{t}");
}
