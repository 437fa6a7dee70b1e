//! The mail relay's last success and failure (`relay_status`), written by delivery and read by
//! `cpwatch health`; and the deliveries sent without the relay's confirmation.

use super::DbError;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Int8, Nullable, Text, Timestamptz};

/// The relay failed (or our configuration did): mail waits. `failing_since` keeps the start of
/// the outage.
pub fn record_failure(
    conn: &mut PgConnection,
    relay: &str,
    failure: &str,
    advice: &str,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO relay_status (relay, last_failure_at, failing_since, last_failure, advice) \
         VALUES ($1, now(), now(), $2, $3) \
         ON CONFLICT (relay) DO UPDATE SET last_failure_at = now(), last_failure = $2, \
             advice = $3, updated_at = now(), \
             failing_since = coalesce(relay_status.failing_since, now())",
    )
    .bind::<Text, _>(relay)
    .bind::<Text, _>(failure)
    .bind::<Text, _>(advice)
    .execute(conn)?;
    Ok(())
}

/// The relay accepted a message: the outage, if any, is over.
pub fn record_success(conn: &mut PgConnection, relay: &str) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO relay_status (relay, last_success_at) VALUES ($1, now()) \
         ON CONFLICT (relay) DO UPDATE SET last_success_at = now(), failing_since = NULL, \
             updated_at = now()",
    )
    .bind::<Text, _>(relay)
    .execute(conn)?;
    Ok(())
}

/// The relay delivery used last, as health reports it.
#[derive(Debug, Clone, QueryableByName)]
pub struct RelayStatus {
    #[diesel(sql_type = Text)]
    pub relay: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub failing_since: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_failure_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_failure: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub advice: Option<String>,
}

/// The most recently used relay's status (None before any message was tried).
pub fn current(conn: &mut PgConnection) -> Result<Option<RelayStatus>, DbError> {
    diesel::sql_query(
        "SELECT relay, last_success_at, failing_since, last_failure_at, last_failure, advice \
         FROM relay_status ORDER BY updated_at DESC LIMIT 1",
    )
    .get_result(conn)
    .optional()
}

/// The whole message went out and the relay did not answer its end: sent, unconfirmed.
/// Recorded whoever holds the claim now, as `mark_sent` is.
pub fn mark_sent_unconfirmed(conn: &mut PgConnection, id: i64, note: &str) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), locked_until = NULL, \
             unconfirmed = true, last_error = $2 WHERE id = $1",
    )
    .bind::<Int8, _>(id)
    .bind::<Text, _>(note)
    .execute(conn)?;
    Ok(())
}

/// Deliveries sent without confirmation at or after `since`.
pub fn unconfirmed_since(conn: &mut PgConnection, since: DateTime<Utc>) -> Result<i64, DbError> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = Int8)]
        n: i64,
    }
    let n: N = diesel::sql_query(
        "SELECT count(*) AS n FROM deliveries WHERE unconfirmed AND sent_at >= $1",
    )
    .bind::<Timestamptz, _>(since)
    .get_result(conn)?;
    Ok(n.n)
}
