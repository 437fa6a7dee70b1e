//! Delivery: claim queued rows, render, send through the channel, mark sent or schedule a retry.
//!
//! The guarantees, and what gives them:
//! - nothing is lost: a row leaves `pending` only when it was sent, permanently rejected
//!   (`failed`, with a data-quality notice queued), dead-lettered after `max_attempts`
//!   (`dead`) or found pointless (`cancelled`: a reminder whose deadline passed while it waited).
//!   A worker that dies leaves its rows leased; when the lease ends another worker takes them.
//! - nothing is sent twice: a worker sends a row only under its own lease, renewed (for the rest
//!   of the batch, in one statement) whenever what is left of it might not cover one more
//!   exchange and the marking after it; every other outcome is written only while it still is.
//!   The exception is the messages sent and not yet marked when a process dies (or the
//!   database is gone for longer than a lease): marks are written in one statement per
//!   `mark_every` messages (at once after a slow exchange, before any wait, at the end of the
//!   round), so at most that many are sent once more, with the same `Message-ID`.

use super::Runtime;
use crate::domain::Email;
use crate::evaluate::{About, Kind, Notice, NoticeKey, Position, Recipient};
use crate::mail::{self, Channel, MailError, Renderer};
use crate::metrics;
use crate::smtp::Verdict;
use crate::store::deliveries::{self, Claimed, NonUrgent};
use crate::store::{notices, relay, DbError};
use chrono::{DateTime, Duration, Utc};
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::Connection as _;
use lettre::message::Mailbox;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::Instrument as _;

pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// The title of the data-quality notice that a delivery was refused (the delivery job, not the
/// evaluator, finds that out, and words its message).
pub const UNDELIVERABLE_TITLE: &str = "A notice could not be delivered";

/// Test-only fault point: when this variable holds N, the process aborts right after its Nth
/// successful send, before marking the message sent (a crash between send and mark). Inert
/// unless set. (Not `CPWATCH_*`: those are configuration keys.)
pub const FAULT_ABORT_AFTER_SEND: &str = "FAULT_CPWATCH_ABORT_AFTER_SEND";

static SENDS: AtomicU64 = AtomicU64::new(0);

pub struct Delivery<'a> {
    pub runtime: &'a Runtime,
    pub channel: &'a Channel,
    pub renderer: &'a Renderer,
    pub from: &'a Mailbox,
    pub batch_size: i64,
    pub lease_seconds: i64,
    pub max_attempts: i32,
    /// Send non-urgent mail only inside working hours on working days of its own partnership
    /// (and not before its `send_after`); urgent mail goes at any hour.
    pub working_hours_only: bool,
    pub control: Control,
}

/// Who this worker is, how it backs off, and how the daemon watches and stops it.
#[derive(Clone)]
pub struct Control {
    /// Written on the rows this worker claims (`host:pid:random`).
    pub worker: String,
    pub retry_base_seconds: i64,
    pub retry_max_seconds: i64,
    /// Beaten at every step, so the daemon can tell the loop is alive.
    pub heartbeat: Heartbeat,
    /// When it turns true: finish the message being sent, release the rest of the batch.
    pub stop: Option<watch::Receiver<bool>>,
    abort_after_sends: Option<u64>,
    /// Sent messages are recorded in one statement per this many (1: each as it goes).
    pub mark_every: usize,
    /// Consecutive rounds that found the relay unreachable.
    outage: Arc<AtomicU32>,
    /// When this worker last recorded the relay's success (Unix seconds; 0: after a failure).
    relay_ok_at: Arc<AtomicI64>,
    /// After the relay failed: no round claims anything before this instant (Unix ms), so a
    /// relay that is down or hung is tried again with backoff, not hammered.
    paused_until: Arc<AtomicI64>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            worker: worker_id(),
            retry_base_seconds: 60,
            retry_max_seconds: 6 * 3600,
            heartbeat: Heartbeat::default(),
            stop: None,
            mark_every: 20,
            abort_after_sends: std::env::var(FAULT_ABORT_AFTER_SEND)
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            outage: Arc::default(),
            relay_ok_at: Arc::default(),
            paused_until: Arc::default(),
        }
    }
}

impl Control {
    pub fn from_settings(d: &crate::settings::Delivery) -> Control {
        Control {
            retry_base_seconds: d.retry_base_seconds,
            retry_max_seconds: d.retry_max_seconds,
            mark_every: d.mark_every.max(1),
            ..Control::default()
        }
    }
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    let nanos = Utc::now().timestamp_subsec_nanos();
    format!("{host}:{}:{nanos:08x}", std::process::id())
}

/// The last instant (Unix seconds) a loop showed it was alive.
#[derive(Clone, Default, Debug)]
pub struct Heartbeat(Arc<AtomicI64>);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.store(Utc::now().timestamp(), Ordering::Relaxed);
    }
    /// Seconds since the last beat (`i64::MAX` before the first).
    pub fn age_seconds(&self) -> i64 {
        match self.0.load(Ordering::Relaxed) {
            0 => i64::MAX,
            t => Utc::now().timestamp().saturating_sub(t),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub dead: usize,
    /// Reminders whose deadline passed while they waited: not sent.
    pub cancelled: usize,
    /// Left for later without using an attempt: the relay was unreachable, or we were stopping.
    pub deferred: usize,
    /// Rows another worker took over after our lease lapsed: left to it.
    pub lost_claims: usize,
    /// Sent in full, but the relay did not answer the end of the message: not sent again.
    pub unconfirmed: usize,
    /// The relay (or our configuration of it) failed in this round: mail waits.
    pub relay_down: bool,
}

impl DeliveryReport {
    pub fn add(&mut self, other: DeliveryReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.dead += other.dead;
        self.cancelled += other.cancelled;
        self.deferred += other.deferred;
        self.lost_claims += other.lost_claims;
        self.unconfirmed += other.unconfirmed;
        self.relay_down |= other.relay_down;
    }
    /// Rows dealt with for good or for now; deferred rows do not count (the loop should wait).
    pub fn handled(&self) -> usize {
        self.sent + self.retried + self.failed + self.dead + self.cancelled + self.unconfirmed
    }
}

/// Exponential backoff from one minute, capped at six hours, with a jitter of up to 25%.
pub fn backoff(attempts: i32, row_id: i64) -> Duration {
    backoff_from(60, 6 * 3600, attempts, row_id)
}

/// `base`·2^attempts seconds, at most `cap`, plus a jitter of up to 25% that differs per row and
/// per attempt, so rows that failed together do not all come back together.
pub fn backoff_from(base: i64, cap: i64, attempts: i32, row_id: i64) -> Duration {
    let base = base
        .max(1)
        .saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(cap.max(1));
    let seed = (row_id as u64)
        .wrapping_mul(2_654_435_761)
        .wrapping_add((attempts as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let jitter_ms = (seed % 1000) as i64 * base / 4; // up to 25% of `base` seconds, in ms
    Duration::seconds(base) + Duration::milliseconds(jitter_ms)
}

/// An exchange slower than this is marked at once: a commit is cheap next to it, and the
/// window of sent-but-unmarked messages stays at one when the relay is slow.
const SLOW_EXCHANGE: std::time::Duration = std::time::Duration::from_millis(50);

/// The state of one round: since when the batch's lease runs, which rows are no longer ours,
/// and what went out and is not recorded yet.
struct Round {
    /// Taken before the statement that last set the lease, so the lease surely lasts
    /// `lease_seconds` from here.
    lease_from: std::time::Instant,
    lost: std::collections::HashSet<i64>,
    unmarked: Vec<i64>,
}

/// Whether a round goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Next,
    /// The relay cannot be reached: give the rest of the batch back.
    RelayDown,
}

/// Where delivery gets its database connection: one (the command line) or a pool, from which a
/// broken connection is replaced after PostgreSQL restarts (the daemon).
pub enum Db<'a> {
    Conn(&'a mut PgConnection),
    Pool {
        pool: &'a DbPool,
        conn: Option<PooledConnection<ConnectionManager<PgConnection>>>,
    },
}

impl<'a> Db<'a> {
    pub fn pool(pool: &'a DbPool) -> Db<'a> {
        Db::Pool { pool, conn: None }
    }

    /// One short synchronous database call from async code, without stalling the runtime.
    pub(super) fn call<T>(
        &mut self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, DbError>,
    ) -> anyhow::Result<T> {
        tokio::task::block_in_place(|| match self {
            Db::Conn(c) => Ok(f(c)?),
            Db::Pool { pool, conn } => {
                let c = match conn {
                    Some(c) => c,
                    None => conn.insert(pool.get()?),
                };
                let result = f(c);
                if result.is_err() {
                    // It may be broken; the pool tests it before handing it out again.
                    *conn = None;
                }
                Ok(result?)
            }
        })
    }
}

impl<'a> Delivery<'a> {
    /// Delivery as `[delivery]` configures it.
    pub fn configured(
        runtime: &'a Runtime,
        channel: &'a Channel,
        renderer: &'a Renderer,
        from: &'a Mailbox,
        cfg: &crate::settings::Delivery,
        control: Control,
    ) -> Self {
        Delivery {
            runtime,
            channel,
            renderer,
            from,
            batch_size: cfg.batch_size,
            lease_seconds: cfg.lease_seconds,
            max_attempts: cfg.max_attempts,
            working_hours_only: cfg.working_hours_only,
            control,
        }
    }
}

impl Delivery<'_> {
    /// One round on a single connection (the command line and the demo).
    pub async fn run_once(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DeliveryReport> {
        self.run_round(&mut Db::Conn(conn), now).await
    }

    /// One round: claim a batch due by `now` and send it, one message at a time.
    pub async fn run_round(
        &self,
        db: &mut Db<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DeliveryReport> {
        let c = &self.control;
        c.heartbeat.beat();
        if c.paused_until.load(Ordering::Relaxed) > Utc::now().timestamp_millis() {
            return Ok(DeliveryReport::default());
        }
        let due_by = if self.working_hours_only {
            now
        } else {
            now + Duration::days(36_500)
        };
        // Non-urgent mail only inside working hours on working days of its own partnership,
        // whatever its send_after; urgent mail at any hour.
        let open = self.working_hours_only.then(|| self.open_partnerships(now));
        let non_urgent = match &open {
            Some(open) => NonUrgent::Of(open),
            None => NonUrgent::Any,
        };
        // The digests whose time has come, made before the claim so they go in this round.
        db.call(|conn| super::digest::make_due(conn, self.runtime, now))?;
        let lease_from = std::time::Instant::now();
        let rows = db.call(|conn| {
            let (limit, lease) = (self.batch_size, self.lease_seconds);
            deliveries::claim(conn, due_by, non_urgent, limit, lease, &c.worker)
        })?;
        let mut round = Round {
            lease_from,
            lost: Default::default(),
            unmarked: Vec::new(),
        };
        let mut report = DeliveryReport::default();
        let sent = self
            .send_batch(db, &rows, now, &mut round, &mut report)
            .await;
        // What went out is recorded whatever else happened in the round.
        let marked = self.flush_marks(db, &mut round).await;
        sent?;
        marked?;
        Ok(report)
    }

    /// Send a claimed batch, one message at a time, recording each outcome.
    async fn send_batch(
        &self,
        db: &mut Db<'_>,
        rows: &[Claimed],
        now: DateTime<Utc>,
        round: &mut Round,
        report: &mut DeliveryReport,
    ) -> anyhow::Result<()> {
        for (i, row) in rows.iter().enumerate() {
            self.control.heartbeat.beat();
            if self.stopping() {
                self.flush_marks(db, round).await?;
                report.deferred += self.release(db, &rows[i..]);
                break;
            }
            let span = message_span(row);
            let ready = self.ready_to_send(db, &rows[i..], now, round, report);
            if !ready.instrument(span.clone()).await? {
                continue;
            }
            let digest = self.digest_items(db, row)?;
            let started = std::time::Instant::now();
            let sent = self
                .send(row, digest.as_deref(), now)
                .instrument(span.clone())
                .await;
            let flow = match sent {
                Ok(()) => {
                    self.fault_after_send();
                    round.unmarked.push(row.id);
                    report.sent += 1;
                    metrics::delivered(metrics::Outcome::Sent, row, self.channel_label());
                    let due = round.unmarked.len() >= self.control.mark_every
                        || started.elapsed() >= SLOW_EXCHANGE;
                    if due {
                        self.flush_marks(db, round).await?;
                    }
                    self.relay_succeeded(db);
                    Flow::Next
                }
                Err(e) => {
                    self.flush_marks(db, round).await?;
                    span.in_scope(|| self.settle(db, row, e, now, report))?
                }
            };
            if flow == Flow::RelayDown {
                report.deferred += self.release(db, &rows[i + 1..]);
                break;
            }
        }
        Ok(())
    }

    /// The configured partnerships inside their working hours at `now` (a partnership that is
    /// no longer configured has no calendar: its non-urgent mail waits).
    fn open_partnerships(&self, now: DateTime<Utc>) -> Vec<String> {
        self.runtime
            .partnerships
            .iter()
            .filter(|(_, p)| p.calendar.next_working_instant(now) == now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Whether the first of `rest` (the claimed rows not yet tried) should be sent now: not if
    /// it went stale (cancelled), and only while it is still ours, under a lease that covers
    /// its exchange and the marking after it (renewed for all of `rest` when it might not).
    async fn ready_to_send(
        &self,
        db: &mut Db<'_>,
        rest: &[Claimed],
        now: DateTime<Utc>,
        round: &mut Round,
        report: &mut DeliveryReport,
    ) -> anyhow::Result<bool> {
        let row = &rest[0];
        let worker = &self.control.worker;
        if let Some(why) = stale(row, now) {
            if db.call(|conn| deliveries::mark_cancelled(conn, row.id, worker, &why))? {
                report.cancelled += 1;
                metrics::delivered(metrics::Outcome::Cancelled, row, self.channel_label());
                tracing::info!(id = row.id, "not sent: {why}");
            }
            return Ok(false);
        }
        if !self.lease_covers_next(round) {
            // The marks first: they must be written while these rows' lease lasts.
            self.flush_marks(db, round).await?;
            let ids: Vec<i64> = rest.iter().map(|r| r.id).collect();
            let renewed_from = std::time::Instant::now();
            let mine = db.call(|conn| deliveries::renew(conn, &ids, worker, self.lease_seconds))?;
            round.lease_from = renewed_from;
            round.lost = ids.into_iter().filter(|id| !mine.contains(id)).collect();
        }
        if round.lost.contains(&row.id) {
            report.lost_claims += 1;
            tracing::warn!(
                id = row.id,
                "another worker took this message over (our lease lapsed); leaving it"
            );
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether the batch's lease still covers one more whole exchange (`smtp.timeout_seconds`)
    /// with half the lease to spare, for marking it (and retrying that) before the lease ends.
    fn lease_covers_next(&self, round: &Round) -> bool {
        let lease = std::time::Duration::from_secs(self.lease_seconds.max(1) as u64);
        round.lease_from.elapsed() + self.channel.exchange_timeout() <= lease / 2
    }

    /// Record what came of a send that failed.
    fn settle(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
        e: MailError,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> anyhow::Result<Flow> {
        match e.verdict() {
            Verdict::RelayFault => {
                metrics::relay_failed(self.channel_label());
                self.relay_down(db, row, &e, report)?;
                report.relay_down = true;
                return Ok(Flow::RelayDown);
            }
            Verdict::Stopped => {
                report.deferred += self.release(db, std::slice::from_ref(row));
                return Ok(Flow::RelayDown);
            }
            Verdict::Unconfirmed => {
                self.unconfirmed(db, row, &e, report);
                report.relay_down = true;
                return Ok(Flow::RelayDown);
            }
            Verdict::Recipient { permanent: true } | Verdict::Message { permanent: true } => {
                if self.fail(db, row, &e, now)? {
                    report.failed += 1;
                    metrics::delivered(metrics::Outcome::Failed, row, self.channel_label());
                }
                // The relay's own words may quote the address: the log gets them without it
                // (the row's last_error, for `cpwatch outbox show`, keeps them whole).
                let error = without_addresses(&e.to_string());
                tracing::warn!(id = row.id, error, "permanently rejected");
            }
            Verdict::Recipient { .. } | Verdict::Message { .. } => {
                self.retry(db, row, &e, report)?
            }
        }
        Ok(Flow::Next)
    }

    /// The relay or our configuration failed, not this message: it waits without using an
    /// attempt, the relay's failure is recorded for `cpwatch health`, and the log says what to fix.
    fn relay_down(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
        e: &MailError,
        report: &mut DeliveryReport,
    ) -> anyhow::Result<()> {
        let c = &self.control;
        // Twice the worker's pause: when it resumes, other messages go first, so one message
        // the relay chokes on cannot hold up the rest.
        let retry_at = Utc::now() + self.pause() * 2;
        let msg = e.to_string();
        if db.call(|conn| deliveries::defer(conn, row.id, &c.worker, &msg, retry_at))? {
            report.deferred += 1;
        }
        self.record_relay_failure(db, &msg, e.advice());
        tracing::error!(error = %e, "mail waits: {}", e.advice());
        Ok(())
    }

    /// The whole message went out and the relay did not answer its end. Sending it again could
    /// deliver it twice, so it is recorded as sent, flagged unconfirmed, and the operator told.
    fn unconfirmed(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
        e: &MailError,
        report: &mut DeliveryReport,
    ) {
        let note = format!("unconfirmed: {e}");
        match db.call(|conn| relay::mark_sent_unconfirmed(conn, row.id, &note)) {
            Ok(()) => {
                report.unconfirmed += 1;
                metrics::delivered(metrics::Outcome::Unconfirmed, row, self.channel_label());
            }
            // Left leased: it comes back when the lease ends, and is sent again.
            Err(db_error) => {
                tracing::error!(id = row.id, error = %format!("{db_error:#}"), "cannot record an unconfirmed message")
            }
        }
        self.pause();
        self.record_relay_failure(db, &e.to_string(), e.advice());
        tracing::error!(
            id = row.id,
            message_id = %row.message_id,
            error = %e,
            "sent without confirmation, not sent again: {}",
            e.advice()
        );
    }

    /// Another failure of the relay in a row: this worker waits before its next round, longer
    /// each time (`delivery.retry_*`). Returns the wait.
    fn pause(&self) -> Duration {
        let c = &self.control;
        let streak = c.outage.fetch_add(1, Ordering::Relaxed);
        c.relay_ok_at.store(0, Ordering::Relaxed);
        let wait = self.backoff(streak as i32, i64::from(streak));
        let until = Utc::now() + wait;
        c.paused_until
            .store(until.timestamp_millis(), Ordering::Relaxed);
        wait
    }

    fn record_relay_failure(&self, db: &mut Db<'_>, failure: &str, advice: &str) {
        let Some(name) = self.channel.relay_name() else {
            return;
        };
        if let Err(e) = db.call(|conn| relay::record_failure(conn, &name, failure, advice)) {
            tracing::warn!(error = %format!("{e:#}"), "could not record the relay's failure for health");
        }
    }

    /// Tell health the relay works: after a failure at once, otherwise at most once a minute.
    fn relay_succeeded(&self, db: &mut Db<'_>) {
        let c = &self.control;
        c.outage.store(0, Ordering::Relaxed);
        let Some(name) = self.channel.relay_name() else {
            return;
        };
        let now = Utc::now().timestamp();
        if now - c.relay_ok_at.load(Ordering::Relaxed) < 60 {
            return;
        }
        match db.call(|conn| relay::record_success(conn, &name)) {
            Ok(()) => c.relay_ok_at.store(now, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not record the relay's success for health")
            }
        }
    }

    /// A temporary refusal: try again later, or dead-letter it after the last attempt.
    fn retry(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
        e: &MailError,
        report: &mut DeliveryReport,
    ) -> anyhow::Result<()> {
        let worker = &self.control.worker;
        let dead = row.attempts >= self.max_attempts;
        let retry_at = Utc::now() + self.backoff(row.attempts, row.id);
        let msg = e.to_string();
        if !db.call(|conn| deliveries::mark_retry(conn, row.id, worker, &msg, retry_at, dead))? {
            report.lost_claims += 1;
        } else if dead {
            report.dead += 1;
            metrics::delivered(metrics::Outcome::Dead, row, self.channel_label());
            tracing::error!(id = row.id, error = %e, attempts = row.attempts, "dead-lettered");
        } else {
            report.retried += 1;
            metrics::delivered(metrics::Outcome::Retried, row, self.channel_label());
            tracing::warn!(id = row.id, error = %e, "will retry");
        }
        Ok(())
    }

    fn backoff(&self, attempts: i32, row_id: i64) -> Duration {
        let c = &self.control;
        backoff_from(c.retry_base_seconds, c.retry_max_seconds, attempts, row_id)
    }

    fn channel_label(&self) -> &'static str {
        metrics::channel_label(self.channel)
    }

    /// Who refused a message, as a team manager reads it.
    fn refuser(&self) -> &'static str {
        match self.channel {
            mail::Channel::Notify(_) => "GOV.UK Notify",
            _ => "The mail server",
        }
    }

    fn stopping(&self) -> bool {
        self.control.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Give rows back untried; on a database error they come back when their lease ends.
    fn release(&self, db: &mut Db<'_>, rows: &[Claimed]) -> usize {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        match db.call(|conn| deliveries::release(conn, &ids, &self.control.worker)) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not release claimed messages; they return when their lease ends");
                0
            }
        }
    }

    /// Record the messages sent and not yet marked, in one statement, trying again while their
    /// lease lasts if the database is away, so a short PostgreSQL restart does not turn into
    /// second copies.
    async fn flush_marks(&self, db: &mut Db<'_>, round: &mut Round) -> anyhow::Result<()> {
        if round.unmarked.is_empty() {
            return Ok(());
        }
        // Until just before their lease could pass to another worker.
        let lease = std::time::Duration::from_secs(self.lease_seconds.max(2) as u64);
        let until = round.lease_from + lease * 9 / 10;
        let mut wait = std::time::Duration::from_millis(200);
        loop {
            match db.call(|conn| deliveries::mark_sent(conn, &round.unmarked)) {
                Ok(()) => {
                    tracing::debug!(ids = ?round.unmarked, "sent");
                    round.unmarked.clear();
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() + wait < until => {
                    tracing::warn!(ids = ?round.unmarked, error = %format!("{e:#}"), "sent, but cannot mark them yet; trying again");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(5));
                }
                Err(e) => {
                    let ids = std::mem::take(&mut round.unmarked);
                    return Err(e.context(format!(
                        "messages {ids:?} were sent but could not be marked sent; they may be sent once more after their lease"
                    )));
                }
            }
        }
    }

    /// A permanent rejection: the row is `failed`, and in the same transaction a data-quality
    /// notice goes to the case's team manager (or the admin address). False if not ours.
    fn fail(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
        e: &MailError,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let worker = &self.control.worker;
        let domain = &self.runtime.message_id_domain;
        let error = e.to_string();
        let about_message = matches!(e.verdict(), Verdict::Message { .. });
        db.call(|conn| {
            conn.transaction(|conn| {
                if !deliveries::mark_failed(conn, row.id, worker, &error)? {
                    return Ok(false);
                }
                match self.undeliverable_notice(conn, row, (&error, about_message), now)? {
                    Some(n) => {
                        notices::enqueue(conn, &[n], domain)?;
                    }
                    None => tracing::error!(
                        id = row.id,
                        "a message was refused and nobody can be told (no team manager, no mail.admin_address)"
                    ),
                }
                Ok(true)
            })
        })
    }

    /// The data-quality notice that a delivery was refused: to the case's team manager (unless
    /// it is they who were refused), else the admin address; None if nobody can be told.
    fn undeliverable_notice(
        &self,
        conn: &mut PgConnection,
        row: &Claimed,
        (error, about_message): (&str, bool),
        now: DateTime<Utc>,
    ) -> Result<Option<Notice>, DbError> {
        let Ok(original) = &row.notice else {
            return Ok(None);
        };
        let Ok(rejected) = Email::parse(&row.recipient) else {
            return Ok(None);
        };
        let Some(to) = self.undeliverable_recipient(conn, original, &rejected)? else {
            return Ok(None);
        };
        let about = match (&original.case, &original.dispute) {
            (Some(c), _) => Some(About::Case(c.clone())),
            (None, Some(d)) => Some(About::Dispute(d.clone())),
            (None, None) => None,
        };
        let send_after = self
            .runtime
            .partnerships
            .get(original.partnership.as_str())
            .map_or(now, |p| p.calendar.next_working_instant(now));
        Ok(Some(Notice {
            key: NoticeKey::undeliverable(&original.partnership, about.as_ref(), &rejected),
            kind: Kind::DataQuality,
            rule: "data-quality".into(),
            standard: None,
            title: UNDELIVERABLE_TITLE.into(),
            action: if about_message {
                format!(
                    "{} permanently refused the {} notice (rule {}) for {rejected}: the \
                     message itself, not the address: {error}. Pass the notice on, and ask IT to \
                     check the mail relay's filters.",
                    self.refuser(),
                    original.kind.as_str().replace('_', " "),
                    original.rule
                )
            } else {
                format!(
                    "{} permanently refused the {} notice (rule {}) for {rejected}: {error}. \
                     Check the e-mail address the case system holds for this person, and pass the notice on.",
                    self.refuser(),
                    original.kind.as_str().replace('_', " "),
                    original.rule
                )
            },
            partnership: original.partnership.clone(),
            case: original.case.clone(),
            dispute: original.dispute.clone(),
            occurrence: "-".into(),
            step: "undeliverable".into(),
            letter: None,
            facts: Default::default(),
            due: now,
            trigger_at: now,
            send_after,
            urgent: false,
            to: vec![to],
            cc: vec![],
        }))
    }

    fn undeliverable_recipient(
        &self,
        conn: &mut PgConnection,
        original: &Notice,
        rejected: &Email,
    ) -> Result<Option<Recipient>, DbError> {
        let manager = match &original.case {
            Some(case) => crate::store::cases::team_manager_email(
                conn,
                original.partnership.as_str(),
                case.as_str(),
            )?
            .and_then(|e| Email::parse(&e).ok())
            .filter(|e| e != rejected)
            .map(|email| (email, "team_manager")),
            None => None,
        };
        let to = manager.or_else(|| {
            self.runtime
                .admin_email
                .clone()
                .filter(|e| e != rejected)
                .map(|email| (email, "admin"))
        });
        Ok(to.map(|(email, role)| Recipient {
            email,
            person: None,
            name: None,
            role: role.into(),
        }))
    }

    fn fault_after_send(&self) {
        if let Some(n) = self.control.abort_after_sends {
            if SENDS.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                eprintln!(
                    "{FAULT_ABORT_AFTER_SEND}: aborting after a send, before marking it sent"
                );
                std::process::abort();
            }
        }
    }

    async fn send(
        &self,
        row: &Claimed,
        digest: Option<&[Notice]>,
        now: DateTime<Utc>,
    ) -> Result<(), MailError> {
        let n = row.notice.as_ref().map_err(|e| MailError::Unreadable {
            message: e.to_string(),
            permanent: e.is_permanent(),
        })?;
        let tz = self.runtime.tz_of(n.partnership.as_str());
        let copied = row.position == Position::Cc;
        let rendered = match digest {
            Some(items) => self.renderer.render_digest(n, items, &row.recipient, tz)?,
            None => self.renderer.render(n, &row.recipient, copied, now, tz)?,
        };
        let reference = format!("{}/{}", n.key.as_str(), row.recipient);
        if let Some(sent) = (self.channel)
            .send_notify(&row.recipient, n.kind, &rendered, &reference)
            .await
        {
            return sent;
        }
        let message =
            mail::build_message(&row.recipient, &row.message_id, self.from, &rendered, now)?;
        let about = match (&n.dispute, &n.case) {
            (Some(d), _) => d.as_str(),
            (None, Some(c)) => c.as_str(),
            (None, None) => n.partnership.as_str(),
        };
        let label = mail::FileLabel {
            at: now,
            tz,
            about,
            kind: n.kind,
            delivery: row.id,
        };
        self.channel
            .send_until(message, &label, self.control.stop.clone())
            .await
    }
}

/// A reminder or "due today" notice whose deadline has passed is pointless: the overdue notice
/// says what matters. Such rows pile up when cpwatch was down; they are cancelled, not sent.
/// The span of one message's lines: its outbox id, and the case or dispute it is about (never
/// the recipient).
fn message_span(row: &Claimed) -> tracing::Span {
    let notice = row.notice.as_ref().ok();
    let case = notice.and_then(|n| n.case.as_ref()).map(|c| c.to_string());
    let dispute = notice
        .and_then(|n| n.dispute.as_ref())
        .map(|d| d.to_string());
    tracing::info_span!("message", outbox_id = row.id, case, dispute)
}

fn stale(row: &Claimed, now: DateTime<Utc>) -> Option<String> {
    let n = row.notice.as_ref().ok()?;
    (n.kind.stale_after_deadline() && n.due <= now).then(|| {
        format!(
            "stale: its deadline {} passed before it could be sent",
            crate::evaluate::rfc3339(n.due)
        )
    })
}
/// `text` with every word that holds an `@` (an address, quoted by a relay) replaced.
fn without_addresses(text: &str) -> String {
    text.split(' ')
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_relay_answer_is_logged_without_the_address_it_quotes() {
        let logged = super::without_addresses("550 5.1.1 <jo@ksc.example.org>: user unknown");
        assert_eq!(logged, "550 5.1.1 <address> user unknown");
    }

    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_up_to_a_quarter() {
        for attempts in 0..30 {
            for id in [1i64, 2, 77, 123_456] {
                let d = backoff_from(60, 3600, attempts, id).num_milliseconds();
                let base = (60i64 << attempts.min(20)).min(3600) * 1000;
                assert!(d >= base && d <= base + base / 4, "{attempts} {id}: {d}");
            }
        }
        let spread: std::collections::BTreeSet<i64> = (0..50)
            .map(|id| backoff_from(60, 3600, 1, id).num_milliseconds())
            .collect();
        assert!(spread.len() > 25, "jitter spreads rows: {spread:?}");
    }
}
