//! The few sentences the evaluator still writes itself: the titles of its own notices, a
//! data-quality problem, the go-live summary's list (kept so a queued summary reads the same).
//! Everything a case-rule or dispute notice says to its readers is in the templates
//! (`config/templates/`), made from the facts the evaluator decides (`evaluate::Facts`).

pub const CASE_DATA_QUALITY_TITLE: &str = "Case data that cpwatch cannot evaluate";
pub const DISPUTE_DATA_QUALITY_TITLE: &str = "Dispute data that cpwatch cannot act on";
pub const UNDELIVERABLE_TITLE: &str = "A notice could not be delivered";

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
