//! The figures that come from the database, read once per scrape of `/metrics` (and by
//! `cpwatch health`): the outbox by status, the oldest due-but-unsent message, open disputes by
//! policy and stage, data-quality notices of the last day. Counts
//! only: no case reference, person or address leaves this module.

use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Int4, Int8, Nullable, Text, Timestamptz};

/// What one scrape reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Deliveries per status (`pending`, `sent`, `failed`, `dead`, `cancelled`).
    pub by_status: Vec<(String, i64)>,
    /// The `send_after` of the oldest pending delivery already due at `now`.
    pub oldest_due_unsent: Option<DateTime<Utc>>,
    /// Open (unresolved) disputes per policy and stage.
    pub disputes_open: Vec<(String, i32, i64)>,
    /// Data-quality notices created in the 24 hours before `now`.
    pub data_quality_last_day: i64,
}

#[derive(QueryableByName)]
struct StatusRow {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Int8)]
    n: i64,
}

#[derive(QueryableByName)]
struct DisputeRow {
    #[diesel(sql_type = Text)]
    policy: String,
    #[diesel(sql_type = Int4)]
    stage: i32,
    #[diesel(sql_type = Int8)]
    n: i64,
}

#[derive(QueryableByName)]
struct Singles {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
    #[diesel(sql_type = Int8)]
    data_quality: i64,
}

/// Read the figures as at `now`.
pub fn figures(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<Figures, DbError> {
    let by_status: Vec<StatusRow> = diesel::sql_query(
        "SELECT status, count(*) AS n FROM deliveries GROUP BY status ORDER BY status",
    )
    .load(conn)?;
    let disputes: Vec<DisputeRow> = diesel::sql_query(
        "SELECT policy, stage, count(*) AS n FROM disputes WHERE resolved_at IS NULL \
         GROUP BY policy, stage ORDER BY policy, stage",
    )
    .load(conn)?;
    let s: Singles = diesel::sql_query(
        "SELECT \
           (SELECT min(send_after) FROM deliveries WHERE status = 'pending' AND send_after <= $1) \
             AS oldest, \
           (SELECT count(*) FROM notices WHERE kind = 'data_quality' \
              AND created_at > $1 - interval '1 day') AS data_quality",
    )
    .bind::<Timestamptz, _>(now)
    .get_result(conn)?;
    Ok(Figures {
        by_status: by_status.into_iter().map(|r| (r.status, r.n)).collect(),
        oldest_due_unsent: s.oldest,
        disputes_open: disputes
            .into_iter()
            .map(|r| (r.policy, r.stage, r.n))
            .collect(),
        data_quality_last_day: s.data_quality,
    })
}
