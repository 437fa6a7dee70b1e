//! What `cpwatch evaluate` prints about a pass: one line per notice it newly queued (a dry run:
//! would newly queue) and per stage change it made, or, with `--list-due`, every notice due at
//! that instant saying whether it was queued already. JSON lines (the command-line contract) or
//! the same in words; then a closing summary.

use crate::evaluate::dispute::StageChange;
use crate::evaluate::{rfc3339, Notice, Recipient};
use crate::jobs::evaluation::{Decided, PassReport};
use chrono::{DateTime, Utc};

/// How the lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub json: bool,
    pub dry_run: bool,
    /// Every notice due, queued already or not (`--list-due`).
    pub list_due: bool,
}

/// The line for one decision, or None when this style leaves it out (a notice queued before,
/// unless listing everything due).
pub fn line(d: Decided<'_>, style: Style) -> Option<String> {
    match d {
        Decided::Notice { notice, already } => {
            if already && !style.list_due {
                return None;
            }
            Some(if style.json {
                notice_json(notice, already, style)
            } else {
                notice_text(notice, already, style)
            })
        }
        Decided::StageChange(c) => Some(if style.json {
            c.to_json().to_string()
        } else {
            stage_change_text(c, style)
        }),
    }
}

fn notice_json(n: &Notice, already: bool, style: Style) -> String {
    let mut v = n.to_json();
    if style.list_due {
        v["queued"] = serde_json::json!(already);
    }
    v.to_string()
}

/// What happened to a notice, in words.
fn status(already: bool, style: Style) -> &'static str {
    match (already, style.dry_run) {
        (true, _) => "already queued",
        (false, false) => "queued",
        (false, true) if style.list_due => "not queued yet",
        (false, true) => "would queue",
    }
}

fn notice_text(n: &Notice, already: bool, style: Style) -> String {
    let emails = |list: &[Recipient]| {
        list.iter()
            .map(|r| r.email.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let about = match (&n.case, &n.dispute) {
        (_, Some(d)) => format!("dispute {d}"),
        (Some(c), None) => format!("case {c}"),
        (None, None) => format!("partnership {}", n.partnership),
    };
    format!(
        "{:<15} {:<18} {:<32} {:<17} due {}  to {}{}",
        status(already, style),
        n.kind.as_str(),
        n.rule,
        about,
        rfc3339(n.due),
        emails(&n.to),
        if n.cc.is_empty() {
            String::new()
        } else {
            format!("  cc {}", emails(&n.cc))
        }
    )
}

fn stage_change_text(c: &StageChange, style: Style) -> String {
    format!(
        "{:<15} {:<18} {:<32} {:<17} stage {} -> {} at {} ({})",
        if style.dry_run { "would move" } else { "moved" },
        "stage_change",
        c.policy,
        format!("dispute {}", c.dispute.as_str()),
        c.from,
        c.to,
        rfc3339(c.at),
        c.why.as_str()
    )
}

/// The closing summary of the text form.
pub fn summary(report: &PassReport, now: DateTime<Utc>, style: Style) -> String {
    let mut out = String::new();
    if report.disputes > 0 {
        out.push_str(&format!(
            "{} dispute(s) evaluated, {} stage change(s)\n",
            report.disputes, report.stage_changes
        ));
    }
    out.push_str(&format!(
        "{} case(s) evaluated at {}, {} notification(s), {} new message(s) queued, \
         {} queued message(s) withdrawn{}\n",
        report.cases,
        rfc3339(now),
        report.notifications,
        report.queued,
        report.cancelled,
        if style.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    ));
    let verb = if style.dry_run {
        "would be newly queued"
    } else {
        "newly queued"
    };
    out.push_str(&format!("{} notice(s) {verb}", report.new_notices));
    if report.go_live_summaries > 0 {
        out.push_str(&format!(
            "; {} go-live summary notice(s) to team managers",
            report.go_live_summaries
        ));
    }
    out.push('\n');
    if !report.held_elsewhere.is_empty() {
        out.push_str(&format!(
            "partnership(s) left to another cpwatch evaluating them now: {}\n",
            report.held_elsewhere.join(", ")
        ));
    }
    out
}
