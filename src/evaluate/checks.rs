//! Histories that are well-formed but do not make sense: reported as data-quality notices,
//! never a reason to stop evaluating.

use super::plan::PlanPeriods;
use super::Problem;
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
    let day = |e: &Event| e.at.format("%Y-%m-%d").to_string();
    if let Some(icpc) = known.iter().find(|e| e.kind == EventKind::IcpcHeld) {
        let strategy_before = known
            .iter()
            .any(|e| e.kind == EventKind::StrategyDiscussionHeld && e.at <= icpc.at);
        if !strategy_before {
            problems.push(Problem {
                code: "icpc-without-strategy-discussion".into(),
                message: format!(
                    "Case {} records an initial child protection conference on {} with no strategy discussion before it. \
                     Record the strategy discussion (or correct the conference's date) so the timescales can be checked.",
                    case.reference,
                    day(icpc)
                ),
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
            message: format!(
                "Case {} records {} on {} but no initial conference that started a child protection plan before it. \
                 Record the ICPC (with outcome \"plan\") so the plan's timescales can be checked.",
                case.reference,
                e.kind,
                day(e)
            ),
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
            message: format!(
                "Case {} came from the children-in-need census, which names no workers, and no team \
                 manager is recorded for it. Add the child to the census role mapping (or record \
                 the case's roles) so its notices reach the right people.",
                case.reference
            ),
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
                message: format!(
                    "Case {}: the census gives {target} as the initial conference target for the \
                     section 47 enquiry that started on {}, but cpwatch's 15 working days end on \
                     {ours}. One of the two calendars is wrong: check the bank holidays and closure \
                     days of the case system and of cpwatch's partnership configuration.",
                    case.reference,
                    cal.local_date(e.at),
                ),
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
