//! Going live over a case history that is already months old, without a flood of mail.
//!
//! For a deadline that lapsed before the go-live instant cpwatch queues no reminder, overdue
//! notice, escalation or letter of its own (`keep`); instead each team manager receives one
//! summary of what was already overdue on their cases when cpwatch started, by case and rule,
//! oldest first (`lapsed_at`, then `summaries` over every case). Disputes continue from their
//! current stage (`dispute::evaluate_dispute_from`). Pure: no clock, no I/O.

use super::recipients::Resolver;
use super::rule::{OccurrenceFact, Timeliness};
use super::{
    rfc3339, timeliness, Context, Facts, GoLiveCase, GoLiveFacts, Kind, LapsedTimescale, Notice,
    NoticeKey, Recipient,
};
use crate::calendar::Calendar;
use crate::domain::{Case, CaseRef, PartnershipId};
use crate::policy::StandardsPolicy;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The notices worth queueing once a partnership is live: a case rule's notices about a deadline
/// that lapsed before `go_live` are left out (the go-live summary lists those deadlines);
/// everything else stays (data-quality notices, and reminders of deadlines still ahead).
pub fn keep(notices: Vec<Notice>, go_live: DateTime<Utc>) -> Vec<Notice> {
    notices
        .into_iter()
        .filter(|n| !(Kind::CASE_RULE.contains(&n.kind) && n.due < go_live))
        .collect()
}

/// One timescale already overdue when cpwatch started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapsed {
    pub case: CaseRef,
    pub rule: String,
    pub standard: String,
    pub title: String,
    pub occurrence: String,
    pub deadline: DateTime<Utc>,
}

/// What was overdue on `case` at `go_live` (deadline passed, not done, not made moot), oldest
/// first, and who is told of it: the case's team manager, else the admin address. `ctx.now` is
/// not used: the case is judged as it stood at go-live.
pub fn lapsed_at(
    policy: &StandardsPolicy,
    case: &Case,
    ctx: &Context,
    go_live: DateTime<Utc>,
) -> Option<(Recipient, Vec<Lapsed>)> {
    let at_go_live = Context {
        calendar: ctx.calendar,
        directory: ctx.directory,
        now: go_live,
    };
    let mut lapsed: Vec<Lapsed> = timeliness(policy, case, &at_go_live)
        .into_iter()
        .filter(|f| still_overdue(f, go_live))
        .map(|f| {
            let rule = policy.rules.iter().find(|r| r.id == f.rule);
            Lapsed {
                case: case.reference.clone(),
                standard: rule.map(|r| r.standard.clone()).unwrap_or_default(),
                title: rule.map(|r| r.title.clone()).unwrap_or_default(),
                rule: f.rule,
                occurrence: f.occurrence,
                deadline: f.deadline,
            }
        })
        .collect();
    if lapsed.is_empty() {
        return None;
    }
    lapsed.sort_by(|a, b| (a.deadline, &a.rule).cmp(&(b.deadline, &b.rule)));
    let resolver = Resolver {
        case,
        directory: ctx.directory,
        anchor: None,
        agency: None,
    };
    Some((resolver.data_quality_recipient()?, lapsed))
}

fn still_overdue(f: &OccurrenceFact, go_live: DateTime<Utc>) -> bool {
    f.status == Timeliness::Overdue && f.cancelled.is_none() && f.deadline < go_live
}

/// One summary notice per recipient over every case's lapsed timescales: cases in the order of
/// their oldest lapse, each case's timescales oldest first. Sent in working hours from go-live.
/// What it lists is a fact (`Facts::go_live`); `go_live_summary.*.j2` words it.
pub fn summaries(
    partnership: &PartnershipId,
    go_live: DateTime<Utc>,
    cases: Vec<(Recipient, Vec<Lapsed>)>,
    cal: &Calendar,
) -> Vec<Notice> {
    let mut by_recipient: BTreeMap<String, (Recipient, Vec<Vec<Lapsed>>)> = BTreeMap::new();
    for (to, lapsed) in cases {
        by_recipient
            .entry(to.email.to_string())
            .or_insert_with(|| (to, Vec::new()))
            .1
            .push(lapsed);
    }
    by_recipient
        .into_values()
        .map(|(to, mut cases)| {
            cases.sort_by(|a, b| (a[0].deadline, &a[0].case).cmp(&(b[0].deadline, &b[0].case)));
            let facts = GoLiveFacts {
                started: go_live,
                cases: cases.iter().map(|l| case_facts(l)).collect(),
            };
            Notice {
                key: NoticeKey::go_live_summary(partnership, &rfc3339(go_live), &to.email),
                kind: Kind::GoLiveSummary,
                rule: "go-live".into(),
                standard: None,
                title: "go-live-summary".into(),
                action: String::new(),
                partnership: partnership.clone(),
                case: None,
                dispute: None,
                occurrence: rfc3339(go_live),
                step: "summary".into(),
                due: go_live,
                trigger_at: go_live,
                send_after: cal.next_working_instant(go_live),
                urgent: false,
                to: vec![to],
                cc: vec![],
                letter: None,
                facts: Facts {
                    go_live: Some(facts),
                    ..Facts::default()
                },
            }
        })
        .collect()
}

/// One case's lapsed timescales (never empty: `lapsed_at` gives none for a case with none).
fn case_facts(lapsed: &[Lapsed]) -> GoLiveCase {
    GoLiveCase {
        case: lapsed[0].case.clone(),
        lapsed: lapsed
            .iter()
            .map(|l| LapsedTimescale {
                deadline: l.deadline,
                rule: l.rule.clone(),
                standard: l.standard.clone(),
                title: l.title.clone(),
            })
            .collect(),
    }
}
