//! The sentences the evaluator puts into notices of its own (beyond a policy's own `action`
//! texts): why a dispute moved, what a stage's records demand, what a reminder or the repeated
//! notice after the last stage says. One table, so the ladder logic reads without prose.

use crate::evaluate::dispute::Why;
use crate::policy::ladder::RecordKind;

pub const CASE_DATA_QUALITY_TITLE: &str = "Case data that cpwatch cannot evaluate";
pub const DISPUTE_DATA_QUALITY_TITLE: &str = "Dispute data that cpwatch cannot act on";
pub const UNDELIVERABLE_TITLE: &str = "A notice could not be delivered";

/// Why the dispute reached this stage, said first.
pub fn why_moved(why: Option<Why>) -> Option<&'static str> {
    match why {
        Some(Why::TimescaleLapsed) => Some(
            "The previous stage's timescale lapsed with the disagreement unresolved, so it has moved to you.",
        ),
        Some(Why::EscalatedByHand) => Some("The disagreement was escalated to this stage by hand."),
        Some(Why::ImmediateRisk) | None => None,
    }
}

pub const IMMEDIATE_RISK: &str =
    "A child is considered at immediate risk of significant harm: act today.";

/// The stages passed over because their people are one person.
pub fn passed_over(stages: &[u32]) -> String {
    let list: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
    format!(
        " (Stage {} was passed over: its people are one person.)",
        list.join(", ")
    )
}

/// What a record the stage demands means for its people.
pub fn record_demand(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::EscalationNotice => {
            " An Escalation Notice (record of discussion re escalation) must be completed."
        }
        RecordKind::LscbReportForm => {
            " The LSCB report form (Multi-Agency Resolution Levels 3 and 4) must be completed and sent to the LSCB administrator."
        }
        RecordKind::SummaryLogSafeguardingLeadershipTeam => {
            " The case goes on the summary log of cases escalated to the safeguarding leadership team."
        }
        RecordKind::SummaryLogLscb => {
            " The case goes on the summary log of cases escalated to the LSCB."
        }
        RecordKind::Step4Record => " The LSCB records this step-4 escalation and its outcome.",
        RecordKind::LateRaising | RecordKind::StageSkipped => "",
    }
}

pub fn stage_reminder(action: &str) -> String {
    format!(
        "Reminder: this stage of the disagreement is due to be resolved by its deadline, \
         after which it moves on by itself. {action}"
    )
}

pub fn after_last_stage(policy_title: &str, stage_name: &str, every: &str) -> String {
    format!(
        "The last stage of the {policy_title} ({stage_name}) lapsed with the disagreement unresolved. It stays open, \
         and you are told every {every} until its resolution is recorded."
    )
}

pub fn resolved(stage: u32, stage_name: &str, outcome: &str) -> String {
    format!(
        "The disagreement was resolved at stage {stage} ({stage_name}): {outcome}. Record the outcome on the child's file."
    )
}

pub fn confirm_outcome(stage: u32, stage_name: &str, outcome: &str, within: &str) -> String {
    format!(
        "The disagreement was resolved at stage {stage} ({stage_name}): {outcome}. As the receiving manager, confirm \
         the outcome in writing to the agency that raised the concern within {within}, and record \
         that you have (outcome_confirmed)."
    )
}

pub fn confirm_outcome_overdue(stage: u32, within: &str) -> String {
    format!(
        "The written confirmation of the outcome of the disagreement (resolved at stage {stage}) was due \
         within {within} of its resolution and is not recorded. Confirm it in writing to the agency \
         that raised the concern."
    )
}

pub fn family_outcome(stage: u32, action: &str) -> String {
    format!("The disagreement was resolved at stage {stage}. {action}")
}

pub fn no_cause_for_concern_recipient(agency: &str, rule: &str) -> String {
    format!(
        "A cause for concern letter about agency {agency} ({rule}) has nobody to go to: record the agency's \
         senior manager, or the line manager of the person it sends to conferences."
    )
}

/// The go-live summary's title (after "Already overdue when cpwatch started: "): how much.
pub fn go_live_title(timescales: usize, cases: usize) -> String {
    let s = if timescales == 1 { "" } else { "s" };
    format!("{timescales} timescale{s} on {cases} of your cases")
}

/// One lapsed timescale of the go-live summary.
pub fn go_live_line(deadline: &str, rule: &str, standard: &str, title: &str) -> String {
    format!("  - due {deadline}: {title} ({rule}, standard {standard})")
}

/// The go-live summary: what it is, then the cases and their lapsed timescales, one a line.
pub fn go_live_summary(started: &str, lines: &[String]) -> String {
    format!(
        "cpwatch started watching these cases on {started}. The timescales below had already lapsed \
         by then and are not recorded as done. cpwatch sends no separate reminder or overdue notice \
         for them: please check each one, and record it in the case system when it is done.\n\n{}",
        lines.join("\n")
    )
}
