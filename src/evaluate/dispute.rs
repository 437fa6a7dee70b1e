//! The ladder evaluator: a dispute + its ladder + calendar + `now` → stage changes,
//! notices, records and the next check. Pure: no clock, no database, no files.
//!
//! The dispute's whole life is replayed from its opening and its events, stage by stage, so a
//! dispute that lapsed through several stages while cpwatch was not running comes out exactly as
//! if it had been watched all along: each stage is entered when the previous one lapsed (or when
//! someone escalated by hand), and a stage entered at or after its own deadline (possible with
//! deadlines counted from the dispute's start) gets until close of the next working day.

use super::notice::{merge_people, Draft};
use super::recipients::{DisputeResolver, Party, Problem};
use super::{reminder_time, rfc3339, Context, Kind, Notice, NoticeKey, Recipient};
use super::{DisputeFacts, Facts, NextStage, StageVisit};
use crate::calendar::{Calendar, Timescale};
use crate::domain::{Dispute, DisputeEventKind, DisputeRef, PersonId};
use crate::policy::ladder::{
    Coalesce, DeadlineFrom, LadderPolicy, LadderRole, RecordKind, RiskDeadlines,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why a dispute moved to another stage (`dispute_stage_history.why`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Why {
    #[serde(rename = "timescale lapsed")]
    TimescaleLapsed,
    #[serde(rename = "escalated by hand")]
    EscalatedByHand,
    #[serde(rename = "immediate risk")]
    ImmediateRisk,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::TimescaleLapsed => "timescale lapsed",
            Why::EscalatedByHand => "escalated by hand",
            Why::ImmediateRisk => "immediate risk",
        }
    }
}

/// A move from one stage to a later one, to be written by compare-and-set on `from`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageChange {
    pub dispute: DisputeRef,
    pub policy: String,
    pub from: u32,
    pub to: u32,
    pub at: DateTime<Utc>,
    pub why: Why,
    /// Who escalated by hand, if the event says.
    pub by: Option<PersonId>,
    /// Stages passed over because their people were one person (`coalesce = "skip"`).
    pub skipped: Vec<u32>,
    /// The new stage's deadline.
    pub deadline: DateTime<Utc>,
}

impl StageChange {
    /// The `--format json` line of the command-line contract.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": "stage_change",
            "dispute": self.dispute.as_str(),
            "policy": self.policy,
            "from": self.from,
            "to": self.to,
            "at": rfc3339(self.at),
        })
    }
}

/// A record the policy demands (escalation notice, LSCB report form, summary log entry, step-4
/// record) or that cpwatch notes (a late raising).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DisputeRecord {
    pub kind: RecordKind,
    pub stage: u32,
    pub at: DateTime<Utc>,
    pub detail: serde_json::Value,
}

/// Where the dispute stands at `now`, for the `disputes` row.
#[derive(Debug, Clone, PartialEq)]
pub struct DisputeState {
    pub stage: u32,
    pub stage_started_at: DateTime<Utc>,
    pub stage_deadline: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_stage: Option<u32>,
}

/// What evaluating one dispute at one instant decided.
#[derive(Debug, Clone, PartialEq)]
pub struct DisputeOutcome {
    pub notifications: Vec<Notice>,
    /// Moves not yet stored (beyond the dispute's stored stage), oldest first.
    pub stage_changes: Vec<StageChange>,
    /// The next instant at which evaluating again can change anything; None = nothing pending.
    pub next_check: Option<DateTime<Utc>>,
    pub state: DisputeState,
    pub records: Vec<DisputeRecord>,
}

/// A stage as the replay entered it.
#[derive(Debug, Clone)]
struct Entered {
    stage: u32,
    at: DateTime<Utc>,
    /// None for the opening stage.
    why: Option<Why>,
    by: Option<PersonId>,
    skipped: Vec<u32>,
    deadline: DateTime<Utc>,
}

struct Resolution {
    stage: u32,
    at: DateTime<Utc>,
    outcome: Option<String>,
}

/// Evaluate one dispute under its ladder at `ctx.now`.
pub fn evaluate_dispute(policy: &LadderPolicy, dispute: &Dispute, ctx: &Context) -> DisputeOutcome {
    Ladder::new(policy, dispute, ctx).run()
}

/// `evaluate_dispute` for a partnership that went live at `go_live`: what happened before it is
/// history, not mail. A stage whose timescale lapsed before go-live did not move by itself (no one
/// was watching): the dispute continues from that stage, which gets until close of the working
/// day after go-live; the stages it had passed are not replayed, and no notice whose moment came
/// before go-live is sent. Escalations and resolutions recorded before go-live still count.
pub fn evaluate_dispute_from(
    policy: &LadderPolicy,
    dispute: &Dispute,
    ctx: &Context,
    go_live: Option<DateTime<Utc>>,
) -> DisputeOutcome {
    let mut ladder = Ladder::new(policy, dispute, ctx);
    ladder.go_live = go_live;
    ladder.run()
}

struct Ladder<'a> {
    policy: &'a LadderPolicy,
    d: &'a Dispute,
    cal: &'a Calendar,
    now: DateTime<Utc>,
    resolver: DisputeResolver<'a>,
    notifications: Vec<Notice>,
    records: Vec<DisputeRecord>,
    problems: Vec<Problem>,
    /// Problems up to here are dated (with the trigger of the notice that needed them).
    dated: usize,
    /// When the partnership went live with cpwatch, if that matters here.
    go_live: Option<DateTime<Utc>>,
    next_check: Option<DateTime<Utc>>,
    /// The stages the replay entered (for each notice's story).
    entries: Vec<Entered>,
}

impl<'a> Ladder<'a> {
    fn new(policy: &'a LadderPolicy, d: &'a Dispute, ctx: &'a Context<'a>) -> Ladder<'a> {
        Ladder {
            policy,
            d,
            cal: ctx.calendar,
            now: ctx.now,
            resolver: DisputeResolver {
                directory: ctx.directory,
                raiser: Party {
                    person: Some(&d.raised_by),
                    agency: None,
                },
                respondent: Party {
                    person: d.respondent_person.as_ref(),
                    agency: d.respondent_agency.as_ref(),
                },
                case_roles: &d.case_roles,
                about: super::About::Dispute(d.reference.clone()),
            },
            notifications: Vec::new(),
            records: Vec::new(),
            problems: Vec::new(),
            dated: 0,
            go_live: None,
            next_check: None,
            entries: Vec::new(),
        }
    }

    fn wake_at(&mut self, t: DateTime<Utc>) {
        self.next_check = Some(self.next_check.map_or(t, |n| n.min(t)));
    }

    fn run(mut self) -> DisputeOutcome {
        if self.now < self.d.opened_at {
            return self.not_yet_opened();
        }
        let (entries, resolution) = self.replay();
        self.entries = entries.clone();
        let now = self.now;
        let d = self.d;
        if let Some(first_future) = d.events.iter().map(|e| e.at).filter(|t| *t > now).min() {
            self.wake_at(first_future);
        }
        self.note_late_raising();
        for e in &entries {
            self.stage_records(e);
        }
        match &resolution {
            None => {
                for (i, e) in entries.iter().enumerate() {
                    self.entered_notice(e, i == 0);
                }
                if let Some(current) = entries.last() {
                    self.current_stage(current);
                }
                self.family_notice(&entries, None);
            }
            Some(r) => {
                self.outcome(r);
                self.family_notice(&entries, Some(r));
            }
        }
        self.data_quality();

        let stored = self.d.stage;
        let mut stage_changes = Vec::new();
        for pair in entries.windows(2) {
            let (prev, e) = (&pair[0], &pair[1]);
            if e.stage > stored {
                stage_changes.push(StageChange {
                    dispute: self.d.reference.clone(),
                    policy: self.policy.id.clone(),
                    from: prev.stage.max(stored),
                    to: e.stage,
                    at: e.at,
                    why: e.why.unwrap_or(Why::TimescaleLapsed),
                    by: e.by.clone(),
                    skipped: e.skipped.clone(),
                    deadline: e.deadline,
                });
            }
        }
        // Each change moves from the stage the previous one reached (the first from the stored stage).
        for i in 1..stage_changes.len() {
            stage_changes[i].from = stage_changes[i - 1].to;
        }
        let last = entries.last().cloned().unwrap_or_else(|| Entered {
            stage: 1,
            at: self.d.opened_at,
            why: None,
            by: None,
            skipped: vec![],
            deadline: self.d.opened_at,
        });
        DisputeOutcome {
            notifications: self.notifications,
            stage_changes,
            next_check: self.next_check,
            state: DisputeState {
                stage: last.stage,
                stage_started_at: last.at,
                stage_deadline: last.deadline,
                resolved_at: resolution.as_ref().map(|r| r.at),
                resolved_stage: resolution.as_ref().map(|r| r.stage),
            },
            records: self.records,
        }
    }

    /// A dispute recorded with an opening still ahead: nothing happens before it.
    fn not_yet_opened(self) -> DisputeOutcome {
        let opened = self.d.opened_at;
        DisputeOutcome {
            notifications: Vec::new(),
            stage_changes: Vec::new(),
            next_check: Some(opened),
            state: DisputeState {
                stage: self.d.stage,
                stage_started_at: self.d.stage_started_at,
                stage_deadline: opened,
                resolved_at: None,
                resolved_stage: None,
            },
            records: Vec::new(),
        }
    }

    /// Walk the dispute's life up to `now`: the stages it entered, and its resolution if any.
    fn replay(&mut self) -> (Vec<Entered>, Option<Resolution>) {
        let last = self.policy.last_stage().max(1);
        let opened = self.d.opened_at;
        let mut entries = vec![];
        self.enter(&mut entries, 1, opened, None, None);
        let risk = &self.policy.immediate_risk;
        if self.d.immediate_risk && risk.start_stage > 1 {
            self.enter(
                &mut entries,
                risk.start_stage,
                opened,
                Some(Why::ImmediateRisk),
                None,
            );
        }
        let events: Vec<_> = self
            .d
            .events
            .iter()
            .filter(|e| e.at <= self.now && e.kind != DisputeEventKind::OutcomeConfirmed)
            .collect();
        let mut next = 0;
        while let Some(cur) = entries.last().cloned() {
            let event = events.get(next).copied();
            if let Some(e) = event.filter(|e| e.at <= cur.deadline || cur.stage >= last) {
                next += 1;
                match e.kind {
                    DisputeEventKind::Resolved => {
                        return (
                            entries,
                            Some(Resolution {
                                stage: cur.stage,
                                at: e.at.max(cur.at),
                                outcome: e.outcome.clone(),
                            }),
                        );
                    }
                    DisputeEventKind::Escalated => {
                        let asked = e.stage.unwrap_or(cur.stage + 1);
                        if asked <= cur.stage || cur.stage >= last {
                            continue;
                        }
                        let to = if asked >= last && self.policy.escalate_to_last {
                            last
                        } else {
                            cur.stage + 1
                        };
                        self.enter(
                            &mut entries,
                            to,
                            e.at.max(cur.at),
                            Some(Why::EscalatedByHand),
                            e.by.clone(),
                        );
                    }
                    DisputeEventKind::OutcomeConfirmed => {}
                }
                continue;
            }
            if let Some(resumed) = self.resumed_at_go_live(&cur) {
                // Lapsed before anyone watched: it continues from this stage.
                if let Some(e) = entries.last_mut() {
                    e.deadline = resumed;
                }
                continue;
            }
            if cur.deadline <= self.now && cur.stage < last {
                self.enter(
                    &mut entries,
                    cur.stage + 1,
                    cur.deadline,
                    Some(Why::TimescaleLapsed),
                    None,
                );
                continue;
            }
            break;
        }
        (entries, None)
    }

    /// For a stage whose timescale lapsed before go-live: its new deadline, close of the working
    /// day after go-live. None when go-live does not change it.
    fn resumed_at_go_live(&self, cur: &Entered) -> Option<DateTime<Utc>> {
        let go_live = self.go_live?;
        let last = self.policy.last_stage().max(1);
        (cur.deadline < go_live && cur.stage < last)
            .then(|| self.cal.deadline(Timescale::WorkingDays(1), go_live))
    }

    /// Enter stage `n` at `at` (or the first stage after it whose people are not one person, under
    /// `coalesce = "skip"`).
    fn enter(
        &mut self,
        entries: &mut Vec<Entered>,
        mut n: u32,
        at: DateTime<Utc>,
        why: Option<Why>,
        by: Option<PersonId>,
    ) {
        let last = self.policy.last_stage().max(1);
        let mut skipped = Vec::new();
        while n < last && self.coalesced(n) {
            skipped.push(n);
            n += 1;
        }
        let deadline = self.stage_deadline(n, at, entries);
        entries.push(Entered {
            stage: n,
            at,
            why,
            by,
            skipped,
            deadline,
        });
    }

    /// Under `coalesce = "skip"`: the stage's `same_person` roles are all held by one person.
    fn coalesced(&self, n: u32) -> bool {
        if self.policy.coalesce != Coalesce::Skip {
            return false;
        }
        let Some(stage) = self.policy.stage(n) else {
            return false;
        };
        if stage.same_person.len() < 2 {
            return false;
        }
        let people: Vec<Option<PersonId>> = stage
            .same_person
            .iter()
            .map(|r| self.resolver.person_for(r))
            .collect();
        people[0].is_some() && people.iter().all(|p| *p == people[0])
    }

    fn stage_deadline(&self, n: u32, at: DateTime<Utc>, entries: &[Entered]) -> DateTime<Utc> {
        let Some(stage) = self.policy.stage(n) else {
            return at;
        };
        let anchor = match stage.from {
            DeadlineFrom::StageStart => at,
            DeadlineFrom::Opened => self.d.opened_at,
            DeadlineFrom::Disagreement => self.d.disagreement(),
            DeadlineFrom::StartOfStage(k) => {
                entries.iter().find(|e| e.stage == k).map_or(at, |e| e.at)
            }
        };
        // The window the stage's deadline closes.
        let window_end = if self.d.immediate_risk
            && self.policy.immediate_risk.deadlines == RiskDeadlines::SameWorkingDay
        {
            // Every stage on the same working day as its start; one counted from an earlier
            // stage's start shares that stage's day (Liverpool: stages 2 and 3 together).
            let from = match stage.from {
                DeadlineFrom::StartOfStage(_) => anchor,
                _ => at,
            };
            self.cal.deadline(Timescale::SameWorkingDay, from)
        } else {
            self.cal.deadline(stage.deadline, anchor)
        };
        // A stage sharing its window with the next has its part of it.
        let mut deadline = match stage.share {
            Some(share) => self.cal.share_of_working_time(at, window_end, share),
            None => window_end,
        };
        if let (true, Some(protective)) = (stage.protective, self.d.protective) {
            deadline = deadline.min(self.cal.deadline(protective, at));
        }
        if at >= deadline {
            // Entered at or after its own deadline: its people get a working day.
            self.cal.deadline(Timescale::WorkingDays(1), at)
        } else {
            deadline
        }
    }

    fn note_late_raising(&mut self) {
        let Some(within) = self.policy.raise_within else {
            return;
        };
        let limit = self.cal.deadline(within, self.d.disagreement());
        if self.d.opened_at > limit {
            self.records.push(DisputeRecord {
                kind: RecordKind::LateRaising,
                stage: 1,
                at: self.d.opened_at,
                detail: serde_json::json!({
                    "disagreement_at": rfc3339(self.d.disagreement()),
                    "raise_by": rfc3339(limit),
                    "policy": self.policy.id,
                }),
            });
        }
    }

    fn stage_records(&mut self, e: &Entered) {
        let Some(stage) = self.policy.stage(e.stage) else {
            return;
        };
        for kind in &stage.records {
            self.records.push(DisputeRecord {
                kind: *kind,
                stage: e.stage,
                at: e.at,
                detail: serde_json::json!({
                    "policy": self.policy.id,
                    "stage_name": stage.name,
                    "case": self.d.case.as_ref().map(|c| c.as_str()),
                    "raised_by": self.d.raised_by.as_str(),
                    "respondent": self.d.respondent_person.as_ref().map(|p| p.as_str()),
                    "respondent_agency": self.d.respondent_agency.as_ref().map(|a| a.as_str()),
                    "subject": self.d.subject,
                    "why": e.why.map(|w| w.as_str()),
                    "deadline": rfc3339(e.deadline),
                }),
            });
        }
        for s in &e.skipped {
            self.records.push(DisputeRecord {
                kind: RecordKind::StageSkipped,
                stage: *s,
                at: e.at,
                detail: serde_json::json!({
                    "policy": self.policy.id,
                    "reason": "the stage's people are one person",
                }),
            });
        }
    }

    /// The notice that a stage was entered: to its people, copied to its cc.
    fn entered_notice(&mut self, e: &Entered, opening: bool) {
        let risk = self.d.immediate_risk;
        let told_at_once = risk
            && (e.why == Some(Why::ImmediateRisk)
                || (opening && self.policy.immediate_risk.start_stage <= 1));
        if opening && !told_at_once {
            return; // the parties opened it themselves
        }
        let Some(stage) = self.policy.stage(e.stage) else {
            return;
        };
        let mut to_roles = stage.to.clone();
        if told_at_once {
            to_roles.extend(self.policy.immediate_risk.tell.iter().cloned());
        }
        let to = self.resolver.resolve(&to_roles, &mut self.problems);
        let cc = self.resolver.resolve(&stage.cc, &mut self.problems);
        let action = stage.action.clone();
        let mut story = self.story(e.stage, false);
        story.why = e.why.map(|w| w.as_str().to_owned());
        story.skipped = e.skipped.clone();
        story.records = stage.records.iter().map(|r| record_code(*r)).collect();
        let draft = Draft {
            kind: Kind::EscalationStage,
            step: "entered".into(),
            trigger: e.at,
            due: e.deadline,
            urgent: risk,
            to,
            cc,
        };
        self.push(e.stage, action, draft, story);
    }

    /// The stage the dispute is in: its reminder while its deadline is ahead, and after the last
    /// stage lapsed the repeated notice.
    fn current_stage(&mut self, e: &Entered) {
        if e.deadline > self.now {
            self.wake_at(e.deadline);
            self.stage_reminder(e);
        } else if e.stage >= self.policy.last_stage() {
            self.after_last_stage(e);
        }
        // Otherwise the replay has moved on: cannot happen.
    }

    fn stage_reminder(&mut self, e: &Entered) {
        let (Some(stage), Some(ts)) = (self.policy.stage(e.stage), self.policy.reminder) else {
            return;
        };
        let trigger = reminder_time(self.cal, ts, e.at, e.deadline);
        if trigger <= e.at {
            return;
        }
        if trigger > self.now {
            self.wake_at(trigger);
            return;
        }
        let to = self.resolver.resolve(&stage.to, &mut self.problems);
        let action = stage.action.clone();
        let draft = Draft {
            kind: Kind::Reminder,
            step: "reminder".into(),
            trigger,
            due: e.deadline,
            urgent: self.d.immediate_risk,
            to,
            cc: vec![],
        };
        let story = self.story(e.stage, false);
        self.push(e.stage, action, draft, story);
    }

    /// After the last stage: a notice when it lapsed, then one every interval until resolved.
    fn after_last_stage(&mut self, e: &Entered) {
        let Some(stage) = self.policy.stage(e.stage) else {
            return;
        };
        let every = self.policy.after_last_stage.every;
        let nth = |n: u32| -> DateTime<Utc> {
            if n == 0 {
                return e.deadline;
            }
            let ts = match every {
                Timescale::Weeks(w) => Timescale::Weeks(w.saturating_mul(n)),
                Timescale::Days(d) => Timescale::Days(d.saturating_mul(n)),
                other => other,
            };
            self.cal.deadline(ts, e.deadline)
        };
        let interval_days = match every {
            Timescale::Weeks(w) => i64::from(w) * 7,
            Timescale::Days(d) => i64::from(d),
            _ => 7,
        }
        .max(1);
        let mut n = ((self.now - e.deadline).num_days() / interval_days).max(0) as u32;
        while n > 0 && nth(n) > self.now {
            n -= 1;
        }
        while nth(n + 1) <= self.now {
            n += 1;
        }
        self.wake_at(nth(n + 1));
        let to = self
            .resolver
            .resolve(&self.policy.after_last_stage.to, &mut self.problems);
        let action = stage.action.clone();
        let mut story = self.story(e.stage, false);
        story.within = Some(every.to_string());
        let draft = Draft {
            kind: Kind::Overdue,
            step: format!("weekly-{n}"),
            trigger: nth(n),
            due: e.deadline,
            urgent: self.d.immediate_risk,
            to,
            cc: vec![],
        };
        self.push(e.stage, action, draft, story);
    }

    /// A resolution: the outcome to the parties and the stage's people, and the written
    /// confirmation rule where the stage has it.
    fn outcome(&mut self, r: &Resolution) {
        let Some(stage) = self.policy.stage(r.stage) else {
            return;
        };
        let outcome = r.outcome.clone().unwrap_or_else(|| "resolved".into());
        if r.stage >= self.policy.outcome.notify_from_stage {
            let mut roles = self.policy.outcome.to.clone();
            roles.extend(stage.to.iter().cloned());
            let to = self.resolver.resolve(&roles, &mut self.problems);
            let cc = self.resolver.resolve(&stage.cc, &mut self.problems);
            let action = stage.action.clone();
            let mut story = self.story(r.stage, true);
            story.outcome = Some(outcome.clone());
            let draft = Draft {
                kind: Kind::EscalationOutcome,
                step: "outcome".into(),
                trigger: r.at,
                due: r.at,
                urgent: false,
                to,
                cc,
            };
            self.push(r.stage, action, draft, story);
        }
        self.confirm_outcome(r, &outcome);
    }

    /// Where the stage names who confirms the outcome in writing: a reminder to do it, then a
    /// notice when it is late.
    fn confirm_outcome(&mut self, r: &Resolution, outcome: &str) {
        let Some(stage) = self.policy.stage(r.stage) else {
            return;
        };
        let (Some(within), false) = (
            self.policy.outcome.confirm_within,
            stage.outcome_confirmed_by.is_empty(),
        ) else {
            return;
        };
        let confirmed = self.d.events.iter().any(|e| {
            e.kind == DisputeEventKind::OutcomeConfirmed && e.at >= r.at && e.at <= self.now
        });
        if confirmed {
            return;
        }
        let due = self.cal.deadline(within, r.at);
        let to = self
            .resolver
            .resolve(&stage.outcome_confirmed_by, &mut self.problems);
        let mut story = self.story(r.stage, true);
        story.outcome = Some(outcome.to_owned());
        story.within = Some(within.to_string());
        let action = stage.action.clone();
        let draft = if self.now < due {
            self.wake_at(due);
            Draft {
                kind: Kind::Reminder,
                step: "confirm-outcome".into(),
                trigger: r.at,
                due,
                urgent: false,
                to,
                cc: vec![],
            }
        } else {
            let raiser = self.resolver.resolve(
                &[LadderRole::Party(crate::policy::ladder::Side::Raiser)],
                &mut self.problems,
            );
            Draft {
                kind: Kind::Overdue,
                step: "confirm-outcome-overdue".into(),
                trigger: due,
                due,
                urgent: false,
                to,
                cc: raiser,
            }
        };
        self.push(r.stage, action, draft, story);
    }

    /// Pan-Cheshire: remind the social worker to tell the family of the escalation and its outcome.
    fn family_notice(&mut self, entries: &[Entered], resolution: Option<&Resolution>) {
        let Some(f) = self.policy.family_notice.clone() else {
            return;
        };
        if self.d.case.is_none() {
            return;
        }
        let Some(first) = entries.iter().find(|e| e.stage >= f.from_stage) else {
            return;
        };
        let to = self.resolver.resolve(&f.to, &mut self.problems);
        let (stage, action, draft) = match resolution {
            None => (
                first.stage,
                f.action.clone(),
                Draft {
                    kind: Kind::Reminder,
                    step: "tell-family".into(),
                    trigger: first.at,
                    due: first.deadline,
                    urgent: false,
                    to,
                    cc: vec![],
                },
            ),
            Some(r) => (
                r.stage,
                f.action.clone(),
                Draft {
                    kind: Kind::Reminder,
                    step: "tell-family-outcome".into(),
                    trigger: r.at,
                    due: r.at,
                    urgent: false,
                    to,
                    cc: vec![],
                },
            ),
        };
        // The notice is about the first stage the family is told of: its story, and so its
        // title, is that stage's.
        let mut story = self.story(first.stage, resolution.is_some());
        story.outcome = resolution.map(|r| r.outcome.clone().unwrap_or_else(|| "resolved".into()));
        self.push(stage, action, draft, story);
    }

    fn data_quality(&mut self) {
        let problems = std::mem::take(&mut self.problems);
        let Some(admin) = self.resolver.directory.admin_email.clone() else {
            return;
        };
        let to = Recipient {
            email: admin,
            person: None,
            name: None,
            role: "admin".into(),
        };
        let about = super::DataQualityAbout {
            partnership: &self.d.partnership,
            about: super::About::Dispute(self.d.reference.clone()),
            case: self.d.case.as_ref(),
            dispute: Some(&self.d.reference),
        };
        let notices = super::data_quality_notices(problems, &about, to, self.cal, self.now);
        self.notifications.extend(notices);
    }

    /// The dispute's story as of stage `stage`: what it is about, the stages so far, and (while
    /// unresolved) the stage it moves to next, when, and whom it reaches.
    fn story(&self, stage: u32, resolved: bool) -> DisputeFacts {
        let name = |n: u32| {
            self.policy
                .stage(n)
                .map(|s| s.name.clone())
                .unwrap_or_default()
        };
        let history = self
            .entries
            .iter()
            .filter(|e| e.stage <= stage)
            .map(|e| StageVisit {
                stage: e.stage,
                name: name(e.stage),
                entered_at: e.at,
                why: e.why.map(|w| w.as_str().to_owned()),
            })
            .collect();
        let next = if resolved {
            None
        } else {
            let here = self.entries.iter().rev().find(|e| e.stage == stage);
            let after = self.policy.stages.iter().find(|s| s.number > stage);
            here.zip(after).map(|(here, after)| NextStage {
                stage: after.number,
                name: after.name.clone(),
                at: here.deadline,
                to: after.to.iter().map(|r| r.to_string()).collect(),
            })
        };
        DisputeFacts {
            subject: self.d.subject.clone(),
            policy_title: self.policy.title.clone(),
            stage,
            stage_name: name(stage),
            immediate_risk: self.d.immediate_risk,
            history,
            next,
            ..DisputeFacts::default()
        }
    }

    /// Add a notice about stage `stage` of the ladder. Its title is the code
    /// `DisputeFacts::TITLE`: the templates word it from `story` (the policy's title, the
    /// stage and its name).
    fn push(&mut self, stage: u32, action: String, d: Draft, story: DisputeFacts) {
        // Problems met resolving this notice's people were first met when it fell due.
        super::stamp(&mut self.problems[self.dated..], d.trigger);
        self.dated = self.problems.len();
        if self.go_live.is_some_and(|g| d.trigger < g) {
            return; // its moment came before cpwatch was watching
        }
        let (to, cc) = merge_people(d.to, d.cc);
        if to.is_empty() {
            return;
        }
        let rule = format!("{}:{}", self.policy.id, stage);
        self.notifications.push(Notice {
            key: NoticeKey::dispute_step(&self.d.partnership, &self.d.reference, &rule, &d.step),
            kind: d.kind,
            rule,
            standard: None,
            title: DisputeFacts::TITLE.into(),
            action,
            partnership: self.d.partnership.clone(),
            case: self.d.case.clone(),
            dispute: Some(self.d.reference.clone()),
            occurrence: rfc3339(self.d.opened_at),
            step: d.step,
            due: d.due,
            trigger_at: d.trigger,
            send_after: if d.urgent {
                d.trigger
            } else {
                self.cal.next_working_instant(d.trigger)
            },
            urgent: d.urgent,
            to,
            cc,
            letter: None,
            facts: Facts {
                dispute: Some(story),
                ..Facts::default()
            },
        });
    }
}

/// A record kind as its stored name (`escalation_notice`, `summary_log.lscb`).
fn record_code(kind: RecordKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
