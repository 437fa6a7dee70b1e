//! The team channels' round: for each partnership with a team channel, queue the day's overdue
//! summary once its time has come (working days, `summary_at` local time) and an alert for each
//! immediate-risk notice queued since the last round; then post what is queued, once each.
//!
//! Exactly once: each post has a unique key (`store::team_posts`), is claimed under a lease and
//! marked only while the claim is ours. A 2xx is sent; a 4xx other than 408/429 is refused for
//! good (`failed`); anything else is tried again with the delivery backoff, `dead` after
//! `delivery.max_attempts`.

use super::delivery::{backoff_from, DbPool};
use super::Runtime;
use crate::evaluate::{timeliness, Context, Timeliness};
use crate::settings::Settings;
use crate::store::cases::{self, Selection};
use crate::store::team_posts::{self, Outcome};
use crate::team_channel::{self, OverdueLine, TeamChannel};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use std::sync::{Arc, RwLock};

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TeamReport {
    pub summaries: usize,
    pub alerts: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    pub dead: usize,
}

pub struct TeamChannels<'a> {
    pub runtime: &'a Runtime,
    pub settings: &'a Settings,
    pub http: reqwest::Client,
    pub worker: String,
}

fn db<T>(f: impl FnOnce() -> Result<T, crate::store::DbError>) -> anyhow::Result<T> {
    Ok(tokio::task::block_in_place(f)?)
}

impl<'a> TeamChannels<'a> {
    pub fn new(runtime: &'a Runtime, settings: &'a Settings) -> Self {
        TeamChannels {
            runtime,
            settings,
            http: reqwest::Client::new(),
            worker: format!("team:{}", super::delivery::Control::default().worker),
        }
    }

    /// The partnerships with a team channel.
    fn channels(&self) -> impl Iterator<Item = (&'a String, &'a TeamChannel)> {
        self.settings
            .partnerships
            .iter()
            .filter_map(|(name, p)| p.team_channel.as_ref().map(|t| (name, t)))
    }

    /// Whether any partnership has a team channel.
    pub fn any(settings: &Settings) -> bool {
        settings
            .partnerships
            .values()
            .any(|p| p.team_channel.is_some())
    }

    /// Queue what is due at `now`, then post what is queued.
    pub async fn run_once(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
    ) -> anyhow::Result<TeamReport> {
        let mut report = TeamReport::default();
        for (name, channel) in self.channels() {
            if channel.summary {
                report.summaries += usize::from(self.queue_summary(conn, name, channel, now)?);
            }
            if channel.alerts {
                report.alerts += self.queue_alerts(conn, name)?;
            }
        }
        self.post_queued(conn, &mut report).await?;
        Ok(report)
    }

    /// The day's summary, once its time has come on a working day. True if newly queued.
    fn queue_summary(
        &self,
        conn: &mut PgConnection,
        name: &str,
        channel: &TeamChannel,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let Some(rt) = self.runtime.partnerships.get(name) else {
            return Ok(false);
        };
        let cal = &rt.calendar;
        let today = cal.local_date(now);
        if !cal.is_working_day(today) || cal.at_local(today, channel.summary_at) > now {
            return Ok(false);
        }
        let key = team_posts::summary_key(name, today);
        if db(|| team_posts::exists(conn, &key))? {
            return Ok(false);
        }
        let lines = self.overdue_lines(conn, name, now)?;
        let text = team_channel::summary_text(name, today, &lines);
        db(|| team_posts::queue(conn, name, &key, "summary", &text))
    }

    /// Every open case's overdue timescales at `now`, counted per rule (in the policy's order).
    fn overdue_lines(
        &self,
        conn: &mut PgConnection,
        name: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<OverdueLine>> {
        let rt = &self.runtime.partnerships[name];
        let Some(policy) = self.runtime.catalogue.standards.get(&rt.standards_policy) else {
            anyhow::bail!(
                "partnership {name}: standards policy {} is not loaded",
                rt.standards_policy
            );
        };
        let directory = db(|| cases::load_directory(conn, name, self.runtime.admin_email.clone()))?;
        let ctx = Context {
            calendar: &rt.calendar,
            directory: &directory,
            now,
        };
        let mut lines: Vec<OverdueLine> = policy
            .rules
            .iter()
            .map(|r| OverdueLine {
                standard: r.standard.clone(),
                title: r.title.clone(),
                overdue: 0,
                longest_days: 0,
            })
            .collect();
        let (mut after, size) = (0, self.settings.database.batch_size);
        loop {
            let (batch, _) = db(|| cases::load_batch(conn, name, Selection::All, after, size))?;
            for (_, case) in &batch {
                for f in timeliness(policy, case, &ctx) {
                    if f.status != Timeliness::Overdue || f.cancelled.is_some() {
                        continue;
                    }
                    if let Some(i) = policy.rules.iter().position(|r| r.id == f.rule) {
                        lines[i].overdue += 1;
                        lines[i].longest_days =
                            lines[i].longest_days.max((now - f.deadline).num_days());
                    }
                }
            }
            match batch.last() {
                Some(last) if batch.len() == size => after = last.0,
                _ => break,
            }
        }
        Ok(lines)
    }

    /// An alert for each immediate-risk notice without one. Returns how many were queued.
    fn queue_alerts(&self, conn: &mut PgConnection, name: &str) -> anyhow::Result<usize> {
        let tz = self.runtime.tz_of(name);
        let mut queued = 0;
        for n in db(|| team_posts::unalerted_urgent(conn, name))? {
            let stage = team_channel::Stage {
                policy_title: n.policy_title.as_deref(),
                stage: n.stage.as_deref(),
                stage_name: n.stage_name.as_deref(),
            };
            let title = team_channel::alert_title(&n.title, &stage);
            let text = team_channel::alert_text(name, &title, n.due_at, tz);
            let key = team_posts::alert_key(name, &n.key);
            queued += usize::from(db(|| team_posts::queue(conn, name, &key, "alert", &text))?);
        }
        Ok(queued)
    }

    /// Post every claimed post, marking each.
    async fn post_queued(
        &self,
        conn: &mut PgConnection,
        report: &mut TeamReport,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = self.channels().map(|(n, _)| n.clone()).collect();
        let d = &self.settings.delivery;
        let posts =
            db(|| team_posts::claim(conn, &names, d.batch_size, d.lease_seconds, &self.worker))?;
        for post in posts {
            let Some((_, channel)) = self.channels().find(|(n, _)| **n == post.partnership_id)
            else {
                continue;
            };
            let result = team_channel::post(&self.http, channel, &post.text).await;
            let error = result.as_ref().err().map(|e| e.to_string());
            let outcome = match &result {
                Ok(()) => Outcome::Sent,
                Err(e) if e.permanent() => Outcome::Failed {
                    error: error.as_deref().unwrap_or_default(),
                },
                Err(_) => Outcome::Retry {
                    error: error.as_deref().unwrap_or_default(),
                    at: Utc::now()
                        + backoff_from(
                            d.retry_base_seconds,
                            d.retry_max_seconds,
                            post.attempts,
                            post.id,
                        ),
                    dead: post.attempts >= d.max_attempts,
                },
            };
            if !db(|| team_posts::mark(conn, post.id, &self.worker, outcome))? {
                continue;
            }
            match outcome {
                Outcome::Sent => report.sent += 1,
                Outcome::Failed { error } => {
                    report.failed += 1;
                    tracing::error!(partnership = %post.partnership_id, kind = %post.kind, %error, "the team channel refused a post; check its webhook");
                }
                Outcome::Retry { error, dead, .. } => {
                    if dead {
                        report.dead += 1
                    } else {
                        report.retried += 1
                    }
                    tracing::warn!(partnership = %post.partnership_id, kind = %post.kind, %error, dead, "team channel post not accepted");
                }
            }
        }
        Ok(())
    }
}

/// The daemon's team-channel loop: a round every `delivery.interval_seconds` while any
/// partnership has a team channel.
pub async fn run_loop(
    pool: DbPool,
    settings: Arc<Settings>,
    runtime: Arc<RwLock<Arc<Runtime>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if !TeamChannels::any(&settings) {
        return;
    }
    let interval = std::time::Duration::from_secs(settings.delivery.interval_seconds);
    loop {
        if *stop.borrow() {
            return;
        }
        let rt = match runtime.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let round = async {
            let mut conn = tokio::task::block_in_place(|| pool.get())?;
            TeamChannels::new(&rt, &settings)
                .run_once(&mut conn, Utc::now())
                .await
        };
        if let Err(e) = round.await {
            tracing::error!(error = %format!("{e:#}"), "team channel round failed; will retry");
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
