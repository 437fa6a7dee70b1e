//! The operator's view of the outbox (`cpwatch outbox`): deliveries found by a filter, one
//! delivery with its notice, and the two things an operator may do to them — put failed or dead
//! ones back in the queue, or cancel unsent ones — each in one transaction with its audit rows.

use super::deliveries::Status;
use super::notices::NoticeRow;
use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Int4, Int8, Nullable, Text, Timestamptz};

/// Which deliveries: every field that is set must match (the filters combine).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One of these statuses (empty: any).
    pub statuses: Vec<Status>,
    /// The notice's kind (`reminder`, `overdue`, `escalation_stage`, ...).
    pub kind: Option<String>,
    /// The notice's case reference.
    pub case: Option<String>,
    /// The notice's disagreement reference.
    pub dispute: Option<String>,
    /// Part of the recipient's address, any case (`head@`, `@school.example.org`).
    pub recipient: Option<String>,
    /// Queued before this instant.
    pub queued_before: Option<DateTime<Utc>>,
    /// Queued at or after this instant.
    pub queued_after: Option<DateTime<Utc>>,
}

impl Filter {
    /// True when nothing narrows it: every delivery matches.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.kind.is_none()
            && self.case.is_none()
            && self.dispute.is_none()
            && self.recipient.is_none()
            && self.queued_before.is_none()
            && self.queued_after.is_none()
    }
}

/// One delivery as `outbox list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Line {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub partnership: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub case_ref: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub dispute_ref: Option<String>,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// `to` or `cc`.
    #[diesel(sql_type = Text)]
    pub position: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// Pending: the earliest it may go (its send_after, or its retry time if later).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub next_attempt: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sent_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    pub queued_at: DateTime<Utc>,
    /// Why it failed, was deferred or was withdrawn.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// Sent, but the relay never confirmed the end of the message.
    #[diesel(sql_type = Bool)]
    pub unconfirmed: bool,
    /// How many deliveries the filter matched in all (the list may be cut at a limit).
    #[diesel(sql_type = Int8)]
    pub total: i64,
}

const LINE_COLUMNS: &str = "d.id, d.status, n.kind, n.partnership_id AS partnership, n.case_ref, \
     n.dispute_ref, d.recipient, d.position, d.attempts, \
     CASE WHEN d.status = 'pending' THEN greatest(d.send_after, d.next_attempt_at) END AS next_attempt, \
     d.sent_at, d.created_at AS queued_at, d.last_error, d.unconfirmed, count(*) OVER () AS total";

/// `$1..$7` of every filtered query: the filter's fields, each NULL when not set.
const WHERE_FILTER: &str = "($1::text[] IS NULL OR d.status = ANY($1)) \
     AND ($2::text IS NULL OR n.kind = $2) \
     AND ($3::text IS NULL OR n.case_ref = $3) \
     AND ($4::text IS NULL OR n.dispute_ref = $4) \
     AND ($5::text IS NULL OR position(lower($5) IN lower(d.recipient)) > 0) \
     AND ($6::timestamptz IS NULL OR d.created_at < $6) \
     AND ($7::timestamptz IS NULL OR d.created_at >= $7)";

/// The deliveries `filter` matches, in the order they were queued, at most `limit` of them
/// (each line says how many matched in all).
pub fn list(conn: &mut PgConnection, filter: &Filter, limit: i64) -> Result<Vec<Line>, DbError> {
    let sql = format!(
        "SELECT {LINE_COLUMNS} FROM deliveries d JOIN notices n ON n.id = d.notice_id \
         WHERE {WHERE_FILTER} ORDER BY d.id LIMIT $8"
    );
    let statuses: Option<Vec<&str>> =
        (!filter.statuses.is_empty()).then(|| filter.statuses.iter().map(|s| s.as_str()).collect());
    diesel::sql_query(sql)
        .bind::<Nullable<Array<Text>>, _>(statuses)
        .bind::<Nullable<Text>, _>(filter.kind.as_deref())
        .bind::<Nullable<Text>, _>(filter.case.as_deref())
        .bind::<Nullable<Text>, _>(filter.dispute.as_deref())
        .bind::<Nullable<Text>, _>(filter.recipient.as_deref())
        .bind::<Nullable<Timestamptz>, _>(filter.queued_before)
        .bind::<Nullable<Timestamptz>, _>(filter.queued_after)
        .bind::<Int8, _>(limit)
        .load(conn)
}

/// One delivery with its notice, for `outbox show`.
#[derive(Debug, Clone, QueryableByName)]
pub struct Message {
    #[diesel(embed)]
    pub line: Line,
    #[diesel(sql_type = Text)]
    pub message_id: String,
    #[diesel(embed)]
    pub notice: NoticeRow,
}

/// Delivery `id` with its notice, if there is one.
pub fn message(conn: &mut PgConnection, id: i64) -> Result<Option<Message>, DbError> {
    let sql = format!(
        "SELECT {LINE_COLUMNS}, d.message_id, n.key, n.partnership_id, n.kind, n.rule, n.case_ref, \
                n.dispute_ref, n.occurrence, n.step, n.due_at, n.trigger_at, n.send_after, \
                n.urgent, n.payload \
         FROM deliveries d JOIN notices n ON n.id = d.notice_id WHERE d.id = $1"
    );
    diesel::sql_query(sql)
        .bind::<Int8, _>(id)
        .get_result(conn)
        .optional()
}

/// An operator's action on deliveries, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Failed or dead → pending, attempts reset.
    Retry,
    /// Pending, failed or dead → cancelled, with the reason.
    Cancel,
}

impl Action {
    /// The statuses this action applies to (never `sent`).
    pub fn applies_to(self) -> &'static [Status] {
        match self {
            Action::Retry => &[Status::Failed, Status::Dead],
            Action::Cancel => &[Status::Pending, Status::Failed, Status::Dead],
        }
    }
    fn audit_name(self) -> &'static str {
        match self {
            Action::Retry => "outbox_retry",
            Action::Cancel => "outbox_cancel",
        }
    }
}

/// What became of one delivery an action changed.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Changed {
    #[diesel(sql_type = Int8)]
    pub id: i64,
    /// The status it had.
    #[diesel(sql_type = Text)]
    pub was: String,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Text)]
    pub key: String,
}

/// Apply `action` by `actor` to those of `ids` it still applies to (a delivery being sent at
/// this moment is left to its worker), writing one audit row per delivery changed, all in one
/// transaction. `reason` is required for a cancel (the CLI insists) and recorded for both.
pub fn apply(
    conn: &mut PgConnection,
    action: Action,
    ids: &[i64],
    actor: &str,
    reason: Option<&str>,
) -> Result<Vec<Changed>, DbError> {
    let set = match action {
        Action::Retry => {
            "status = 'pending', attempts = 0, next_attempt_at = '-infinity', locked_until = NULL, \
             claimed_by = NULL, last_error = NULL"
        }
        Action::Cancel => {
            "status = 'cancelled', locked_until = NULL, \
             last_error = 'cancelled by ' || $3 || ': ' || coalesce($4, '')"
        }
    };
    let sql = format!(
        "WITH t AS (SELECT d.id, d.status, d.attempts, d.last_error, n.key \
                    FROM deliveries d JOIN notices n ON n.id = d.notice_id \
                    WHERE d.id = ANY($1) AND d.status = ANY($2) \
                      AND (d.locked_until IS NULL OR d.locked_until < now()) FOR UPDATE OF d) \
         UPDATE deliveries SET {set} FROM t WHERE deliveries.id = t.id \
         RETURNING t.id, t.status AS was, t.attempts, t.last_error, t.key"
    );
    let statuses: Vec<&str> = action.applies_to().iter().map(|s| s.as_str()).collect();
    conn.transaction(|conn| {
        let mut changed: Vec<Changed> = diesel::sql_query(sql)
            .bind::<Array<Int8>, _>(ids)
            .bind::<Array<Text>, _>(&statuses)
            .bind::<Text, _>(actor)
            .bind::<Nullable<Text>, _>(reason)
            .load(conn)?;
        changed.sort_by_key(|c| c.id);
        for c in &changed {
            let detail = serde_json::json!({
                "delivery": c.id,
                "notice": c.key,
                "was": c.was,
                "attempts": c.attempts,
                "last_error": c.last_error,
                "reason": reason,
            });
            super::audit(
                conn,
                actor,
                action.audit_name(),
                &format!("delivery/{}", c.id),
                detail,
            )?;
        }
        Ok(changed)
    })
}

/// Record that `actor` viewed delivery `id`'s message (its text may hold case details).
pub fn audit_viewed(conn: &mut PgConnection, actor: &str, id: i64) -> Result<(), DbError> {
    super::audit(
        conn,
        actor,
        "outbox_show",
        &format!("delivery/{id}"),
        serde_json::json!({ "delivery": id }),
    )
}
