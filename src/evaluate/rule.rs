//! One rule of a standards policy on one case: which clocks it starts (occurrences), and for each
//! the steps due by `now`: reminders, due, overdue, then the overdue steps (the next manager, a
//! cause-for-concern letter, the chair's challenge).

use super::notice::{merge_people, Draft};
use super::plan::PlanPeriods;
use super::{reminder_time, rfc3339, Context, Kind, Notice, NoticeKey, Outcome};
use super::{Facts, Recipient, Resolver};
use crate::calendar::Timescale;
use crate::domain::{AgencyId, Case, Event, EventKind, Origin};
use crate::policy::{DoneSince, EventMatch, Letter, Pick, Requirement, RoleRef, Rule, SameField};
use chrono::{DateTime, Utc};

/// What every rule reads about the case.
pub struct CaseState<'a> {
    pub case: &'a Case,
    /// Events known at `now`, sorted by time.
    pub known: &'a [&'a Event],
    pub plan: &'a PlanPeriods,
    /// When the case closed, if it has (only reports look at closed cases).
    pub closed_at: Option<DateTime<Utc>>,
}

pub fn evaluate(rule: &Rule, st: &CaseState, ctx: &Context, out: &mut Outcome) {
    for occurrence in occurrences(rule, st, ctx) {
        occurrence.evaluate(out);
    }
}

/// Every started occurrence of `rule` on the case, as facts for a report.
pub fn facts(rule: &Rule, st: &CaseState, ctx: &Context) -> Vec<OccurrenceFact> {
    occurrences(rule, st, ctx)
        .iter()
        .filter_map(|o| o.fact())
        .collect()
}

/// The rule's clocks on this case: one per anchor, or per anchor and invited agency.
fn occurrences<'a>(
    rule: &'a Rule,
    st: &'a CaseState<'a>,
    ctx: &'a Context<'a>,
) -> Vec<Occurrence<'a>> {
    let mut out = Vec::new();
    for anchor in anchors(rule, st) {
        if rule.per_invited_agency {
            let invited = anchor
                .data
                .get("invited_agencies")
                .and_then(|v| v.as_array());
            for agency in invited.into_iter().flatten().filter_map(|a| a.as_str()) {
                let Ok(agency) = AgencyId::parse(agency) else {
                    continue;
                };
                out.push(Occurrence::new(rule, st, ctx, anchor, Some(agency)));
            }
        } else {
            out.push(Occurrence::new(rule, st, ctx, anchor, None));
        }
    }
    out
}

/// Whether an event from `origin` may start this rule: only if that source can also record
/// what completes it (its done-by events, or the event its guard watches for).
fn startable_from(rule: &Rule, origin: Origin) -> bool {
    let watched: Vec<EventKind> = rule
        .done_by
        .iter()
        .map(|m| m.event)
        .chain(rule.guard.iter().map(|g| g.forbidden.event))
        .collect();
    origin == Origin::CaseSystem
        || (!watched.is_empty() && watched.into_iter().all(|k| origin.records(k)))
}

/// The section 47 enquiry an event names (`enquiry`), if any: an enquiry's start, its
/// conference and its "no conference needed" are paired by it.
fn enquiry(e: &Event) -> Option<&str> {
    e.text("enquiry")
}

/// The events that start this rule's clocks.
fn anchors<'a>(rule: &Rule, st: &CaseState<'a>) -> Vec<&'a Event> {
    let found = st.known.iter().copied().filter(|e| {
        rule.anchors.iter().any(|m| m.matches(e))
            && startable_from(rule, e.origin)
            && rule.requires.iter().all(|r| match r {
                Requirement::PlanOpen => st.plan.open_at(e.at),
                Requirement::Unborn => st.case.unborn,
            })
    });
    // A meeting booked again replaces its earlier booking.
    let mut unique: Vec<&Event> = Vec::new();
    for e in found {
        let same_meeting = |x: &&Event| {
            x.kind == e.kind && e.kind.is_scheduling() && x.text("meeting") == e.text("meeting")
        };
        match unique.iter().position(same_meeting) {
            Some(i) if (e.known_from(), e.at) >= (unique[i].known_from(), unique[i].at) => {
                unique[i] = e
            }
            Some(_) => {}
            None => unique.push(e),
        }
    }
    match rule.pick {
        Pick::Each => unique,
        // The first of each enquiry (events naming none are one enquiry together).
        Pick::First => {
            let mut seen: Vec<Option<&str>> = Vec::new();
            unique
                .into_iter()
                .filter(|e| {
                    let first = !seen.contains(&enquiry(e));
                    seen.push(enquiry(e));
                    first
                })
                .collect()
        }
        Pick::Last => unique.into_iter().last().into_iter().collect(),
    }
}

/// One clock of one rule, started by one anchor event (and, per agency, for one agency).
struct Occurrence<'a> {
    rule: &'a Rule,
    st: &'a CaseState<'a>,
    ctx: &'a Context<'a>,
    anchor: &'a Event,
    agency: Option<AgencyId>,
    id: String,
}

impl<'a> Occurrence<'a> {
    fn new(
        rule: &'a Rule,
        st: &'a CaseState<'a>,
        ctx: &'a Context<'a>,
        anchor: &'a Event,
        agency: Option<AgencyId>,
    ) -> Self {
        let base = match anchor.text("meeting") {
            Some(m) if anchor.kind.is_scheduling() => m.to_owned(),
            _ => rfc3339(anchor.at),
        };
        let id = match &agency {
            Some(a) => format!("{base}:{a}"),
            None => base,
        };
        Occurrence {
            rule,
            st,
            ctx,
            anchor,
            agency,
            id,
        }
    }

    fn resolver(&self) -> Resolver<'_> {
        Resolver {
            case: self.st.case,
            directory: self.ctx.directory,
            anchor: Some(self.anchor),
            agency: self.agency.as_ref(),
        }
    }

    /// Events after the anchor (never the anchor itself) from `from`, matching one of `matches`.
    fn find(
        &self,
        matches: &[EventMatch],
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        agency: Option<&AgencyId>,
    ) -> Option<&'a Event> {
        self.st.known.iter().copied().find(|e| {
            !std::ptr::eq(*e, self.anchor)
                && e.at >= from
                // Another enquiry's conference does not count for this one.
                && !matches!((enquiry(e), enquiry(self.anchor)), (Some(a), Some(b)) if a != b)
                && until.is_none_or(|u| e.at <= u)
                && matches.iter().any(|m| {
                    m.matches(e)
                        && m.same.iter().all(|f| match f {
                            SameField::Meeting => {
                                e.text("meeting").is_some()
                                    && e.text("meeting") == self.anchor.text("meeting")
                            }
                            SameField::Agency => {
                                agency.is_some_and(|a| e.text("agency") == Some(a.as_str()))
                            }
                        })
                })
        })
    }

    /// The agency a `same = ["agency"]` match compares with: the occurrence's own (per-agency
    /// rules), else the responsible person's.
    fn match_agency(&self) -> Option<AgencyId> {
        self.agency.clone().or_else(|| {
            let responsible = self
                .resolver()
                .resolve_all(&self.rule.responsible, &mut Vec::new());
            responsible
                .first()
                .and_then(|r| r.person.as_ref())
                .and_then(|p| self.ctx.directory.person(p))
                .and_then(|p| p.agency.clone())
        })
    }

    /// Where this occurrence's clock stands at `now`.
    fn clock(&self) -> Clock<'a> {
        let cal = self.ctx.calendar;
        // When the case knew of the anchor: a meeting's booking, else the event itself.
        let since = self.anchor.known_from().min(self.anchor.at);
        // The clock runs from `start` (a meeting's booking, a trigger's instant, else the anchor);
        // the deadline counts from `base` (the meeting itself for "… before" phrases).
        let (start, base) = match self.rule.starts_after {
            Some(ts) => {
                let t = cal.deadline(ts, self.anchor.at);
                (t, t)
            }
            None => (since, self.anchor.at),
        };
        let cancel = self.find(&self.rule.cancelled_by, since, None, None);
        if start > self.ctx.now {
            return Clock::NotStarted(start);
        }
        if let Some(c) = cancel.filter(|c| c.at < start) {
            // A trigger made moot before it fired never started.
            return Clock::Cancelled {
                at: c.at,
                by: c.kind,
                deadline: None,
            };
        }
        if let Some(guard) = &self.rule.guard {
            let window_end = cal.deadline(guard.within, self.anchor.at);
            let breach = self.st.known.iter().copied().find(|e| {
                e.at >= self.anchor.at && e.at < window_end && guard.forbidden.matches(e)
            });
            if let Some(c) = cancel {
                // An agreed exception excuses the guard whenever it was recorded.
                return Clock::Cancelled {
                    at: c.at,
                    by: c.kind,
                    deadline: Some(window_end),
                };
            }
            return Clock::Guard {
                start,
                window_end,
                breach,
            };
        }
        self.deadline_clock(start, base, since, cancel)
    }

    /// The clock of a rule with a deadline (not a guard), once started.
    fn deadline_clock(
        &self,
        start: DateTime<Utc>,
        base: DateTime<Utc>,
        since: DateTime<Utc>,
        cancel: Option<&'a Event>,
    ) -> Clock<'a> {
        let timescale = match (self.rule.case_interval, self.st.case.visit_interval_days) {
            (true, Some(days)) => Timescale::Days(days),
            _ => self.rule.deadline,
        };
        let deadline = self.ctx.calendar.deadline(timescale, base);
        let done_from = match self.rule.done_since {
            DoneSince::Anchor if self.rule.starts_after.is_some() => start,
            DoneSince::Anchor => since,
            DoneSince::PreviousConference => self.previous_conference(),
            DoneSince::AnyTime => DateTime::<Utc>::MIN_UTC,
        };
        let until = self.rule.done_by_deadline.then_some(deadline);
        // Only rules that compare agencies need to look the responsible person up.
        let compares_agency = self
            .rule
            .done_by
            .iter()
            .any(|m| m.same.contains(&SameField::Agency));
        let agency = if compares_agency {
            self.match_agency()
        } else {
            None
        };
        let done = self.find(&self.rule.done_by, done_from, until, agency.as_ref());
        match (done, cancel) {
            // Made moot before it was done: cancelled (a missed deadline before that stays missed).
            (d, Some(c)) if d.is_none_or(|d| c.at < d.at) => Clock::Cancelled {
                at: c.at,
                by: c.kind,
                deadline: Some(deadline),
            },
            (done, _) => Clock::Deadline {
                start,
                deadline,
                done,
            },
        }
    }

    /// When the last conference (ICPC or review) before the anchor was held.
    fn previous_conference(&self) -> DateTime<Utc> {
        self.st
            .known
            .iter()
            .filter(|e| {
                matches!(e.kind, EventKind::IcpcHeld | EventKind::RcpcHeld) && e.at < self.anchor.at
            })
            .map(|e| e.at)
            .next_back()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    fn evaluate(&self, out: &mut Outcome) {
        let (start, deadline, before) = match self.clock() {
            Clock::Cancelled { .. }
            | Clock::Guard { breach: None, .. }
            | Clock::Deadline { done: Some(_), .. } => return,
            Clock::NotStarted(t) => {
                out.wake_at(t);
                return;
            }
            Clock::Guard {
                start,
                breach: Some(b),
                ..
            } => (start, b.at, false),
            Clock::Deadline {
                start,
                deadline,
                done: None,
            } => (start, deadline, true),
        };
        let resolver = self.resolver();
        // Problems resolving people count only once a notice that needs them is due.
        let mut problems = Vec::new();
        let responsible = resolver.resolve_all(&self.rule.responsible, &mut problems);
        let responsible_person = responsible.first().and_then(|r| r.person.clone());
        let cc =
            resolver.resolve_relative(&self.rule.cc, responsible_person.as_ref(), &mut problems);
        let steps = Steps {
            occ: self,
            responsible: &responsible,
            responsible_person: responsible_person.as_ref(),
            cc: &cc,
        };
        if let Some(first_due) = steps.emit(out, start, deadline, before) {
            super::stamp(&mut problems, first_due);
            out.problems.extend(problems);
        }
    }

    /// How this occurrence stands for a timeliness report (None if its clock has not started).
    fn fact(&self) -> Option<OccurrenceFact> {
        let now = self.ctx.now;
        let closed = self.st.closed_at;
        let closure = |c: DateTime<Utc>| Some((c, EventKind::CaseClosed));
        let open_outcome = |deadline: DateTime<Utc>| match closed {
            Some(c) if c < deadline => (Timeliness::Cancelled, closure(c)),
            _ if now >= deadline => (Timeliness::Overdue, None),
            Some(c) => (Timeliness::Cancelled, closure(c)),
            None => (Timeliness::Pending, None),
        };
        let (deadline, done_at, (status, cancelled)) = match self.clock() {
            Clock::NotStarted(_) => return None,
            Clock::Cancelled { deadline: None, .. } => return None,
            // Missed before it was made moot: still missed.
            Clock::Cancelled {
                at,
                by,
                deadline: Some(d),
            } if d <= at => (d, None, (Timeliness::Overdue, Some((at, by)))),
            Clock::Cancelled {
                at,
                by,
                deadline: Some(d),
            } => (d, None, (Timeliness::Cancelled, Some((at, by)))),
            Clock::Guard {
                window_end,
                breach: Some(b),
                ..
            } => (window_end, Some(b.at), (Timeliness::Overdue, None)),
            Clock::Guard {
                window_end,
                breach: None,
                ..
            } if now >= window_end => (window_end, None, (Timeliness::OnTime, None)),
            Clock::Guard {
                window_end,
                breach: None,
                ..
            } => (window_end, None, open_outcome(DateTime::<Utc>::MAX_UTC)),
            Clock::Deadline {
                deadline,
                done: Some(e),
                ..
            } => (
                deadline,
                Some(e.at),
                if e.at <= deadline {
                    (Timeliness::OnTime, None)
                } else {
                    (Timeliness::Late, None)
                },
            ),
            Clock::Deadline {
                deadline,
                done: None,
                ..
            } => (deadline, None, open_outcome(deadline)),
        };
        Some(OccurrenceFact {
            rule: self.rule.id.clone(),
            occurrence: self.id.clone(),
            anchor: self.anchor.kind,
            anchor_at: self.anchor.at,
            deadline,
            done_at,
            status,
            cancelled,
        })
    }
}

/// Where one occurrence's clock stands.
enum Clock<'e> {
    /// A cancelling event came before the work was done; `deadline` is None for a trigger
    /// that never fired.
    Cancelled {
        at: DateTime<Utc>,
        by: EventKind,
        deadline: Option<DateTime<Utc>>,
    },
    /// A trigger whose clock starts at this instant, later than now.
    NotStarted(DateTime<Utc>),
    /// A guard window, and the forbidden event if it happened within it.
    Guard {
        start: DateTime<Utc>,
        window_end: DateTime<Utc>,
        breach: Option<&'e Event>,
    },
    /// A deadline, and the event that met it, if any.
    Deadline {
        start: DateTime<Utc>,
        deadline: DateTime<Utc>,
        done: Option<&'e Event>,
    },
}

/// How one occurrence of a rule stands, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeliness {
    /// Done by the deadline (or, for a guard, its window passed unbroken).
    OnTime,
    /// Done after the deadline.
    Late,
    /// Not done and the deadline has passed (or the guard was broken).
    Overdue,
    /// Not done, deadline still ahead.
    Pending,
    /// Made moot by a later event or the case closing before the deadline.
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceFact {
    pub rule: String,
    pub occurrence: String,
    /// The event that started the clock, and when it happened (a meeting: its date).
    pub anchor: EventKind,
    pub anchor_at: DateTime<Utc>,
    /// The deadline (a guard's window end).
    pub deadline: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub status: Timeliness,
    /// What made it moot, and when (`case_closed` for a closure): set for `Cancelled`, and for
    /// an `Overdue` missed before it was made moot.
    pub cancelled: Option<(DateTime<Utc>, EventKind)>,
}

/// The notices of one occurrence, each emitted only inside its window.
struct Steps<'a, 'o> {
    occ: &'o Occurrence<'a>,
    responsible: &'o [Recipient],
    responsible_person: Option<&'o crate::domain::PersonId>,
    cc: &'o [Recipient],
}

/// A step of an occurrence: the notice's varying parts, and the instant after which it is no
/// longer worth sending (a reminder once its deadline has passed).
struct Step {
    draft: Draft,
    until: Option<DateTime<Utc>>,
    letter: Option<Letter>,
    facts: Facts,
}

/// Where an overdue step falls: its index, when, the deadline it is about, and whether the level
/// below it could not be reached.
#[derive(Clone, Copy)]
struct Escalation {
    i: usize,
    trigger: DateTime<Utc>,
    deadline: DateTime<Utc>,
    below_unreachable: bool,
}

/// The earliest trigger of the steps that were due, if any was (whether or not it could be
/// addressed): when problems resolving people were first met.
type Due = Option<DateTime<Utc>>;

fn earliest(a: Due, b: Due) -> Due {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Steps<'_, '_> {
    /// Emit the steps due by now.
    fn emit(
        &self,
        out: &mut Outcome,
        start: DateTime<Utc>,
        deadline: DateTime<Utc>,
        before: bool,
    ) -> Due {
        let mut due = None;
        if before {
            due = self.before_deadline(out, start, deadline);
        }
        let overdue = self.plain(Kind::Overdue, "overdue", deadline, deadline, None);
        due = earliest(due, self.step(out, overdue));
        earliest(due, self.escalations(out, deadline))
    }

    /// A step to the responsible people (and the rule's cc) about `deadline`.
    fn plain(
        &self,
        kind: Kind,
        step: &str,
        trigger: DateTime<Utc>,
        deadline: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Step {
        Step {
            draft: Draft {
                kind,
                step: step.to_owned(),
                trigger,
                due: deadline,
                urgent: false,
                to: self.responsible.to_vec(),
                cc: self.cc.to_vec(),
            },
            until,
            letter: None,
            facts: Facts::default(),
        }
    }

    /// The reminders, and the "due today" notice on the morning of a working-day deadline.
    fn before_deadline(
        &self,
        out: &mut Outcome,
        start: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Due {
        let cal = self.occ.ctx.calendar;
        let mut due = None;
        for (i, reminder) in self.occ.rule.reminders.iter().enumerate() {
            let trigger = reminder_time(cal, *reminder, start, deadline);
            if trigger >= start {
                let name = format!("reminder-{}", i + 1);
                let step = self.plain(Kind::Reminder, &name, trigger, deadline, Some(deadline));
                due = earliest(due, self.step(out, step));
            }
        }
        let deadline_day = cal.local_date(deadline);
        if cal.is_working_day(deadline_day) {
            let morning = cal.open_on(deadline_day);
            if morning < deadline && morning >= start {
                let step = self.plain(Kind::Due, "due", morning, deadline, Some(deadline));
                due = earliest(due, self.step(out, step));
            }
        }
        due
    }

    /// The managers told, step by step, while the occurrence stays undone.
    fn escalations(&self, out: &mut Outcome, deadline: DateTime<Utc>) -> Due {
        let (rule, ctx) = (self.occ.rule, self.occ.ctx);
        let mut due = None;
        let mut trigger = deadline;
        let mut told: Vec<Recipient> = self.responsible.iter().chain(self.cc).cloned().collect();
        // Whether the level below this step was reached (the responsible people first).
        let mut below_reached = !self.responsible.is_empty();
        for (i, esc) in rule.overdue_steps.iter().enumerate() {
            trigger = ctx.calendar.deadline(esc.after, trigger);
            let at = Escalation {
                i,
                trigger,
                deadline,
                below_unreachable: !below_reached,
            };
            if trigger > ctx.now {
                // Not yet: say who it will reach (problems count only once it is due).
                let mut later = Outcome::new(ctx, self.occ.st.case);
                if let Some(step) = self.escalation_step(esc, &at, &told, &mut later) {
                    self.step(out, step);
                }
                out.wake_at(trigger);
                break;
            }
            let before = out.problems.len();
            let step = self.escalation_step(esc, &at, &told, out);
            super::stamp(&mut out.problems[before..], trigger);
            below_reached = step.is_some() || out.problems.len() == before;
            let Some(step) = step else { continue };
            told.extend(step.draft.to.iter().cloned());
            due = earliest(due, self.step(out, step));
        }
        due
    }

    /// Overdue step `at.i`: who it goes to, and what it says; None when it reaches nobody new.
    fn escalation_step(
        &self,
        esc: &crate::policy::OverdueStep,
        at: &Escalation,
        told: &[Recipient],
        out: &mut Outcome,
    ) -> Option<Step> {
        let Escalation {
            i,
            trigger,
            deadline,
            ..
        } = *at;
        let resolver = self.occ.resolver();
        let fresh = if esc.letter == Letter::CauseForConcern {
            // The chair's letter goes to the agency's appropriate manager even when that is
            // the invitee (a small school's head teacher is its DSL and its senior manager).
            self.cause_for_concern_recipients(&esc.to, out)?
        } else {
            let to = resolver.resolve_relative(&esc.to, self.responsible_person, &mut out.problems);
            // Nobody is told twice about one occurrence as if they were someone new.
            to.into_iter()
                .filter(|r| !told.iter().any(|t| t.email == r.email))
                .collect()
        };
        if fresh.is_empty() {
            return None;
        }
        let chair =
            || resolver.resolve_all(&[RoleRef::Case("conference_chair".into())], &mut Vec::new());
        let (kind, step, cc) = match esc.letter {
            Letter::Escalation => (
                Kind::OverdueEscalation,
                format!("escalation-{}", i + 1),
                self.responsible.to_vec(),
            ),
            Letter::CauseForConcern => (
                Kind::CauseForConcern,
                "cause-for-concern".to_owned(),
                chair().iter().chain(self.responsible).cloned().collect(),
            ),
            Letter::ChairChallenge => (
                Kind::OverdueEscalation,
                format!("chair-challenge-{}", i + 1),
                chair(),
            ),
        };
        Some(Step {
            draft: Draft {
                kind,
                step,
                trigger,
                due: deadline,
                urgent: false,
                to: fresh,
                cc,
            },
            until: None,
            letter: Some(esc.letter),
            facts: self.escalation_facts(at),
        })
    }

    /// How late the deadline is when the step comes, and whether the level below was reached.
    fn escalation_facts(&self, at: &Escalation) -> Facts {
        let cal = self.occ.ctx.calendar;
        Facts {
            late: super::lateness(cal, self.occ.rule.deadline, at.deadline, at.trigger),
            below_unreachable: at.below_unreachable,
            ..Facts::default()
        }
    }

    /// Who a cause-for-concern letter goes to, whoever else was told about the occurrence; None
    /// (and one data-quality problem) when the agency has nobody to send it to.
    fn cause_for_concern_recipients(
        &self,
        roles: &[RoleRef],
        out: &mut Outcome,
    ) -> Option<Vec<Recipient>> {
        let mut problems = Vec::new();
        let to =
            self.occ
                .resolver()
                .resolve_relative(roles, self.responsible_person, &mut problems);
        if to.is_empty() {
            // A named manager without an address says more than "nobody"; else say nobody.
            let unreachable: Vec<_> = problems
                .into_iter()
                .filter(|p| p.code.starts_with("no-email-") || !p.code.starts_with("no-"))
                .collect();
            if unreachable.is_empty() {
                out.problems.push(self.nobody_for_cause_for_concern());
            } else {
                out.problems.extend(unreachable);
            }
            return None;
        }
        out.problems.extend(problems);
        Some(to)
    }

    fn nobody_for_cause_for_concern(&self) -> super::Problem {
        let agency = self
            .occ
            .agency
            .as_ref()
            .map_or("-".to_owned(), |a| a.to_string());
        super::Problem {
            code: format!("no-manager-for-cause-for-concern-{agency}"),
            facts: Box::new(super::ProblemFacts::NoManagerForCauseForConcern {
                agency,
                rule: self.occ.rule.id.clone(),
            }),
            since: None,
        }
    }

    /// Emit one step if it is due, returning its trigger (whether or not anyone could be
    /// addressed); a step still ahead is noted as upcoming instead.
    fn step(&self, out: &mut Outcome, step: Step) -> Due {
        let ctx = self.occ.ctx;
        let d = step.draft;
        if d.trigger > ctx.now {
            out.wake_at(d.trigger);
            if step.until.is_some_and(|u| u <= d.trigger) {
                return None;
            }
            out.upcoming.push(super::Upcoming {
                rule: self.occ.rule.id.clone(),
                occurrence: self.occ.id.clone(),
                kind: d.kind,
                step: d.step,
                at: d.trigger,
                to: d.to,
                cc: d.cc,
            });
            return None;
        }
        if step.until.is_some_and(|u| ctx.now >= u) {
            // It fell due once (so its people's problems date from then); no longer worth sending.
            return Some(d.trigger);
        }
        if d.to.is_empty() {
            return Some(d.trigger);
        }
        let (to, cc) = merge_people(d.to, d.cc);
        let case = self.occ.st.case;
        let rule = self.occ.rule;
        let key = match d.kind {
            Kind::CauseForConcern => {
                NoticeKey::cause_for_concern(&case.partnership, &case.reference, &self.occ.id)
            }
            _ => NoticeKey::case_step(
                &case.partnership,
                &case.reference,
                &rule.id,
                &self.occ.id,
                &d.step,
            ),
        };
        out.notifications.push(Notice {
            key,
            kind: d.kind,
            rule: rule.id.clone(),
            standard: Some(rule.standard.clone()),
            title: rule.title.clone(),
            action: rule.action.clone(),
            partnership: case.partnership.clone(),
            case: Some(case.reference.clone()),
            dispute: None,
            occurrence: self.occ.id.clone(),
            step: d.step,
            due: d.due,
            trigger_at: d.trigger,
            send_after: ctx.calendar.next_working_instant(d.trigger),
            urgent: d.urgent,
            to,
            cc,
            letter: step.letter,
            facts: step.facts,
        });
        Some(d.trigger)
    }
}
