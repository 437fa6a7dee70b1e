//! The report as named CSV tables, one table per file (`--out DIR`) or per option
//! (`--table NAME`), each with a single header row. Text that came from people (names, free
//! text, ids) is made safe to open in a spreadsheet: a cell starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return gets a leading apostrophe, so it is shown and never run as a
//! formula.

use super::census::{CensusFigures, Count, Measure};
use super::Report;
use crate::evaluate::rfc3339;

/// The tables, by the name `--table` takes, with what each holds.
pub const TABLES: &[(&str, &str)] = &[
    ("timeliness", "timeliness per case rule and partnership"),
    ("census", "census-aligned measures over the period"),
    (
        "census_by_team",
        "census-aligned measures over the period, per team",
    ),
    (
        "census_by_month",
        "census-aligned measures per month, the 12 months ending with the period",
    ),
    ("escalation_stages", "disputes per ladder stage"),
    ("records", "the records the ladders demand"),
];

/// A cell of text from outside cpwatch, made safe for a spreadsheet.
pub fn safe_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(String::new, |p| format!("{p:.1}"))
}

/// One table as CSV text, or None for an unknown name.
pub fn table(r: &Report, name: &str) -> Option<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let rows: Vec<Vec<String>> = match name {
        "timeliness" => timeliness(r),
        "census" => census(&r.census),
        "census_by_team" => census_by_team(&r.census),
        "census_by_month" => census_by_month(&r.census),
        "escalation_stages" => escalation_stages(r),
        "records" => records(r),
        _ => return None,
    };
    for row in rows {
        // Writing to a Vec cannot fail; a failure would be a bug in the csv crate.
        w.write_record(&row).ok()?;
    }
    String::from_utf8(w.into_inner().ok()?).ok()
}

fn timeliness(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "partnership",
        "policy",
        "rule",
        "standard",
        "occurrences",
        "on_time",
        "late",
        "overdue",
        "pending",
        "cancelled",
        "on_time_percent",
        "median_days_late",
    ]
    .map(String::from)
    .to_vec()];
    for f in &r.timeliness {
        rows.push(vec![
            safe_text(&f.partnership),
            safe_text(&f.policy),
            safe_text(&f.rule),
            safe_text(&f.standard),
            f.occurrences.to_string(),
            f.on_time.to_string(),
            f.late.to_string(),
            f.overdue.to_string(),
            f.pending.to_string(),
            f.cancelled.to_string(),
            pct(f.on_time_percent()),
            f.median_days_late
                .map_or(String::new(), |d| format!("{d:.2}")),
        ]);
    }
    rows
}

fn count_cells(c: Count) -> [String; 3] {
    [
        c.occasions.to_string(),
        c.hits.to_string(),
        pct(c.percent()),
    ]
}

fn census(figures: &[CensusFigures]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "partnership",
        "measure",
        "title",
        "counted",
        "met",
        "percent",
        "definition",
    ]
    .map(String::from)
    .to_vec()];
    for f in figures {
        for m in Measure::ALL {
            let [n, hits, p] = count_cells(f.period.get(m));
            rows.push(vec![
                safe_text(&f.partnership),
                m.as_str().into(),
                m.title().into(),
                n,
                hits,
                p,
                m.definition().into(),
            ]);
        }
    }
    rows
}

fn census_by_team(figures: &[CensusFigures]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "partnership",
        "team",
        "measure",
        "counted",
        "met",
        "percent",
    ]
    .map(String::from)
    .to_vec()];
    for f in figures {
        for (team, counts) in &f.by_team {
            for m in Measure::ALL {
                let [n, hits, p] = count_cells(counts.get(m));
                rows.push(vec![
                    safe_text(&f.partnership),
                    safe_text(team),
                    m.as_str().into(),
                    n,
                    hits,
                    p,
                ]);
            }
        }
    }
    rows
}

fn census_by_month(figures: &[CensusFigures]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "partnership",
        "month",
        "measure",
        "counted",
        "met",
        "percent",
    ]
    .map(String::from)
    .to_vec()];
    for f in figures {
        for month in &f.months {
            let counts = f.by_month.get(month).copied().unwrap_or_default();
            for m in Measure::ALL {
                let [n, hits, p] = count_cells(counts.get(m));
                rows.push(vec![
                    safe_text(&f.partnership),
                    month.to_string(),
                    m.as_str().into(),
                    n,
                    hits,
                    p,
                ]);
            }
        }
    }
    rows
}

fn escalation_stages(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "policy",
        "stage",
        "stage_name",
        "reached",
        "completed",
        "resolved_here",
        "open_here",
        "median_working_days",
        "max_working_days",
    ]
    .map(String::from)
    .to_vec()];
    for p in &r.escalation {
        for s in &p.stages {
            rows.push(vec![
                safe_text(&p.policy),
                s.stage.to_string(),
                safe_text(&s.name),
                s.reached.to_string(),
                s.completed.to_string(),
                s.resolved_here.to_string(),
                s.open_here.to_string(),
                s.median_working_days
                    .map_or(String::new(), |x| format!("{x:.1}")),
                s.max_working_days.map_or(String::new(), |x| x.to_string()),
            ]);
        }
    }
    rows
}

fn records(r: &Report) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "record",
        "dispute",
        "case",
        "policy",
        "escalated_at",
        "stage",
        "raised_by",
        "raiser_agency",
        "respondent_agency",
        "concern",
        "outcome",
    ]
    .map(String::from)
    .to_vec()];
    for log in &r.logs {
        for e in &log.entries {
            rows.push(vec![
                log.kind.clone(),
                safe_text(&e.dispute),
                safe_text(e.case.as_deref().unwrap_or("")),
                safe_text(&e.policy),
                rfc3339(e.escalated_at),
                e.stage.to_string(),
                safe_text(&e.raised_by),
                safe_text(e.raiser_agency.as_deref().unwrap_or("")),
                safe_text(e.respondent_agency.as_deref().unwrap_or("")),
                safe_text(&e.subject),
                safe_text(&e.outcome),
            ]);
        }
    }
    rows
}
