//! Team-channel posts (`team_posts`): each summary and alert once, by its unique key, claimed
//! under a lease and marked only while the claim is still the worker's.

use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Double, Int4, Int8, Nullable, Text, Timestamptz};

/// The key of a partnership's summary for one local day.
pub fn summary_key(partnership: &str, day: chrono::NaiveDate) -> String {
    format!("{partnership}/team/summary/{day}")
}

/// The key of the alert about one notice.
pub fn alert_key(partnership: &str, notice_key: &str) -> String {
    format!("{partnership}/team/alert/{notice_key}")
}

/// Queue a post unless one with its key exists. True if it was new.
pub fn queue(
    conn: &mut PgConnection,
    partnership: &str,
    key: &str,
    kind: &str,
    text: &str,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "INSERT INTO team_posts (partnership_id, key, kind, text) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind::<Text, _>(partnership)
    .bind::<Text, _>(key)
    .bind::<Text, _>(kind)
    .bind::<Text, _>(text)
    .execute(conn)?;
    Ok(n == 1)
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = Bool)]
    found: bool,
}

/// Whether a post with this key was ever queued.
pub fn exists(conn: &mut PgConnection, key: &str) -> Result<bool, DbError> {
    let r: Found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM team_posts WHERE key = $1) AS found")
            .bind::<Text, _>(key)
            .get_result(conn)?;
    Ok(r.found)
}

/// An immediate-risk notice that has no alert yet: its stored title and, for a disagreement,
/// the facts its title is worded from (payload version 4 stores the title as a code).
#[derive(Debug, Clone, QueryableByName)]
pub struct UrgentNotice {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub policy_title: Option<String>,
    /// The stage number as stored (JSON text).
    #[diesel(sql_type = Nullable<Text>)]
    pub stage: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub stage_name: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub due_at: DateTime<Utc>,
}

/// The partnership's immediate-risk (urgent) notices queued in the last day without an alert.
pub fn unalerted_urgent(
    conn: &mut PgConnection,
    partnership: &str,
) -> Result<Vec<UrgentNotice>, DbError> {
    diesel::sql_query(
        "SELECT n.key, coalesce(n.payload->>'title', '') AS title, \
                n.payload #>> '{facts,dispute,policy_title}' AS policy_title, \
                n.payload #>> '{facts,dispute,stage}' AS stage, \
                n.payload #>> '{facts,dispute,stage_name}' AS stage_name, n.due_at \
         FROM notices n \
         WHERE n.urgent AND n.partnership_id = $1 AND n.created_at > now() - interval '1 day' \
           AND NOT EXISTS (SELECT 1 FROM team_posts t \
                           WHERE t.key = $1 || '/team/alert/' || n.key) \
         ORDER BY n.id LIMIT 100",
    )
    .bind::<Text, _>(partnership)
    .load(conn)
}

/// A post claimed for sending.
#[derive(Debug, Clone, QueryableByName)]
pub struct Post {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub partnership_id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub text: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
}

/// Claim up to `limit` pending posts of these partnerships whose time has come, each claim an
/// attempt, under a lease.
pub fn claim(
    conn: &mut PgConnection,
    partnerships: &[String],
    limit: i64,
    lease_seconds: i64,
    worker: &str,
) -> Result<Vec<Post>, DbError> {
    diesel::sql_query(
        "UPDATE team_posts SET locked_until = now() + make_interval(secs => $3), \
                attempts = attempts + 1, claimed_by = $4 \
         WHERE id IN (SELECT id FROM team_posts WHERE status = 'pending' \
                      AND partnership_id = ANY($1) AND next_attempt_at <= now() \
                      AND (locked_until IS NULL OR locked_until < now()) \
                      ORDER BY kind, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, partnership_id, kind, text, attempts",
    )
    .bind::<diesel::sql_types::Array<Text>, _>(partnerships)
    .bind::<Int8, _>(limit)
    .bind::<Double, _>(lease_seconds as f64)
    .bind::<Text, _>(worker)
    .load(conn)
}

/// What came of one post.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Sent,
    /// Try again at this instant, or (`dead`) give up after the last attempt.
    Retry {
        error: &'a str,
        at: DateTime<Utc>,
        dead: bool,
    },
    /// Refused for good.
    Failed {
        error: &'a str,
    },
}

/// Mark a claimed post; false if it is no longer this worker's.
pub fn mark(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    outcome: Outcome<'_>,
) -> Result<bool, DbError> {
    let (status, error, at) = match outcome {
        Outcome::Sent => ("sent", None, None),
        Outcome::Retry { error, at, dead } => {
            (if dead { "dead" } else { "pending" }, Some(error), Some(at))
        }
        Outcome::Failed { error } => ("failed", Some(error), None),
    };
    let n = diesel::sql_query(
        "UPDATE team_posts SET status = $3, last_error = coalesce($4, last_error), \
                next_attempt_at = coalesce($5, next_attempt_at), locked_until = NULL, \
                sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END \
         WHERE id = $1 AND claimed_by = $2 AND status = 'pending'",
    )
    .bind::<Int8, _>(id)
    .bind::<Text, _>(worker)
    .bind::<Text, _>(status)
    .bind::<diesel::sql_types::Nullable<Text>, _>(error)
    .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(at)
    .execute(conn)?;
    Ok(n == 1)
}

/// Team-channel posts refused for good or dead-lettered since `since` (for `cpwatch health`).
pub fn undelivered_since(conn: &mut PgConnection, since: DateTime<Utc>) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::Int8)]
        n: i64,
    }
    let row: N = diesel::sql_query(
        "SELECT count(*) AS n FROM team_posts WHERE status IN ('failed', 'dead') AND created_at >= $1",
    )
    .bind::<Timestamptz, _>(since)
    .get_result(conn)?;
    Ok(row.n)
}
