//! `cpwatch report --format html`: one self-contained file a partnership manager can put in a
//! board paper — the census measures with their definitions, a monthly trend chart per measure
//! as inline SVG, figures by team, per-rule on-time rates, escalation figures per ladder stage
//! and the records the ladders demand. No script, no external asset, no child's name: cases
//! appear by reference only, and free text (a dispute's concern and recorded outcome, which may
//! name a child) is left out.

use super::census::{CensusFigures, Count, Measure, Month};
use super::{Log, Report};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use plotters::prelude::*;
use serde::Serialize;

const TEMPLATE: &str = include_str!("../../config/templates/report.html");

/// What the page says about the period it covers.
pub struct Heading {
    pub generated_at: DateTime<Utc>,
    /// "1 Apr 2026 to 31 Mar 2027", "all recorded history up to ...".
    pub period: String,
    pub partnerships: Vec<String>,
}

#[derive(Serialize)]
struct CountView {
    counted: usize,
    met: usize,
    percent: String,
}

impl From<Count> for CountView {
    fn from(c: Count) -> Self {
        CountView {
            counted: c.occasions,
            met: c.hits,
            percent: c
                .percent()
                .map_or_else(|| "–".into(), |p| format!("{p:.1}%")),
        }
    }
}

#[derive(Serialize)]
struct MeasureView {
    key: &'static str,
    title: &'static str,
    definition: &'static str,
    lower_is_better: bool,
    period: CountView,
    chart: Value,
    months: Vec<(String, CountView)>,
}

#[derive(Serialize)]
struct TeamView {
    team: String,
    cells: Vec<CountView>,
}

#[derive(Serialize)]
struct PartnershipView {
    name: String,
    measures: Vec<MeasureView>,
    teams: Vec<TeamView>,
}

fn partnership_view(f: &CensusFigures) -> PartnershipView {
    let measures = Measure::ALL
        .iter()
        .map(|&m| MeasureView {
            key: m.as_str(),
            title: m.title(),
            definition: m.definition(),
            lower_is_better: !m.higher_is_better(),
            period: f.period.get(m).into(),
            chart: Value::from_safe_string(trend_svg(f, m)),
            months: f
                .months
                .iter()
                .map(|mo| {
                    let c = f.by_month.get(mo).copied().unwrap_or_default().get(m);
                    (mo.label(), c.into())
                })
                .collect(),
        })
        .collect();
    let teams = f
        .by_team
        .iter()
        .map(|(team, counts)| TeamView {
            team: team.clone(),
            cells: Measure::ALL.iter().map(|&m| counts.get(m).into()).collect(),
        })
        .collect();
    PartnershipView {
        name: f.partnership.clone(),
        measures,
        teams,
    }
}

/// The monthly share for one measure as an SVG line chart (months with nothing counted are gaps).
fn trend_svg(f: &CensusFigures, m: Measure) -> String {
    let points: Vec<Option<f64>> = f
        .months
        .iter()
        .map(|mo| f.by_month.get(mo).and_then(|c| c.get(m).percent()))
        .collect();
    let mut svg = String::new();
    if draw_trend(&mut svg, &f.months, &points, m).is_err() {
        return "<p>(chart not available)</p>".into();
    }
    svg
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw_trend(
    svg: &mut String,
    months: &[Month],
    points: &[Option<f64>],
    m: Measure,
) -> DrawResult {
    let root = SVGBackend::with_string(svg, (720, 220)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = months.len().max(1) as i32;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..100f64)?;
    let labels: Vec<String> = months.iter().map(|mo| mo.label()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(months.len())
        .x_label_formatter(&|x| {
            let i = x.round() as i64;
            if (x - i as f64).abs() < 0.01 && i >= 0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_labels(6)
        .y_label_formatter(&|y| format!("{y:.0}%"))
        .label_style(("sans-serif", 11))
        .draw()?;
    let colour = if m.higher_is_better() {
        RGBColor(0x1d, 0x4e, 0x89)
    } else {
        RGBColor(0x8a, 0x3b, 0x12)
    };
    // One line per run of months that counted something.
    let mut run: Vec<(f64, f64)> = Vec::new();
    let mut runs = Vec::new();
    for (i, p) in points.iter().enumerate() {
        match p {
            Some(v) => run.push((i as f64, *v)),
            None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        runs.push(run);
    }
    for r in &runs {
        chart.draw_series(LineSeries::new(r.iter().copied(), colour.stroke_width(2)))?;
        chart.draw_series(r.iter().map(|p| Circle::new(*p, 3, colour.filled())))?;
    }
    root.present()?;
    Ok(())
}

#[derive(Serialize)]
struct RuleView {
    partnership: String,
    policy: String,
    rule: String,
    standard: String,
    decided: usize,
    on_time: usize,
    late: usize,
    overdue: usize,
    pending: usize,
    percent: String,
}

#[derive(Serialize)]
struct StageView {
    stage: u32,
    name: String,
    reached: usize,
    completed: usize,
    resolved_here: usize,
    open_here: usize,
    median_working_days: String,
    max_working_days: String,
}

#[derive(Serialize)]
struct LadderView {
    policy: String,
    title: String,
    disputes: usize,
    resolved: usize,
    open: usize,
    stages: Vec<StageView>,
}

#[derive(Serialize)]
struct EntryView {
    dispute: String,
    case: String,
    policy: String,
    escalated_on: String,
    stage: u32,
    raiser_agency: String,
    respondent_agency: String,
    status: &'static str,
}

#[derive(Serialize)]
struct LogView {
    kind: String,
    title: &'static str,
    entries: Vec<EntryView>,
}

fn ladders(r: &Report) -> Vec<LadderView> {
    r.escalation
        .iter()
        .map(|p| LadderView {
            policy: p.policy.clone(),
            title: p.title.clone(),
            disputes: p.disputes,
            resolved: p.resolved,
            open: p.open,
            stages: p
                .stages
                .iter()
                .map(|s| StageView {
                    stage: s.stage,
                    name: s.name.clone(),
                    reached: s.reached,
                    completed: s.completed,
                    resolved_here: s.resolved_here,
                    open_here: s.open_here,
                    median_working_days: s
                        .median_working_days
                        .map_or_else(|| "–".into(), |x| format!("{x:.1}")),
                    max_working_days: s
                        .max_working_days
                        .map_or_else(|| "–".into(), |x| x.to_string()),
                })
                .collect(),
        })
        .collect()
}

fn log_view(log: &Log) -> LogView {
    LogView {
        kind: log.kind.clone(),
        title: log.title,
        entries: log
            .entries
            .iter()
            .map(|e| EntryView {
                dispute: e.dispute.clone(),
                case: e.case.clone().unwrap_or_else(|| "–".into()),
                policy: e.policy.clone(),
                escalated_on: e.escalated_at.format("%d %b %Y").to_string(),
                stage: e.stage,
                raiser_agency: e.raiser_agency.clone().unwrap_or_else(|| "–".into()),
                respondent_agency: e.respondent_agency.clone().unwrap_or_else(|| "–".into()),
                status: if e.outcome == "open" {
                    "open"
                } else {
                    "resolved"
                },
            })
            .collect(),
    }
}

fn rules(r: &Report) -> Vec<RuleView> {
    r.timeliness
        .iter()
        .map(|f| RuleView {
            partnership: f.partnership.clone(),
            policy: f.policy.clone(),
            rule: f.rule.clone(),
            standard: f.standard.clone(),
            decided: f.on_time + f.late + f.overdue,
            on_time: f.on_time,
            late: f.late,
            overdue: f.overdue,
            pending: f.pending,
            percent: f
                .on_time_percent()
                .map_or_else(|| "–".into(), |p| format!("{p:.1}%")),
        })
        .collect()
}

/// The whole page.
pub fn render(r: &Report, heading: &Heading) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)?;
    let partnerships: Vec<PartnershipView> = r.census.iter().map(partnership_view).collect();
    let measure_titles: Vec<&str> = Measure::ALL.iter().map(|m| m.title()).collect();
    env.get_template("report.html")?.render(context! {
        generated_at => heading.generated_at.format("%-d %B %Y, %H:%M UTC").to_string(),
        period => heading.period,
        partnership_names => heading.partnerships,
        partnerships => partnerships,
        measure_titles => measure_titles,
        rules => rules(r),
        ladders => ladders(r),
        logs => r.logs.iter().map(log_view).collect::<Vec<_>>(),
    })
}
