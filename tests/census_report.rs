//! `cpwatch report` against the census's own dates: the initial-conference figure
//! (`icpc-within-15wd`: on time, late, overdue, pending, cancelled) for a period, after a census
//! import, agrees with a recount made straight from the extract's `Section47` groups — the
//! recount the DfE's own validators make (conference on or before `InitialCPCtarget`, else 15
//! working days after `S47ActualStartDate`, the start day not counted). Issue 15's
//! census-aligned figures are to be held to this same recount.

mod common;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use common::*;

const LATER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cin-census-2025-later.xml"
);

/// England and Wales bank holidays of the fixture's years.
const HOLIDAYS: &[&str] = &[
    "2024-08-26",
    "2024-12-25",
    "2024-12-26",
    "2025-01-01",
    "2025-04-18",
    "2025-04-21",
    "2025-05-05",
    "2025-05-26",
    "2025-08-25",
];

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The 15th working day after `start` (the start day not counted).
fn fifteen_working_days(start: NaiveDate) -> NaiveDate {
    let (mut d, mut n) = (start, 0);
    while n < 15 {
        d += Duration::days(1);
        let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        if !weekend && !HOLIDAYS.contains(&d.format("%Y-%m-%d").to_string().as_str()) {
            n += 1;
        }
    }
    d
}

fn element<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&format!("</{name}>"))? + start;
    Some(&block[start..end])
}

/// (occurrences, on_time, late, overdue, pending, cancelled) of the extract's enquiries whose
/// deadline falls in [from, to), judged on `at`.
fn recount(xml: &str, from: NaiveDate, to: NaiveDate, at: NaiveDate) -> [usize; 6] {
    let mut c = [0; 6];
    for block in xml.split("<Section47>").skip(1) {
        let block = &block[..block.find("</Section47>").unwrap()];
        let start = date(element(block, "S47ActualStartDate").unwrap());
        let deadline = element(block, "InitialCPCtarget")
            .map(date)
            .unwrap_or_else(|| fifteen_working_days(start));
        if deadline < from || deadline >= to {
            continue;
        }
        c[0] += 1;
        let not_required = matches!(
            element(block, "ICPCnotRequired"),
            Some("true" | "1" | "TRUE")
        );
        let slot = match element(block, "DateOfInitialCPC").map(date) {
            _ if not_required => 5,
            Some(held) if held <= deadline => 1,
            Some(_) => 2,
            None if deadline < at => 3,
            None => 4,
        };
        c[slot] += 1;
    }
    c
}

#[test]
fn the_reports_conference_figure_agrees_with_a_recount_from_the_census_dates() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let out = cp.run(&["import", "--format", "cin-census", LATER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "timeliness",
        "--at",
        "2025-06-02T09:00:00Z",
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-07-01T00:00:00Z",
    ]);
    let row: Vec<usize> = csv
        .lines()
        .find(|l| l.split(',').nth(2) == Some("icpc-within-15wd"))
        .unwrap_or_else(|| panic!("no icpc-within-15wd row: {csv}"))
        .split(',')
        .skip(4)
        .take(6)
        .map(|f| f.parse().unwrap())
        .collect();
    let xml = std::fs::read_to_string(LATER).unwrap();
    let expected = recount(
        &xml,
        date("2025-01-01"),
        date("2025-07-01"),
        date("2025-06-02"),
    );
    assert_eq!(row, expected.to_vec(), "report vs census recount\n{csv}");
    // The fixture has one of each outcome but overdue (occurrences, on time, late, overdue,
    // pending, cancelled), so the comparison means something.
    assert_eq!(expected, [6, 2, 2, 0, 1, 1]);
}

/// (held, held within 15 working days of the enquiry's start) of the extract's initial
/// conferences held in [from, to): the census measure, recounted from the file's own dates.
fn recount_held(xml: &str, from: NaiveDate, to: NaiveDate) -> (usize, usize) {
    let (mut held, mut met) = (0, 0);
    for block in xml.split("<Section47>").skip(1) {
        let block = &block[..block.find("</Section47>").unwrap()];
        let Some(icpc) = element(block, "DateOfInitialCPC").map(date) else {
            continue;
        };
        if icpc < from || icpc >= to {
            continue;
        }
        held += 1;
        let start = date(element(block, "S47ActualStartDate").unwrap());
        if icpc <= fifteen_working_days(start) {
            met += 1;
        }
    }
    (held, met)
}

#[test]
fn the_census_measure_of_conferences_agrees_with_a_recount_from_the_census_dates() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let out = cp.run(&["import", "--format", "cin-census", LATER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "census",
        "--at",
        "2025-06-02T09:00:00Z",
        "--from",
        "2025-01-01",
        "--to",
        "2025-07-01",
    ]);
    let row: Vec<&str> = csv
        .lines()
        .find(|l| l.split(',').nth(1) == Some("icpc_within_15_working_days"))
        .unwrap_or_else(|| panic!("no ICPC measure: {csv}"))
        .split(',')
        .collect();
    let xml = std::fs::read_to_string(LATER).unwrap();
    let (held, met) = recount_held(&xml, date("2025-01-01"), date("2025-07-01"));
    assert_eq!(
        (
            row[3].parse::<usize>().unwrap(),
            row[4].parse::<usize>().unwrap()
        ),
        (held, met),
        "census measure vs recount\n{csv}"
    );
    // Some on time and some late, so the comparison means something.
    assert!(held > met && met > 0, "{held} held, {met} on time");
}
