//! One evaluation pass: stream the cases whose next check has come, evaluate each, and write
//! the notifications and next checks of each batch in one transaction.

use super::Runtime;
use crate::evaluate::dispute::{evaluate_dispute, StageChange};
use crate::evaluate::{evaluate_case, Context, Notification};
use crate::store::cases::{self, Selection};
use crate::store::disputes;
use crate::store::{self, outbox};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// Rows queued in one pass after which the outbox's planner statistics are refreshed.
const ANALYZE_AFTER_ROWS: usize = 20_000;

/// Only one replica evaluates at a time (PostgreSQL advisory lock key).
const PASS_LOCK: i64 = 0x63_70_77_61_74_63_68; // "cpwatch"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide and report; write nothing.
    DryRun,
    /// Write notifications and next checks.
    Write,
}

pub struct EvaluationPass<'a> {
    pub runtime: &'a Runtime,
    pub now: DateTime<Utc>,
    pub mode: Mode,
    /// Look at every open case, not only those whose next check has come.
    pub full: bool,
    pub batch_size: usize,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub cases: usize,
    pub notifications: usize,
    pub queued: usize,
    /// Queued notices withdrawn because the case no longer calls for them (done first).
    pub cancelled: usize,
    pub bad_rows: usize,
    /// Disputes evaluated, and the stage changes decided for them.
    pub disputes: usize,
    pub stage_changes: usize,
    /// Another replica held the pass lock; nothing was done.
    pub skipped: bool,
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    locked: bool,
}

impl EvaluationPass<'_> {
    /// Run the pass; `each` sees every notification decided (for printing).
    pub fn run(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notification),
    ) -> anyhow::Result<PassReport> {
        self.run_with(conn, each, &mut |_| {})
    }

    /// Run the pass; `each` sees every notification and `each_change` every dispute stage change.
    pub fn run_with(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notification),
        each_change: &mut dyn FnMut(&StageChange),
    ) -> anyhow::Result<PassReport> {
        if self.mode == Mode::Write {
            let got: Locked = diesel::sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<diesel::sql_types::Int8, _>(PASS_LOCK)
                .get_result(conn)?;
            if !got.locked {
                tracing::info!("another cpwatch is evaluating; skipping this pass");
                return Ok(PassReport {
                    skipped: true,
                    ..Default::default()
                });
            }
        }
        let result = self.run_locked(conn, each, each_change);
        if self.mode == Mode::Write {
            diesel::sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<diesel::sql_types::Int8, _>(PASS_LOCK)
                .execute(conn)?;
        }
        result
    }

    fn run_locked(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notification),
        each_change: &mut dyn FnMut(&StageChange),
    ) -> anyhow::Result<PassReport> {
        let mut report = PassReport::default();
        let selection = if self.full || self.mode == Mode::DryRun {
            Selection::All
        } else {
            Selection::DueBy(self.now)
        };
        for partnership in cases::partnerships(conn)? {
            let Some(rt) = self.runtime.partnerships.get(&partnership) else {
                tracing::warn!(
                    partnership,
                    "cases of a partnership that is not configured are not evaluated"
                );
                continue;
            };
            let Some(policy) = self.runtime.catalogue.standards.get(&rt.standards_policy) else {
                anyhow::bail!(
                    "partnership {partnership}: standards policy {} is not loaded",
                    rt.standards_policy
                );
            };
            let directory =
                cases::load_directory(conn, &partnership, self.runtime.admin_email.clone())?;
            let ctx = Context {
                calendar: &rt.calendar,
                directory: &directory,
                now: self.now,
            };
            let mut after = 0;
            let mut queued_since_analyze = 0;
            loop {
                let (batch, bad) =
                    cases::load_batch(conn, &partnership, selection, after, self.batch_size)?;
                for b in &bad {
                    tracing::warn!(case_id = b.case_id, problem = %b.message, "unreadable case data skipped");
                }
                report.bad_rows += bad.len();
                let Some(last) = batch.last() else { break };
                after = last.0;
                let mut notifications = Vec::new();
                let mut checks = Vec::with_capacity(batch.len());
                for (id, case) in &batch {
                    let outcome = evaluate_case(policy, case, &ctx);
                    for n in &outcome.notifications {
                        each(n);
                    }
                    checks.push((*id, outcome.next_check));
                    notifications.extend(outcome.notifications);
                }
                report.cases += batch.len();
                report.notifications += notifications.len();
                if self.mode == Mode::Write {
                    let refs: Vec<String> =
                        batch.iter().map(|(_, c)| c.reference.to_string()).collect();
                    let keys: Vec<String> = notifications.iter().map(|n| n.key.clone()).collect();
                    let (queued, cancelled) =
                        conn.transaction(|conn| -> Result<(usize, usize), store::DbError> {
                            let n = outbox::enqueue(
                                conn,
                                &notifications,
                                &self.runtime.message_id_domain,
                            )?;
                            let c = outbox::cancel_superseded(
                                conn,
                                &partnership,
                                &refs,
                                &keys,
                                self.now,
                            )?;
                            cases::set_next_checks(conn, &checks)?;
                            Ok((n, c))
                        })?;
                    report.queued += queued;
                    report.cancelled += cancelled;
                    // A pass that queues many rows outgrows the outbox's statistics (a new
                    // database has none): refresh them so withdrawing stays an index lookup.
                    queued_since_analyze += queued;
                    if queued_since_analyze >= ANALYZE_AFTER_ROWS {
                        diesel::sql_query("ANALYZE outbox").execute(conn)?;
                        queued_since_analyze = 0;
                    }
                }
                if batch.len() < self.batch_size {
                    break;
                }
            }
            self.disputes(
                conn,
                &partnership,
                &ctx,
                selection,
                &mut report,
                each,
                each_change,
            )?;
        }
        if self.mode == Mode::Write {
            store::audit(
                conn,
                "cpwatch",
                "evaluation_pass",
                &crate::evaluate::rfc3339(self.now),
                serde_json::json!({"cases": report.cases, "disputes": report.disputes, "stage_changes": report.stage_changes, "notifications": report.notifications, "queued": report.queued}),
            )?;
        }
        Ok(report)
    }

    /// The disputes loop of a partnership: each batch's stage changes (compare-and-set),
    /// history, audit rows, records, outbox rows and next checks in one transaction.
    #[allow(clippy::too_many_arguments)]
    fn disputes(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        ctx: &Context,
        selection: Selection,
        report: &mut PassReport,
        each: &mut dyn FnMut(&Notification),
        each_change: &mut dyn FnMut(&StageChange),
    ) -> anyhow::Result<()> {
        let mut after = 0;
        loop {
            let (batch, bad) =
                disputes::load_batch(conn, partnership, selection, after, self.batch_size)?;
            for b in &bad {
                tracing::warn!(dispute_id = b.case_id, problem = %b.message, "unreadable dispute data skipped");
            }
            report.bad_rows += bad.len();
            let Some(last) = batch.last() else { break };
            after = last.0;
            let mut decided = Vec::with_capacity(batch.len());
            for (id, dispute) in &batch {
                let Some(policy) = self.runtime.catalogue.escalation.get(&dispute.policy) else {
                    tracing::warn!(partnership, dispute = %dispute.reference, policy = %dispute.policy,
                        "dispute names an escalation policy that is not loaded; skipped");
                    report.bad_rows += 1;
                    continue;
                };
                let outcome = evaluate_dispute(policy, dispute, ctx);
                for c in &outcome.stage_changes {
                    each_change(c);
                }
                for n in &outcome.notifications {
                    each(n);
                }
                report.stage_changes += outcome.stage_changes.len();
                report.notifications += outcome.notifications.len();
                decided.push((*id, dispute, outcome));
            }
            report.disputes += decided.len();
            if self.mode == Mode::Write {
                let refs: Vec<_> = decided.iter().map(|(id, d, o)| (*id, *d, o)).collect();
                let applied = conn.transaction(|conn| {
                    disputes::apply(conn, &refs, &self.runtime.message_id_domain)
                })?;
                report.queued += applied.queued;
            }
            if batch.len() < self.batch_size {
                break;
            }
        }
        Ok(())
    }
}
