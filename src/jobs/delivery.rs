//! Delivery: claim queued rows, render, send through the channel, mark sent or schedule a retry.

use super::Runtime;
use crate::mail::{self, Channel, MailError, Renderer};
use crate::store::outbox::{self, OutboxRow};
use chrono::{DateTime, Duration, Utc};
use diesel::pg::PgConnection;
use lettre::message::Mailbox;

pub struct Delivery<'a> {
    pub runtime: &'a Runtime,
    pub channel: &'a Channel,
    pub renderer: &'a Renderer,
    pub from: &'a Mailbox,
    pub batch_size: i64,
    pub lease_seconds: i64,
    pub max_attempts: i32,
    /// Hold non-urgent mail until its working-hours `send_after`.
    pub working_hours_only: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub dead: usize,
}

impl DeliveryReport {
    pub fn add(&mut self, other: DeliveryReport) {
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.dead += other.dead;
    }
    pub fn handled(&self) -> usize {
        self.sent + self.retried + self.failed + self.dead
    }
}

/// Exponential backoff from one minute, capped at six hours, with a deterministic jitter of up to 25%.
pub fn backoff(attempts: i32, row_id: i64) -> Duration {
    let base = 60i64
        .saturating_mul(1i64 << attempts.clamp(0, 20))
        .min(6 * 3600);
    let jitter = (row_id.wrapping_mul(2_654_435_761) as u64 % 1000) as i64 * base / 4000;
    Duration::seconds(base + jitter)
}

impl Delivery<'_> {
    /// One round: claim a batch due by `now` and send it. `conn` is used between sends only.
    pub async fn run_once(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DeliveryReport> {
        let due_by = if self.working_hours_only {
            now
        } else {
            now + Duration::days(36_500)
        };
        let rows = blocking(|| outbox::claim(conn, due_by, self.batch_size, self.lease_seconds))?;
        let mut report = DeliveryReport::default();
        for row in rows {
            match self.send(&row, now).await {
                Ok(()) => {
                    blocking(|| outbox::mark_sent(conn, row.id))?;
                    report.sent += 1;
                    tracing::debug!(id = row.id, kind = %row.kind, "sent");
                }
                Err(e) if e.is_permanent() => {
                    blocking(|| outbox::mark_failed(conn, row.id, &e.to_string()))?;
                    report.failed += 1;
                    tracing::warn!(id = row.id, error = %e, "permanently rejected");
                }
                Err(e) => {
                    let dead = row.attempts >= self.max_attempts;
                    blocking(|| {
                        outbox::mark_retry(
                            conn,
                            row.id,
                            &e.to_string(),
                            Utc::now() + backoff(row.attempts, row.id),
                            dead,
                        )
                    })?;
                    if dead {
                        report.dead += 1;
                        tracing::error!(id = row.id, error = %e, attempts = row.attempts, "dead-lettered");
                    } else {
                        report.retried += 1;
                        tracing::warn!(id = row.id, error = %e, "will retry");
                    }
                }
            }
        }
        Ok(report)
    }

    async fn send(&self, row: &OutboxRow, now: DateTime<Utc>) -> Result<(), MailError> {
        let n = mail::notification_of(row)?;
        let tz = self.runtime.tz_of(n.partnership.as_str());
        let rendered =
            self.renderer
                .render(&n, &row.recipient, row.recipient_role == "cc", now, tz)?;
        let message = mail::build_message(row, self.from, &rendered)?;
        self.channel.send(message).await
    }
}

/// A short synchronous database call from async code, without stalling the runtime's other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
