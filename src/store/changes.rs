//! Changes written by a case system (directly or through an import): the database's triggers
//! leave a check request per changed case or dispute and `NOTIFY cpwatch_changes`. A pass takes
//! the requests first ([`take_requests`]), marking those cases and disputes due now; the daemon
//! listens on its own connection ([`Listener`]) and runs a pass within seconds of a change.

use super::DbError;
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// The channel the triggers notify.
pub const CHANNEL: &str = "cpwatch_changes";

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    n: i64,
}

/// Take every pending check request: its case or dispute is due now (a row due now already,
/// such as every case an import has just added, is not written again). How many were taken.
/// A request written after this (even for a case this pass then reads) stays for the next pass.
pub fn take_requests(conn: &mut PgConnection) -> Result<usize, DbError> {
    let taken: Taken = diesel::sql_query(
        "WITH r AS (DELETE FROM check_requests RETURNING kind, id), \
              c AS (UPDATE cases SET next_check_at = '-infinity' \
                    WHERE id IN (SELECT id FROM r WHERE kind = 'case') \
                      AND next_check_at IS DISTINCT FROM '-infinity' RETURNING 1), \
              d AS (UPDATE disputes SET next_check_at = '-infinity' \
                    WHERE id IN (SELECT id FROM r WHERE kind = 'dispute') \
                      AND next_check_at IS DISTINCT FROM '-infinity' RETURNING 1) \
         SELECT (SELECT count(*) FROM r) AS n",
    )
    .get_result(conn)?;
    // (Data-modifying WITH parts run whether or not the SELECT reads them.)
    Ok(usize::try_from(taken.n).unwrap_or(0))
}

/// Take the pending check requests of one partnership's cases and disputes (and any left by
/// a case or dispute since deleted): those are due now. A pass takes them under the
/// partnership's lock, so a replica never buries a request for a partnership another replica
/// is evaluating. How many were taken.
pub fn take_requests_of(conn: &mut PgConnection, partnership: &str) -> Result<usize, DbError> {
    // Nothing asked for (the usual idle pass): not even planned, since the planner may join an
    // empty request list to a scan of every case.
    let any: Taken =
        diesel::sql_query("SELECT count(*) AS n FROM (SELECT 1 FROM check_requests LIMIT 1) AS r")
            .get_result(conn)?;
    if any.n == 0 {
        return Ok(0);
    }
    let taken: Taken = diesel::sql_query(
        "WITH r AS (DELETE FROM check_requests q \
                    WHERE (q.kind = 'case' AND NOT EXISTS \
                             (SELECT 1 FROM cases c WHERE c.id = q.id AND c.partnership_id <> $1)) \
                       OR (q.kind = 'dispute' AND NOT EXISTS \
                             (SELECT 1 FROM disputes d WHERE d.id = q.id AND d.partnership_id <> $1)) \
                    RETURNING kind, id), \
              c AS (UPDATE cases SET next_check_at = '-infinity' \
                    WHERE id IN (SELECT id FROM r WHERE kind = 'case') \
                      AND next_check_at IS DISTINCT FROM '-infinity' RETURNING 1), \
              d AS (UPDATE disputes SET next_check_at = '-infinity' \
                    WHERE id IN (SELECT id FROM r WHERE kind = 'dispute') \
                      AND next_check_at IS DISTINCT FROM '-infinity' RETURNING 1) \
         SELECT (SELECT count(*) FROM r) AS n",
    )
    .bind::<diesel::sql_types::Text, _>(partnership)
    .get_result(conn)?;
    Ok(usize::try_from(taken.n).unwrap_or(0))
}

/// A connection that listens for changes.
pub struct Listener {
    conn: PgConnection,
}

impl Listener {
    /// Connect and `LISTEN cpwatch_changes`.
    pub fn connect(url: &str) -> Result<Listener, super::StoreError> {
        let mut conn = super::connect(url)?;
        diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
        Ok(Listener { conn })
    }

    /// How many notifications arrived since the last call (without waiting for any). An error
    /// means the connection is gone.
    pub fn arrived(&mut self) -> Result<usize, DbError> {
        let mut n = 0;
        for note in self.conn.notifications_iter() {
            note?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether the server still answers (a notification-less connection is otherwise never
    /// asked anything).
    pub fn ping(&mut self) -> Result<(), DbError> {
        diesel::sql_query("SELECT 1").execute(&mut self.conn)?;
        Ok(())
    }
}

/// Vacuum the check-request table after many requests were taken: until then every probe for
/// a request (`take_requests_of`, on every hourly pass) steps over each dead row (about 30 ms
/// after a million were taken, 0.4 ms after this).
pub fn vacuum(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("VACUUM check_requests").execute(conn)?;
    Ok(())
}
