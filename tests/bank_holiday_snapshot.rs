//! The compiled-in bank-holiday snapshot held against an independent source: the weekday
//! holidays of the `holidays` package (PyPI, UK subdivisions), committed as
//! tests/fixtures/bank-holidays-reference.json by `tools/check-bank-holidays.py
//! --write-reference`. A one-off holiday that the hand-kept snapshot lacks (Scotland's World Cup
//! holiday on Monday 15 June 2026 was one) fails here, before it ships, with no network needed.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use cpwatch::calendar::{BankHolidays, Calendar, Timescale, DIVISIONS};
use std::collections::BTreeSet;

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string("tests/fixtures/bank-holidays-reference.json")
        .expect("the committed reference");
    serde_json::from_str(&text).expect("reference JSON")
}

fn weekday(d: &NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

#[test]
fn every_weekday_holiday_of_the_snapshot_matches_the_independent_source() {
    let reference = reference();
    let years = reference["years"].as_array().unwrap();
    let (first, last) = (
        years[0].as_i64().unwrap() as i32,
        years[1].as_i64().unwrap() as i32,
    );
    let snapshot = BankHolidays::snapshot();
    let mut compared = 0;
    let mut problems = Vec::new();
    for division in DIVISIONS {
        let ours: BTreeSet<NaiveDate> = snapshot
            .dates(division)
            .unwrap()
            .into_iter()
            .filter(|d| (first..=last).contains(&d.year()) && weekday(d))
            .collect();
        let theirs: BTreeSet<NaiveDate> = reference["divisions"][division]
            .as_array()
            .unwrap_or_else(|| panic!("reference lacks {division}"))
            .iter()
            .map(|d| d.as_str().unwrap().parse().unwrap())
            .collect();
        for d in theirs.difference(&ours) {
            problems.push(format!(
                "{division}: {d} is a bank holiday the snapshot lacks"
            ));
        }
        for d in ours.difference(&theirs) {
            problems.push(format!(
                "{division}: {d} is in the snapshot but not in the reference"
            ));
        }
        compared += ours.len();
    }
    assert!(
        problems.is_empty(),
        "the snapshot differs from {}:\n{}",
        reference["source"],
        problems.join("\n")
    );
    assert!(compared > 250, "{compared} holidays compared");
}

#[test]
fn scotland_keeps_monday_15_june_2026_for_the_world_cup() {
    let cal = Calendar::for_division(
        &BankHolidays::snapshot(),
        "scotland",
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [],
    )
    .unwrap();
    let monday = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap();
    assert!(!cal.is_working_day(monday));
    // A Scottish deadline across that day: 1 working day from Friday 12 June is Tuesday 16 June.
    let friday = "2026-06-12T10:00:00Z".parse().unwrap();
    assert_eq!(
        cal.deadline(Timescale::WorkingDays(1), friday),
        "2026-06-16T16:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );
    // England and Wales work that Monday.
    let england = Calendar::for_division(
        &BankHolidays::snapshot(),
        "england-and-wales",
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [],
    )
    .unwrap();
    assert!(england.is_working_day(monday));
}
