//! The outbox: the only path to a recipient. Rows are written with unique keys (so writing the
//! same decision twice is harmless) and claimed by delivery workers with FOR UPDATE SKIP LOCKED.

use super::schema::outbox;
use super::DbError;
use crate::evaluate::Notification;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use sha2::{Digest, Sha256};

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct NewRow<'a> {
    dedupe_key: String,
    partnership_id: &'a str,
    kind: &'a str,
    rule: &'a str,
    case_ref: Option<&'a str>,
    dispute_ref: Option<&'a str>,
    recipient: &'a str,
    recipient_role: &'a str,
    due_at: DateTime<Utc>,
    send_after: DateTime<Utc>,
    urgent: bool,
    payload: serde_json::Value,
    message_id: String,
}

/// A claimed row, ready to render and send.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub dedupe_key: String,
    pub kind: String,
    pub recipient: String,
    pub recipient_role: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub message_id: String,
}

/// `<hash-of-key@domain>`: the same notification to the same person always has the same Message-ID.
pub fn message_id(dedupe_key: &str, domain: &str) -> String {
    let digest = Sha256::digest(dedupe_key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// Queue every recipient of every notification; rows already there are left alone.
/// Returns how many rows were new.
pub fn enqueue(
    conn: &mut PgConnection,
    notifications: &[Notification],
    domain: &str,
) -> Result<usize, DbError> {
    let mut rows = Vec::new();
    for n in notifications {
        let payload = serde_json::to_value(n).unwrap_or(serde_json::Value::Null);
        for (r, role) in n.recipients() {
            let dedupe_key = format!("{}/{}", n.key, r.email);
            rows.push(NewRow {
                message_id: message_id(&dedupe_key, domain),
                dedupe_key,
                partnership_id: n.partnership.as_str(),
                kind: n.kind.as_str(),
                rule: &n.rule,
                case_ref: n.case.as_ref().map(|c| c.as_str()),
                dispute_ref: n.dispute.as_ref().map(|d| d.as_str()),
                recipient: r.email.as_str(),
                recipient_role: role,
                due_at: n.due,
                send_after: n.send_after,
                urgent: n.urgent,
                payload: payload.clone(),
            });
        }
    }
    let mut inserted = 0;
    // Stay well under PostgreSQL's 65535 bind parameters per statement.
    for chunk in rows.chunks(1000) {
        inserted += diesel::insert_into(outbox::table)
            .values(chunk)
            .on_conflict(outbox::dedupe_key)
            .do_nothing()
            .execute(conn)?;
    }
    Ok(inserted)
}

/// Claim up to `limit` rows due by `now`, leasing them for `lease_seconds`.
pub fn claim(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lease_seconds: i64,
) -> Result<Vec<OutboxRow>, DbError> {
    diesel::sql_query(
        "UPDATE outbox SET locked_until = now() + make_interval(secs => $3), attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND send_after <= $1 \
                      AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now()) \
                      ORDER BY urgent DESC, send_after, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, dedupe_key, kind, recipient, recipient_role, payload, attempts, message_id",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Int8, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .load::<ClaimedRow>(conn)
    .map(|rows| rows.into_iter().map(OutboxRow::from).collect())
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    dedupe_key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    recipient_role: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    payload: serde_json::Value,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    message_id: String,
}

impl From<ClaimedRow> for OutboxRow {
    fn from(r: ClaimedRow) -> Self {
        OutboxRow {
            id: r.id,
            dedupe_key: r.dedupe_key,
            kind: r.kind,
            recipient: r.recipient,
            recipient_role: r.recipient_role,
            payload: r.payload,
            attempts: r.attempts,
            message_id: r.message_id,
        }
    }
}

pub fn mark_sent(conn: &mut PgConnection, id: i64) -> Result<(), DbError> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("sent"),
            outbox::sent_at.eq(diesel::dsl::now),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// A temporary failure: try again at `retry_at`, or dead-letter after the last attempt.
pub fn mark_retry(
    conn: &mut PgConnection,
    id: i64,
    error: &str,
    retry_at: DateTime<Utc>,
    dead: bool,
) -> Result<(), DbError> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq(if dead { "dead" } else { "pending" }),
            outbox::next_attempt_at.eq(retry_at),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(())
}

/// A permanent rejection for this recipient.
pub fn mark_failed(conn: &mut PgConnection, id: i64, error: &str) -> Result<(), DbError> {
    diesel::update(outbox::table.find(id))
        .set((
            outbox::status.eq("failed"),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Counts per status, for `deliver` and the health check.
pub fn status_counts(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, DbError> {
    outbox::table
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .order(outbox::status)
        .load(conn)
}
