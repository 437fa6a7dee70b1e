//! PostgreSQL: connections, migrations, and every query cpwatch runs. No business decisions
//! here: queries fetch state, the evaluator decides.

pub mod case_notices;
pub mod cases;
pub mod changes;
pub mod deliveries;
pub mod digests;
pub mod disputes;
pub mod events;
pub mod go_live;
pub mod holidays;
pub mod import;
pub mod metrics;
pub mod notices;
pub mod outbox_admin;
pub mod payload;
pub mod relay;
pub mod schema;
pub mod team_posts;

use diesel::migration::MigrationSource;
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

pub type DbError = diesel::result::Error;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is in the message, not chained as a source, so reports do not print it twice.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(diesel::ConnectionError),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    /// `database.url` cannot be parsed; the message never holds the URL.
    #[error("database.url {0}")]
    BadUrl(crate::dburl::UrlProblem),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("the database schema is behind this cpwatch ({0} pending migration(s)); run `cpwatch migrate`")]
    SchemaBehind(usize),
}

impl From<diesel::ConnectionError> for StoreError {
    fn from(e: diesel::ConnectionError) -> Self {
        StoreError::Connect(e)
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        StoreError::Query(e)
    }
}

/// Connect to `url`, checked first (libpq repeats a URL it cannot parse, password and all),
/// with any secret of the URL scrubbed from the error.
pub fn connect(url: &str) -> Result<PgConnection, StoreError> {
    crate::dburl::check(url).map_err(StoreError::BadUrl)?;
    PgConnection::establish(url).map_err(|e| StoreError::Connect(scrub_connection_error(e, url)))
}

/// The connection pool's error log, with the URL's secrets taken out of each message.
#[derive(Debug)]
pub struct ScrubbedLog(pub secrecy::SecretString);

impl diesel::r2d2::HandleError<diesel::r2d2::Error> for ScrubbedLog {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        use secrecy::ExposeSecret as _;
        let message = crate::dburl::scrub(&error.to_string(), self.0.expose_secret());
        tracing::error!(error = %message, "PostgreSQL connection failed");
    }
}

/// A connection error with `url`'s secrets taken out of its message.
pub fn scrub_connection_error(e: diesel::ConnectionError, url: &str) -> diesel::ConnectionError {
    use crate::dburl::scrub;
    use diesel::ConnectionError as E;
    match e {
        E::BadConnection(m) => E::BadConnection(scrub(&m, url)),
        E::InvalidConnectionUrl(m) => E::InvalidConnectionUrl(scrub(&m, url)),
        other => other,
    }
}

/// Names of migrations not yet applied.
pub fn pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    under_migration_lock(conn, |conn| {
        let pending = match applied_versions(conn)? {
            Some(applied) => MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)?
                .iter()
                .filter(|m| !applied.contains(&m.name().version().to_string()))
                .map(|m| m.name().to_string())
                .collect(),
            // A new database: diesel creates its table of applied migrations.
            None => conn
                .pending_migrations(MIGRATIONS)?
                .iter()
                .map(|m| m.name().to_string())
                .collect(),
        };
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(pending)
    })
}

/// The versions recorded in diesel's table of applied migrations; None if there is no such
/// table yet. Read directly rather than through diesel's harness, which first creates the table
/// if it is missing and so needs the right to create tables even when it is there: a service
/// account with no more than the rights to read and write cpwatch's tables can run cpwatch
/// against a schema its owner migrated.
fn applied_versions(conn: &mut PgConnection) -> Result<Option<Vec<String>>, DbError> {
    #[derive(QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let there: Locked =
        diesel::sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS locked")
            .get_result(conn)?;
    if !there.locked {
        return Ok(None);
    }
    let rows: Vec<Version> =
        diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations")
            .load(conn)?;
    Ok(Some(rows.into_iter().map(|r| r.version).collect()))
}

/// Apply pending migrations; returns their names.
pub fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    under_migration_lock(conn, |conn| {
        let done = conn.run_pending_migrations(MIGRATIONS)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            done.iter().map(|m| m.to_string()).collect(),
        )
    })
}

/// The advisory lock migrations are looked at and run under ("cpwatch" and 1 as one 64-bit key;
/// the partnership locks use the two-key form, a separate space).
const MIGRATION_LOCK: i64 = 0x6370_7761_7463_6801;

/// Run `f` holding the migration lock, so replicas started at once on an empty database do not
/// both create the schema (nor diesel's table of applied migrations): the second waits, then
/// finds nothing to do.
fn under_migration_lock<T, E: std::fmt::Display>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> Result<T, E>,
) -> Result<T, StoreError> {
    let lock = |conn: &mut PgConnection, verb: &str| {
        diesel::sql_query(format!("SELECT {verb}({MIGRATION_LOCK})"))
            .execute(conn)
            .map_err(|e| StoreError::Migration(e.to_string()))
    };
    lock(conn, "pg_advisory_lock")?;
    let result = f(conn).map_err(|e| StoreError::Migration(e.to_string()));
    lock(conn, "pg_advisory_unlock")?;
    result
}

/// Refuse to work against a schema that is behind, or bring it up to date when allowed.
pub fn ensure_schema(conn: &mut PgConnection, auto_migrate: bool) -> Result<(), StoreError> {
    let pending = pending_migrations(conn)?;
    if pending.is_empty() {
        return Ok(());
    }
    if auto_migrate {
        let applied = migrate(conn)?;
        tracing::info!(?applied, "applied pending migrations");
        Ok(())
    } else {
        Err(StoreError::SchemaBehind(pending.len()))
    }
}

/// Record something cpwatch did, for the audit trail.
pub fn audit(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), DbError> {
    use schema::audit_log::dsl as a;
    diesel::insert_into(a::audit_log)
        .values((
            a::actor.eq(actor),
            a::action.eq(action),
            a::subject.eq(subject),
            a::detail.eq(detail),
        ))
        .execute(conn)?;
    Ok(())
}

/// When the last evaluation pass (by any replica) was recorded in the audit log.
pub fn last_pass_at(
    conn: &mut PgConnection,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, DbError> {
    use schema::audit_log::dsl as a;
    a::audit_log
        .filter(a::action.eq("evaluation_pass"))
        .select(diesel::dsl::max(a::at))
        .first(conn)
}

/// The whole-pass lock of cpwatch before evaluation was split by partnership (a session-level
/// advisory lock on this key, "cpwatch" in ASCII). A pass now holds it *shared* while it runs, so
/// during a rolling upgrade an older replica (which takes it exclusively) and a newer one never
/// evaluate at the same time, while newer replicas run side by side.
const PASS_LOCK: i64 = 0x63_70_77_61_74_63_68; // "cpwatch"

/// The first key of every partnership's lock (the two-key form of PostgreSQL's advisory locks):
/// "cpwp" in ASCII. The second key is `partnership_lock_key`.
pub const PARTNERSHIP_LOCK_CLASS: i32 = 0x63_70_77_70; // "cpwp"

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

/// Take the shared side of the whole-pass lock unless an older cpwatch holds it for a pass;
/// false if one does.
pub fn try_pass_lock(conn: &mut PgConnection) -> Result<bool, DbError> {
    let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock_shared($1) AS locked")
        .bind::<diesel::sql_types::Int8, _>(PASS_LOCK)
        .get_result(conn)?;
    Ok(got.locked)
}

/// Give the shared whole-pass lock back.
pub fn pass_unlock(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_unlock_shared($1)")
        .bind::<diesel::sql_types::Int8, _>(PASS_LOCK)
        .execute(conn)?;
    Ok(())
}

/// The second key of a partnership's evaluation lock: the first four bytes of the SHA-256 of
/// its name, big-endian, as a signed 32-bit integer. Who holds one:
/// `SELECT pid, objid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1668314992`.
pub fn partnership_lock_key(partnership: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(partnership.as_bytes());
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// In a pass's batch transaction: commit without waiting for the WAL to reach the disk. Safe
/// for what a pass writes: a crash can lose only the last batches' notices together with their
/// cases' next checks and decided hashes (one transaction), so the next pass decides and queues
/// them again; and a delivery is marked sent by a synchronous commit, which flushes every earlier
/// commit first, so nothing sent can lose the row that queued it.
pub fn commit_without_flush(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
    Ok(())
}

/// Take a partnership's evaluation lock if no other session holds it; false if one does (another
/// replica is evaluating that partnership).
pub fn try_partnership_lock(conn: &mut PgConnection, partnership: &str) -> Result<bool, DbError> {
    let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS locked")
        .bind::<diesel::sql_types::Int4, _>(PARTNERSHIP_LOCK_CLASS)
        .bind::<diesel::sql_types::Int4, _>(partnership_lock_key(partnership))
        .get_result(conn)?;
    Ok(got.locked)
}

/// Give a partnership's evaluation lock back.
pub fn partnership_unlock(conn: &mut PgConnection, partnership: &str) -> Result<(), DbError> {
    diesel::sql_query("SELECT pg_advisory_unlock($1, $2)")
        .bind::<diesel::sql_types::Int4, _>(PARTNERSHIP_LOCK_CLASS)
        .bind::<diesel::sql_types::Int4, _>(partnership_lock_key(partnership))
        .execute(conn)?;
    Ok(())
}

/// Written to `next_check_at` when something changed: "look at this on the next pass".
pub const CHECK_NOW: chrono::DateTime<chrono::Utc> = chrono::DateTime::UNIX_EPOCH;

#[cfg(feature = "demo")]
/// Where PostgreSQL's server binaries are when `initdb` is not on PATH (Debian keeps them in
/// /usr/lib/postgresql/*/bin); None when it is. (`pgserver` starts private servers.)
pub fn postgres_bin_dir() -> Option<std::path::PathBuf> {
    let dir = crate::pgserver::server_bin_dir()?;
    let on_path =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir));
    (!on_path).then_some(dir)
}

/// A line of `EXPLAIN` output.
#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

/// `sql` under `EXPLAIN (ANALYZE, BUFFERS)`: run for real, and the plan with what each step cost.
fn explained(sql: &str) -> String {
    format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")
}

/// The lines of an `explained` statement's plan, the statement run with its binds.
fn plan(
    conn: &mut PgConnection,
    explained: BoxedSqlQuery<'_, Pg, SqlQuery>,
) -> Result<Vec<String>, DbError> {
    let lines: Vec<PlanLine> = explained.load(conn)?;
    Ok(lines.into_iter().map(|l| l.line).collect())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of a statement without binds (the pass bench's reading queries),
/// run for real: the plan's lines.
pub fn explain(conn: &mut PgConnection, sql: &str) -> Result<Vec<String>, DbError> {
    plan(conn, diesel::sql_query(explained(sql)).into_boxed())
}
