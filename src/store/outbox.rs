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

/// Claim up to `limit` rows due by `now` for `worker`, leasing them for `lease_seconds`.
/// Each claim counts as an attempt; a row whose lease ran out (its worker died) is claimable again.
pub fn claim(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    lease_seconds: i64,
    worker: &str,
) -> Result<Vec<OutboxRow>, DbError> {
    diesel::sql_query(
        "UPDATE outbox SET locked_until = now() + make_interval(secs => $3), attempts = attempts + 1, \
                claimed_by = $4 \
         WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND send_after <= $1 \
                      AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now()) \
                      ORDER BY urgent DESC, send_after, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, dedupe_key, kind, recipient, recipient_role, payload, attempts, message_id",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Int8, _>(limit)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .bind::<diesel::sql_types::Text, _>(worker)
    .load::<ClaimedRow>(conn)
    .map(|rows| {
        let mut rows: Vec<OutboxRow> = rows.into_iter().map(OutboxRow::from).collect();
        // RETURNING does not keep the subquery's order.
        rows.sort_by_key(|r| r.id);
        rows
    })
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

/// The claim of `worker` on row `id`, if it still holds it (the row is pending and no other
/// worker took it over after a lapsed lease).
fn mine(id: i64, worker: &str) -> outbox::BoxedQuery<'_, diesel::pg::Pg> {
    outbox::table
        .filter(outbox::id.eq(id))
        .filter(outbox::claimed_by.eq(worker))
        .filter(outbox::status.eq("pending"))
        .into_boxed()
}

/// Just before sending: extend the lease on one row. False when the row is no longer ours
/// (another worker took it over, or it is no longer pending): then it must not be sent.
pub fn renew(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    lease_seconds: i64,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE outbox SET locked_until = now() + make_interval(secs => $3) \
         WHERE id = $1 AND claimed_by = $2 AND status = 'pending'",
    )
    .bind::<diesel::sql_types::Int8, _>(id)
    .bind::<diesel::sql_types::Text, _>(worker)
    .bind::<diesel::sql_types::Double, _>(lease_seconds as f64)
    .execute(conn)?;
    Ok(n == 1)
}

/// The message went out. Recorded whoever holds the row now: it is the truth.
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

/// A temporary failure of this message: try again at `retry_at`, or dead-letter it after the
/// last attempt. False when the row is no longer this worker's (nothing changed).
pub fn mark_retry(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: DateTime<Utc>,
    dead: bool,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(outbox::id);
    let n = diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::status.eq(if dead { "dead" } else { "pending" }),
            outbox::next_attempt_at.eq(retry_at),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The relay could not be reached: not this message's fault, so the attempt is given back and
/// the row waits until `retry_at`. False when the row is no longer this worker's.
pub fn defer(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(outbox::id);
    let n = diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::attempts.eq(outbox::attempts - 1),
            outbox::next_attempt_at.eq(retry_at),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Give back claimed rows that were not tried (stopping, or the relay is down): claimable again
/// at once, and the claim does not count as an attempt. Returns how many were released.
pub fn release(conn: &mut PgConnection, ids: &[i64], worker: &str) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::claimed_by.eq(worker))
            .filter(outbox::status.eq("pending")),
    )
    .set((
        outbox::attempts.eq(outbox::attempts - 1),
        outbox::locked_until.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
}

/// A permanent rejection for this recipient. False when the row is no longer this worker's.
pub fn mark_failed(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
) -> Result<bool, DbError> {
    set_final(conn, id, worker, "failed", error)
}

/// Not worth sending any more (a reminder whose deadline passed while it waited).
pub fn mark_cancelled(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    why: &str,
) -> Result<bool, DbError> {
    set_final(conn, id, worker, "cancelled", why)
}

fn set_final(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    status: &str,
    error: &str,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(outbox::id);
    let n = diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::status.eq(status),
            outbox::locked_until.eq(None::<DateTime<Utc>>),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The e-mail address of a case's team manager, if the case system recorded one.
pub fn team_manager_email(
    conn: &mut PgConnection,
    partnership: &str,
    case_ref: &str,
) -> Result<Option<String>, DbError> {
    use super::schema::{case_roles, cases, people};
    let found: Option<Option<String>> = cases::table
        .inner_join(case_roles::table)
        .inner_join(
            people::table.on(people::partnership_id
                .eq(cases::partnership_id)
                .and(people::id.eq(case_roles::person_id))),
        )
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::reference.eq(case_ref))
        .filter(case_roles::role.eq("team_manager"))
        .select(people::email)
        .first(conn)
        .optional()?;
    Ok(found.flatten())
}

/// Counts per status, for `deliver` and the health check.
pub fn status_counts(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, DbError> {
    outbox::table
        .group_by(outbox::status)
        .select((outbox::status, diesel::dsl::count_star()))
        .order(outbox::status)
        .load(conn)
}

/// Notice kinds the case evaluator produces, and so may withdraw.
const CASE_RULE_KINDS: &[&str] = &[
    "reminder",
    "due",
    "overdue",
    "overdue_escalation",
    "cause_for_concern",
];

/// Cancel the queued, unclaimed notices of these cases that their evaluation at `now` no longer
/// produces (the action was done first, or the case moved on). `current` holds the keys of every
/// notification the evaluation produced. Returns how many rows were cancelled.
pub fn cancel_superseded(
    conn: &mut PgConnection,
    partnership: &str,
    case_refs: &[String],
    current: &[String],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    if case_refs.is_empty() {
        return Ok(0);
    }
    use diesel::sql_types::{Array, Text, Timestamptz};
    diesel::sql_query(
        "UPDATE outbox SET status = 'cancelled', \
                last_error = 'no longer due when evaluated at ' || to_char($4 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         WHERE status = 'pending' AND partnership_id = $1 AND dispute_ref IS NULL AND case_ref = ANY($2) \
           AND kind = ANY($5) AND (locked_until IS NULL OR locked_until < now()) \
           AND NOT (payload->>'key' = ANY($3))",
    )
    .bind::<Text, _>(partnership)
    .bind::<Array<Text>, _>(case_refs)
    .bind::<Array<Text>, _>(current)
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Text>, _>(CASE_RULE_KINDS)
    .execute(conn)
}
