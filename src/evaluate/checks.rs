//! Histories that are well-formed but do not make sense: reported as data-quality notices,
//! never a reason to stop evaluating.

use super::plan::PlanPeriods;
use super::{Problem, ProblemFacts};
use crate::calendar::{Calendar, Timescale};
use crate::domain::{Case, Event, EventKind, Origin};
use chrono::{DateTime, NaiveDate, Utc};

pub fn check(
    case: &Case,
    known: &[&Event],
    plan: &PlanPeriods,
    cal: &Calendar,
    problems: &mut Vec<Problem>,
) {
    census(case, known, cal, problems);
    let day = |e: &Event| e.at.date_naive();
    if let Some(icpc) = known.iter().find(|e| e.kind == EventKind::IcpcHeld) {
        let strategy_before = known
            .iter()
            .any(|e| e.kind == EventKind::StrategyDiscussionHeld && e.at <= icpc.at);
        if !strategy_before {
            problems.push(Problem {
                code: "icpc-without-strategy-discussion".into(),
                facts: Box::new(ProblemFacts::IcpcWithoutStrategyDiscussion {
                    case: case.reference.clone(),
                    on: day(icpc),
                }),
                since: Some(icpc.known_from().max(icpc.at)),
            });
        }
    }
    let needs_plan = [
        EventKind::CoreGroupHeld,
        EventKind::RcpcHeld,
        EventKind::CpPlanEnded,
    ];
    if let Some(e) = known
        .iter()
        .find(|e| needs_plan.contains(&e.kind) && !plan.ever_started_before(e.at))
    {
        problems.push(Problem {
            code: "plan-without-start".into(),
            facts: Box::new(ProblemFacts::PlanWithoutStart {
                case: case.reference.clone(),
                event: e.kind.to_string(),
                on: day(e),
            }),
            since: Some(e.at),
        });
    }
}

/// The census names no workers: a census case nobody manages is said so, not left silent. And
/// where the census gives its own initial-conference target, it must agree with cpwatch's.
fn census(case: &Case, known: &[&Event], cal: &Calendar, problems: &mut Vec<Problem>) {
    if !known.iter().any(|e| e.origin == Origin::Census) {
        return;
    }
    if case.role("team_manager").is_none() {
        problems.push(Problem {
            code: "census-roles-unknown".into(),
            facts: Box::new(ProblemFacts::CensusRolesUnknown {
                case: case.reference.clone(),
            }),
            since: known
                .iter()
                .filter(|e| e.origin == Origin::Census)
                .map(|e| e.known_from().max(e.at))
                .min(),
        });
    }
    for e in known {
        let Some(target) = census_target(e) else {
            continue;
        };
        let ours = icpc_deadline(cal, e.at);
        if ours != target {
            problems.push(Problem {
                code: format!("census-icpc-target-{}", cal.local_date(e.at)),
                facts: Box::new(ProblemFacts::CensusIcpcTarget {
                    case: case.reference.clone(),
                    started: cal.local_date(e.at),
                    target,
                    ours,
                }),
                since: Some(e.at),
            });
        }
    }
}

/// The census's own initial-conference target carried by an enquiry's start, if any.
pub fn census_target(e: &Event) -> Option<NaiveDate> {
    if e.kind != EventKind::StrategyDiscussionHeld {
        return None;
    }
    let s = e.text("census_icpc_target")?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// The last day of the initial conference's 15 working days from an enquiry's start (the
/// census's `InitialCPCtarget` counts the same way, the start day not counted).
pub fn icpc_deadline(cal: &Calendar, start: DateTime<Utc>) -> NaiveDate {
    cal.local_date(cal.deadline(Timescale::WorkingDays(15), start))
}
