//! Evaluation split by partnership (one advisory lock each), and passes that cost what changed:
//! a case whose decisions did not change writes nothing; the idle probe; a superseded delivery a
//! worker held is withdrawn by a later pass.

mod common;
mod fault_support;

use common::*;
use fault_support::*;
use serde_json::json;

/// The key `store::partnership_lock_key` documents: the first four bytes of the SHA-256 of the
/// name, as a signed 32-bit integer (computed here independently, with sha2).
fn lock_sql(verb: &str, partnership: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(partnership.as_bytes());
    let key = i32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    format!("SELECT {verb}(1668314992, {key})")
}

/// Knowsley's case file again as another partnership's.
fn in_partnership(file: &str, partnership: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(file).expect("case file JSON");
    doc["partnership"] = json!(partnership);
    doc.to_string()
}

fn two_partnerships(db: &TestDb) -> Cpwatch {
    let cp = Cpwatch::new(db, None)
        .with(
            "CPWATCH_PARTNERSHIPS__SEFTON__STANDARDS_POLICY",
            "knowsley-cp-2019",
        )
        .with(
            "CPWATCH_PARTNERSHIPS__SEFTON__DIVISION",
            "england-and-wales",
        );
    cp.setup(&overdue_case_file());
    let out = cp.import_text(&in_partnership(&overdue_case_file(), "sefton"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cp
}

fn queued_in(db: &TestDb, partnership: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) AS n FROM outbox WHERE partnership_id = '{partnership}'"
    ))
}

#[test]
fn a_partnership_held_by_another_replica_is_left_to_it_and_the_rest_evaluated() {
    let db = TestDb::new();
    let cp = two_partnerships(&db);
    // Another replica is evaluating Knowsley.
    let mut holder = connect(&db.url);
    exec(&mut holder, &lock_sql("pg_advisory_lock", "knowsley"));
    let out = cp.run(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("left to another cpwatch evaluating them now: knowsley"),
        "{stdout}"
    );
    assert_eq!(queued_in(&db, "knowsley"), 0, "Knowsley was left alone");
    assert!(queued_in(&db, "sefton") > 0, "Sefton was evaluated");
    let audit = db.count(
        "SELECT count(*) AS n FROM audit_log WHERE action = 'evaluation_pass' \
         AND detail->'partnerships' = '[\"sefton\"]' AND detail->'held_elsewhere' = '[\"knowsley\"]'",
    );
    assert_eq!(audit, 1, "the pass's audit row names both");

    // Both held: nothing done, exit 75 as when an older cpwatch holds the whole-pass lock.
    exec(&mut holder, &lock_sql("pg_advisory_lock", "sefton"));
    let out = cp.run(&["evaluate", "--at", "2026-04-02T12:00:00Z"]);
    assert_eq!(out.status.code(), Some(75));
    assert!(String::from_utf8_lossy(&out.stdout).contains("skipped: another cpwatch"));

    // Released: the next pass takes Knowsley, and the lock is given back after it.
    exec(&mut holder, &lock_sql("pg_advisory_unlock", "knowsley"));
    exec(&mut holder, &lock_sql("pg_advisory_unlock", "sefton"));
    cp.ok(&["evaluate", "--at", "2026-04-02T12:00:00Z"]);
    assert!(queued_in(&db, "knowsley") > 0);
    assert_eq!(
        // pg_locks shows every database's: other tests' passes run beside this one.
        db.count(
            "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        0,
        "no lock is left behind"
    );
}

#[test]
fn a_repeated_pass_that_decides_the_same_writes_nothing() {
    let db = TestDb::new();
    let cp = two_partnerships(&db);
    let at = "2026-04-01T12:00:00Z";
    cp.ok(&["evaluate", "--at", at, "--full"]);
    let queued = db.count("SELECT count(*) AS n FROM deliveries");
    assert!(queued > 0);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM cases WHERE decided_hash IS NULL"),
        0,
        "each case keeps the hash of what was decided"
    );
    let versions = |db: &TestDb| {
        db.count("SELECT sum(xmin::text::bigint)::bigint AS n FROM cases")
            + db.count("SELECT coalesce(sum(xmin::text::bigint), 0)::bigint AS n FROM deliveries")
    };
    let before = versions(&db);
    // The same instant again, forced over every case: everything is queued already.
    let again = cp.ok(&["evaluate", "--at", at, "--full", "--format", "json"]);
    assert!(again.trim().is_empty(), "nothing is newly queued: {again}");
    assert_eq!(versions(&db), before, "no case or delivery row was written");
    assert_eq!(db.count("SELECT count(*) AS n FROM deliveries"), queued);
    // `--list-due` still lists what is due, as queued already.
    let due = cp.due(at);
    assert!(!due.is_empty());
    // A change to the case is evaluated and written again.
    let file = case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"}
    ]));
    assert!(cp.import_text(&file).status.success());
    let text = cp.ok(&["evaluate", "--at", "2026-04-01T13:00:00Z"]);
    assert!(text.contains("1 case(s) evaluated"), "{text}");
    assert_ne!(versions(&db), before);
}

#[test]
fn an_idle_pass_reads_no_case_and_a_due_one_reads_only_those_due() {
    let db = TestDb::new();
    let cp = two_partnerships(&db);
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let idle = cp.ok(&["evaluate", "--at", "2026-04-01T12:05:00Z"]);
    assert!(idle.contains("0 case(s) evaluated"), "{idle}");
    // One case of one partnership due: that one alone is read.
    exec(
        &mut connect(&db.url),
        "UPDATE cases SET next_check_at = '-infinity' WHERE partnership_id = 'sefton'",
    );
    let due = cp.ok(&["evaluate", "--at", "2026-04-01T12:10:00Z"]);
    assert!(due.contains("1 case(s) evaluated"), "{due}");
}

#[test]
fn a_superseded_delivery_a_worker_held_is_withdrawn_by_a_later_pass() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(json!([])));
    let queued = cp.ok(&["evaluate", "--at", "2026-03-18T09:00:00Z"]);
    assert!(queued.contains("1 new message(s) queued"), "{queued}");
    // A worker has claimed the reminder (its lease runs) when the work is recorded as done.
    let mut conn = connect(&db.url);
    exec(
        &mut conn,
        "UPDATE deliveries SET locked_until = now() + interval '1 hour', claimed_by = 'w1'",
    );
    let file =
        s47_case(json!([{"kind": "icpc_held", "at": "2026-03-18T09:30:00Z", "outcome": "plan"}]));
    assert!(cp.import_text(&file).status.success());
    let held = cp.ok(&["evaluate", "--at", "2026-03-18T10:00:00Z"]);
    assert!(held.contains("0 queued message(s) withdrawn"), "{held}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM cases WHERE decided_hash IS NULL"),
        1,
        "the case keeps no hash while a superseded delivery is held"
    );
    // The worker gave it back unsent; the next pass over the case withdraws it.
    exec(
        &mut conn,
        "UPDATE deliveries SET locked_until = NULL, claimed_by = NULL",
    );
    let after = cp.ok(&["evaluate", "--at", "2026-03-18T10:00:00Z", "--full"]);
    assert!(after.contains("1 queued message(s) withdrawn"), "{after}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'cancelled'"),
        1
    );
}

/// Seven cases, each a copy of the overdue case under its own reference, a day apart.
fn seven_cases() -> String {
    let mut doc: serde_json::Value =
        serde_json::from_str(&overdue_case_file()).expect("case file JSON");
    let one = doc["cases"][0].clone();
    let cases: Vec<serde_json::Value> = (1..=7)
        .map(|i| {
            let mut c = one.clone();
            c["ref"] = json!(format!("KN-01{i:02}"));
            c
        })
        .collect();
    doc["cases"] = json!(cases);
    doc.to_string()
}

/// What a database has queued: every notice key with its recipients, in order.
fn queued_rows(db: &TestDb) -> Vec<(String, String)> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        recipient: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT n.key, d.recipient FROM notices n JOIN deliveries d ON d.notice_id = n.id \
         ORDER BY n.key, d.recipient",
    )
    .load(&mut connect(&db.url))
    .expect("queued rows");
    rows.into_iter().map(|r| (r.key, r.recipient)).collect()
}

#[test]
fn a_pass_read_ahead_and_written_on_two_connections_decides_and_reports_what_one_batch_does() {
    // Batches of 2 over 7 cases: read ahead by the reader thread and written on two connections
    // at once (more than one batch); batches of 500: one batch, read and written on the pass's
    // own connection. The same rows are queued, and the same notices printed in the same order.
    let mut queued = Vec::new();
    let mut printed = Vec::new();
    for batch_size in ["2", "500"] {
        let db = TestDb::new();
        let cp = Cpwatch::new(&db, None).with("CPWATCH_DATABASE__BATCH_SIZE", batch_size);
        cp.setup(&seven_cases());
        let text = cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z", "--full"]);
        assert!(text.contains("7 case(s) evaluated"), "{batch_size}: {text}");
        let hourly = cp.ok(&["evaluate", "--at", "2026-04-01T12:30:00Z"]);
        assert!(
            hourly.contains("0 new message(s) queued"),
            "{batch_size}: {hourly}"
        );
        queued.push(queued_rows(&db));
        printed.push(text);
    }
    assert!(
        queued[0].len() >= 7,
        "each case queued something: {:?}",
        queued[0]
    );
    assert_eq!(queued[0], queued[1]);
    let order = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_whitespace().find(|w| w.contains("KN-01")))
            .map(str::to_owned)
            .collect()
    };
    let (two, one) = (order(&printed[0]), order(&printed[1]));
    assert!(
        two.len() >= 7,
        "the notices name their cases: {}",
        printed[0]
    );
    assert_eq!(two, one, "{}\n---\n{}", printed[0], printed[1]);
    assert!(
        two.windows(2).all(|w| w[0] <= w[1]),
        "reported in the order of the cases: {two:?}"
    );
}

/// A role that may hold at most `limit` connections at once, with what cpwatch needs on the test
/// database's tables (superusers are not held to a connection limit); dropped with this value,
/// even when the test fails (roles belong to the whole server, not to the test's database).
struct LimitedRole {
    name: String,
    /// The test database's URL, logging in as this role.
    url: String,
    admin_url: String,
}

impl LimitedRole {
    fn new(db: &TestDb, limit: u32) -> LimitedRole {
        use diesel::prelude::*;
        let database = db.url.rsplit('/').next().unwrap_or("db").replace('-', "_");
        let name = format!("limited_{limit}_{database}");
        let mut conn = connect(&db.url);
        for sql in [
            format!("CREATE ROLE {name} LOGIN CONNECTION LIMIT {limit}"),
            // What README's "The database role" says a service account needs.
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"
            ),
            format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {name}"),
        ] {
            diesel::sql_query(&sql).execute(&mut conn).expect(&sql);
        }
        let url = db
            .url
            .replacen("postgres://postgres@", &format!("postgres://{name}@"), 1);
        LimitedRole {
            name,
            url,
            admin_url: db.url.clone(),
        }
    }
}

impl Drop for LimitedRole {
    fn drop(&mut self) {
        use diesel::prelude::*;
        let Ok(mut conn) = diesel::PgConnection::establish(&self.admin_url) else {
            return;
        };
        for sql in [
            format!("DROP OWNED BY {}", self.name),
            format!("DROP ROLE {}", self.name),
        ] {
            let _ = diesel::sql_query(&sql).execute(&mut conn);
        }
    }
}

#[test]
fn a_service_role_with_few_connections_imports_evaluates_and_delivers_the_same() {
    let at = ["evaluate", "--at", "2026-04-01T12:00:00Z", "--full"];
    let reference = {
        let db = TestDb::new();
        let cp = Cpwatch::new(&db, None).with("CPWATCH_DATABASE__BATCH_SIZE", "2");
        cp.setup(&seven_cases());
        cp.ok(&at);
        queued_rows(&db)
    };
    assert!(reference.len() >= 7, "{reference:?}");
    // The schema's owner migrates; a role that may only read and write the tables does the rest.
    // Two connections: the pass's own and the reader, no second writer. One: the pass's own.
    for (limit, fallback) in [
        (2, "no second connection for writing"),
        (1, "no second connection for reading ahead"),
    ] {
        let db = TestDb::new();
        let smtp = SmtpServer::start();
        Cpwatch::new(&db, None).ok(&["migrate"]);
        let role = LimitedRole::new(&db, limit);
        let cp = Cpwatch::new(&db, Some(&smtp))
            .with("CPWATCH_DATABASE__URL", &role.url)
            .with("CPWATCH_DATABASE__BATCH_SIZE", "2");
        assert!(
            cp.import_text(&seven_cases()).status.success(),
            "limit {limit}: import"
        );
        let out = cp.run(&at);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "limit {limit}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("7 case(s) evaluated"),
            "limit {limit}: {stdout}"
        );
        assert!(stderr.contains(fallback), "limit {limit}: {stderr}");
        assert_eq!(queued_rows(&db), reference, "limit {limit}");
        cp.ok(&["deliver", "--once"]);
        assert_eq!(
            db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'sent'"),
            reference.len() as i64,
            "limit {limit}: every message sent"
        );
    }
}
