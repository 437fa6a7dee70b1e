//! One evaluation pass: stream the cases and disputes whose next check has come, evaluate each,
//! and write each batch's notices, stage changes and next checks in one transaction.

use super::{PartnershipRuntime, Runtime};
use crate::domain::Case;
use crate::evaluate::dispute::{evaluate_dispute, StageChange};
use crate::evaluate::{evaluate_case, Context, Notice};
use crate::policy::StandardsPolicy;
use crate::store::cases::{self, Selection};
use crate::store::{self, disputes, notices};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;

/// Deliveries queued in one pass after which the notice tables' planner statistics are refreshed.
const ANALYZE_AFTER_ROWS: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide and report; write nothing.
    DryRun,
    /// Write notices and next checks.
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

/// One partnership's cases as a pass sees them: its name, its standards and its context.
struct Scope<'s> {
    partnership: &'s str,
    policy: &'s StandardsPolicy,
    ctx: &'s Context<'s>,
}

/// Who sees each decision as it is made (for printing).
pub struct Observers<'o> {
    pub notice: &'o mut dyn FnMut(&Notice),
    pub stage_change: &'o mut dyn FnMut(&StageChange),
}

impl EvaluationPass<'_> {
    /// Run the pass; `each` sees every notice decided (for printing).
    pub fn run(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notice),
    ) -> anyhow::Result<PassReport> {
        self.run_with(conn, each, &mut |_| {})
    }

    /// Run the pass; `each` sees every notice and `each_change` every dispute stage change.
    pub fn run_with(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notice),
        each_change: &mut dyn FnMut(&StageChange),
    ) -> anyhow::Result<PassReport> {
        if self.mode == Mode::Write && !store::try_pass_lock(conn)? {
            tracing::info!("another cpwatch is evaluating; skipping this pass");
            return Ok(PassReport {
                skipped: true,
                ..Default::default()
            });
        }
        let mut observers = Observers {
            notice: each,
            stage_change: each_change,
        };
        let result = self.run_locked(conn, &mut observers);
        if self.mode == Mode::Write {
            store::pass_unlock(conn)?;
        }
        result
    }

    fn selection(&self) -> Selection {
        if self.full || self.mode == Mode::DryRun {
            Selection::All
        } else {
            Selection::DueBy(self.now)
        }
    }

    fn run_locked(
        &self,
        conn: &mut PgConnection,
        obs: &mut Observers,
    ) -> anyhow::Result<PassReport> {
        let mut report = PassReport::default();
        if self.mode == Mode::Write {
            // What case systems changed since the last pass is due now.
            store::changes::take_requests(conn)?;
        }
        for partnership in cases::partnerships(conn)? {
            let Some(rt) = self.runtime.partnerships.get(&partnership) else {
                tracing::warn!(
                    partnership,
                    "cases of a partnership that is not configured are not evaluated"
                );
                continue;
            };
            self.partnership(conn, &partnership, rt, &mut report, obs)?;
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

    /// One partnership's cases, then its disputes.
    fn partnership(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        rt: &PartnershipRuntime,
        report: &mut PassReport,
        obs: &mut Observers,
    ) -> anyhow::Result<()> {
        let Some(policy) = self.runtime.catalogue.standards.get(&rt.standards_policy) else {
            anyhow::bail!(
                "partnership {partnership}: standards policy {} is not loaded",
                rt.standards_policy
            );
        };
        let directory = cases::load_directory(conn, partnership, self.runtime.admin_email.clone())?;
        let ctx = Context {
            calendar: &rt.calendar,
            directory: &directory,
            now: self.now,
        };
        let mut after = 0;
        let mut queued_since_analyze = 0;
        loop {
            let (batch, bad) =
                cases::load_batch(conn, partnership, self.selection(), after, self.batch_size)?;
            for b in &bad {
                tracing::warn!(case_id = b.case_id, problem = %b.message, "unreadable case data skipped");
            }
            report.bad_rows += bad.len();
            let Some(last) = batch.last() else { break };
            after = last.0;
            let scope = Scope {
                partnership,
                policy,
                ctx: &ctx,
            };
            let queued = self.case_batch(conn, &scope, &batch, report, obs)?;
            // A pass that queues many rows outgrows the notice tables' statistics (a new
            // database has none): refresh them so withdrawing stays an index lookup.
            queued_since_analyze += queued;
            if queued_since_analyze >= ANALYZE_AFTER_ROWS {
                notices::analyze(conn)?;
                queued_since_analyze = 0;
            }
            if batch.len() < self.batch_size {
                break;
            }
        }
        self.disputes(conn, partnership, &ctx, report, obs)
    }

    /// Evaluate one batch of cases and, when writing, store its decisions in one transaction:
    /// new notices, withdrawn ones, next checks. Returns the deliveries queued.
    fn case_batch(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        batch: &[(i64, Case)],
        report: &mut PassReport,
        obs: &mut Observers,
    ) -> anyhow::Result<usize> {
        let mut decided = Vec::new();
        let mut checks = Vec::with_capacity(batch.len());
        for (id, case) in batch {
            let outcome = evaluate_case(scope.policy, case, scope.ctx);
            for n in &outcome.notifications {
                (obs.notice)(n);
            }
            checks.push((*id, outcome.next_check));
            decided.extend(outcome.notifications);
        }
        report.cases += batch.len();
        report.notifications += decided.len();
        if self.mode == Mode::DryRun {
            return Ok(0);
        }
        let refs: Vec<String> = batch.iter().map(|(_, c)| c.reference.to_string()).collect();
        let keys: Vec<String> = decided.iter().map(|n| n.key.to_string()).collect();
        let domain = &self.runtime.message_id_domain;
        let (queued, cancelled) = conn.transaction(|conn| -> Result<_, store::DbError> {
            let n = notices::enqueue(conn, &decided, domain)?;
            let c = notices::cancel_superseded(conn, scope.partnership, &refs, &keys, self.now)?;
            cases::set_next_checks(conn, &checks)?;
            Ok((n, c))
        })?;
        report.queued += queued;
        report.cancelled += cancelled;
        Ok(queued)
    }

    /// The disputes loop of a partnership: each batch's stage changes (compare-and-set),
    /// history, audit rows, records, notices and next checks in one transaction.
    fn disputes(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        ctx: &Context,
        report: &mut PassReport,
        obs: &mut Observers,
    ) -> anyhow::Result<()> {
        let mut after = 0;
        loop {
            let (batch, bad) =
                disputes::load_batch(conn, partnership, self.selection(), after, self.batch_size)?;
            for b in &bad {
                tracing::warn!(dispute_id = b.case_id, problem = %b.message, "unreadable dispute data skipped");
            }
            report.bad_rows += bad.len();
            let Some(last) = batch.last() else { break };
            after = last.0;
            let mut decided = Vec::with_capacity(batch.len());
            for (id, dispute) in &batch {
                let Some(policy) = self.runtime.catalogue.ladders.get(&dispute.policy) else {
                    tracing::warn!(partnership, dispute = %dispute.reference, policy = %dispute.policy,
                        "dispute names an escalation policy that is not loaded; skipped");
                    report.bad_rows += 1;
                    continue;
                };
                let outcome = evaluate_dispute(policy, dispute, ctx);
                outcome
                    .stage_changes
                    .iter()
                    .for_each(|c| (obs.stage_change)(c));
                outcome.notifications.iter().for_each(|n| (obs.notice)(n));
                report.stage_changes += outcome.stage_changes.len();
                report.notifications += outcome.notifications.len();
                decided.push((*id, dispute, outcome));
            }
            report.disputes += decided.len();
            if self.mode == Mode::Write {
                let refs: Vec<_> = decided.iter().map(|(id, d, o)| (*id, *d, o)).collect();
                let domain = &self.runtime.message_id_domain;
                let applied = conn.transaction(|conn| disputes::apply(conn, &refs, domain))?;
                report.queued += applied.queued;
            }
            if batch.len() < self.batch_size {
                break;
            }
        }
        Ok(())
    }
}
