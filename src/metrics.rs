//! The daemon's Prometheus metrics: every name, its labels and what it means, in one place.
//!
//! Counters and histograms are recorded where things happen (the pass, delivery) through the
//! `metrics` facade: without an installed recorder (every command but `cpwatch run` with
//! `[metrics] enabled`) each call does nothing. Gauges that describe the database (the outbox,
//! open disputes, the bank-holiday data) are read at scrape time by one query in
//! `store::metrics`, so every replica reports the same figures. Labels carry kinds, channels,
//! statuses, policies and stages only: never a case reference, a person or an address.

use crate::store::deliveries::Claimed;
use crate::store::metrics::Figures;
use chrono::{DateTime, Utc};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::BTreeSet;
use std::sync::Mutex;

pub const PASSES: &str = "cpwatch_passes_total";
pub const PASS_DURATION: &str = "cpwatch_pass_duration_seconds";
pub const CASES_EVALUATED: &str = "cpwatch_cases_evaluated_total";
pub const DISPUTES_EVALUATED: &str = "cpwatch_disputes_evaluated_total";
pub const LAST_PASS_CASES: &str = "cpwatch_last_pass_cases";
pub const LAST_PASS_DISPUTES: &str = "cpwatch_last_pass_disputes";
pub const LAST_SUCCESS: &str = "cpwatch_last_successful_pass_timestamp_seconds";
pub const STAGE_CHANGES: &str = "cpwatch_stage_changes_total";
pub const NOTICES_QUEUED: &str = "cpwatch_notices_queued_total";
pub const QUEUED: &str = "cpwatch_notifications_queued_total";
pub const WITHDRAWN: &str = "cpwatch_notifications_withdrawn_total";
pub const SENT: &str = "cpwatch_notifications_sent_total";
pub const FAILED: &str = "cpwatch_notifications_failed_total";
pub const DEAD: &str = "cpwatch_notifications_dead_total";
pub const CANCELLED: &str = "cpwatch_notifications_cancelled_total";
pub const RETRIED: &str = "cpwatch_notifications_retried_total";
pub const UNCONFIRMED: &str = "cpwatch_notifications_unconfirmed_total";
pub const RELAY_FAILURES: &str = "cpwatch_relay_failures_total";
pub const LATENCY: &str = "cpwatch_delivery_latency_seconds";
pub const OUTBOX: &str = "cpwatch_outbox_notifications";
pub const OLDEST_DUE: &str = "cpwatch_oldest_due_unsent_age_seconds";
pub const DISPUTES_OPEN: &str = "cpwatch_disputes_open";
pub const HOLIDAYS_AGE: &str = "cpwatch_bank_holidays_age_seconds";
pub const HOLIDAYS_UNTIL: &str = "cpwatch_bank_holidays_known_until_timestamp_seconds";
pub const DATA_QUALITY: &str = "cpwatch_data_quality_notices_last_day";
pub const LAST_PASS_ANY: &str = "cpwatch_last_pass_timestamp_seconds";
pub const DATABASE_UP: &str = "cpwatch_database_up";
pub const BUILD_INFO: &str = "cpwatch_build_info";

/// The statuses the outbox gauge always reports (0 when there are none).
const STATUSES: [&str; 5] = ["pending", "sent", "failed", "dead", "cancelled"];

/// What became of one claimed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Failed,
    Dead,
    Cancelled,
    Retried,
    Unconfirmed,
}

impl Outcome {
    fn counter(self) -> &'static str {
        match self {
            Outcome::Sent => SENT,
            Outcome::Failed => FAILED,
            Outcome::Dead => DEAD,
            Outcome::Cancelled => CANCELLED,
            Outcome::Retried => RETRIED,
            Outcome::Unconfirmed => UNCONFIRMED,
        }
    }
}

/// Install the Prometheus recorder for this process and describe every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let pass_buckets = [
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ];
    let latency_buckets = [
        1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 43200.0, 86400.0, 259200.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(PASS_DURATION.into()), &pass_buckets)?
        .set_buckets_for_metric(Matcher::Full(LATENCY.into()), &latency_buckets)?
        .install_recorder()?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Every metric's kind, unit and help text, for the `# HELP` lines.
const DESCRIPTIONS: &[(&str, char, Option<metrics::Unit>, &str)] = {
    use metrics::Unit::Seconds as S;
    &[
        (PASSES, 'c', None, "Evaluation passes by result (done; skipped: another replica held the lock; failed)"),
        (PASS_DURATION, 'h', Some(S), "How long a completed evaluation pass took"),
        (CASES_EVALUATED, 'c', None, "Cases evaluated by this replica's passes"),
        (DISPUTES_EVALUATED, 'c', None, "Professional disagreements evaluated by this replica's passes"),
        (LAST_PASS_CASES, 'g', None, "Cases evaluated in this replica's last completed pass"),
        (LAST_PASS_DISPUTES, 'g', None, "Disputes evaluated in this replica's last completed pass"),
        (LAST_SUCCESS, 'g', Some(S), "When this replica last completed an evaluation pass (Unix time)"),
        (STAGE_CHANGES, 'c', None, "Dispute stage changes made by this replica's passes"),
        (NOTICES_QUEUED, 'c', None, "Notices newly queued, by kind (one decision; a message per recipient)"),
        (QUEUED, 'c', None, "Messages (one per recipient) queued by this replica's passes"),
        (WITHDRAWN, 'c', None, "Queued notices withdrawn because the case no longer calls for them"),
        (SENT, 'c', None, "Messages the relay accepted (or written as files), by kind and channel"),
        (FAILED, 'c', None, "Messages refused for good (5xx), by kind and channel"),
        (DEAD, 'c', None, "Messages dead-lettered after the last attempt, by kind and channel"),
        (CANCELLED, 'c', None, "Reminders and due notices not sent: their deadline passed while they waited"),
        (RETRIED, 'c', None, "Messages refused for now (4xx) and scheduled again, by kind and channel"),
        (UNCONFIRMED, 'c', None, "Messages sent in full whose end the relay did not answer (recorded sent, not resent)"),
        (RELAY_FAILURES, 'c', None, "Exchanges that failed because of the relay or our configuration of it (mail waits)"),
        (LATENCY, 'h', Some(S), "From when a message could first go (its send_after, or its queueing if later) to when it was sent"),
        (OUTBOX, 'g', None, "Messages in the outbox by status (all replicas)"),
        (OLDEST_DUE, 'g', Some(S), "Age of the oldest message due to go and not yet sent (0 when none)"),
        (DISPUTES_OPEN, 'g', None, "Open professional disagreements by ladder policy and stage"),
        (HOLIDAYS_AGE, 'g', Some(S), "Age of the stored bank-holiday feed (absent while only the built-in snapshot is used)"),
        (HOLIDAYS_UNTIL, 'g', Some(S), "The last bank holiday the calendars know (Unix time)"),
        (DATA_QUALITY, 'g', None, "Data-quality notices created in the last 24 hours"),
        (LAST_PASS_ANY, 'g', Some(S), "When the last evaluation pass by any replica was recorded (Unix time)"),
        (DATABASE_UP, 'g', None, "1 when this scrape could read the database, else 0"),
        (BUILD_INFO, 'g', None, "Always 1; the version label says which build runs"),
    ]
};

fn describe() {
    for &(name, kind, unit, help) in DESCRIPTIONS {
        match (kind, unit) {
            ('c', _) => describe_counter!(name, help),
            ('h', Some(u)) => describe_histogram!(name, u, help),
            ('h', None) => describe_histogram!(name, help),
            (_, Some(u)) => describe_gauge!(name, u, help),
            (_, None) => describe_gauge!(name, help),
        }
    }
}

/// How a pass ended, in the figures the metrics keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    Done {
        cases: usize,
        disputes: usize,
        stage_changes: usize,
        queued: usize,
        withdrawn: usize,
    },
    /// Another replica held the pass lock.
    Skipped,
    Failed,
}

/// A pass ended after `seconds`, at `now`.
pub fn pass_finished(end: PassEnd, seconds: f64, now: DateTime<Utc>) {
    let (cases, disputes, stage_changes, queued, withdrawn) = match end {
        PassEnd::Failed => {
            counter!(PASSES, "result" => "failed").increment(1);
            return;
        }
        PassEnd::Skipped => {
            counter!(PASSES, "result" => "skipped").increment(1);
            return;
        }
        PassEnd::Done {
            cases,
            disputes,
            stage_changes,
            queued,
            withdrawn,
        } => (cases, disputes, stage_changes, queued, withdrawn),
    };
    counter!(PASSES, "result" => "done").increment(1);
    histogram!(PASS_DURATION).record(seconds);
    counter!(CASES_EVALUATED).increment(cases as u64);
    counter!(DISPUTES_EVALUATED).increment(disputes as u64);
    counter!(STAGE_CHANGES).increment(stage_changes as u64);
    counter!(QUEUED).increment(queued as u64);
    counter!(WITHDRAWN).increment(withdrawn as u64);
    gauge!(LAST_PASS_CASES).set(cases as f64);
    gauge!(LAST_PASS_DISPUTES).set(disputes as f64);
    gauge!(LAST_SUCCESS).set(now.timestamp() as f64);
}

/// A notice of `kind` was newly queued.
pub fn notice_queued(kind: &'static str) {
    counter!(NOTICES_QUEUED, "kind" => kind).increment(1);
}

/// The channel label: `smtp` or `file`.
pub fn channel_label(channel: &crate::mail::Channel) -> &'static str {
    use crate::mail::Channel;
    match channel {
        Channel::Files(_) => "file",
        Channel::Smtp(_) => "smtp",
        Channel::Notify(_) => "notify",
    }
}

fn kind_of(row: &Claimed) -> &'static str {
    row.notice
        .as_ref()
        .map_or("unreadable", |n| n.kind.as_str())
}

/// What became of a claimed message; a sent one also records its latency (from when it was due).
pub fn delivered(outcome: Outcome, row: &Claimed, channel: &'static str) {
    counter!(outcome.counter(), "kind" => kind_of(row), "channel" => channel).increment(1);
    if outcome == Outcome::Sent {
        let late = (Utc::now() - row.ready_at).num_milliseconds().max(0);
        histogram!(LATENCY, "channel" => channel).record(late as f64 / 1000.0);
    }
}

/// The relay (or our configuration of it) failed an exchange.
pub fn relay_failed(channel: &'static str) {
    counter!(RELAY_FAILURES, "channel" => channel).increment(1);
}

/// What a scrape reads besides the database figures.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub last_pass_any: Option<DateTime<Utc>>,
    pub holidays_fetched_at: Option<DateTime<Utc>>,
    pub holidays_known_until: Option<DateTime<Utc>>,
}

/// The open-dispute label sets reported before, so a stage that empties reads 0, not its last value.
static SEEN_DISPUTES: Mutex<BTreeSet<(String, i32)>> = Mutex::new(BTreeSet::new());

/// Set the gauges read from the database at `now` (`None`: the database could not be read).
pub fn set_figures(read: Option<(&Figures, &Extra)>, now: DateTime<Utc>) {
    let Some((f, extra)) = read else {
        gauge!(DATABASE_UP).set(0.0);
        return;
    };
    gauge!(DATABASE_UP).set(1.0);
    for status in STATUSES {
        let n = f
            .by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        gauge!(OUTBOX, "status" => status).set(n as f64);
    }
    let oldest = f
        .oldest_due_unsent
        .map_or(0, |t| (now - t).num_seconds().max(0));
    gauge!(OLDEST_DUE).set(oldest as f64);
    let mut seen = SEEN_DISPUTES.lock().unwrap_or_else(|p| p.into_inner());
    for (policy, stage) in seen.iter() {
        if !f
            .disputes_open
            .iter()
            .any(|(p, s, _)| p == policy && s == stage)
        {
            gauge!(DISPUTES_OPEN, "policy" => policy.clone(), "stage" => stage.to_string())
                .set(0.0);
        }
    }
    for (policy, stage, n) in &f.disputes_open {
        gauge!(DISPUTES_OPEN, "policy" => policy.clone(), "stage" => stage.to_string())
            .set(*n as f64);
        seen.insert((policy.clone(), *stage));
    }
    gauge!(DATA_QUALITY).set(f.data_quality_last_day as f64);
    if let Some(t) = extra.last_pass_any {
        gauge!(LAST_PASS_ANY).set(t.timestamp() as f64);
    }
    if let Some(t) = extra.holidays_fetched_at {
        gauge!(HOLIDAYS_AGE).set((now - t).num_seconds().max(0) as f64);
    }
    if let Some(t) = extra.holidays_known_until {
        gauge!(HOLIDAYS_UNTIL).set(t.timestamp() as f64);
    }
}

/// The bank-holiday data the calendars use: when the stored feed was fetched (None: only the
/// built-in snapshot) and the last holiday it knows.
pub fn holiday_data(
    conn: &mut diesel::pg::PgConnection,
) -> anyhow::Result<(Option<DateTime<Utc>>, Option<chrono::NaiveDate>)> {
    use crate::store::holidays;
    let fetched = holidays::stored_fetched_at(conn)?;
    let feed = match holidays::load_feed(conn)? {
        Some(f) => f,
        None => crate::calendar::BankHolidays::snapshot(),
    };
    Ok((fetched, feed.last_date()))
}

/// Read everything a scrape reports from the database.
pub fn read(
    conn: &mut diesel::pg::PgConnection,
    now: DateTime<Utc>,
) -> anyhow::Result<(Figures, Extra)> {
    let figures = crate::store::metrics::figures(conn, now)?;
    let (holidays_fetched_at, until) = holiday_data(conn)?;
    let extra = Extra {
        last_pass_any: crate::store::last_pass_at(conn)?,
        holidays_fetched_at,
        holidays_known_until: until
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc()),
    };
    Ok((figures, extra))
}

/// The text a scrape returns: the database figures (read through `conn`, when there is one)
/// set as gauges, then everything rendered in Prometheus's text format.
pub fn render(
    handle: &PrometheusHandle,
    conn: Option<&mut diesel::pg::PgConnection>,
    now: DateTime<Utc>,
) -> String {
    let read = conn.map(|c| read(c, now));
    match &read {
        Some(Ok((f, e))) => set_figures(Some((f, e)), now),
        Some(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "metrics: cannot read the database figures");
            set_figures(None, now);
        }
        None => set_figures(None, now),
    }
    handle.run_upkeep();
    handle.render()
}
