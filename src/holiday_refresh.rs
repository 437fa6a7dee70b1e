//! The bank-holiday feed adapter: fetch the GOV.UK bank-holidays JSON with reqwest, validate it,
//! and persist/reload it in PostgreSQL.
//!
//! The daemon does: [`refresh`] → on `Ok`, [`store_feed`] (in `spawn_blocking`) → rebuild its
//! calendars; on `Err`, warn and keep the last good copy. Nothing here ever replaces good data
//! with bad: [`refresh`] returns a fully validated feed or an error, and [`store_feed`] replaces
//! the stored rows of the feed's divisions in a single transaction.

use crate::calendar::{BankHoliday, BankHolidays, FeedError};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Date, Text, Timestamptz};
use std::collections::BTreeMap;
use std::time::Duration;

/// The GOV.UK feed.
pub const DEFAULT_URL: &str = "https://www.gov.uk/bank-holidays.json";
/// A generous limit for one fetch (the real feed answers in well under a second).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The real feed is about 20 KB; anything beyond this is not the feed.
pub const MAX_FEED_BYTES: usize = 4 * 1024 * 1024;

/// Why the stored copy could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("bank-holiday table: {0}")]
    Db(#[from] diesel::result::Error),
    /// The stored rows do not make a valid feed (e.g. a division is missing).
    #[error("stored bank holidays are not a valid feed: {0}")]
    Invalid(#[from] FeedError),
}

fn fetch_error(url: &str, timeout: Duration, e: reqwest::Error) -> FeedError {
    if e.is_timeout() {
        FeedError::Timeout {
            url: url.to_owned(),
            after: timeout,
        }
    } else {
        FeedError::Fetch {
            url: url.to_owned(),
            source: Box::new(e),
        }
    }
}

/// Fetches the feed from `url` and validates it. The whole exchange (connect, headers, body) is
/// bounded by `timeout`. Never panics; any failure is a [`FeedError`].
pub async fn refresh(url: &str, timeout: Duration) -> Result<BankHolidays, FeedError> {
    match tokio::time::timeout(timeout, fetch_and_parse(url, timeout)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(FeedError::Timeout {
            url: url.to_owned(),
            after: timeout,
        }),
    }
}

async fn fetch_and_parse(url: &str, timeout: Duration) -> Result<BankHolidays, FeedError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("cpwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fetch_error(url, timeout, e))?;
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fetch_error(url, timeout, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FeedError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || FeedError::TooLarge {
        url: url.to_owned(),
        limit: MAX_FEED_BYTES,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FEED_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fetch_error(url, timeout, e))?
    {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| FeedError::NotUtf8)?;
    BankHolidays::parse_feed(&text)
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
