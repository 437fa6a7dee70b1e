//! One evaluation pass: stream the cases and disputes whose next check has come, evaluate each,
//! and write each batch's notices, stage changes and next checks in one transaction; then say
//! what was newly queued and which stages moved (or, in a dry run, what would be).
//!
//! A partnership with a go-live instant is evaluated only from then on; its first pass at or
//! after it looks at every open case, leaves out the case notices about deadlines that lapsed
//! before it, and queues one summary of those per team manager instead (`evaluate::go_live`).

use super::{PartnershipRuntime, Runtime};
use crate::domain::Case;
use crate::evaluate::dispute::{evaluate_dispute_from, DisputeOutcome, StageChange};
use crate::evaluate::go_live::{self, Lapsed};
use crate::evaluate::{evaluate_case, Context, Notice, Recipient};
use crate::metrics;
use crate::policy::StandardsPolicy;
use crate::store::cases::{self, BadRow, Selection};
use crate::store::{self, disputes, notices};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use std::collections::HashSet;

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
    /// Notices newly queued (in a dry run: that a writing pass would newly queue).
    pub new_notices: usize,
    /// Queued notices withdrawn because the case no longer calls for them (done first).
    pub cancelled: usize,
    pub bad_rows: usize,
    /// Disputes evaluated, and the stage changes decided for them.
    pub disputes: usize,
    pub stage_changes: usize,
    /// Go-live summaries decided (one per team manager), on a partnership's go-live pass.
    pub go_live_summaries: usize,
    /// Another replica held the pass lock; nothing was done.
    pub skipped: bool,
}

/// What the command line narrows a pass to.
#[derive(Debug, Clone, Default)]
pub struct Narrow {
    /// Only this case (by reference) and its disputes.
    pub case: Option<String>,
}

/// A notice or stage change the pass decided, reported once it is written (in a dry run, once
/// the store has said what is queued already).
#[derive(Debug, Clone, Copy)]
pub enum Decided<'d> {
    /// `already`: it was queued before this pass, which therefore did not queue it.
    Notice { notice: &'d Notice, already: bool },
    /// A stage change this pass made (a dry run: would make).
    StageChange(&'d StageChange),
}

/// Where a partnership stands with going live.
struct Live {
    at: Option<DateTime<Utc>>,
    /// This is its go-live pass: summarise what was already overdue.
    summarise: bool,
}

/// One partnership's cases as a pass sees them: its name, its standards and its context.
struct Scope<'s> {
    partnership: &'s str,
    policy: &'s StandardsPolicy,
    ctx: &'s Context<'s>,
    live: &'s Live,
    narrow: &'s Narrow,
}

type Reporter<'r> = dyn FnMut(Decided<'_>) + 'r;

impl EvaluationPass<'_> {
    /// Run the pass; `each` sees every notice decided (for printing).
    pub fn run(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notice),
    ) -> anyhow::Result<PassReport> {
        self.run_with(conn, each, &mut |_| {})
    }

    /// Run the pass; `each` sees every notice decided and `each_change` every stage change.
    pub fn run_with(
        &self,
        conn: &mut PgConnection,
        each: &mut dyn FnMut(&Notice),
        each_change: &mut dyn FnMut(&StageChange),
    ) -> anyhow::Result<PassReport> {
        let mut report = |d: Decided<'_>| match d {
            Decided::Notice { notice, .. } => each(notice),
            Decided::StageChange(c) => each_change(c),
        };
        self.run_narrowed(conn, &Narrow::default(), false, &mut report)
    }

    /// Run the pass narrowed to `narrow`; `report` sees each notice decided, saying whether it
    /// was queued before, and each stage change made.
    pub fn run_reporting(
        &self,
        conn: &mut PgConnection,
        narrow: &Narrow,
        report: &mut Reporter<'_>,
    ) -> anyhow::Result<PassReport> {
        self.run_narrowed(conn, narrow, true, report)
    }

    fn run_narrowed(
        &self,
        conn: &mut PgConnection,
        narrow: &Narrow,
        look_up: bool,
        report: &mut Reporter<'_>,
    ) -> anyhow::Result<PassReport> {
        if self.mode == Mode::Write && !store::try_pass_lock(conn)? {
            tracing::info!("another cpwatch is evaluating; skipping this pass");
            metrics::pass_finished(metrics::PassEnd::Skipped, 0.0, Utc::now());
            return Ok(PassReport {
                skipped: true,
                ..Default::default()
            });
        }
        let mut out = Out {
            report: PassReport::default(),
            reporter: report,
            look_up,
        };
        let started = std::time::Instant::now();
        let result = self.run_locked(conn, narrow, &mut out);
        if self.mode == Mode::Write {
            let r = &out.report;
            let end = match &result {
                Ok(()) => metrics::PassEnd::Done {
                    cases: r.cases,
                    disputes: r.disputes,
                    stage_changes: r.stage_changes,
                    queued: r.queued,
                    withdrawn: r.cancelled,
                },
                Err(_) => metrics::PassEnd::Failed,
            };
            metrics::pass_finished(end, started.elapsed().as_secs_f64(), Utc::now());
            store::pass_unlock(conn)?;
        }
        result.map(|()| out.report)
    }

    fn selection(&self, live: &Live) -> Selection {
        if self.full || self.mode == Mode::DryRun || live.summarise {
            Selection::All
        } else {
            Selection::DueBy(self.now)
        }
    }

    fn run_locked(
        &self,
        conn: &mut PgConnection,
        narrow: &Narrow,
        out: &mut Out,
    ) -> anyhow::Result<()> {
        if self.mode == Mode::Write {
            // What case systems changed since the last pass is due now.
            store::changes::take_requests(conn)?;
        }
        let holding = match &narrow.case {
            Some(reference) => Some(cases::partnerships_with_case(conn, reference)?),
            None => None,
        };
        for partnership in cases::partnerships(conn)? {
            if holding.as_ref().is_some_and(|h| !h.contains(&partnership)) {
                continue;
            }
            let Some(rt) = self.runtime.partnerships.get(&partnership) else {
                tracing::warn!(
                    partnership,
                    "cases of a partnership that is not configured are not evaluated"
                );
                continue;
            };
            self.partnership(conn, &partnership, rt, narrow, out)?;
        }
        if self.mode == Mode::Write {
            let r = &out.report;
            store::audit(
                conn,
                "cpwatch",
                "evaluation_pass",
                &crate::evaluate::rfc3339(self.now),
                serde_json::json!({"cases": r.cases, "disputes": r.disputes, "stage_changes": r.stage_changes, "notifications": r.notifications, "queued": r.queued, "new_notices": r.new_notices, "case": narrow.case}),
            )?;
        }
        Ok(())
    }

    /// Where the partnership stands with going live: the configured instant, else the stored one.
    fn live(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        rt: &PartnershipRuntime,
        narrow: &Narrow,
    ) -> anyhow::Result<Live> {
        let stored = store::go_live::load(conn, partnership)?;
        let at = rt.go_live.or(stored.map(|s| s.at));
        let summarised = stored.is_some_and(|s| Some(s.at) == at && s.summarised_at.is_some());
        let due = at.is_some_and(|g| self.now >= g);
        Ok(Live {
            at,
            summarise: due && !summarised && narrow.case.is_none(),
        })
    }

    /// One partnership's cases, its go-live summaries if this is its go-live pass, then its
    /// disputes.
    fn partnership(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        rt: &PartnershipRuntime,
        narrow: &Narrow,
        out: &mut Out,
    ) -> anyhow::Result<()> {
        let Some(policy) = self.runtime.catalogue.standards.get(&rt.standards_policy) else {
            anyhow::bail!(
                "partnership {partnership}: standards policy {} is not loaded",
                rt.standards_policy
            );
        };
        let live = self.live(conn, partnership, rt, narrow)?;
        if let Some(g) = live.at.filter(|g| self.now < *g) {
            tracing::info!(partnership, go_live = %crate::evaluate::rfc3339(g), "not live yet: nothing evaluated");
            return Ok(());
        }
        let directory = cases::load_directory(conn, partnership, self.runtime.admin_email.clone())?;
        let ctx = Context {
            calendar: &rt.calendar,
            directory: &directory,
            now: self.now,
        };
        let scope = Scope {
            partnership,
            policy,
            ctx: &ctx,
            live: &live,
            narrow,
        };
        let lapsed = self.cases(conn, &scope, out)?;
        if live.summarise {
            self.go_live_summaries(conn, &scope, lapsed, out)?;
        }
        self.disputes(conn, &scope, out)
    }

    /// Every batch of the partnership's cases; on its go-live pass, what had lapsed on each.
    fn cases(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        out: &mut Out,
    ) -> anyhow::Result<Vec<(Recipient, Vec<Lapsed>)>> {
        let mut after = 0;
        let mut queued_since_analyze = 0;
        let mut lapsed = Vec::new();
        loop {
            let (batch, bad) = self.next_cases(conn, scope, after)?;
            for b in &bad {
                tracing::warn!(case_id = b.case_id, problem = %b.message, "unreadable case data skipped");
            }
            out.report.bad_rows += bad.len();
            let Some(last) = batch.last() else { break };
            after = last.0;
            if let (true, Some(g)) = (scope.live.summarise, scope.live.at) {
                lapsed.extend(
                    batch
                        .iter()
                        .filter_map(|(_, c)| go_live::lapsed_at(scope.policy, c, scope.ctx, g)),
                );
            }
            let queued = self.case_batch(conn, scope, &batch, out)?;
            // A pass that queues many rows outgrows the notice tables' statistics (a new
            // database has none): refresh them so withdrawing stays an index lookup.
            queued_since_analyze += queued;
            if queued_since_analyze >= ANALYZE_AFTER_ROWS {
                notices::analyze(conn)?;
                queued_since_analyze = 0;
            }
            if batch.len() < self.batch_size || scope.narrow.case.is_some() {
                break;
            }
        }
        Ok(lapsed)
    }

    /// The next batch of cases after id `after`: the narrowed case alone (if open), or the
    /// partnership's cases the pass selects.
    fn next_cases(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        after: i64,
    ) -> anyhow::Result<cases::Batch> {
        let Some(reference) = &scope.narrow.case else {
            let selection = self.selection(scope.live);
            return Ok(cases::load_batch(
                conn,
                scope.partnership,
                selection,
                after,
                self.batch_size,
            )?);
        };
        let mut bad: Vec<BadRow> = Vec::new();
        let one = cases::load_one(conn, scope.partnership, reference, &mut bad)?;
        let open = one.filter(|(_, _, closed_at)| closed_at.is_none());
        Ok((open.map(|(id, c, _)| (id, c)).into_iter().collect(), bad))
    }

    /// Evaluate one batch of cases and, when writing, store its decisions in one transaction:
    /// new notices, withdrawn ones, next checks; then report them. Returns the deliveries queued.
    fn case_batch(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        batch: &[(i64, Case)],
        out: &mut Out,
    ) -> anyhow::Result<usize> {
        let mut decided = Vec::new();
        let mut checks = Vec::with_capacity(batch.len());
        for (id, case) in batch {
            let outcome = evaluate_case(scope.policy, case, scope.ctx);
            checks.push((*id, outcome.next_check));
            decided.extend(match scope.live.at {
                Some(g) => go_live::keep(outcome.notifications, g),
                None => outcome.notifications,
            });
        }
        out.report.cases += batch.len();
        out.report.notifications += decided.len();
        if self.mode == Mode::DryRun {
            out.notices(conn, &decided, None)?;
            return Ok(0);
        }
        let refs: Vec<String> = batch.iter().map(|(_, c)| c.reference.to_string()).collect();
        let keys: Vec<String> = decided.iter().map(|n| n.key.to_string()).collect();
        let domain = &self.runtime.message_id_domain;
        let (queued, cancelled) = conn.transaction(|conn| -> Result<_, store::DbError> {
            let n = notices::enqueue_new(conn, &decided, domain)?;
            let c = notices::cancel_superseded(conn, scope.partnership, &refs, &keys, self.now)?;
            cases::set_next_checks(conn, &checks)?;
            Ok((n, c))
        })?;
        out.report.queued += queued.deliveries;
        out.report.cancelled += cancelled;
        out.notices(conn, &decided, Some(&queued.new))?;
        Ok(queued.deliveries)
    }

    /// The go-live pass: one summary per team manager of what had lapsed on their cases, queued
    /// with the record that the partnership has been summarised, in one transaction.
    fn go_live_summaries(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        lapsed: Vec<(Recipient, Vec<Lapsed>)>,
        out: &mut Out,
    ) -> anyhow::Result<()> {
        let Some(g) = scope.live.at else {
            return Ok(());
        };
        let partnership = crate::domain::PartnershipId::parse(scope.partnership)?;
        let summaries = go_live::summaries(&partnership, g, lapsed, scope.ctx.calendar);
        out.report.go_live_summaries += summaries.len();
        out.report.notifications += summaries.len();
        if self.mode == Mode::DryRun {
            return out.notices(conn, &summaries, None);
        }
        let domain = &self.runtime.message_id_domain;
        let queued = conn.transaction(|conn| -> Result<_, store::DbError> {
            let q = notices::enqueue_new(conn, &summaries, domain)?;
            store::go_live::mark_summarised(conn, scope.partnership, g, self.now)?;
            Ok(q)
        })?;
        out.report.queued += queued.deliveries;
        out.notices(conn, &summaries, Some(&queued.new))
    }

    /// The disputes loop of a partnership: each batch's stage changes (compare-and-set),
    /// history, audit rows, records, notices and next checks in one transaction.
    fn disputes(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        out: &mut Out,
    ) -> anyhow::Result<()> {
        let mut after = 0;
        loop {
            let (batch, bad) = self.next_disputes(conn, scope, after)?;
            for b in &bad {
                tracing::warn!(dispute_id = b.case_id, problem = %b.message, "unreadable dispute data skipped");
            }
            out.report.bad_rows += bad.len();
            let Some(last) = batch.last() else { break };
            after = last.0;
            let mut decided = Vec::with_capacity(batch.len());
            for (id, dispute) in &batch {
                let Some(policy) = self.runtime.catalogue.ladders.get(&dispute.policy) else {
                    tracing::warn!(partnership = scope.partnership, dispute = %dispute.reference, policy = %dispute.policy,
                        "dispute names an escalation policy that is not loaded; skipped");
                    out.report.bad_rows += 1;
                    continue;
                };
                let outcome = evaluate_dispute_from(policy, dispute, scope.ctx, scope.live.at);
                out.report.stage_changes += outcome.stage_changes.len();
                out.report.notifications += outcome.notifications.len();
                decided.push((*id, dispute, outcome));
            }
            out.report.disputes += decided.len();
            self.write_disputes(conn, &decided, out)?;
            if batch.len() < self.batch_size || scope.narrow.case.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// The next batch of disputes after id `after`: the narrowed case's, or those selected.
    fn next_disputes(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        after: i64,
    ) -> anyhow::Result<disputes::Batch> {
        let Some(reference) = &scope.narrow.case else {
            let selection = self.selection(scope.live);
            return Ok(disputes::load_batch(
                conn,
                scope.partnership,
                selection,
                after,
                self.batch_size,
            )?);
        };
        let mut bad = Vec::new();
        match cases::load_one(conn, scope.partnership, reference, &mut bad)? {
            Some((case_id, _, _)) if after == 0 => {
                Ok(disputes::load_for_case(conn, scope.partnership, case_id)?)
            }
            _ => Ok((Vec::new(), bad)),
        }
    }

    /// Write (when writing) and report one batch of dispute decisions. A dispute moved by another
    /// writer meanwhile is left for the next pass, and nothing of it is reported.
    fn write_disputes(
        &self,
        conn: &mut PgConnection,
        decided: &[(i64, &crate::domain::Dispute, DisputeOutcome)],
        out: &mut Out,
    ) -> anyhow::Result<()> {
        let notices: Vec<Notice>;
        let new = if self.mode == Mode::Write {
            let refs: Vec<_> = decided.iter().map(|(id, d, o)| (*id, *d, o)).collect();
            let domain = &self.runtime.message_id_domain;
            let applied = conn.transaction(|conn| disputes::apply(conn, &refs, domain))?;
            out.report.queued += applied.queued;
            notices = decided
                .iter()
                .filter(|(id, _, _)| !applied.conflicted.contains(id))
                .flat_map(|(_, _, o)| {
                    o.stage_changes
                        .iter()
                        .for_each(|c| (out.reporter)(Decided::StageChange(c)));
                    o.notifications.iter().cloned()
                })
                .collect();
            Some(applied.new)
        } else {
            notices = decided
                .iter()
                .flat_map(|(_, _, o)| {
                    o.stage_changes
                        .iter()
                        .for_each(|c| (out.reporter)(Decided::StageChange(c)));
                    o.notifications.iter().cloned()
                })
                .collect();
            None
        };
        out.notices(conn, &notices, new.as_ref())
    }
}

/// The pass's tally and whoever it reports to.
struct Out<'r, 'a> {
    report: PassReport,
    reporter: &'r mut Reporter<'a>,
    /// Whether a dry run looks up what is queued already (only reporting needs it).
    look_up: bool,
}

impl Out<'_, '_> {
    /// Report notices: `new` holds the keys this pass queued; in a dry run (None) the store is
    /// asked which are queued already.
    fn notices(
        &mut self,
        conn: &mut PgConnection,
        notices: &[Notice],
        new: Option<&HashSet<String>>,
    ) -> anyhow::Result<()> {
        let already: HashSet<String> = match new {
            Some(new) => notices
                .iter()
                .map(|n| n.key.to_string())
                .filter(|k| !new.contains(k))
                .collect(),
            None if self.look_up => notices::queued_keys(conn, notices)?,
            None => HashSet::new(),
        };
        for n in notices {
            let already = already.contains(n.key.as_str());
            if !already {
                self.report.new_notices += 1;
                if new.is_some() {
                    metrics::notice_queued(n.kind.as_str());
                }
            }
            (self.reporter)(Decided::Notice { notice: n, already });
        }
        Ok(())
    }
}
