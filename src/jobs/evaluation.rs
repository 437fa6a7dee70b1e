//! One evaluation pass: stream the cases and disputes whose next check has come, evaluate each,
//! and write each batch's notices, stage changes and next checks in one transaction; then say
//! what was newly queued and which stages moved (or, in a dry run, what would be).
//!
//! A partnership with a go-live instant is evaluated only from then on; its first pass at or
//! after it looks at every open case, leaves out the case notices about deadlines that lapsed
//! before it, and queues one summary of those per team manager instead (`evaluate::go_live`).

use super::case_source::{Batches, Source};
use super::in_order::work_in_order;
use super::{PartnershipRuntime, Runtime};
use crate::domain::Case;
use crate::evaluate::dispute::{evaluate_dispute_from, DisputeOutcome, StageChange};
use crate::evaluate::go_live::{self, Lapsed};
use crate::evaluate::{evaluate_case, Context, Notice, Recipient};
use crate::metrics;
use crate::policy::StandardsPolicy;
use crate::store::cases::{self, PassBatch, PassCase, Selection};
use crate::store::{self, disputes, notices};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use secrecy::ExposeSecret as _;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::mpsc::Receiver;
use std::sync::Mutex;

/// Rows that make a pass a big one, after which what it wrote is tidied: deliveries queued
/// before the notice tables' planner statistics are first refreshed (then again each time the
/// pass has doubled what it queued); case rows written before the cases are vacuumed at the end
/// of the pass; check requests taken before their table is vacuumed.
const MANY_ROWS: usize = 20_000;

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
    /// Partnerships this pass evaluated, in order.
    pub evaluated: Vec<String>,
    /// Partnerships left alone because another replica held their lock (it is evaluating them).
    pub held_elsewhere: Vec<String>,
    /// Nothing was done: every partnership was held by another replica (or an older cpwatch
    /// held the whole-pass lock).
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
    /// Whether a dry run looks up what is queued already (only reporting needs it).
    look_up: bool,
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
            tracing::info!(
                "an older cpwatch is running a whole evaluation pass; skipping this pass"
            );
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

    /// Each partnership in turn, each under its own lock: one held by another replica is left
    /// to it (`PassReport::held_elsewhere`). The pass is skipped only if every one was held.
    fn run_locked(
        &self,
        conn: &mut PgConnection,
        narrow: &Narrow,
        out: &mut Out,
    ) -> anyhow::Result<()> {
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
            if self.mode == Mode::DryRun {
                self.partnership(conn, &partnership, rt, narrow, out)?;
                out.report.evaluated.push(partnership);
                continue;
            }
            if !store::try_partnership_lock(conn, &partnership)? {
                tracing::info!(
                    partnership,
                    "another cpwatch is evaluating this partnership; left to it"
                );
                out.report.held_elsewhere.push(partnership);
                continue;
            }
            // What case systems changed since its last pass is due now.
            let result = take_requests(conn, &partnership)
                .and_then(|_| self.partnership(conn, &partnership, rt, narrow, out));
            store::partnership_unlock(conn, &partnership)?;
            result?;
            out.report.evaluated.push(partnership);
        }
        let r = &mut out.report;
        r.skipped = !r.held_elsewhere.is_empty() && r.evaluated.is_empty();
        if self.mode == Mode::Write && !r.skipped {
            store::audit(
                conn,
                "cpwatch",
                "evaluation_pass",
                &crate::evaluate::rfc3339(self.now),
                serde_json::json!({"cases": r.cases, "disputes": r.disputes, "stage_changes": r.stage_changes, "notifications": r.notifications, "queued": r.queued, "new_notices": r.new_notices, "case": narrow.case, "partnerships": r.evaluated, "held_elsewhere": r.held_elsewhere}),
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
        // What is due, from the indexes: an idle pass stops here, whatever the number of cases.
        let source = self.batches(conn, partnership, &live, narrow)?;
        let disputes_due = match self.selection(&live) {
            Selection::DueBy(now) if narrow.case.is_none() => {
                disputes::any_due(conn, partnership, now)?
            }
            _ => true,
        };
        if source.is_idle() && !disputes_due {
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
            look_up: out.look_up,
        };
        let lapsed = self.cases(conn, &scope, source, out)?;
        if live.summarise {
            self.go_live_summaries(conn, &scope, lapsed, out)?;
        }
        if disputes_due {
            self.disputes(conn, &scope, out)?;
        }
        Ok(())
    }

    /// Every batch of the partnership's cases; on its go-live pass, what had lapsed on each.
    fn cases(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        source: Source,
        out: &mut Out,
    ) -> anyhow::Result<LapsedBy> {
        let url = self.runtime.database_url.expose_secret();
        let tally = Mutex::new(Written::default());
        let lapsed = std::thread::scope(|s| {
            match Batches::start(s, url, scope.partnership, source, self.batch_size) {
                Batches::Inline(source) => self.one_by_one(conn, scope, source, &tally, out),
                Batches::Reader(read) => self.overlapped(conn, scope, read, &tally, out),
            }
        })?;
        let written = tally.into_inner().unwrap_or_else(|p| p.into_inner());
        if written.checks >= MANY_ROWS {
            // After a big pass: keep the idle probe to a few index entries and the planner's
            // picture of the next checks true.
            cases::vacuum_analyze(conn)?;
            // Walk the probe once here, in the pass that wrote, in case dead entries are left.
            cases::earliest_check(conn, scope.partnership)?;
        }
        Ok(lapsed)
    }

    /// Where a pass's batches of cases come from. An hourly pass first asks the index for the
    /// partnership's earliest next check: when it has not come, nothing more is read.
    fn batches(
        &self,
        conn: &mut PgConnection,
        partnership: &str,
        live: &Live,
        narrow: &Narrow,
    ) -> anyhow::Result<Source> {
        if let Some(reference) = &narrow.case {
            return Ok(Source::One(Some(reference.clone())));
        }
        Ok(match self.selection(live) {
            Selection::All => Source::All { after: Some(0) },
            Selection::DueBy(now) => match cases::earliest_check(conn, partnership)? {
                Some(first) if first <= now => {
                    let ids = cases::due_ids(conn, partnership, now)?;
                    Source::Due { ids, at: 0 }
                }
                _ => Source::Due {
                    ids: Vec::new(),
                    at: 0,
                },
            },
        })
    }

    /// A batch or so, read, evaluated and written in turn on the pass's connection.
    fn one_by_one(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        mut source: Source,
        tally: &Mutex<Written>,
        out: &mut Out,
    ) -> anyhow::Result<LapsedBy> {
        let mut lapsed = Vec::new();
        while let Some(batch) = source.next(conn, scope.partnership, self.batch_size)? {
            let (batch, decisions) = self.evaluated(scope, batch, &mut lapsed, out);
            let written = self.write_batch(conn, scope, batch, decisions, tally)?;
            out.batch(written);
        }
        Ok(lapsed)
    }

    /// Many batches: read ahead by the reader thread, each evaluated here (on every core) while
    /// the ones before it are written, on the pass's connection and, when writing, on a second
    /// one of its own (batches hold disjoint cases, so their transactions never meet), and
    /// reported in order.
    fn overlapped(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        read: Receiver<Result<PassBatch, store::DbError>>,
        tally: &Mutex<Written>,
        out: &mut Out,
    ) -> anyhow::Result<LapsedBy> {
        let mut second = match self.mode {
            Mode::Write => self.second_writer(),
            Mode::DryRun => None,
        };
        let mut conns = vec![conn];
        conns.extend(second.as_mut());
        let mut lapsed = Vec::new();
        // Evaluating and reporting both run here, one after the other.
        let out = RefCell::new(out);
        work_in_order(
            conns,
            || match read.recv().ok().transpose()? {
                Some(batch) => {
                    let out = &mut out.borrow_mut();
                    Ok(Some(self.evaluated(scope, batch, &mut lapsed, out)))
                }
                None => Ok(None),
            },
            |conn, (batch, decisions)| self.write_batch(conn, scope, batch, decisions, tally),
            |written| {
                out.borrow_mut().batch(written);
                Ok(())
            },
        )?;
        Ok(lapsed)
    }

    /// A connection for writing alongside the pass's, if one can be made.
    fn second_writer(&self) -> Option<PgConnection> {
        match store::connect(self.runtime.database_url.expose_secret()) {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::warn!(error = %e, "no second connection for writing; writing on the pass's own only");
                None
            }
        }
    }

    /// A batch read: its unreadable rows reported and counted, its cases evaluated (on every
    /// core), what had lapsed on them kept for the go-live summaries.
    fn evaluated(
        &self,
        scope: &Scope,
        (batch, bad): PassBatch,
        lapsed: &mut LapsedBy,
        out: &mut Out,
    ) -> (Vec<PassCase>, Vec<Decision>) {
        for b in &bad {
            tracing::warn!(case_id = b.case_id, problem = %b.message, "unreadable case data skipped");
        }
        out.report.bad_rows += bad.len();
        let decisions = decide(scope, &batch);
        lapsed.extend(decisions.iter().filter_map(|d| d.lapsed.clone()));
        (batch, decisions)
    }

    /// Store one evaluated batch's decisions (when writing) in one transaction, and say what
    /// is to be reported of it. A case whose decisions hash the same as the last writing pass's
    /// sends nothing to the notice tables (everything it decided is queued already, and what it
    /// no longer decides was withdrawn then); its row is written only if its next check moved.
    fn write_batch(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        batch: Vec<PassCase>,
        mut decisions: Vec<Decision>,
        tally: &Mutex<Written>,
    ) -> anyhow::Result<BatchWritten> {
        let (changed, decided, queue_to) = take_notices(&batch, &mut decisions);
        let mut written = BatchWritten {
            cases: batch.len(),
            already: HashSet::new(),
            decided,
            queued: 0,
            cancelled: 0,
            now_queued: self.mode == Mode::Write,
        };
        if self.mode == Mode::DryRun {
            written.already = already_queued(conn, &written.decided, None, scope.look_up)?;
            return Ok(written);
        }
        let to_queue: Vec<&Notice> = written
            .decided
            .iter()
            .zip(&queue_to)
            .filter_map(|(n, &q)| q.then_some(n))
            .collect();
        let refs: Vec<&str> = batch
            .iter()
            .zip(&changed)
            .filter_map(|(c, &q)| q.then_some(c.case.reference.as_str()))
            .collect();
        let keys: Vec<&str> = to_queue.iter().map(|n| n.key.as_str()).collect();
        let domain = &self.runtime.message_id_domain;
        let (queued, withdrawn, checks) =
            conn.transaction(|conn| -> Result<_, store::DbError> {
                store::commit_without_flush(conn)?;
                // Withdraw first: the notices this batch queues are not looked at again.
                let withdrawn =
                    notices::cancel_superseded(conn, scope.partnership, &refs, &keys, self.now)?;
                let queued = notices::enqueue_new(conn, &to_queue, domain)?;
                super::digest::hold(conn, self.runtime, scope.partnership, &to_queue, self.now)?;
                let checks = check_writes(&batch, &decisions, &withdrawn.held);
                cases::set_checks(conn, &checks)?;
                Ok((queued, withdrawn, checks.len()))
            })?;
        if tally_up(tally, checks, queued.deliveries) {
            // A pass that queues many rows outgrows the notice tables' statistics (a new
            // database has none): refresh them so withdrawing stays an index lookup. At 20 000
            // rows, 40 000, 80 000…: a handful of times in the biggest pass.
            notices::analyze(conn)?;
        }
        written.queued = queued.deliveries;
        written.cancelled = withdrawn.cancelled;
        written.already = already_queued(conn, &written.decided, Some(&queued.new), false)?;
        Ok(written)
    }

    /// The go-live pass: one summary per team manager of what had lapsed on their cases, queued
    /// with the record that the partnership has been summarised, in one transaction.
    fn go_live_summaries(
        &self,
        conn: &mut PgConnection,
        scope: &Scope,
        lapsed: LapsedBy,
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

/// Take a partnership's check requests (its changed cases and disputes are due now); after
/// taking many (a big import), vacuum them away so the next probes find the table empty fast.
fn take_requests(conn: &mut PgConnection, partnership: &str) -> anyhow::Result<()> {
    if store::changes::take_requests_of(conn, partnership)? >= MANY_ROWS {
        store::changes::vacuum(conn)?;
    }
    Ok(())
}

/// On a go-live pass: what had lapsed, per team manager.
type LapsedBy = Vec<(Recipient, Vec<Lapsed>)>;

/// What the pass decided for one case.
struct Decision {
    notices: Vec<Notice>,
    next_check: Option<DateTime<Utc>>,
    /// `cases::decided_hash` of `notices`.
    hash: i64,
    /// On the go-live pass: what had lapsed on it, for its team manager's summary.
    lapsed: Option<(Recipient, Vec<Lapsed>)>,
}

/// What a partnership's case loop has written so far.
struct Written {
    /// Case rows written (next check or decided hash changed).
    checks: usize,
    /// Deliveries queued.
    queued: usize,
    /// Deliveries queued by which the notice tables' statistics are next refreshed.
    analyze_at: usize,
}

impl Default for Written {
    fn default() -> Self {
        Written {
            checks: 0,
            queued: 0,
            analyze_at: MANY_ROWS,
        }
    }
}

/// Evaluate a batch of cases on every core (the evaluator is pure: no I/O, no clock), in the
/// batch's order.
fn decide(scope: &Scope, batch: &[PassCase]) -> Vec<Decision> {
    use rayon::prelude::*;
    batch
        .par_iter()
        .with_min_len(16)
        .map(|c| decide_one(scope, &c.case))
        .collect()
}

fn decide_one(scope: &Scope, case: &Case) -> Decision {
    let outcome = evaluate_case(scope.policy, case, scope.ctx);
    let notices = match scope.live.at {
        Some(g) => go_live::keep(outcome.notifications, g),
        None => outcome.notifications,
    };
    let lapsed = match (scope.live.summarise, scope.live.at) {
        (true, Some(g)) => go_live::lapsed_at(scope.policy, case, scope.ctx, g),
        _ => None,
    };
    Decision {
        hash: cases::decided_hash(&notices),
        notices,
        next_check: outcome.next_check,
        lapsed,
    }
}

/// Take a batch's notices out of its decisions, in order: for each case whether it changed (its
/// decisions hash differently from the last writing pass's: an unchanged one sends nothing to
/// the store), every notice, and for each notice whether it is to be queued (its case changed).
fn take_notices(
    batch: &[PassCase],
    decisions: &mut [Decision],
) -> (Vec<bool>, Vec<Notice>, Vec<bool>) {
    let changed: Vec<bool> = batch
        .iter()
        .zip(decisions.iter())
        .map(|(c, d)| c.decided_hash != Some(d.hash))
        .collect();
    let mut notices = Vec::new();
    let mut queue = Vec::new();
    for (d, &changed) in decisions.iter_mut().zip(&changed) {
        queue.extend(std::iter::repeat_n(changed, d.notices.len()));
        notices.append(&mut d.notices);
    }
    (changed, notices, queue)
}

/// The case rows a batch writes: those whose next check or decided hash changed. A case with a
/// superseded delivery a worker held keeps no hash, so the next pass withdraws it.
fn check_writes(
    batch: &[PassCase],
    decisions: &[Decision],
    held: &HashSet<String>,
) -> Vec<cases::CheckWrite> {
    batch
        .iter()
        .zip(decisions)
        .filter_map(|(c, d)| {
            let hash = (!held.contains(c.case.reference.as_str())).then_some(d.hash);
            let changed = c.decided_hash != hash || c.next_check_at != d.next_check;
            changed.then_some(cases::CheckWrite {
                id: c.id,
                next_check_at: d.next_check,
                decided_hash: hash,
            })
        })
        .collect()
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
        let already = already_queued(conn, notices, new, self.look_up)?;
        self.report_notices(notices, &already, new.is_some());
        Ok(())
    }

    /// Report a batch of cases as written (in a dry run: as evaluated).
    fn batch(&mut self, w: BatchWritten) {
        let r = &mut self.report;
        r.cases += w.cases;
        r.notifications += w.decided.len();
        r.queued += w.queued;
        r.cancelled += w.cancelled;
        self.report_notices(&w.decided, &w.already, w.now_queued);
    }

    /// Report each notice, saying whether it was `already` queued; `now_queued`: the others
    /// were queued by this pass (not a dry run), and are counted as such.
    fn report_notices(&mut self, notices: &[Notice], already: &HashSet<String>, now_queued: bool) {
        for n in notices {
            let already = already.contains(n.key.as_str());
            if !already {
                self.report.new_notices += 1;
                if now_queued {
                    metrics::notice_queued(n.kind.as_str());
                }
            }
            (self.reporter)(Decided::Notice { notice: n, already });
        }
    }
}

/// The keys of `notices` queued before: those not among `new` (the keys this pass queued), or in
/// a dry run (None) those the store has, if `look_up` (else none).
fn already_queued(
    conn: &mut PgConnection,
    notices: &[Notice],
    new: Option<&HashSet<String>>,
    look_up: bool,
) -> anyhow::Result<HashSet<String>> {
    Ok(match new {
        Some(new) => notices
            .iter()
            .map(|n| n.key.to_string())
            .filter(|k| !new.contains(k))
            .collect(),
        None if look_up => notices::queued_keys(conn, notices)?,
        None => HashSet::new(),
    })
}

/// One batch of cases as written (in a dry run: evaluated), for the pass to report.
struct BatchWritten {
    cases: usize,
    /// Every notice decided for its cases, in order.
    decided: Vec<Notice>,
    /// The keys of those that were queued before this pass.
    already: HashSet<String>,
    /// Deliveries queued and cancelled.
    queued: usize,
    cancelled: usize,
    /// The notices not `already` queued were queued now (not a dry run).
    now_queued: bool,
}

/// Add a batch's case rows and deliveries to the pass's tally; true when the notice tables'
/// statistics are due to be refreshed (the deliveries queued have reached the next threshold,
/// which doubles).
fn tally_up(tally: &Mutex<Written>, checks: usize, queued: usize) -> bool {
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    t.checks += checks;
    t.queued += queued;
    let due = t.queued >= t.analyze_at;
    if due {
        t.analyze_at = 2 * t.queued;
    }
    due
}
