//! `cpwatch report`'s census-aligned measures on a year of synthetic history across many cases,
//! each against a count made here by hand from the same histories (own working-day
//! arithmetic on the England and Wales bank holidays, own month arithmetic); the CSV tables,
//! the HTML page (parsed always, rendered in headless Chromium when one is installed), the
//! `--from`/`--to` dates and the partnership filter.

mod common;

use chrono::{Datelike, Months, NaiveDate, Weekday};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// England and Wales bank holidays 2023–2026 (GOV.UK), typed in for the hand count.
const HOLIDAYS: &[&str] = &[
    "2023-01-02",
    "2023-04-07",
    "2023-04-10",
    "2023-05-01",
    "2023-05-08",
    "2023-05-29",
    "2023-08-28",
    "2023-12-25",
    "2023-12-26",
    "2024-01-01",
    "2024-03-29",
    "2024-04-01",
    "2024-05-06",
    "2024-05-27",
    "2024-08-26",
    "2024-12-25",
    "2024-12-26",
    "2025-01-01",
    "2025-04-18",
    "2025-04-21",
    "2025-05-05",
    "2025-05-26",
    "2025-08-25",
    "2025-12-25",
    "2025-12-26",
    "2026-01-01",
    "2026-04-03",
    "2026-04-06",
    "2026-05-04",
    "2026-05-25",
    "2026-08-31",
    "2026-12-25",
    "2026-12-28",
];

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn is_working(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !HOLIDAYS.iter().any(|h| day(h) == d)
}

/// Whether `end` is no later than the `n`th working day after `start` (the start day not
/// counted): the census's target date, walked day by day.
fn within_working_days(start: NaiveDate, end: NaiveDate, n: u32) -> bool {
    let (mut d, mut left) = (start, n);
    while left > 0 {
        d = d.succ_opt().unwrap();
        if is_working(d) {
            left -= 1;
        }
    }
    end <= d
}

/// A small deterministic generator, so the history is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.next((hi - lo + 1) as u64) as i64
    }
}

const MEASURES: [&str; 5] = [
    "icpc_within_15_working_days",
    "reviews_on_time",
    "assessments_within_45_working_days",
    "plans_ended_lasting_2_years_or_more",
    "plans_started_second_or_later",
];

/// The hand count: (measure, team, month "YYYY-MM") → (counted, met), for occasions in the period.
#[derive(Default)]
struct Hand {
    counts: BTreeMap<(String, String, String), (usize, usize)>,
}

const FROM: &str = "2025-04-01";
const TO: &str = "2026-04-01";

impl Hand {
    fn add(&mut self, measure: &str, team: &str, date: NaiveDate, hit: bool) {
        if date < day(FROM) || date >= day(TO) {
            return;
        }
        let month = format!("{:04}-{:02}", date.year(), date.month());
        let e = self
            .counts
            .entry((measure.into(), team.into(), month))
            .or_default();
        e.0 += 1;
        e.1 += usize::from(hit);
    }
    /// Totals over whatever `keep` selects.
    fn total(&self, keep: impl Fn(&(String, String, String)) -> bool) -> (usize, usize) {
        self.counts
            .iter()
            .filter(|(k, _)| keep(k))
            .fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1))
    }
}

fn at(d: NaiveDate) -> String {
    format!("{d}T10:00:00Z")
}

fn ev(kind: &str, d: NaiveDate, extra: Value) -> Value {
    let mut e = json!({"kind": kind, "at": at(d)});
    if let (Some(m), Some(x)) = (e.as_object_mut(), extra.as_object()) {
        m.extend(x.clone());
    }
    e
}

/// A plan from `start` with reviews every `gaps` days (the first gap to the first review);
/// `end`: how it ends after the last review (None = still open). Counts reviews and the end.
fn plan(
    events: &mut Vec<Value>,
    hand: &mut Hand,
    team: &str,
    start: NaiveDate,
    gaps: &[i64],
    end_after: Option<i64>,
) -> NaiveDate {
    let mut last = start;
    for (i, gap) in gaps.iter().enumerate() {
        let review = last + chrono::Duration::days(*gap);
        let months = if i == 0 { 3 } else { 6 };
        let ends_here = end_after == Some(0) && i + 1 == gaps.len();
        let outcome = if ends_here { "end" } else { "continue" };
        events.push(ev("rcpc_held", review, json!({"outcome": outcome})));
        hand.add(
            "reviews_on_time",
            team,
            review,
            review <= last.checked_add_months(Months::new(months)).unwrap(),
        );
        last = review;
    }
    let ended = match end_after {
        Some(0) => Some(last),
        Some(days) => {
            let e = last + chrono::Duration::days(days);
            events.push(ev("cp_plan_ended", e, json!({})));
            Some(e)
        }
        None => None,
    };
    if let Some(e) = ended {
        let two_years = start.checked_add_months(Months::new(24)).unwrap();
        hand.add(
            "plans_ended_lasting_2_years_or_more",
            team,
            e,
            e >= two_years,
        );
    }
    ended.unwrap_or(last)
}

/// An enquiry from `strategy`: the ICPC `days` later, with a plan or not. Counts the ICPC and
/// (with a plan) the plan's start.
fn enquiry(
    events: &mut Vec<Value>,
    hand: &mut Hand,
    team: &str,
    strategy: NaiveDate,
    days: i64,
    with_plan: bool,
    earlier_plans: usize,
) -> NaiveDate {
    events.push(ev(
        "strategy_discussion_held",
        strategy,
        json!({"s47_initiated": true}),
    ));
    let icpc = strategy + chrono::Duration::days(days);
    let outcome = if with_plan { "plan" } else { "no_plan" };
    events.push(ev("icpc_held", icpc, json!({"outcome": outcome})));
    hand.add(
        "icpc_within_15_working_days",
        team,
        icpc,
        within_working_days(strategy, icpc, 15),
    );
    if with_plan {
        hand.add(
            "plans_started_second_or_later",
            team,
            icpc,
            earlier_plans > 0,
        );
    }
    icpc
}

/// One synthetic case of kind `i % 5`, its events, counted by hand as they are made.
fn history(i: usize, rng: &mut Lcg, hand: &mut Hand, team: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let year_start = day("2025-03-01");
    let referral = year_start + chrono::Duration::days(rng.between(0, 330));
    events.push(ev("referral_received", referral, json!({})));
    match i % 5 {
        // A referral and its assessment, nothing more.
        0 => {
            let done = referral + chrono::Duration::days(rng.between(25, 80));
            events.push(ev("assessment_completed", done, json!({})));
            hand.add(
                "assessments_within_45_working_days",
                team,
                done,
                within_working_days(referral, done, 45),
            );
        }
        // An enquiry whose conference decides no plan.
        1 => {
            let s = referral + chrono::Duration::days(rng.between(1, 5));
            enquiry(&mut events, hand, team, s, rng.between(10, 30), false, 0);
        }
        // An enquiry, a plan, reviews; ended at a review or still open.
        2 => {
            let s = referral + chrono::Duration::days(rng.between(1, 5));
            let icpc = enquiry(&mut events, hand, team, s, rng.between(12, 28), true, 0);
            let gaps = [rng.between(80, 100), rng.between(160, 200)];
            let end = if rng.next(2) == 0 { Some(0) } else { None };
            plan(&mut events, hand, team, icpc, &gaps, end);
        }
        // A plan from 2023 that ended in the year: some lasted 2 years or more.
        3 => {
            let s = day("2023-01-01") + chrono::Duration::days(rng.between(0, 360));
            let icpc = enquiry(&mut events, hand, team, s, rng.between(8, 20), true, 0);
            let mut gaps = vec![rng.between(85, 95)];
            let mut last = icpc + chrono::Duration::days(gaps[0]);
            while last < day("2025-06-01") {
                let g = rng.between(170, 190);
                gaps.push(g);
                last += chrono::Duration::days(g);
            }
            plan(
                &mut events,
                hand,
                team,
                icpc,
                &gaps,
                Some(rng.between(10, 60)),
            );
        }
        // A first plan that ended in 2024, then a second enquiry and a second plan in the year.
        _ => {
            let s1 = day("2023-09-01") + chrono::Duration::days(rng.between(0, 120));
            let icpc1 = enquiry(&mut events, hand, team, s1, rng.between(10, 20), true, 0);
            plan(
                &mut events,
                hand,
                team,
                icpc1,
                &[90],
                Some(rng.between(30, 90)),
            );
            let s2 = referral + chrono::Duration::days(rng.between(1, 5));
            enquiry(&mut events, hand, team, s2, rng.between(9, 25), true, 1);
        }
    }
    events
}

fn partnership_file(cases: Vec<Value>) -> String {
    let mut people = vec![
        json!({"id": "p-sw1", "name": "A Worker", "email": "sw1@ksc.example.org", "agency": "ksc", "manager": "p-tm1"}),
        json!({"id": "p-sm1", "name": "S Manager", "email": "sm1@ksc.example.org", "agency": "ksc"}),
        json!({"id": "p-ch1", "name": "C Chair", "email": "chair1@ksc.example.org", "agency": "ksc"}),
        json!({"id": "p-hv1", "name": "H Visitor", "email": "hv1@health.example.org", "agency": "health", "manager": "p-hsl"}),
        json!({"id": "p-hsl", "name": "H Lead", "email": "hsl@health.example.org", "agency": "health", "manager": "p-hsm"}),
        json!({"id": "p-hsm", "name": "H Senior", "email": "hsm@health.example.org", "agency": "health"}),
        json!({"id": "p-chair", "name": "P Chair", "email": "chair@lscp.example.org"}),
        json!({"id": "p-pm", "name": "P Manager", "email": "pm@lscp.example.org"}),
    ];
    for t in 1..=3 {
        people.push(
            json!({"id": format!("p-tm{t}"), "name": format!("Team Manager {t}"),
            "email": format!("tm{t}@ksc.example.org"), "agency": "ksc", "manager": "p-sm1"}),
        );
    }
    json!({
        "partnership": "knowsley",
        "agencies": [
            {"id": "ksc", "name": "Children's Social Care", "roles": {"safeguarding_lead": "p-sm1", "senior_manager": "p-sm1"}},
            {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl", "senior_manager": "p-hsm"}}
        ],
        "people": people,
        "partnership_roles": {"partnership_chair": "p-chair", "partnership_manager": "p-pm"},
        "cases": cases,
        "disputes": [
            {"id": "D-1", "case": "KN-C000", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
             "respondent": "p-sw1", "opened_at": "2025-06-02T09:00:00Z", "immediate_risk": false,
             "subject": "threshold decision",
             "events": [{"kind": "resolved", "at": "2025-06-03T12:00:00Z", "stage": 1, "outcome": "agreed"}]},
            {"id": "D-2", "case": "KN-C001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
             "respondent": "p-sw1", "opened_at": "2025-09-01T09:00:00Z", "immediate_risk": false,
             "subject": "=HYPERLINK(\"http://x.invalid\",\"Jane Example\") plan not followed", "events": []}
        ]
    })
    .to_string()
}

/// The synthetic partnership: 60 cases over three teams; returns the hand count.
fn setup(cp: &Cpwatch) -> Hand {
    let mut rng = Lcg(20250401);
    let mut hand = Hand::default();
    let mut cases = Vec::new();
    for i in 0..60 {
        let tm = format!("p-tm{}", 1 + i % 3);
        let team = format!("Team Manager {} ({tm})", 1 + i % 3);
        let events = history(i, &mut rng, &mut hand, &team);
        cases.push(json!({
            "ref": format!("KN-C{i:03}"),
            "roles": {"social_worker": "p-sw1", "team_manager": tm, "conference_chair": "p-ch1", "senior_manager": "p-sm1"},
            "events": events
        }));
    }
    cp.ok(&["migrate"]);
    let out = cp.import_text(&partnership_file(cases));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Let the ladder move D-2 up its stages.
    cp.ok(&["evaluate", "--at", "2026-06-01T09:00:00Z"]);
    hand
}

/// A CSV table as rows of header → value.
fn rows(csv_text: &str) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn report(cp: &Cpwatch, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        "--at",
        "2026-06-01T00:00:00Z",
        "--from",
        FROM,
        "--to",
        TO,
    ];
    args.extend_from_slice(extra);
    cp.ok(&args)
}

fn counted_met(row: &BTreeMap<String, String>) -> (usize, usize) {
    (row["counted"].parse().unwrap(), row["met"].parse().unwrap())
}

#[test]
fn census_measures_agree_with_a_hand_count_over_the_period_by_team_and_by_month() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let hand = setup(&cp);

    let census = rows(&report(&cp, &["--format", "csv", "--table", "census"]));
    assert_eq!(census.len(), 5, "one row per measure");
    for m in MEASURES {
        let row = census.iter().find(|r| r["measure"] == m).unwrap();
        let expected = hand.total(|k| k.0 == m);
        assert!(
            expected.1 > 0 && expected.1 < expected.0,
            "the history exercises {m} both ways: {expected:?}"
        );
        assert_eq!(counted_met(row), expected, "{m}: {row:?}");
        assert!(!row["definition"].is_empty());
    }

    let teams = rows(&report(
        &cp,
        &["--format", "csv", "--table", "census_by_team"],
    ));
    assert_eq!(teams.len(), 3 * 5, "three teams × five measures");
    for row in &teams {
        let expected = hand.total(|k| k.0 == row["measure"] && k.1 == row["team"]);
        assert_eq!(counted_met(row), expected, "{row:?}");
    }

    let months = rows(&report(
        &cp,
        &["--format", "csv", "--table", "census_by_month"],
    ));
    assert_eq!(months.len(), 12 * 5, "twelve months × five measures");
    assert_eq!(months[0]["month"], "2025-04");
    assert_eq!(months[months.len() - 1]["month"], "2026-03");
    for row in &months {
        let expected = hand.total(|k| k.0 == row["measure"] && k.2 == row["month"]);
        assert_eq!(counted_met(row), expected, "{row:?}");
    }

    // The same period given as instants: the same figures.
    let instants = cp.ok(&[
        "report",
        "--at",
        "2026-06-01T00:00:00Z",
        "--from",
        "2025-03-31T23:00:00Z",
        "--to",
        "2026-03-31T23:00:00Z",
        "--format",
        "csv",
        "--table",
        "census",
    ]);
    assert_eq!(rows(&instants), census);
}

#[test]
fn csv_tables_have_one_header_each_and_are_safe_in_a_spreadsheet() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    setup(&cp);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tables");
    let said = report(&cp, &["--format", "csv", "--out", out.to_str().unwrap()]);
    assert!(said.contains("wrote 6 tables"), "{said}");
    for name in [
        "timeliness",
        "census",
        "census_by_team",
        "census_by_month",
        "escalation_stages",
        "records",
    ] {
        let text = std::fs::read_to_string(out.join(format!("{name}.csv"))).unwrap();
        let first = text.lines().next().unwrap().to_owned();
        assert_eq!(
            text.lines().filter(|l| **l == first).count(),
            1,
            "{name}: a single header row"
        );
        assert_eq!(
            std::fs::read_dir(&out)
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("partial"))
                .count(),
            0
        );
    }
    let records = rows(&std::fs::read_to_string(out.join("records.csv")).unwrap());
    let notice = records
        .iter()
        .find(|r| r["record"] == "escalation_notice")
        .expect("D-2 reached the senior managers' stage");
    assert_eq!(notice["dispute"], "D-2");
    assert!(
        notice["concern"].starts_with("'=HYPERLINK"),
        "a formula from free text is neutralised: {notice:?}"
    );
    let stages = rows(&std::fs::read_to_string(out.join("escalation_stages.csv")).unwrap());
    let reached: Vec<&str> = stages
        .iter()
        .filter(|r| r["policy"] == "knowsley-escalation-2019")
        .map(|r| r["reached"].as_str())
        .collect();
    assert_eq!(reached, ["2", "1", "1", "1"], "{stages:?}");

    // CSV needs a table or a directory; an unknown table is refused.
    for args in [
        vec!["report", "--format", "csv"],
        vec!["report", "--format", "csv", "--table", "nonsense"],
    ] {
        let o = cp.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("census_by_month"));
    }
}

#[test]
fn period_options_refuse_from_after_to_and_unknown_partnerships() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let o = cp.run(&["report", "--from", "2026-05-01", "--to", "2026-04-01"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from"));
    let o = cp.run(&["report", "--from", "1 April"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2026-04-01"));
    let o = cp.run(&["report", "--partnership", "atlantis"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("knowsley"));
    // A date and an instant on the same day mixed: accepted.
    cp.ok(&[
        "report",
        "--from",
        "2026-04-01",
        "--to",
        "2026-04-01T12:00:00Z",
    ]);
}

/// Text of the cells matching `selector` under `scope`.
fn cells(doc: &scraper::Html, selector: &str) -> Vec<String> {
    let sel = scraper::Selector::parse(selector).unwrap();
    doc.select(&sel)
        .map(|e| e.text().collect::<String>().trim().to_owned())
        .collect()
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn html_report_is_one_self_contained_page_with_the_figures_and_no_child_names() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let hand = setup(&cp);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("board-report.html");
    report(&cp, &["--format", "html", "--out", file.to_str().unwrap()]);
    let html = std::fs::read_to_string(&file).unwrap();
    let doc = scraper::Html::parse_document(&html);

    // Self-contained: no script, no external asset; charts are inline SVG.
    assert!(cells(&doc, "script").is_empty());
    for (sel, attr) in [("img", "src"), ("link", "href"), ("iframe", "src")] {
        let s = scraper::Selector::parse(sel).unwrap();
        assert!(
            doc.select(&s).all(|e| e.value().attr(attr).is_none()),
            "no external {sel}"
        );
    }
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    let svg = scraper::Selector::parse("div.measure svg").unwrap();
    assert_eq!(doc.select(&svg).count(), 5, "a trend chart per measure");

    // The headline figures are the hand count's.
    for m in MEASURES {
        let (n, hits) = hand.total(|k| k.0 == m);
        let row = format!("section[data-partnership=knowsley] table.headline tr[data-measure={m}]");
        assert_eq!(
            cells(&doc, &format!("{row} td.counted")),
            [n.to_string()],
            "{m}"
        );
        assert_eq!(
            cells(&doc, &format!("{row} td.met")),
            [hits.to_string()],
            "{m}"
        );
        let pct = format!("{:.1}%", 100.0 * hits as f64 / n as f64);
        assert_eq!(cells(&doc, &format!("{row} td.percent")), [pct], "{m}");
        // The monthly trend table has the hand count per month.
        let months = cells(&doc, &format!("table.trend[data-measure={m}] td.counted"));
        assert_eq!(months.len(), 12);
        let total: usize = months.iter().map(|c| c.parse::<usize>().unwrap()).sum();
        assert_eq!(total, n, "{m}: the twelve months add up to the period");
    }
    // Definitions beside the figures.
    assert!(html.contains("start day not counted"));
    // Per-rule on-time rates and escalation per ladder stage.
    assert!(!cells(
        &doc,
        "table.rules tr[data-rule=icpc-within-15wd] td.percent"
    )
    .is_empty());
    assert_eq!(
        cells(
            &doc,
            "table.ladder[data-policy=knowsley-escalation-2019] td.reached"
        ),
        ["2", "1", "1", "1"]
    );
    assert_eq!(
        cells(
            &doc,
            "table.log[data-record=escalation_notice] tr td:first-child"
        ),
        ["D-2"]
    );
    // No child's name: the free-text concern (which names one here) is left out.
    assert!(!html.contains("Jane Example"), "free text stays out");
    assert!(!html.contains("HYPERLINK"));

    // Rendered as a person would see it, where a browser is installed.
    match chromium() {
        Some(browser) => {
            let png = dir.path().join("board-report.png");
            let profile = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(browser)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=1100,2400",
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg(format!("--screenshot={}", png.display()))
                .arg(format!("file://{}", file.display()))
                .output()
                .unwrap();
            let bytes = std::fs::read(&png).unwrap_or_else(|e| {
                panic!(
                    "no screenshot ({e}): {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
            assert!(bytes.len() > 20_000, "a page with content, not a blank one");
            if let Ok(keep) = std::env::var("CPWATCH_KEEP_REPORT_PNG") {
                std::fs::copy(&png, &keep).unwrap();
                std::fs::copy(&file, format!("{keep}.html")).unwrap();
            }
        }
        None => eprintln!("no Chromium installed: the HTML was parsed and checked, not rendered"),
    }
}
