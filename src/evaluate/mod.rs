//! The evaluator: case state + policy + calendar + `now` → notifications and the next check.
//! Pure: no clock, no database, no files. Evaluating twice at one instant gives the same result.

mod decision;
mod recipients;

pub use decision::{rfc3339, CaseOutcome, Kind, Notification, Recipient};

use crate::calendar::{Calendar, Timescale};
use crate::domain::{Case, Directory, Event, EventKind};
use crate::policy::{Pick, Rule, StandardsPolicy};
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
    for rule in &policy.rules {
        evaluate_rule(rule, case, &known, ctx, &mut out);
    }
    out.finish()
}

fn evaluate_rule(rule: &Rule, case: &Case, known: &[&Event], ctx: &Context, out: &mut Outcome) {
    let anchors: Vec<&Event> = known
        .iter()
        .copied()
        .filter(|e| rule.anchor.matches(e))
        .collect();
    let anchors: Vec<&Event> = match rule.pick {
        Pick::Each => anchors,
        Pick::First => anchors.into_iter().take(1).collect(),
        Pick::Last => anchors.into_iter().last().into_iter().collect(),
    };
    for anchor in anchors {
        let since = anchor.known_from();
        let after_anchor = |e: &&&Event| e.at >= since;
        let done = known
            .iter()
            .filter(after_anchor)
            .any(|e| rule.done_by.iter().any(|m| m.matches(e)));
        let cancelled = known
            .iter()
            .filter(after_anchor)
            .any(|e| rule.cancelled_by.iter().any(|m| m.matches(e)));
        if done || cancelled {
            continue;
        }
        Occurrence {
            rule,
            case,
            anchor,
            ctx,
        }
        .steps(out);
    }
}

/// One clock of one rule, started by one anchor event.
struct Occurrence<'a> {
    rule: &'a Rule,
    case: &'a Case,
    anchor: &'a Event,
    ctx: &'a Context<'a>,
}

impl Occurrence<'_> {
    fn steps(&self, out: &mut Outcome) {
        let cal = self.ctx.calendar;
        let deadline = cal.deadline(self.rule.deadline, self.anchor.at);
        let resolver = Resolver {
            case: self.case,
            directory: self.ctx.directory,
            anchor: Some(self.anchor),
        };
        let responsible = resolver.resolve_all(&self.rule.responsible, &mut out.problems);
        let responsible_person = responsible.first().and_then(|r| r.person.clone());
        let cc = resolver.resolve_relative(
            &self.rule.cc,
            responsible_person.as_ref(),
            &mut out.problems,
        );

        for (i, reminder) in self.rule.reminders.iter().enumerate() {
            let trigger = reminder_time(cal, *reminder, self.anchor.at, deadline);
            self.step(
                out,
                Kind::Reminder,
                &format!("reminder-{}", i + 1),
                trigger,
                Some(deadline),
                deadline,
                &responsible,
                &cc,
            );
        }
        let deadline_day = cal.local_date(deadline);
        if cal.is_working_day(deadline_day) {
            let morning = cal.open_on(deadline_day);
            if morning < deadline {
                self.step(
                    out,
                    Kind::Due,
                    "due",
                    morning,
                    Some(deadline),
                    deadline,
                    &responsible,
                    &cc,
                );
            }
        }
        self.step(
            out,
            Kind::Overdue,
            "overdue",
            deadline,
            None,
            deadline,
            &responsible,
            &cc,
        );

        let mut trigger = deadline;
        let mut told = responsible.clone();
        for (i, esc) in self.rule.escalation.iter().enumerate() {
            trigger = cal.deadline(esc.after, trigger);
            let to =
                resolver.resolve_relative(&esc.to, responsible_person.as_ref(), &mut out.problems);
            self.step(
                out,
                Kind::OverdueEscalation,
                &format!("escalation-{}", i + 1),
                trigger,
                None,
                deadline,
                &to,
                &told,
            );
            told.extend(to);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        out: &mut Outcome,
        kind: Kind,
        step: &str,
        trigger: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        due: DateTime<Utc>,
        to: &[Recipient],
        cc: &[Recipient],
    ) {
        let now = self.ctx.now;
        if trigger > now {
            out.wake_at(trigger);
            return;
        }
        if until.is_some_and(|u| now >= u) || to.is_empty() {
            return;
        }
        let (to, cc) = dedupe_people(to, cc);
        let occurrence = decision::rfc3339(self.anchor.at);
        out.notifications.push(Notification {
            key: format!(
                "{}/case/{}/{}/{}/{}",
                self.case.partnership, self.case.reference, self.rule.id, occurrence, step
            ),
            kind,
            rule: self.rule.id.clone(),
            standard: Some(self.rule.standard.clone()),
            title: self.rule.title.clone(),
            action: self.rule.action.clone(),
            partnership: self.case.partnership.clone(),
            case: Some(self.case.reference.clone()),
            dispute: None,
            occurrence,
            step: step.to_owned(),
            due,
            trigger_at: trigger,
            send_after: self.ctx.calendar.next_working_instant(trigger),
            urgent: false,
            to,
            cc,
        });
    }
}

/// When a reminder fires: "… before" phrases count back from the deadline (at the start of
/// that working day for day counts), other phrases count on from the anchor.
fn reminder_time(
    cal: &Calendar,
    ts: Timescale,
    anchor: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> DateTime<Utc> {
    match ts {
        Timescale::WorkingDaysBefore(_) | Timescale::DaysBefore(_) => {
            cal.open_on(cal.local_date(cal.deadline(ts, deadline)))
        }
        Timescale::HoursBefore(h) => deadline - Duration::hours(i64::from(h)),
        _ => cal.deadline(ts, anchor),
    }
}

/// One person is mailed once: drop repeats, and drop from `cc` anyone already in `to`.
fn dedupe_people(to: &[Recipient], cc: &[Recipient]) -> (Vec<Recipient>, Vec<Recipient>) {
    let mut seen = std::collections::HashSet::new();
    let mut keep = |list: &[Recipient]| {
        list.iter()
            .filter(|r| seen.insert(r.email.clone()))
            .cloned()
            .collect::<Vec<_>>()
    };
    let to = keep(to);
    let cc = keep(cc);
    (to, cc)
}

/// Accumulates one case's decisions.
struct Outcome<'a> {
    ctx: &'a Context<'a>,
    case: &'a Case,
    notifications: Vec<Notification>,
    problems: Vec<Problem>,
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

    fn wake_at(&mut self, t: DateTime<Utc>) {
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
            });
        }
        CaseOutcome {
            notifications: self.notifications,
            next_check: self.next_check,
        }
    }
}
