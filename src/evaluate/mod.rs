//! The evaluator: case state + policy + calendar + `now` → notifications and the next check.
//! Pure: no clock, no database, no files. Evaluating twice at one instant gives the same result.

mod checks;
mod decision;
pub mod dispute;
mod plan;
mod recipients;
mod rule;

pub use decision::{rfc3339, CaseOutcome, Kind, Notification, Recipient};
pub use rule::{OccurrenceFact, Timeliness};

use crate::calendar::Calendar;
use crate::domain::{Case, Directory, Event, EventKind};
use crate::policy::StandardsPolicy;
use chrono::{DateTime, Utc};
use recipients::{Problem, Resolver};

/// What the evaluator needs besides the case.
pub struct Context<'a> {
    pub calendar: &'a Calendar,
    pub directory: &'a Directory,
    pub now: DateTime<Utc>,
}

/// Evaluate every rule of `policy` on `case` at `ctx.now`.
pub fn evaluate_case(policy: &StandardsPolicy, case: &Case, ctx: &Context) -> CaseOutcome {
    let mut out = Outcome::new(ctx, case);
    // Only what was known at `now` counts: events later than now have not happened yet.
    let known: Vec<&Event> = case
        .events
        .iter()
        .filter(|e| e.known_from() <= ctx.now)
        .collect();
    for e in &case.events {
        if e.known_from() > ctx.now {
            out.wake_at(e.known_from());
        }
    }
    if known.iter().any(|e| e.kind == EventKind::CaseClosed) {
        return CaseOutcome::default();
    }
    let plan = plan::PlanPeriods::of(&known);
    checks::check(case, &known, &plan, &mut out.problems);
    let state = rule::CaseState {
        case,
        known: &known,
        plan: &plan,
        closed_at: None,
    };
    for r in &policy.rules {
        rule::evaluate(r, &state, ctx, &mut out);
    }
    out.finish()
}

/// How every started occurrence of every rule stands on `case` at `ctx.now`, closed cases
/// included (for `cpwatch report`).
pub fn timeliness(policy: &StandardsPolicy, case: &Case, ctx: &Context) -> Vec<OccurrenceFact> {
    let known: Vec<&Event> = case
        .events
        .iter()
        .filter(|e| e.known_from() <= ctx.now)
        .collect();
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

/// Accumulates one case's decisions.
pub(crate) struct Outcome<'a> {
    ctx: &'a Context<'a>,
    case: &'a Case,
    pub(crate) notifications: Vec<Notification>,
    pub(crate) problems: Vec<Problem>,
    next_check: Option<DateTime<Utc>>,
}

impl<'a> Outcome<'a> {
    fn new(ctx: &'a Context<'a>, case: &'a Case) -> Self {
        Self {
            ctx,
            case,
            notifications: Vec::new(),
            problems: Vec::new(),
            next_check: None,
        }
    }

    pub(crate) fn wake_at(&mut self, t: DateTime<Utc>) {
        self.next_check = Some(self.next_check.map_or(t, |n| n.min(t)));
    }

    /// Turn the problems met on the way into one data-quality notice each.
    fn finish(mut self) -> CaseOutcome {
        let mut problems = std::mem::take(&mut self.problems);
        problems.sort_by(|a, b| a.code.cmp(&b.code));
        problems.dedup_by(|a, b| a.code == b.code);
        let resolver = Resolver {
            case: self.case,
            directory: self.ctx.directory,
            anchor: None,
            agency: None,
        };
        let to = resolver.data_quality_recipient();
        for p in problems {
            let Some(to) = to.clone() else { continue };
            self.notifications.push(Notification {
                key: format!(
                    "{}/case/{}/data-quality/{}",
                    self.case.partnership, self.case.reference, p.code
                ),
                kind: Kind::DataQuality,
                rule: "data-quality".into(),
                standard: None,
                title: "Case data that cpwatch cannot evaluate".into(),
                action: p.message,
                partnership: self.case.partnership.clone(),
                case: Some(self.case.reference.clone()),
                dispute: None,
                occurrence: "-".into(),
                step: p.code,
                due: self.ctx.now,
                trigger_at: self.ctx.now,
                send_after: self.ctx.calendar.next_working_instant(self.ctx.now),
                urgent: false,
                to: vec![to],
                cc: vec![],
                letter: None,
            });
        }
        CaseOutcome {
            notifications: self.notifications,
            next_check: self.next_check,
        }
    }
}
