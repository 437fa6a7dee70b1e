//! The evaluator: case state + policy + calendar + `now` → notices and the next check.
//! Pure: no clock, no database, no files. Evaluating twice at one instant gives the same result.

mod checks;
pub use checks::icpc_deadline;
pub mod dispute;
pub mod go_live;
mod notice;
mod plan;
mod recipients;
mod rule;

pub use notice::{
    merge_people, rfc3339, About, CaseOutcome, DisputeFacts, Facts, GoLiveCase, GoLiveFacts, Kind,
    LapsedTimescale, Lateness, NextStage, Notice, NoticeKey, Position, ProblemFacts, Recipient,
    StageVisit, Stance,
};
pub use rule::{OccurrenceFact, Timeliness};

use crate::calendar::{Calendar, Timescale};
use crate::domain::{Case, Directory, Event, EventKind};
use crate::policy::StandardsPolicy;
use chrono::{DateTime, Duration, Utc};
use recipients::{Problem, Resolver};

/// What the evaluator needs besides the case.
pub struct Context<'a> {
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
    pub now: DateTime<Utc>,
}

/// Evaluate every rule of `policy` on `case` at `ctx.now`.
pub fn evaluate_case(policy: &StandardsPolicy, case: &Case, ctx: &Context) -> CaseOutcome {
    evaluate_with_upcoming(policy, case, ctx).0
}

/// One occurrence of a rule as `cpwatch case` shows it: how it stands, and its next step.
#[derive(Debug, Clone, PartialEq)]
pub struct OccurrenceView {
    pub fact: OccurrenceFact,
    pub standard: String,
    pub title: String,
    /// The next step not yet due (None when nothing more will be sent).
    pub next: Option<Upcoming>,
}

/// Every started occurrence of every rule on `case` at `ctx.now` (closed cases too), with the
/// next step of each still open.
pub fn occurrences(policy: &StandardsPolicy, case: &Case, ctx: &Context) -> Vec<OccurrenceView> {
    let (_, upcoming) = evaluate_with_upcoming(policy, case, ctx);
    timeliness(policy, case, ctx)
        .into_iter()
        .map(|fact| {
            let rule = policy.rules.iter().find(|r| r.id == fact.rule);
            let next = upcoming
                .iter()
                .filter(|u| u.rule == fact.rule && u.occurrence == fact.occurrence)
                .min_by_key(|u| u.at)
                .cloned();
            OccurrenceView {
                standard: rule.map(|r| r.standard.clone()).unwrap_or_default(),
                title: rule.map(|r| r.title.clone()).unwrap_or_default(),
                fact,
                next,
            }
        })
        .collect()
}

/// `evaluate_case`, and the steps not yet due.
fn evaluate_with_upcoming(
    policy: &StandardsPolicy,
    case: &Case,
    ctx: &Context,
) -> (CaseOutcome, Vec<Upcoming>) {
    let mut out = Outcome::new(ctx, case);
    let known = known_at(case, ctx.now);
    for e in &case.events {
        if e.known_from() > ctx.now {
            out.wake_at(e.known_from());
        }
    }
    if known.iter().any(|e| e.kind == EventKind::CaseClosed) {
        return (CaseOutcome::default(), Vec::new());
    }
    let plan = plan::PlanPeriods::of(&known);
    checks::check(case, &known, &plan, ctx.calendar, &mut out.problems);
    let state = rule::CaseState {
        case,
        known: &known,
        plan: &plan,
        closed_at: None,
    };
    for r in &policy.rules {
        rule::evaluate(r, &state, ctx, &mut out);
    }
    let upcoming = std::mem::take(&mut out.upcoming);
    (out.finish(), upcoming)
}

/// How every started occurrence of every rule stands on `case` at `ctx.now`, closed cases
/// included (for `cpwatch report`).
pub fn timeliness(policy: &StandardsPolicy, case: &Case, ctx: &Context) -> Vec<OccurrenceFact> {
    let known = known_at(case, ctx.now);
    let plan = plan::PlanPeriods::of(&known);
    let state = rule::CaseState {
        case,
        known: &known,
        plan: &plan,
        closed_at: known
            .iter()
            .find(|e| e.kind == EventKind::CaseClosed)
            .map(|e| e.at),
    };
    policy
        .rules
        .iter()
        .flat_map(|r| rule::facts(r, &state, ctx))
        .collect()
}

/// Only what was known at `now` counts: events later than now have not happened yet.
fn known_at(case: &Case, now: DateTime<Utc>) -> Vec<&Event> {
    case.events
        .iter()
        .filter(|e| e.known_from() <= now)
        .collect()
}

/// When a reminder fires: "… before" phrases count back from the deadline (at the opening of
/// that working day for day counts, N elapsed hours before for hours), other phrases count on
/// from the clock's start. One rule for case rules and dispute ladders alike.
pub(crate) fn reminder_time(
    cal: &Calendar,
    ts: Timescale,
    start: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> DateTime<Utc> {
    match ts {
        Timescale::WorkingDaysBefore(_) | Timescale::DaysBefore(_) => {
            cal.open_on(cal.local_date(cal.deadline(ts, deadline)))
        }
        Timescale::HoursBefore(h) => deadline - Duration::hours(i64::from(h)),
        _ => cal.deadline(ts, start),
    }
}

/// How late `deadline` was at `at`, counted in the unit of its rule's timescale `ts`: working
/// days for a working-day rule, hours for an hours rule, else days. None when not late.
pub(crate) fn lateness(
    cal: &Calendar,
    ts: Timescale,
    deadline: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Option<Lateness> {
    if at <= deadline {
        return None;
    }
    let late = match ts {
        Timescale::WorkingDays(_) | Timescale::WorkingDaysBefore(_) | Timescale::SameWorkingDay => {
            let (d, a) = (cal.local_date(deadline), cal.local_date(at));
            // Working days after the deadline's own day, up to and including today's.
            Lateness::WorkingDays(cal.working_days_between(d, a).max(1))
        }
        Timescale::Hours(_) | Timescale::HoursBefore(_) => {
            Lateness::Hours((at - deadline).num_hours().max(1))
        }
        _ => Lateness::Days(
            (cal.local_date(at) - cal.local_date(deadline))
                .num_days()
                .max(1),
        ),
    };
    Some(late)
}

/// A step of an occurrence that is not due yet: when it falls due and whom it will reach.
#[derive(Debug, Clone, PartialEq)]
pub struct Upcoming {
    pub rule: String,
    pub occurrence: String,
    pub kind: Kind,
    pub step: String,
    pub at: DateTime<Utc>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
}

/// Give the problems not yet dated the instant they were met.
pub(crate) fn stamp(problems: &mut [Problem], at: DateTime<Utc>) {
    for p in problems.iter_mut() {
        p.since = Some(p.since.map_or(at, |s| s.min(at)));
    }
}

/// Accumulates one case's decisions.
pub(crate) struct Outcome<'a> {
    ctx: &'a Context<'a>,
    case: &'a Case,
    pub(crate) notifications: Vec<Notice>,
    pub(crate) problems: Vec<Problem>,
    /// Steps not due yet (for `cpwatch case`).
    pub(crate) upcoming: Vec<Upcoming>,
    next_check: Option<DateTime<Utc>>,
}

impl<'a> Outcome<'a> {
    fn new(ctx: &'a Context<'a>, case: &'a Case) -> Self {
        Self {
            ctx,
            case,
            notifications: Vec::new(),
            problems: Vec::new(),
            upcoming: Vec::new(),
            next_check: None,
        }
    }

    pub(crate) fn wake_at(&mut self, t: DateTime<Utc>) {
        self.next_check = Some(self.next_check.map_or(t, |n| n.min(t)));
    }

    /// Turn the problems met on the way into one data-quality notice each.
    fn finish(mut self) -> CaseOutcome {
        let problems = std::mem::take(&mut self.problems);
        let resolver = Resolver {
            case: self.case,
            directory: self.ctx.directory,
            anchor: None,
            agency: None,
        };
        if let Some(to) = resolver.data_quality_recipient() {
            let about = DataQualityAbout {
                partnership: &self.case.partnership,
                about: notice::About::Case(self.case.reference.clone()),
                case: Some(&self.case.reference),
                dispute: None,
            };
            let (cal, now) = (self.ctx.calendar, self.ctx.now);
            self.notifications
                .extend(data_quality_notices(problems, &about, to, cal, now));
        }
        CaseOutcome {
            notifications: self.notifications,
            next_check: self.next_check,
        }
    }
}

/// Who a data-quality notice is about.
pub(crate) struct DataQualityAbout<'a> {
    pub partnership: &'a crate::domain::PartnershipId,
    pub about: notice::About,
    pub case: Option<&'a crate::domain::CaseRef>,
    pub dispute: Option<&'a crate::domain::DisputeRef>,
}

impl DataQualityAbout<'_> {
    /// The notice's title, a code `data_quality.*.j2` words: `case-data` (case data cpwatch
    /// cannot evaluate) or `dispute-data` (dispute data it cannot act on).
    fn title(&self) -> &'static str {
        match self.about {
            notice::About::Case(_) => "case-data",
            notice::About::Dispute(_) => "dispute-data",
        }
    }
}

/// One data-quality notice per distinct problem, to `to`, sent in working hours. Its key names
/// the problem, so a problem seen on every pass is one notice; its `due` is the instant the
/// problem was first met (the same on every pass), else `now`. The problem is a fact
/// (`Facts::problem`); the templates word it.
pub(crate) fn data_quality_notices(
    mut problems: Vec<Problem>,
    about: &DataQualityAbout,
    to: Recipient,
    cal: &Calendar,
    now: DateTime<Utc>,
) -> Vec<Notice> {
    for p in &mut problems {
        p.since = Some(p.since.unwrap_or(now).min(now));
    }
    problems.sort_by(|a, b| (&a.code, a.since).cmp(&(&b.code, b.since)));
    problems.dedup_by(|a, b| a.code == b.code);
    problems
        .into_iter()
        .map(|p| (p.since.unwrap_or(now), p))
        .map(|(since, p)| Notice {
            key: NoticeKey::data_quality(about.partnership, &about.about, &p.code),
            kind: Kind::DataQuality,
            rule: "data-quality".into(),
            standard: None,
            title: about.title().into(),
            action: String::new(),
            partnership: about.partnership.clone(),
            case: about.case.cloned(),
            dispute: about.dispute.cloned(),
            occurrence: "-".into(),
            step: p.code,
            due: since,
            trigger_at: since,
            send_after: cal.next_working_instant(since),
            urgent: false,
            to: vec![to.clone()],
            cc: vec![],
            letter: None,
            facts: Facts {
                problem: Some(*p.facts),
                ..Facts::default()
            },
        })
        .collect()
}
