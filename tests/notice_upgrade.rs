//! Rows queued by an older cpwatch (one outbox row per recipient carrying the whole notification
//! as unversioned JSON) are carried over by the migration that introduced the notice table, and
//! still deliver: same recipients, same wording, same Message-ID.

mod common;

use common::*;
use cpwatch::store::MIGRATIONS;
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

/// The migrations of the release before the notice table.
const OLD_MIGRATIONS: usize = 4;

/// What the older cpwatch wrote as each outbox row's payload (its `Notification`, serialized).
fn old_payload() -> serde_json::Value {
    serde_json::json!({
        "key": "knowsley/case/KN-0001/icpc-within-15wd/2026-03-02T10:00:00Z/overdue",
        "kind": "overdue",
        "rule": "icpc-within-15wd",
        "standard": "S10",
        "title": "Initial child protection conference within 15 working days of the strategy discussion",
        "action": "Convene the initial child protection conference.",
        "partnership": "knowsley",
        "case": "KN-0001",
        "dispute": null,
        "occurrence": "2026-03-02T10:00:00Z",
        "step": "overdue",
        "due": "2026-03-23T17:00:00Z",
        "trigger_at": "2026-03-23T17:00:00Z",
        "send_after": "2026-03-24T09:00:00Z",
        "urgent": false,
        "to": [{"email": "tm1@ksc.example.org", "person": "p-tm1", "name": "T Manager", "role": "team_manager"}],
        "cc": [{"email": "sw1@ksc.example.org", "person": "p-sw1", "name": "A Worker", "role": "social_worker"}],
        "letter": null
    })
}

fn insert_old_row(conn: &mut PgConnection, recipient: &str, role: &str, message_id: &str) {
    let key = old_payload()["key"].as_str().unwrap().to_owned();
    diesel::sql_query(
        "INSERT INTO outbox (dedupe_key, partnership_id, kind, rule, case_ref, recipient, recipient_role, \
                             due_at, send_after, payload, message_id) \
         VALUES ($1, 'knowsley', 'overdue', 'icpc-within-15wd', 'KN-0001', $2, $3, \
                 '2026-03-23T17:00:00Z', '2026-03-24T09:00:00Z', $4, $5)",
    )
    .bind::<diesel::sql_types::Text, _>(format!("{key}/{recipient}"))
    .bind::<diesel::sql_types::Text, _>(recipient)
    .bind::<diesel::sql_types::Text, _>(role)
    .bind::<diesel::sql_types::Jsonb, _>(old_payload())
    .bind::<diesel::sql_types::Text, _>(message_id)
    .execute(conn)
    .unwrap();
}

/// A database at the previous release's schema, with one notice queued for two recipients the
/// way that release wrote it.
fn old_database(db: &TestDb) -> PgConnection {
    let mut conn = db.conn();
    for _ in 0..OLD_MIGRATIONS {
        conn.run_next_migration(MIGRATIONS).unwrap();
    }
    insert_old_row(
        &mut conn,
        "tm1@ksc.example.org",
        "to",
        "<old-tm1@cpwatch.invalid>",
    );
    insert_old_row(
        &mut conn,
        "sw1@ksc.example.org",
        "cc",
        "<old-sw1@cpwatch.invalid>",
    );
    conn
}

#[test]
fn a_row_queued_by_the_previous_version_still_delivers() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    drop(old_database(&db));

    let cp = Cpwatch::new(&db, Some(&smtp));
    let out = cp.ok(&["migrate"]);
    // The notices migration, and any that came after it.
    assert!(
        out.starts_with("applied ") && out.contains(": 20261201000100"),
        "{out}"
    );
    // The two rows are one notice with two deliveries now.
    assert_eq!(db.count("SELECT count(*) AS n FROM notices"), 1);
    assert_eq!(db.count("SELECT count(*) AS n FROM deliveries"), 2);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM notices WHERE NOT payload ? 'v' AND step = 'overdue'"),
        1,
        "the old payload is kept as it was and read as version 0"
    );

    let out = cp.ok(&["deliver", "--once", "--at", "2026-03-24T10:00:00Z"]);
    assert!(out.contains("sent 2"), "{out}");
    let got = smtp.wait_for(2, 10);
    assert_eq!(got.len(), 2);
    let to_tm = got
        .iter()
        .find(|m| m.to.iter().any(|t| t.contains("tm1@ksc.example.org")))
        .expect("the team manager's copy");
    assert_eq!(
        to_tm.header("Message-ID").as_deref(),
        Some("<old-tm1@cpwatch.invalid>")
    );
    let subject = to_tm.header("Subject").unwrap();
    assert!(
        subject.starts_with("KN-0001 overdue: Initial child protection conference"),
        "{subject}"
    );
    assert!(subject.contains("KN-0001"), "{subject}");
    let body = to_tm.text();
    assert!(
        body.contains("Convene the initial child protection conference."),
        "{body}"
    );
    assert!(
        body.contains("Also told: the child's social worker"),
        "{body}"
    );
    let to_sw = got
        .iter()
        .find(|m| m.to.iter().any(|t| t.contains("sw1@ksc.example.org")))
        .expect("the social worker's copy");
    assert!(
        to_sw
            .text()
            .contains("You are copied for information as the child's social worker"),
        "{}",
        to_sw.text()
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent' AND dedupe_key LIKE 'knowsley/case/KN-0001/%'"),
        2,
        "the outbox view shows both as sent, under their old keys"
    );
}

#[test]
fn the_migration_reverts_to_one_outbox_row_per_recipient() {
    let db = TestDb::new();
    let mut conn = old_database(&db);
    // The notices migration alone (later ones are reverted on their own).
    conn.run_next_migration(MIGRATIONS).unwrap();
    conn.revert_last_migration(MIGRATIONS).unwrap();
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM outbox WHERE payload->>'key' = \
             'knowsley/case/KN-0001/icpc-within-15wd/2026-03-02T10:00:00Z/overdue' \
             AND message_id LIKE '<old-%'"
        ),
        2
    );
    conn.run_pending_migrations(MIGRATIONS).unwrap();
    assert_eq!(db.count("SELECT count(*) AS n FROM deliveries"), 2);
}

/// A go-live summary and a data-quality notice as a cpwatch before payload version 3 queued
/// them: their sentences in `title` and `action`, no problem or go-live facts.
#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

/// A pending delivery of notice `id` to `recipient`, as a queued notice of any version has.
fn insert_delivery(conn: &mut PgConnection, id: i64, recipient: &str, message_id: &str) {
    diesel::sql_query(
        "INSERT INTO deliveries (notice_id, recipient, position, send_after, message_id) \
         VALUES ($1, $2, 'to', '2026-06-01T08:00:00Z', $3)",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .bind::<diesel::sql_types::Text, _>(recipient)
    .bind::<diesel::sql_types::Text, _>(message_id)
    .execute(conn)
    .unwrap();
}

fn insert_v2_notice(
    conn: &mut PgConnection,
    kind: &str,
    key: &str,
    case: Option<&str>,
    payload: serde_json::Value,
) {
    let id = diesel::sql_query(
        "INSERT INTO notices (key, partnership_id, kind, rule, case_ref, occurrence, step, due_at, \
                              trigger_at, send_after, payload) \
         VALUES ($1, 'knowsley', $2, $2, $3, '-', 'summary', '2026-06-01T08:00:00Z', \
                 '2026-06-01T08:00:00Z', '2026-06-01T08:00:00Z', $4) RETURNING id",
    )
    .bind::<diesel::sql_types::Text, _>(key)
    .bind::<diesel::sql_types::Text, _>(kind)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Text>, _>(case)
    .bind::<diesel::sql_types::Jsonb, _>(payload)
    .get_result::<Id>(conn)
    .unwrap()
    .id;
    insert_delivery(
        conn,
        id,
        "tm1@ksc.example.org",
        &format!("<{kind}@cpwatch.invalid>"),
    );
}

#[test]
fn a_go_live_summary_and_a_data_quality_notice_of_payload_version_2_still_read_as_written() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.ok(&["migrate"]);
    let to = serde_json::json!([{"email": "tm1@ksc.example.org", "person": "p-tm1", "name": "T Manager", "role": "team_manager"}]);
    let mut conn = db.conn();
    insert_v2_notice(
        &mut conn,
        "go_live_summary",
        "knowsley/go-live/2026-06-01T08:00:00Z/tm1@ksc.example.org",
        None,
        serde_json::json!({"v": 2, "title": "1 timescale on 1 of your cases",
            "action": "cpwatch started watching these cases on Monday 1 June 2026, 09:00 BST.\n\nCase KN-0001:\n  - due Wed 1 Apr 2026 17:00: Child seen every 4 weeks (child-seen-every-4-weeks, standard S12)",
            "to": to, "facts": {}}),
    );
    insert_v2_notice(
        &mut conn,
        "data_quality",
        "knowsley/case/KN-0001/data-quality/no-email-p-sw1",
        Some("KN-0001"),
        serde_json::json!({"v": 2, "title": "Case data that cpwatch cannot evaluate",
            "action": "Person p-sw1 (the child's social worker on case KN-0001) has no email address, so cpwatch cannot reach them.",
            "to": to, "facts": {}}),
    );
    let out = cp.ok(&["deliver", "--once", "--at", "2026-06-01T08:05:00Z"]);
    assert!(out.contains("sent 2"), "{out}");
    let got = smtp.wait_for(2, 10);
    let by_subject = |start: &str| {
        got.iter()
            .find(|m| m.header("Subject").is_some_and(|s| s.starts_with(start)))
            .unwrap_or_else(|| panic!("{start}"))
    };
    let summary = by_subject("Already overdue when cpwatch started:");
    assert_eq!(
        summary.header("Subject").unwrap(),
        "Already overdue when cpwatch started: 1 timescale on 1 of your cases"
    );
    let body = summary.text();
    assert!(
        body.contains("  - due Wed 1 Apr 2026 17:00: Child seen every 4 weeks (child-seen-every-4-weeks, standard S12)"),
        "{body}"
    );
    let dq = by_subject("KN-0001 case data to check:");
    assert_eq!(
        dq.header("Subject").unwrap(),
        "KN-0001 case data to check: Case data that cpwatch cannot evaluate"
    );
    assert!(
        dq.text().contains(
            "Person p-sw1 (the child's social worker on case KN-0001) has no email address"
        ),
        "{}",
        dq.text()
    );
}

/// A disagreement's notice as a cpwatch before payload version 4 queued it: its title in words
/// (`{policy title}, stage N: {stage name}`), with its story.
fn insert_v3_dispute_notice(conn: &mut PgConnection, payload: serde_json::Value) {
    let id = diesel::sql_query(
        "INSERT INTO notices (key, partnership_id, kind, rule, case_ref, dispute_ref, occurrence, \
                              step, due_at, trigger_at, send_after, payload) \
         VALUES ('knowsley/dispute/D-7/knowsley-escalation-2019:2/entered', 'knowsley', \
                 'escalation_stage', 'knowsley-escalation-2019:2', 'KN-0001', 'D-7', \
                 '2026-06-01T08:00:00Z', 'entered', '2026-06-08T16:00:00Z', \
                 '2026-06-01T08:00:00Z', '2026-06-01T08:00:00Z', $1) RETURNING id",
    )
    .bind::<diesel::sql_types::Jsonb, _>(payload)
    .get_result::<Id>(conn)
    .unwrap()
    .id;
    insert_delivery(conn, id, "lm@health.example.org", "<d7@cpwatch.invalid>");
}

#[test]
fn a_disagreement_notice_of_payload_version_3_still_delivers_with_its_stored_title() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.ok(&["migrate"]);
    let mut conn = db.conn();
    let title = "Knowsley Safeguarding Children Partnership escalation policy (2019), stage 2: Line manager to line manager";
    insert_v3_dispute_notice(
        &mut conn,
        serde_json::json!({"v": 3, "title": title,
            "action": "Discuss the disagreement with the other agency's line manager.",
            "to": [{"email": "lm@health.example.org", "role": "respondent.line_manager"}],
            "facts": {"dispute": {"subject": "threshold for a strategy discussion",
                "policy_title": "Knowsley Safeguarding Children Partnership escalation policy (2019)",
                "stage": 2, "stage_name": "Line manager to line manager",
                "why": "timescale lapsed", "history": []}}}),
    );
    let out = cp.ok(&["deliver", "--once", "--at", "2026-06-01T08:05:00Z"]);
    assert!(out.contains("sent 1"), "{out}");
    let got = smtp.wait_for(1, 10);
    assert_eq!(
        got[0].header("Subject").unwrap(),
        "D-7 stage 2: Line manager to line manager"
    );
    let body = got[0].text();
    assert!(
        body.contains("It is now at stage 2 of the Knowsley Safeguarding Children Partnership escalation policy (2019): Line manager to line manager."),
        "{body}"
    );
    assert!(!body.contains("dispute-stage"), "{body}");
    // The row is read as written: its title in words, not the code.
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) AS n FROM notices WHERE payload->>'title' = '{title}' AND payload->>'v' = '3'"
        )),
        1
    );
}
