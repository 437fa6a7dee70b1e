//! Digests in the database: holding a delivery for a morning digest (`deliveries.digest_at`),
//! taking one person's held deliveries when their digest is made, marking what a digest carried
//! (`status = 'digested'`, `digest_id`), and reading a digest's items back to word it.

use super::notices::NoticeRow;
use super::DbError;
use crate::digest::Hold;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Int8, Text, Timestamptz};

/// Hold these deliveries until their digest. Only deliveries created in the current
/// transaction, still pending and never claimed, are held: so a delivery released from a
/// digest (see `release`) is never held again, and no worker can have seen a held one. Call it
/// in the transaction that queued them. Returns how many were held.
pub fn hold(conn: &mut PgConnection, holds: &[Hold]) -> Result<usize, DbError> {
    if holds.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&str> = holds.iter().map(|h| h.key.as_str()).collect();
    let recipients: Vec<&str> = holds.iter().map(|h| h.recipient.as_str()).collect();
    let until: Vec<DateTime<Utc>> = holds.iter().map(|h| h.until).collect();
    diesel::sql_query(
        "UPDATE deliveries d SET digest_at = h.until \
         FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS h(key, recipient, until) \
         JOIN notices n ON n.key = h.key \
         WHERE d.notice_id = n.id AND d.recipient = h.recipient AND d.status = 'pending' \
           AND d.digest_at IS NULL AND d.claimed_by IS NULL AND d.created_at = now()",
    )
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<Text>, _>(recipients)
    .bind::<Array<Timestamptz>, _>(until)
    .execute(conn)
}

/// The instant of the latest evaluation pass recorded in the last two days (its audit row's
/// subject), if any.
pub fn last_pass_instant(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        subject: Option<String>,
    }
    let r: Row = diesel::sql_query(
        "SELECT max(subject) AS subject FROM audit_log \
         WHERE action = 'evaluation_pass' AND at > now() - interval '2 days'",
    )
    .get_result(conn)?;
    Ok(r.subject
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// The (partnership, recipient) pairs with held deliveries whose digest time has come by `now`.
pub fn due(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Vec<(String, String)>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        partnership_id: String,
        #[diesel(sql_type = Text)]
        recipient: String,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT DISTINCT n.partnership_id, d.recipient FROM deliveries d \
         JOIN notices n ON n.id = d.notice_id \
         WHERE d.status = 'pending' AND d.digest_at IS NOT NULL AND d.digest_at <= $1 \
         ORDER BY 1, 2",
    )
    .bind::<Timestamptz, _>(now)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.partnership_id, r.recipient))
        .collect())
}

/// A held delivery and its notice as stored.
#[derive(QueryableByName)]
pub struct Held {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(embed)]
    pub notice: NoticeRow,
}

/// Take (lock) one person's held deliveries in one partnership whose digest time has come.
/// Two workers making the same person's digest at once take turns (a transaction-scoped
/// advisory lock per person), so the second finds nothing left. Call inside a transaction.
pub fn take(
    conn: &mut PgConnection,
    partnership: &str,
    recipient: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Held>, DbError> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('cpwatch-digest/' || $1 || '/' || $2, 0))",
    )
    .bind::<Text, _>(partnership)
    .bind::<Text, _>(recipient)
    .execute(conn)?;
    diesel::sql_query(
        "SELECT d.id, n.key, n.partnership_id, n.kind, n.rule, n.case_ref, n.dispute_ref, \
                n.occurrence, n.step, n.due_at, n.trigger_at, n.send_after, n.urgent, n.payload \
         FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE d.status = 'pending' AND d.digest_at IS NOT NULL AND d.digest_at <= $3 \
           AND n.partnership_id = $1 AND d.recipient = $2 \
         ORDER BY d.id FOR UPDATE OF d",
    )
    .bind::<Text, _>(partnership)
    .bind::<Text, _>(recipient)
    .bind::<Timestamptz, _>(now)
    .load(conn)
}

/// The id of the notice with this key.
pub fn notice_id(conn: &mut PgConnection, key: &str) -> Result<Option<i64>, DbError> {
    use super::schema::notices;
    notices::table
        .filter(notices::key.eq(key))
        .select(notices::id)
        .first(conn)
        .optional()
}

/// Mark deliveries as carried by the digest `digest_id`: sent by it, never on their own.
pub fn carry(conn: &mut PgConnection, ids: &[i64], digest_id: i64) -> Result<usize, DbError> {
    diesel::sql_query(
        "UPDATE deliveries SET status = 'digested', digest_id = $2, sent_at = now(), \
                locked_until = NULL \
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind::<Array<Int8>, _>(ids)
    .bind::<Int8, _>(digest_id)
    .execute(conn)
}

/// Cancel held deliveries whose deadline passed before their digest (`why` says so).
pub fn cancel(conn: &mut PgConnection, ids: &[i64], why: &str) -> Result<usize, DbError> {
    diesel::sql_query(
        "UPDATE deliveries SET status = 'cancelled', last_error = $2 \
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind::<Array<Int8>, _>(ids)
    .bind::<Text, _>(why)
    .execute(conn)
}

/// Let held deliveries go on their own, as if never held (their digest was made already, or
/// their notice cannot be read into one).
pub fn release(conn: &mut PgConnection, ids: &[i64]) -> Result<usize, DbError> {
    diesel::sql_query(
        "UPDATE deliveries SET digest_at = NULL WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind::<Array<Int8>, _>(ids)
    .execute(conn)
}

/// Release every held delivery of these partnerships (their digests were switched off).
pub fn release_partnerships(
    conn: &mut PgConnection,
    partnerships: &[String],
) -> Result<usize, DbError> {
    if partnerships.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE deliveries d SET digest_at = NULL FROM notices n \
         WHERE n.id = d.notice_id AND d.status = 'pending' AND d.digest_at IS NOT NULL \
           AND n.partnership_id = ANY($1)",
    )
    .bind::<Array<Text>, _>(partnerships)
    .execute(conn)
}

/// The notices a digest (by its key) carried, as stored.
pub fn items(conn: &mut PgConnection, digest_key: &str) -> Result<Vec<NoticeRow>, DbError> {
    diesel::sql_query(
        "SELECT n.key, n.partnership_id, n.kind, n.rule, n.case_ref, n.dispute_ref, \
                n.occurrence, n.step, n.due_at, n.trigger_at, n.send_after, n.urgent, n.payload \
         FROM notices g JOIN deliveries d ON d.digest_id = g.id JOIN notices n ON n.id = d.notice_id \
         WHERE g.key = $1 ORDER BY n.case_ref, n.due_at, n.id",
    )
    .bind::<Text, _>(digest_key)
    .load(conn)
}
