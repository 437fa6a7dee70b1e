//! Deliveries: one message to one recipient, the only path to a person. Claimed by delivery
//! workers with FOR UPDATE SKIP LOCKED under a lease, and marked with what happened, only while
//! the worker still holds the claim.

use super::notices::NoticeRow;
use super::payload::PayloadError;
use super::schema::deliveries;
use super::DbError;
use crate::evaluate::{Notice, Position};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Double, Int4, Int8, Text, Timestamptz};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Waiting to be sent (or being sent, under a lease).
    Pending,
    Sent,
    /// Permanently refused for this recipient.
    Failed,
    /// Temporarily refused `max_attempts` times.
    Dead,
    /// Withdrawn: no longer due, or stale.
    Cancelled,
    /// Carried by a digest (`digest_id`): sent by it, never on its own.
    Digested,
}

impl Status {
    pub const ALL: &'static [Status] = &[
        Status::Pending,
        Status::Sent,
        Status::Failed,
        Status::Dead,
        Status::Cancelled,
        Status::Digested,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
            Status::Digested => "digested",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.iter().copied().find(|x| x.as_str() == s)
    }
}

/// A claimed delivery, with its notice, ready to render and send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub recipient: String,
    pub position: Position,
    pub attempts: i32,
    pub message_id: String,
    /// When it could first go: the later of its `send_after` and its queueing (delivery latency
    /// is counted from here).
    pub ready_at: DateTime<Utc>,
    /// The notice, or why its stored form cannot be read.
    pub notice: Result<Notice, PayloadError>,
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = Int8)]
    id: i64,
    #[diesel(sql_type = Text)]
    recipient: String,
    #[diesel(sql_type = Text)]
    position: String,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = Text)]
    message_id: String,
    #[diesel(sql_type = Timestamptz)]
    ready_at: DateTime<Utc>,
    #[diesel(embed)]
    notice: NoticeRow,
}

/// Which non-urgent mail a claim may take (urgent mail goes at any hour).
#[derive(Debug, Clone, Copy)]
pub enum NonUrgent<'a> {
    /// Any partnership's, whatever the hour.
    Any,
    /// Only these partnerships' (those inside their working hours now).
    Of(&'a [String]),
}

/// Claim up to `limit` deliveries due by `due_by` for `worker`, leasing them for
/// `lease_seconds`; non-urgent ones only as `non_urgent` allows. Each claim counts as an
/// attempt; a delivery whose lease ran out (its worker died) is claimable again. Returned in id
/// order.
pub fn claim(
    conn: &mut PgConnection,
    due_by: DateTime<Utc>,
    non_urgent: NonUrgent<'_>,
    limit: i64,
    lease_seconds: i64,
    worker: &str,
) -> Result<Vec<Claimed>, DbError> {
    let (any, open): (bool, &[String]) = match non_urgent {
        NonUrgent::Any => (true, &[]),
        NonUrgent::Of(p) => (false, p),
    };
    let rows: Vec<ClaimedRow> = diesel::sql_query(
        "WITH c AS ( \
           UPDATE deliveries SET locked_until = now() + make_interval(secs => $3), \
                  attempts = attempts + 1, claimed_by = $4 \
           WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND send_after <= $1 \
                        AND next_attempt_at <= now() AND (locked_until IS NULL OR locked_until < now()) \
                        AND digest_at IS NULL \
                        AND (urgent OR $5 OR EXISTS (SELECT 1 FROM notices o WHERE o.id = deliveries.notice_id \
                                                     AND o.partnership_id = ANY($6))) \
                        ORDER BY urgent DESC, send_after, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
           RETURNING id, notice_id, recipient, position, attempts, message_id, \
                     greatest(send_after, created_at) AS ready_at) \
         SELECT c.id, c.recipient, c.position, c.attempts, c.message_id, c.ready_at, \
                n.key, n.partnership_id, \
                n.kind, n.rule, n.case_ref, n.dispute_ref, n.occurrence, n.step, n.due_at, \
                n.trigger_at, n.send_after, n.urgent, n.payload \
         FROM c JOIN notices n ON n.id = c.notice_id ORDER BY c.id",
    )
    .bind::<Timestamptz, _>(due_by)
    .bind::<Int8, _>(limit)
    .bind::<Double, _>(lease_seconds as f64)
    .bind::<Text, _>(worker)
    .bind::<diesel::sql_types::Bool, _>(any)
    .bind::<diesel::sql_types::Array<Text>, _>(open)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            id: r.id,
            position: Position::parse(&r.position).unwrap_or(Position::To),
            recipient: r.recipient,
            attempts: r.attempts,
            message_id: r.message_id,
            ready_at: r.ready_at,
            notice: r.notice.read(),
        })
        .collect())
}

/// `worker`'s claim on delivery `id`, if it still holds it (pending, not taken over by another
/// worker after a lapsed lease).
fn mine(id: i64, worker: &str) -> deliveries::BoxedQuery<'_, diesel::pg::Pg> {
    deliveries::table
        .filter(deliveries::id.eq(id))
        .filter(deliveries::claimed_by.eq(worker))
        .filter(deliveries::status.eq(Status::Pending.as_str()))
        .into_boxed()
}

/// Before sending them: extend the lease on these deliveries, in one statement. Returns those
/// still this worker's (pending, not taken over by another worker after a lapsed lease): only
/// those may be sent.
pub fn renew(
    conn: &mut PgConnection,
    ids: &[i64],
    worker: &str,
    lease_seconds: i64,
) -> Result<Vec<i64>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Int8)]
        id: i64,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "UPDATE deliveries SET locked_until = now() + make_interval(secs => $3) \
         WHERE id = ANY($1) AND claimed_by = $2 AND status = 'pending' RETURNING id",
    )
    .bind::<diesel::sql_types::Array<Int8>, _>(ids)
    .bind::<Text, _>(worker)
    .bind::<Double, _>(lease_seconds as f64)
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// These messages went out: one statement for all of them. Recorded whoever holds the claim
/// now: it is the truth.
pub fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
        .set((
            deliveries::status.eq(Status::Sent.as_str()),
            deliveries::sent_at.eq(diesel::dsl::now),
            deliveries::locked_until.eq(None::<DateTime<Utc>>),
            deliveries::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// A temporary failure of this message: try again at `retry_at`, or dead-letter it after the
/// last attempt. False when the delivery is no longer this worker's (nothing changed).
pub fn mark_retry(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: DateTime<Utc>,
    dead: bool,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(deliveries::id);
    let status = if dead { Status::Dead } else { Status::Pending };
    let n = diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
        .set((
            deliveries::status.eq(status.as_str()),
            deliveries::next_attempt_at.eq(retry_at),
            deliveries::locked_until.eq(None::<DateTime<Utc>>),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// The relay could not be reached: not this message's fault, so the attempt is given back and
/// the delivery waits until `retry_at`. False when it is no longer this worker's.
pub fn defer(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
    retry_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(deliveries::id);
    let n = diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
        .set((
            deliveries::attempts.eq(deliveries::attempts - 1),
            deliveries::next_attempt_at.eq(retry_at),
            deliveries::locked_until.eq(None::<DateTime<Utc>>),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Give back claimed deliveries that were not tried (stopping, or the relay is down):
/// claimable again at once, and the claim does not count as an attempt. Returns how many.
pub fn release(conn: &mut PgConnection, ids: &[i64], worker: &str) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        deliveries::table
            .filter(deliveries::id.eq_any(ids))
            .filter(deliveries::claimed_by.eq(worker))
            .filter(deliveries::status.eq(Status::Pending.as_str())),
    )
    .set((
        deliveries::attempts.eq(deliveries::attempts - 1),
        deliveries::locked_until.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)
}

/// A permanent rejection for this recipient. False when the delivery is no longer this worker's.
pub fn mark_failed(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    error: &str,
) -> Result<bool, DbError> {
    set_final(conn, id, worker, Status::Failed, error)
}

/// Not worth sending any more (a reminder whose deadline passed while it waited).
pub fn mark_cancelled(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    why: &str,
) -> Result<bool, DbError> {
    set_final(conn, id, worker, Status::Cancelled, why)
}

fn set_final(
    conn: &mut PgConnection,
    id: i64,
    worker: &str,
    status: Status,
    error: &str,
) -> Result<bool, DbError> {
    let ids = mine(id, worker).select(deliveries::id);
    let n = diesel::update(deliveries::table.filter(deliveries::id.eq_any(ids)))
        .set((
            deliveries::status.eq(status.as_str()),
            deliveries::locked_until.eq(None::<DateTime<Utc>>),
            deliveries::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Deliveries per status, for `deliver` and the health check.
pub fn status_counts(conn: &mut PgConnection) -> Result<Vec<(Status, i64)>, DbError> {
    let rows: Vec<(String, i64)> = deliveries::table
        .group_by(deliveries::status)
        .select((deliveries::status, diesel::dsl::count_star()))
        .order(deliveries::status)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| Status::parse(&s).map(|s| (s, n)))
        .collect())
}

/// Mail that should have gone out `minutes` before `now` and has not: how much, and the oldest.
pub fn backlog(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    minutes: i64,
) -> Result<(i64, Option<DateTime<Utc>>), DbError> {
    #[derive(QueryableByName)]
    struct Backlog {
        #[diesel(sql_type = Int8)]
        waiting: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
        oldest: Option<DateTime<Utc>>,
    }
    let b: Backlog = diesel::sql_query(
        "SELECT count(*) AS waiting, min(send_after) AS oldest FROM deliveries \
         WHERE status = 'pending' AND send_after <= $1 - make_interval(mins => $2) \
           AND (digest_at IS NULL OR digest_at <= $1 - make_interval(mins => $2))",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Int4, _>(minutes.clamp(0, i32::MAX as i64) as i32)
    .get_result(conn)?;
    Ok((b.waiting, b.oldest))
}

/// A delivery that went out, for the demo's summary.
#[derive(Debug, Clone, QueryableByName)]
pub struct SentLine {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Timestamptz)]
    pub send_after: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub rule: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub case_ref: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub dispute_ref: Option<String>,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    #[diesel(sql_type = Text)]
    pub position: String,
    #[diesel(sql_type = Timestamptz)]
    pub due_at: DateTime<Utc>,
}

/// Every sent delivery, oldest first.
pub fn sent(conn: &mut PgConnection) -> Result<Vec<SentLine>, DbError> {
    diesel::sql_query(
        "SELECT d.id, d.send_after, n.kind, n.rule, n.case_ref, n.dispute_ref, d.recipient, d.position, n.due_at \
         FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE d.status = 'sent' ORDER BY d.send_after, d.id",
    )
    .load(conn)
}
