//! Every delivery of every notice about one case, whatever became of it, for `cpwatch case`: the
//! case's own notices, its disputes' notices, and the go-live summaries that list it.

use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Nullable, Text, Timestamptz};

/// One delivery of a notice about the case.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct CaseDelivery {
    #[diesel(sql_type = Text)]
    pub key: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Text)]
    pub rule: String,
    #[diesel(sql_type = Text)]
    pub step: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub dispute_ref: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub due_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub recipient: String,
    /// `to` or `cc`.
    #[diesel(sql_type = Text)]
    pub position: String,
    /// pending, sent, failed, dead, cancelled.
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Timestamptz)]
    pub queued_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    pub send_after: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sent_at: Option<DateTime<Utc>>,
    /// Why it failed or was withdrawn.
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
}

/// The deliveries about case `reference` of `partnership` (and about `disputes`, its disputes),
/// in the order they were due to go.
pub fn about_case(
    conn: &mut PgConnection,
    partnership: &str,
    reference: &str,
    disputes: &[String],
) -> Result<Vec<CaseDelivery>, DbError> {
    diesel::sql_query(
        "SELECT n.key, n.kind, n.rule, n.step, n.dispute_ref, n.due_at, d.recipient, d.position, \
                d.status, d.created_at AS queued_at, d.send_after, d.sent_at, d.last_error \
         FROM notices n JOIN deliveries d ON d.notice_id = n.id \
         WHERE n.partnership_id = $1 \
           AND (n.case_ref = $2 OR n.dispute_ref = ANY($3) \
                OR (n.kind = 'go_live_summary' \
                    AND position(('Case ' || $2 || ':' || chr(10)) IN n.payload->>'action') > 0)) \
         ORDER BY d.send_after, n.key, d.position DESC, d.recipient",
    )
    .bind::<Text, _>(partnership)
    .bind::<Text, _>(reference)
    .bind::<Array<Text>, _>(disputes)
    .load(conn)
}

impl From<CaseDelivery> for crate::case_view::NoticeLine {
    fn from(d: CaseDelivery) -> Self {
        crate::case_view::NoticeLine {
            key: d.key,
            kind: d.kind,
            rule: d.rule,
            step: d.step,
            dispute: d.dispute_ref,
            due: d.due_at,
            recipient: d.recipient,
            position: d.position,
            status: d.status,
            queued_at: d.queued_at,
            send_after: d.send_after,
            sent_at: d.sent_at,
            reason: d.last_error,
        }
    }
}
