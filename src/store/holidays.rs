//! The stored copy of the bank-holiday feed: written after each good fetch, read at start-up so
//! the calendars use the last good feed (else the snapshot compiled into the binary).

use crate::calendar::{BankHoliday, BankHolidays, FeedError};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Date, Text, Timestamptz};
use std::collections::BTreeMap;

/// Why the stored copy could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bank-holiday table: {0}")]
    Db(#[from] diesel::result::Error),
    /// The stored rows do not make a valid feed (e.g. a division is missing).
    #[error("stored bank holidays are not a valid feed: {0}")]
    Invalid(#[from] FeedError),
}

/// Replaces the stored rows of every division in `feed` with its events, in one transaction.
/// Returns the number of rows written. On error nothing changes.
pub fn store_feed(
    conn: &mut PgConnection,
    feed: &BankHolidays,
    fetched_at: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let rows = conn.transaction::<usize, diesel::result::Error, _>(|conn| {
        let mut written = 0;
        for division in feed.divisions() {
            let events = feed.events(division);
            diesel::sql_query("DELETE FROM bank_holidays WHERE division = $1")
                .bind::<Text, _>(division)
                .execute(conn)?;
            let dates: Vec<NaiveDate> = events.iter().map(|e| e.date).collect();
            let titles: Vec<&str> = events.iter().map(|e| e.title.as_str()).collect();
            let notes: Vec<&str> = events.iter().map(|e| e.notes.as_str()).collect();
            let bunting: Vec<bool> = events.iter().map(|e| e.bunting).collect();
            written += diesel::sql_query(
                "INSERT INTO bank_holidays (division, date, title, notes, bunting, fetched_at) \
                 SELECT $1, u.date, u.title, u.notes, u.bunting, $6 \
                 FROM unnest($2::date[], $3::text[], $4::text[], $5::boolean[]) \
                      AS u(date, title, notes, bunting)",
            )
            .bind::<Text, _>(division)
            .bind::<Array<Date>, _>(dates)
            .bind::<Array<Text>, _>(titles)
            .bind::<Array<Text>, _>(notes)
            .bind::<Array<Bool>, _>(bunting)
            .bind::<Timestamptz, _>(fetched_at)
            .execute(conn)?;
        }
        Ok(written)
    })?;
    Ok(rows)
}

#[derive(QueryableByName)]
struct HolidayRow {
    #[diesel(sql_type = Text)]
    division: String,
    #[diesel(sql_type = Date)]
    date: NaiveDate,
    #[diesel(sql_type = Text)]
    title: String,
    #[diesel(sql_type = Text)]
    notes: String,
    #[diesel(sql_type = Bool)]
    bunting: bool,
}

#[derive(QueryableByName)]
struct FetchedAtRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    fetched_at: Option<DateTime<Utc>>,
}

/// The stored feed; `Ok(None)` when nothing is stored yet. Rows that do not make a valid feed
/// (a division missing, say) give [`StoreError::Invalid`], so the caller falls back to the
/// snapshot rather than to a partial calendar.
pub fn load_feed(conn: &mut PgConnection) -> Result<Option<BankHolidays>, StoreError> {
    let rows: Vec<HolidayRow> = diesel::sql_query(
        "SELECT division, date, title, notes, bunting FROM bank_holidays ORDER BY division, date",
    )
    .load(conn)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut divisions: BTreeMap<String, Vec<BankHoliday>> = BTreeMap::new();
    for r in rows {
        divisions.entry(r.division).or_default().push(BankHoliday {
            title: r.title,
            date: r.date,
            notes: r.notes,
            bunting: r.bunting,
        });
    }
    Ok(Some(BankHolidays::from_divisions(divisions)?))
}

/// When the stored feed was last written (the oldest `fetched_at` across its rows), for
/// staleness warnings; `None` when nothing is stored.
pub fn stored_fetched_at(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row: FetchedAtRow =
        diesel::sql_query("SELECT min(fetched_at) AS fetched_at FROM bank_holidays")
            .get_result(conn)?;
    Ok(row.fetched_at)
}
