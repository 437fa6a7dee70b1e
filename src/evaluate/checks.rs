//! Histories that are well-formed but do not make sense: reported as data-quality notices,
//! never a reason to stop evaluating.

use super::plan::PlanPeriods;
use super::Problem;
use crate::domain::{Case, Event, EventKind};

pub fn check(case: &Case, known: &[&Event], plan: &PlanPeriods, problems: &mut Vec<Problem>) {
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
