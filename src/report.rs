//! `cpwatch report`: timeliness per case rule (counted by `jobs::timeliness` from the
//! evaluator's facts), the census-aligned measures (`census`, counted by `jobs::census`) and
//! escalation figures from stored disputes, formatted as text, CSV tables (`tables`) or one
//! self-contained HTML file (`html`). Pure: the command line reads the rows
//! (`store::disputes::report_disputes`) and prints.
//!
//! Escalation figures per policy: how many disputes reached each stage, how long each stage took
//! (median and maximum working days, for stages that were left or resolved), and how many were
//! resolved at / are open at each stage. Then the records the policies demand: the Liverpool
//! summary logs (cases escalated to the safeguarding leadership team, and to the LSCB), the
//! LSCB report forms, the Knowsley escalation notices and the LSCB's record of step-4 escalations
//! and outcomes (Pan-Cheshire).

pub mod census;
pub mod html;
pub mod tables;

use crate::calendar::Calendar;
use crate::evaluate::rfc3339;
use crate::policy::Catalogue;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One dispute with everything the report needs (read by `store::disputes::report_disputes`).
#[derive(Debug, Clone)]
pub struct ReportDispute {
    pub partnership: String,
    pub reference: String,
    pub case: Option<String>,
    pub policy: String,
    pub raised_by: String,
    pub raiser_agency: Option<String>,
    pub respondent: Option<String>,
    pub respondent_agency: Option<String>,
    pub subject: String,
    pub opened_at: DateTime<Utc>,
    pub stage: u32,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_stage: Option<u32>,
    pub outcome: Option<String>,
    /// (from, to, at, why), oldest first.
    pub history: Vec<(Option<u32>, u32, DateTime<Utc>, String)>,
    /// (kind, stage, at).
    pub records: Vec<(String, u32, DateTime<Utc>)>,
}

/// One stage of one policy.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFigures {
    pub stage: u32,
    pub name: String,
    /// Disputes that entered the stage.
    pub reached: usize,
    /// Disputes that left it (moved on or were resolved in it): the ones with a duration.
    pub completed: usize,
    pub median_working_days: Option<f64>,
    pub max_working_days: Option<i64>,
    pub resolved_here: usize,
    pub open_here: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFigures {
    pub policy: String,
    pub title: String,
    pub disputes: usize,
    pub open: usize,
    pub resolved: usize,
    pub stages: Vec<StageFigures>,
}

/// One line of a log or record the policies demand.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub dispute: String,
    pub case: Option<String>,
    pub policy: String,
    /// When it was escalated to the log's level, and the highest stage it reached there.
    pub escalated_at: DateTime<Utc>,
    pub stage: u32,
    pub raised_by: String,
    pub raiser_agency: Option<String>,
    pub respondent_agency: Option<String>,
    pub subject: String,
    /// The recorded outcome, "resolved" without one, or "open".
    pub outcome: String,
}

/// A log or record, by its record kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub kind: String,
    pub title: &'static str,
    pub entries: Vec<LogEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Per partnership and standards rule: how its occurrences stand.
    pub timeliness: Vec<RuleFigures>,
    /// Per partnership: the census-aligned measures (filled by the caller after `build`).
    pub census: Vec<census::CensusFigures>,
    pub escalation: Vec<PolicyFigures>,
    pub logs: Vec<Log>,
}

/// One standards rule in one partnership: its occurrences by outcome.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleFigures {
    pub partnership: String,
    pub policy: String,
    pub rule: String,
    pub standard: String,
    pub occurrences: usize,
    pub on_time: usize,
    pub late: usize,
    pub overdue: usize,
    pub pending: usize,
    pub cancelled: usize,
    /// Median of (done − deadline) over the late ones, in days.
    pub median_days_late: Option<f64>,
}

impl RuleFigures {
    /// On time as a share of those decided (on time, late or overdue), in percent.
    pub fn on_time_percent(&self) -> Option<f64> {
        let decided = self.on_time + self.late + self.overdue;
        (decided > 0).then(|| 100.0 * self.on_time as f64 / decided as f64)
    }
}

/// Counts occurrence facts as they stream past, one partnership and policy at a time.
pub struct TimelinessTally {
    partnership: String,
    policy: String,
    rules: Vec<(String, String)>,
    counts: BTreeMap<String, (RuleFigures, Vec<i64>)>,
}

impl TimelinessTally {
    pub fn new(partnership: &str, policy: &crate::policy::StandardsPolicy) -> Self {
        TimelinessTally {
            partnership: partnership.to_owned(),
            policy: policy.id.clone(),
            rules: policy
                .rules
                .iter()
                .map(|r| (r.id.clone(), r.standard.clone()))
                .collect(),
            counts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, fact: &crate::evaluate::OccurrenceFact) {
        use crate::evaluate::Timeliness::*;
        let (f, late) = self.counts.entry(fact.rule.clone()).or_default();
        f.occurrences += 1;
        match fact.status {
            OnTime => f.on_time += 1,
            Late => {
                f.late += 1;
                if let Some(done) = fact.done_at {
                    late.push((done - fact.deadline).num_minutes());
                }
            }
            Overdue => f.overdue += 1,
            Pending => f.pending += 1,
            Cancelled => f.cancelled += 1,
        }
    }

    /// Every rule of the policy, in the policy's order, occurrences or not.
    pub fn finish(mut self) -> Vec<RuleFigures> {
        self.rules
            .iter()
            .map(|(rule, standard)| {
                let (mut f, mut late) = self.counts.remove(rule).unwrap_or_default();
                late.sort_unstable();
                f.median_days_late = median(&late).map(|m| m / (24.0 * 60.0));
                RuleFigures {
                    partnership: self.partnership.clone(),
                    policy: self.policy.clone(),
                    rule: rule.clone(),
                    standard: standard.clone(),
                    ..f
                }
            })
            .collect()
    }
}

const LOGS: &[(&str, &str)] = &[
    (
        "summary_log.safeguarding_leadership_team",
        "Summary log: cases escalated to the safeguarding leadership team (stage 2 and above)",
    ),
    (
        "summary_log.lscb",
        "Summary log: cases escalated to the LSCB (Multi-Agency Resolution Levels 3 and 4)",
    ),
    (
        "lscb_report_form",
        "LSCB report forms due (Multi-Agency Resolution Levels 3 and 4)",
    ),
    (
        "escalation_notice",
        "Escalation Notices (senior manager stage)",
    ),
    (
        "step4_record",
        "LSCB record of step-4 escalations and outcomes",
    ),
];

/// Build the report from the stored disputes and the case rules' `timeliness` figures (from
/// `jobs::timeliness::collect`). `calendar_of` gives a partnership's working-day calendar.
pub fn build<'c>(
    disputes: &[ReportDispute],
    catalogue: &Catalogue,
    calendar_of: &dyn Fn(&str) -> Option<&'c Calendar>,
    timeliness: Vec<RuleFigures>,
) -> Report {
    let mut by_policy: BTreeMap<&str, Vec<&ReportDispute>> = BTreeMap::new();
    for d in disputes {
        by_policy.entry(d.policy.as_str()).or_default().push(d);
    }
    let escalation = by_policy
        .iter()
        .map(|(policy, list)| policy_figures(policy, list, catalogue, calendar_of))
        .collect();
    let logs = LOGS
        .iter()
        .map(|(kind, title)| log(kind, title, disputes))
        .collect();
    Report {
        timeliness,
        census: Vec::new(),
        escalation,
        logs,
    }
}

/// One policy's disputes: how many reached each stage, how long each stage took, where they
/// were resolved or are open.
fn policy_figures<'c>(
    policy: &str,
    list: &[&ReportDispute],
    catalogue: &Catalogue,
    calendar_of: &dyn Fn(&str) -> Option<&'c Calendar>,
) -> PolicyFigures {
    let ladder = catalogue.ladders.get(policy);
    let n_stages = ladder.map_or_else(
        || list.iter().map(|d| d.stage).max().unwrap_or(1),
        |l| l.last_stage(),
    );
    let mut stages: Vec<StageFigures> = (1..=n_stages)
        .map(|s| StageFigures {
            stage: s,
            name: ladder
                .and_then(|l| l.stage(s))
                .map(|st| st.name.clone())
                .unwrap_or_default(),
            reached: 0,
            completed: 0,
            median_working_days: None,
            max_working_days: None,
            resolved_here: 0,
            open_here: 0,
        })
        .collect();
    let mut durations: Vec<Vec<i64>> = vec![Vec::new(); n_stages as usize];
    for d in list {
        count_stages(d, calendar_of(&d.partnership), &mut stages, &mut durations);
    }
    for (fig, mut ds) in stages.iter_mut().zip(durations) {
        ds.sort_unstable();
        fig.max_working_days = ds.last().copied();
        fig.median_working_days = median(&ds);
    }
    PolicyFigures {
        policy: policy.to_owned(),
        title: ladder.map(|l| l.title.clone()).unwrap_or_default(),
        disputes: list.len(),
        open: list.iter().filter(|d| d.resolved_at.is_none()).count(),
        resolved: list.iter().filter(|d| d.resolved_at.is_some()).count(),
        stages,
    }
}

/// Add one dispute's stages to the figures: reached, completed (with its working days), and
/// resolved or open where it ended.
fn count_stages(
    d: &ReportDispute,
    cal: Option<&Calendar>,
    stages: &mut [StageFigures],
    durations: &mut [Vec<i64>],
) {
    let timeline = timeline(d);
    for (i, (stage, start)) in timeline.iter().enumerate() {
        let Some(fig) = stages.get_mut(*stage as usize - 1) else {
            continue;
        };
        fig.reached += 1;
        let end = match timeline.get(i + 1) {
            Some((_, next)) => Some(*next),
            None => d.resolved_at,
        };
        if let (Some(end), Some(cal)) = (end, cal) {
            fig.completed += 1;
            let wd = cal.working_days_between(cal.local_date(*start), cal.local_date(end));
            durations[*stage as usize - 1].push(wd.max(0));
        }
        if i + 1 == timeline.len() {
            if d.resolved_at.is_some() {
                fig.resolved_here += 1;
            } else {
                fig.open_here += 1;
            }
        }
    }
}

/// The log or record of one kind: each dispute that has it, when it first reached it.
fn log(kind: &str, title: &'static str, disputes: &[ReportDispute]) -> Log {
    let mut entries: Vec<LogEntry> = Vec::new();
    for d in disputes {
        let hits: Vec<&(String, u32, DateTime<Utc>)> =
            d.records.iter().filter(|r| r.0 == kind).collect();
        let Some(first) = hits.iter().min_by_key(|r| r.2) else {
            continue;
        };
        entries.push(LogEntry {
            dispute: d.reference.clone(),
            case: d.case.clone(),
            policy: d.policy.clone(),
            escalated_at: first.2,
            stage: hits.iter().map(|r| r.1).max().unwrap_or(first.1),
            raised_by: d.raised_by.clone(),
            raiser_agency: d.raiser_agency.clone(),
            respondent_agency: d.respondent_agency.clone(),
            subject: d.subject.clone(),
            outcome: match (&d.resolved_at, &d.outcome) {
                (None, _) => "open".into(),
                (Some(_), Some(o)) => o.clone(),
                (Some(_), None) => "resolved".into(),
            },
        });
    }
    entries.sort_by(|a, b| (a.escalated_at, &a.dispute).cmp(&(b.escalated_at, &b.dispute)));
    Log {
        kind: kind.to_owned(),
        title,
        entries,
    }
}

/// (stage, entered at) from the opening through the recorded moves.
fn timeline(d: &ReportDispute) -> Vec<(u32, DateTime<Utc>)> {
    let mut t = vec![(1, d.opened_at)];
    for (_, to, at, _) in &d.history {
        t.push((*to, *at));
    }
    t
}

fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    Some(if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0
    })
}

fn opt_f(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.1}"))
}

fn opt_i(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |x| x.to_string())
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    timeliness_text(&mut out, &r.timeliness);
    let _ = writeln!(out);
    census_text(&mut out, &r.census);
    let _ = writeln!(out);
    escalation_text(&mut out, &r.escalation);
    for log in &r.logs {
        log_text(&mut out, log);
    }
    out
}

fn timeliness_text(out: &mut String, figures: &[RuleFigures]) {
    let _ = writeln!(
        out,
        "Timeliness per rule (on time % = on time / (on time + late + overdue))"
    );
    if figures.is_empty() {
        let _ = writeln!(out, "  (no cases recorded)");
    }
    let mut current = None;
    for f in figures {
        if current != Some((&f.partnership, &f.policy)) {
            current = Some((&f.partnership, &f.policy));
            let _ = writeln!(out, "\n{} ({})", f.partnership, f.policy);
            let _ = writeln!(
                out,
                "  {:<32} {:>4} {:>6} {:>7} {:>5} {:>7} {:>7} {:>9} {:>8} {:>10}",
                "rule",
                "std",
                "total",
                "on time",
                "late",
                "overdue",
                "pending",
                "cancelled",
                "on time%",
                "median late"
            );
        }
        let _ = writeln!(
            out,
            "  {:<32} {:>4} {:>6} {:>7} {:>5} {:>7} {:>7} {:>9} {:>8} {:>10}",
            f.rule,
            f.standard,
            f.occurrences,
            f.on_time,
            f.late,
            f.overdue,
            f.pending,
            f.cancelled,
            f.on_time_percent()
                .map_or("-".into(), |p| format!("{p:.0}")),
            f.median_days_late
                .map_or("-".into(), |d| format!("{d:.1} d")),
        );
    }
}

fn escalation_text(out: &mut String, policies: &[PolicyFigures]) {
    let _ = writeln!(out, "Escalation figures per policy");
    if policies.is_empty() {
        let _ = writeln!(out, "  (no disputes recorded)");
    }
    for p in policies {
        let _ = writeln!(
            out,
            "\n{} ({}): {} dispute(s), {} resolved, {} open",
            p.policy, p.title, p.disputes, p.resolved, p.open
        );
        let _ = writeln!(
            out,
            "  stage  reached  resolved  open  median wd  max wd  name"
        );
        for s in &p.stages {
            let _ = writeln!(
                out,
                "  {:>5}  {:>7}  {:>8}  {:>4}  {:>9}  {:>6}  {}",
                s.stage,
                s.reached,
                s.resolved_here,
                s.open_here,
                opt_f(s.median_working_days),
                opt_i(s.max_working_days),
                s.name
            );
        }
    }
}

fn log_text(out: &mut String, log: &Log) {
    let _ = writeln!(out, "\n{}", log.title);
    if log.entries.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for e in &log.entries {
        let _ = writeln!(
            out,
            "  {}  dispute {}  case {}  {}  stage {}  raised by {} ({}) with {}  concern: {}  outcome: {}",
            rfc3339(e.escalated_at),
            e.dispute,
            e.case.as_deref().unwrap_or("-"),
            e.policy,
            e.stage,
            e.raised_by,
            e.raiser_agency.as_deref().unwrap_or("-"),
            e.respondent_agency.as_deref().unwrap_or("-"),
            e.subject,
            e.outcome
        );
    }
}

fn census_text(out: &mut String, figures: &[census::CensusFigures]) {
    let _ = writeln!(
        out,
        "Census-aligned measures over the period (definitions: README, \"Census-aligned timeliness\")"
    );
    if figures.is_empty() {
        let _ = writeln!(out, "  (no cases recorded)");
    }
    for f in figures {
        let _ = writeln!(out, "\n{}", f.partnership);
        let _ = writeln!(
            out,
            "  {:<62} {:>7} {:>5} {:>7}",
            "measure", "counted", "met", "%"
        );
        for m in census::Measure::ALL {
            let c = f.period.get(m);
            let _ = writeln!(
                out,
                "  {:<62} {:>7} {:>5} {:>7}",
                m.title(),
                c.occasions,
                c.hits,
                c.percent().map_or("-".into(), |p| format!("{p:.1}"))
            );
        }
    }
}
