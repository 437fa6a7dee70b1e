//! Replicas started at the same moment on an empty database: each runs the migrations
//! (`database.auto_migrate`), and both must come up with one schema, not one of them dying on a
//! duplicate type or table.

mod common;

use common::*;
use std::sync::{Arc, Barrier};

#[test]
fn replicas_migrating_an_empty_database_at_once_both_succeed_with_one_schema() {
    for _ in 0..4 {
        let db = TestDb::new();
        let start = Arc::new(Barrier::new(3));
        let replicas: Vec<_> = (0..3)
            .map(|_| {
                let (url, start) = (db.url.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut conn = cpwatch::store::connect(&url).expect("connect");
                    start.wait();
                    cpwatch::store::ensure_schema(&mut conn, true).map_err(|e| e.to_string())
                })
            })
            .collect();
        for r in replicas {
            let outcome = r.join().expect("replica thread");
            assert_eq!(outcome, Ok(()), "every replica comes up");
        }
        let mut conn = db.conn();
        assert!(cpwatch::store::pending_migrations(&mut conn)
            .expect("pending")
            .is_empty());
        let applied = db.count("SELECT count(*) AS n FROM __diesel_schema_migrations");
        let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("migrations dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
            .count();
        assert_eq!(applied, shipped as i64, "each migration applied once");
    }
}

/// The migration that drops the deliveries' foreign keys (issue 17; the last one, while it is)
/// reverts to them and applies again.
#[test]
fn the_deliveries_foreign_keys_go_and_come_back_with_their_migration() {
    use diesel_migrations::MigrationHarness;
    let db = TestDb::new();
    let mut conn = db.conn();
    cpwatch::store::migrate(&mut conn).expect("migrate");
    let foreign_keys = || {
        db.count(
            "SELECT count(*) AS n FROM pg_constraint \
             WHERE conrelid = 'deliveries'::regclass AND contype = 'f'",
        )
    };
    assert_eq!(foreign_keys(), 0, "dropped");
    conn.revert_last_migration(cpwatch::store::MIGRATIONS)
        .expect("revert");
    assert_eq!(foreign_keys(), 2, "notice_id and digest_id, back");
    assert_eq!(
        cpwatch::store::pending_migrations(&mut conn).expect("pending"),
        ["2026-12-22-000100_deliveries_without_foreign_keys"],
        "the one reverted is pending, read from the table of applied migrations"
    );
    cpwatch::store::migrate(&mut conn).expect("migrate again");
    assert_eq!(foreign_keys(), 0, "dropped again");
}
