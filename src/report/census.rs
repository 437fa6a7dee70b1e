//! Census-aligned timeliness: the measures the children-in-need census and Ofsted inspections
//! use, computed from a case's events the way the census computes them from its dates — dates
//! only (no times of day), working days on the bank-holiday calendar alone, the start day not
//! counted. Pure: the caller streams the cases and gives each its team and census calendar.
//!
//! Each measure is a count of *occasions* (an ICPC held, a review held, an assessment
//! concluded, a plan ended, a plan started) placed in a period and a month by the date of that
//! occasion, and how many of them *hit* the measure's condition. README.md ("Census-aligned
//! timeliness") states each definition beside its figure; `Measure::definition` holds the same
//! words for the CSV and HTML reports.

use crate::calendar::Calendar;
use crate::domain::{Case, Event, EventKind};
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use std::collections::BTreeMap;
use std::fmt;

/// The census measures, in the order the report shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// Initial conferences held within 15 working days of the section 47 start.
    Icpc15WorkingDays,
    /// Review conferences held on time (first within 3 months, later within 6 months).
    ReviewsOnTime,
    /// Assessments concluded within 45 working days of the referral.
    Assessments45WorkingDays,
    /// Plans ended that had lasted 2 years or more.
    PlansTwoYearsOrMore,
    /// Plans started that were the child's second or later.
    SecondOrLaterPlans,
}

impl Measure {
    pub const ALL: [Measure; 5] = [
        Measure::Icpc15WorkingDays,
        Measure::ReviewsOnTime,
        Measure::Assessments45WorkingDays,
        Measure::PlansTwoYearsOrMore,
        Measure::SecondOrLaterPlans,
    ];

    /// A stable name for CSV columns and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Icpc15WorkingDays => "icpc_within_15_working_days",
            Measure::ReviewsOnTime => "reviews_on_time",
            Measure::Assessments45WorkingDays => "assessments_within_45_working_days",
            Measure::PlansTwoYearsOrMore => "plans_ended_lasting_2_years_or_more",
            Measure::SecondOrLaterPlans => "plans_started_second_or_later",
        }
    }

    /// The figure's name as a board paper would put it.
    pub fn title(self) -> &'static str {
        match self {
            Measure::Icpc15WorkingDays => {
                "Initial child protection conferences within 15 working days"
            }
            Measure::ReviewsOnTime => "Child protection reviews held on time",
            Measure::Assessments45WorkingDays => "Assessments concluded within 45 working days",
            Measure::PlansTwoYearsOrMore => "Plans ended that lasted 2 years or more",
            Measure::SecondOrLaterPlans => "Plans started that were a second or later plan",
        }
    }

    /// What is counted and what the percentage means.
    pub fn definition(self) -> &'static str {
        match self {
            Measure::Icpc15WorkingDays => {
                "Of the initial child protection conferences held in the period, the share held \
                 within 15 working days of the start of the section 47 enquiry (the strategy \
                 discussion that initiated it), the start day not counted, working days being \
                 Monday to Friday less bank holidays."
            }
            Measure::ReviewsOnTime => {
                "Of the review conferences held in the period, the share held on time: the first \
                 review of a plan no later than 3 months after the initial conference, each \
                 later review no later than 6 months after the previous review (calendar months)."
            }
            Measure::Assessments45WorkingDays => {
                "Of the assessments concluded in the period, the share concluded within 45 \
                 working days of the referral that started them, the referral day not counted."
            }
            Measure::PlansTwoYearsOrMore => {
                "Of the child protection plans that ended in the period, the share that had \
                 lasted 2 years or more (lower is better)."
            }
            Measure::SecondOrLaterPlans => {
                "Of the child protection plans that started in the period, the share that were \
                 the child's second or later plan, as far as cpwatch's records go (lower is \
                 better)."
            }
        }
    }

    /// Whether a high share is good (timeliness) or a concern (long or repeat plans).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Measure::Icpc15WorkingDays | Measure::ReviewsOnTime | Measure::Assessments45WorkingDays
        )
    }
}

/// One occasion a measure counts, on one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occasion {
    pub measure: Measure,
    /// The instant that places it in a period (the conference, the end of the plan...).
    pub at: DateTime<Utc>,
    /// Its local date: the month it is counted in.
    pub date: NaiveDate,
    /// Met the measure's condition (on time; lasted 2 years; a second plan).
    pub hit: bool,
}

/// Every occasion of every measure on `case`, from its events (closed cases included).
/// `cal` is the census calendar: the division's bank holidays, no local closure days.
pub fn occasions(case: &Case, cal: &Calendar) -> Vec<Occasion> {
    let events: Vec<&Event> = case.events.iter().collect();
    let mut out = Vec::new();
    icpcs(&events, cal, &mut out);
    assessments(&events, cal, &mut out);
    plans(&events, cal, &mut out);
    out
}

fn occasion(measure: Measure, e: &Event, cal: &Calendar, hit: bool) -> Occasion {
    Occasion {
        measure,
        at: e.at,
        date: cal.local_date(e.at),
        hit,
    }
}

/// Each ICPC held, against the latest section 47 start before it that no earlier ICPC took.
fn icpcs(events: &[&Event], cal: &Calendar, out: &mut Vec<Occasion>) {
    let mut start: Option<NaiveDate> = None;
    for e in events {
        match e.kind {
            EventKind::StrategyDiscussionHeld
                if e.data.get("s47_initiated") == Some(&serde_json::Value::Bool(true)) =>
            {
                start = Some(cal.local_date(e.at));
            }
            EventKind::IcpcHeld => {
                if let Some(s) = start.take() {
                    let hit = cal.local_date(e.at) <= cal.add_working_days(s, 15);
                    out.push(occasion(Measure::Icpc15WorkingDays, e, cal, hit));
                }
            }
            _ => {}
        }
    }
}

/// Each assessment concluded, against the latest referral before it that no earlier
/// assessment took.
fn assessments(events: &[&Event], cal: &Calendar, out: &mut Vec<Occasion>) {
    let mut referral: Option<NaiveDate> = None;
    for e in events {
        match e.kind {
            EventKind::ReferralReceived => referral = Some(cal.local_date(e.at)),
            EventKind::AssessmentCompleted => {
                if let Some(r) = referral.take() {
                    let hit = cal.local_date(e.at) <= cal.add_working_days(r, 45);
                    out.push(occasion(Measure::Assessments45WorkingDays, e, cal, hit));
                }
            }
            _ => {}
        }
    }
}

/// One plan's course: its start, the last conference (for the next review's deadline), how
/// many reviews so far.
struct OpenPlan {
    start: NaiveDate,
    last_conference: NaiveDate,
    reviews: u32,
}

/// Plans: each start (second or later?), each review (on time?), each end (2 years or more?).
fn plans(events: &[&Event], cal: &Calendar, out: &mut Vec<Occasion>) {
    let mut open: Option<OpenPlan> = None;
    let mut plans_before = 0;
    for e in events {
        let date = cal.local_date(e.at);
        match (e.kind, e.text("outcome"), &mut open) {
            (EventKind::IcpcHeld, Some("plan"), None) => {
                out.push(occasion(
                    Measure::SecondOrLaterPlans,
                    e,
                    cal,
                    plans_before > 0,
                ));
                plans_before += 1;
                open = Some(OpenPlan {
                    start: date,
                    last_conference: date,
                    reviews: 0,
                });
            }
            (EventKind::RcpcHeld, outcome, Some(plan)) => {
                let months = if plan.reviews == 0 { 3 } else { 6 };
                let hit = date <= add_months(plan.last_conference, months);
                out.push(occasion(Measure::ReviewsOnTime, e, cal, hit));
                plan.reviews += 1;
                plan.last_conference = date;
                if outcome == Some("end") {
                    end_plan(&mut open, e, cal, out);
                }
            }
            (EventKind::CpPlanEnded, _, Some(_)) => end_plan(&mut open, e, cal, out),
            _ => {}
        }
    }
}

fn end_plan(open: &mut Option<OpenPlan>, e: &Event, cal: &Calendar, out: &mut Vec<Occasion>) {
    if let Some(plan) = open.take() {
        let hit = cal.local_date(e.at) >= add_months(plan.start, 24);
        out.push(occasion(Measure::PlansTwoYearsOrMore, e, cal, hit));
    }
}

/// `d` plus `n` calendar months, clamped to the month's end (31 January + 1 month = 28/29 February).
pub fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(Months::new(n))
        .unwrap_or(NaiveDate::MAX)
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(d: NaiveDate) -> Month {
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn previous(self) -> Month {
        Month::of(self.first_day() - chrono::Days::new(1))
    }

    /// The 12 months ending with `self`, oldest first.
    pub fn last_twelve(self) -> Vec<Month> {
        let mut months = vec![self];
        for _ in 1..12 {
            let earlier = months[months.len() - 1].previous();
            months.push(earlier);
        }
        months.reverse();
        months
    }

    /// "Apr 2026".
    pub fn label(self) -> String {
        self.first_day().format("%b %Y").to_string()
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// How many occasions a measure counted, and how many hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Count {
    pub occasions: usize,
    pub hits: usize,
}

impl Count {
    fn add(&mut self, hit: bool) {
        self.occasions += 1;
        self.hits += usize::from(hit);
    }

    /// Hits as a share of occasions, in percent.
    pub fn percent(&self) -> Option<f64> {
        (self.occasions > 0).then(|| 100.0 * self.hits as f64 / self.occasions as f64)
    }
}

/// The census measures of one partnership: over the period, by team, and by month over the
/// 12 months ending with the period's last month.
#[derive(Debug, Clone, PartialEq)]
pub struct CensusFigures {
    pub partnership: String,
    pub period: Counts,
    pub by_team: BTreeMap<String, Counts>,
    pub months: Vec<Month>,
    pub by_month: BTreeMap<Month, Counts>,
}

/// One `Count` per measure, in `Measure::ALL` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts(pub [Count; 5]);

impl Counts {
    pub fn get(&self, m: Measure) -> Count {
        self.0[Measure::ALL.iter().position(|x| *x == m).unwrap_or(0)]
    }
    fn add(&mut self, o: &Occasion) {
        let i = Measure::ALL
            .iter()
            .position(|x| *x == o.measure)
            .unwrap_or(0);
        self.0[i].add(o.hit);
    }
}

/// Counts occasions case by case, for one partnership.
pub struct CensusTally {
    figures: CensusFigures,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl CensusTally {
    /// Occasions at or after `from` and before `to` count in the period and by team; the months
    /// are the 12 ending with `last_month`.
    pub fn new(
        partnership: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        last_month: Month,
    ) -> CensusTally {
        let months = last_month.last_twelve();
        CensusTally {
            figures: CensusFigures {
                partnership: partnership.to_owned(),
                period: Counts::default(),
                by_team: BTreeMap::new(),
                by_month: months.iter().map(|m| (*m, Counts::default())).collect(),
                months,
            },
            from,
            to,
        }
    }

    /// Add one case's occasions; `team` is the team the case is counted under.
    pub fn add(&mut self, team: &str, occasions: &[Occasion]) {
        for o in occasions {
            if let Some(c) = self.figures.by_month.get_mut(&Month::of(o.date)) {
                c.add(o);
            }
            let in_period = self.from.is_none_or(|f| o.at >= f) && self.to.is_none_or(|t| o.at < t);
            if in_period {
                self.figures.period.add(o);
                self.figures
                    .by_team
                    .entry(team.to_owned())
                    .or_default()
                    .add(o);
            }
        }
    }

    pub fn finish(self) -> CensusFigures {
        self.figures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CaseRef, PartnershipId};

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn event(kind: EventKind, day: &str, data: serde_json::Value) -> Event {
        Event {
            kind,
            at: date(day).and_hms_opt(10, 0, 0).unwrap().and_utc(),
            recorded_at: None,
            data: data.as_object().cloned().unwrap_or_default(),
            origin: Default::default(),
        }
    }

    #[test]
    fn months_clamp_and_the_trend_is_twelve_months_ending_with_the_last() {
        assert_eq!(add_months(date("2026-01-31"), 1), date("2026-02-28"));
        assert_eq!(add_months(date("2024-02-29"), 24), date("2026-02-28"));
        let months = Month::of(date("2026-03-15")).last_twelve();
        assert_eq!(months.len(), 12);
        assert_eq!(months[0].to_string(), "2025-04");
        assert_eq!(months[11].to_string(), "2026-03");
        assert_eq!(months[0].label(), "Apr 2025");
    }

    #[test]
    fn each_enquiry_pairs_with_its_own_conference_and_reviews_count_from_the_last_conference() {
        use serde_json::json;
        use EventKind::*;
        let cal = Calendar::new(
            chrono_tz::Europe::London,
            chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            chrono::NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            [date("2026-04-03"), date("2026-04-06")],
        );
        let s47 = json!({"s47_initiated": true});
        let case = Case {
            partnership: PartnershipId::parse("p").unwrap(),
            reference: CaseRef::parse("C-1").unwrap(),
            unborn: false,
            visit_interval_days: None,
            roles: vec![],
            events: vec![
                // Started Monday 2 March: the 15th working day after is Monday 23 March.
                event(StrategyDiscussionHeld, "2026-03-02", s47.clone()),
                event(IcpcHeld, "2026-03-23", json!({"outcome": "no_plan"})),
                // Started Thursday 26 March: Easter takes two days, so the 15th is 20 April.
                event(StrategyDiscussionHeld, "2026-03-26", s47),
                event(IcpcHeld, "2026-04-21", json!({"outcome": "plan"})),
                // The first review within 3 months (21 July), the next within 6 of that.
                event(RcpcHeld, "2026-07-21", json!({"outcome": "continue"})),
                event(RcpcHeld, "2027-01-22", json!({"outcome": "end"})),
            ],
        };
        let got: Vec<(Measure, String, bool)> = occasions(&case, &cal)
            .into_iter()
            .map(|o| (o.measure, o.date.to_string(), o.hit))
            .collect();
        use Measure::*;
        assert_eq!(
            got,
            vec![
                (Icpc15WorkingDays, "2026-03-23".into(), true),
                (Icpc15WorkingDays, "2026-04-21".into(), false),
                (SecondOrLaterPlans, "2026-04-21".into(), false),
                (ReviewsOnTime, "2026-07-21".into(), true),
                (ReviewsOnTime, "2027-01-22".into(), false),
                (PlansTwoYearsOrMore, "2027-01-22".into(), false),
            ]
        );
    }
}
