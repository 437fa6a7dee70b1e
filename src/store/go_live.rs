//! A partnership's go-live instant as `cpwatch import --go-live` recorded it, and whether the
//! go-live pass has summarised what was already overdue.

use super::schema::partnership_go_live as g;
use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// The stored go-live of one partnership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoLive {
    pub at: DateTime<Utc>,
    /// When the go-live pass queued the summaries (None: not yet).
    pub summarised_at: Option<DateTime<Utc>>,
}

pub fn load(conn: &mut PgConnection, partnership: &str) -> Result<Option<GoLive>, DbError> {
    let row: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = g::table
        .filter(g::partnership_id.eq(partnership))
        .select((g::go_live_at, g::summarised_at))
        .first(conn)
        .optional()?;
    Ok(row.map(|(at, summarised_at)| GoLive { at, summarised_at }))
}

/// Record `at` as the partnership's go-live (the partnership row must exist). Moving it makes
/// the next pass at or after it summarise again.
pub fn set(conn: &mut PgConnection, partnership: &str, at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::insert_into(g::table)
        .values((g::partnership_id.eq(partnership), g::go_live_at.eq(at)))
        .on_conflict(g::partnership_id)
        .do_update()
        .set((
            g::go_live_at.eq(at),
            g::summarised_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "CASE WHEN partnership_go_live.go_live_at = excluded.go_live_at \
                 THEN partnership_go_live.summarised_at END",
            )),
            g::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The go-live pass for `at` has queued its summaries (recorded with the go-live it used).
pub fn mark_summarised(
    conn: &mut PgConnection,
    partnership: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::insert_into(g::table)
        .values((
            g::partnership_id.eq(partnership),
            g::go_live_at.eq(at),
            g::summarised_at.eq(Some(now)),
        ))
        .on_conflict(g::partnership_id)
        .do_update()
        .set((
            g::go_live_at.eq(at),
            g::summarised_at.eq(Some(now)),
            g::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}
