//! Property tests: the O(1) table arithmetic against a simple day-by-day reference, inside the
//! table range, across its edges (the fallback path), and with random holiday sets.

use chrono::{Datelike, Days, NaiveDate, NaiveTime, Weekday};
use cpwatch::calendar::{BankHolidays, Calendar, Tz};
use proptest::prelude::*;
use std::collections::HashSet;

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The obvious, slow definition.
struct Reference {
    holidays: HashSet<NaiveDate>,
}

impl Reference {
    fn working(&self, d: NaiveDate) -> bool {
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }
    fn add(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut x = d;
        let mut left = n;
        while left > 0 {
            x = x.succ_opt().unwrap();
            if self.working(x) {
                left -= 1;
            }
        }
        x
    }
    fn sub(&self, d: NaiveDate, n: u32) -> NaiveDate {
        let mut x = d;
        let mut left = n;
        while left > 0 {
            x = x.pred_opt().unwrap();
            if self.working(x) {
                left -= 1;
            }
        }
        x
    }
    /// numpy busday_count: the start counts, the end does not, in either direction.
    fn between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        if b < a {
            // −(working days in (b, a]).
            return -self.between(b.succ_opt().unwrap(), a.succ_opt().unwrap());
        }
        let mut n = 0;
        let mut x = a;
        while x < b {
            if self.working(x) {
                n += 1;
            }
            x = x.succ_opt().unwrap();
        }
        n
    }
    fn on_or_after(&self, d: NaiveDate) -> NaiveDate {
        let mut x = d;
        while !self.working(x) {
            x = x.succ_opt().unwrap();
        }
        x
    }
}

fn london(holidays: Vec<NaiveDate>) -> (Calendar, Reference) {
    let cal = Calendar::new(
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        holidays.iter().copied(),
    );
    let reference = Reference {
        holidays: holidays.into_iter().collect(),
    };
    (cal, reference)
}

fn snapshot_pair(division: &str) -> (Calendar, Reference) {
    let mut dates = BankHolidays::snapshot().dates(division).unwrap();
    // A council's Christmas closure and a closure outside the table range (fallback path).
    dates.extend([
        ymd(2024, 12, 24),
        ymd(2024, 12, 27),
        ymd(1987, 6, 3),
        ymd(2103, 3, 1),
    ]);
    london(dates)
}

/// Any date from 1980 to 2110: covers the table (1990–2100) and both sides of its edges.
fn date_strategy() -> impl Strategy<Value = NaiveDate> {
    let lo = ymd(1980, 1, 1).num_days_from_ce();
    let hi = ymd(2110, 12, 31).num_days_from_ce();
    (lo..=hi).prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
}

/// Dates clustered around the table's edges, where the fast and slow paths meet.
fn edge_date_strategy() -> impl Strategy<Value = NaiveDate> {
    let a = ymd(1990, 1, 1).num_days_from_ce();
    let b = ymd(2100, 12, 31).num_days_from_ce();
    prop_oneof![(a - 40..a + 40), (b - 40..b + 40)]
        .prop_map(|n| NaiveDate::from_num_days_from_ce_opt(n).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn add_matches_reference(d in date_strategy(), n in 0u32..400) {
        let (cal, r) = snapshot_pair("england-and-wales");
        prop_assert_eq!(cal.add_working_days(d, n), r.add(d, n), "{} + {}", d, n);
    }

    #[test]
    fn sub_matches_reference(d in date_strategy(), n in 0u32..400) {
        let (cal, r) = snapshot_pair("scotland");
        prop_assert_eq!(cal.sub_working_days(d, n), r.sub(d, n), "{} - {}", d, n);
    }

    #[test]
    fn between_matches_reference(a in date_strategy(), span in -1500i64..1500) {
        let (cal, r) = snapshot_pair("northern-ireland");
        let b = if span >= 0 {
            a.checked_add_days(Days::new(span as u64)).unwrap()
        } else {
            a.checked_sub_days(Days::new((-span) as u64)).unwrap()
        };
        prop_assert_eq!(cal.working_days_between(a, b), r.between(a, b), "[{}, {})", a, b);
    }

    #[test]
    fn predicates_match_reference(d in date_strategy()) {
        let (cal, r) = snapshot_pair("england-and-wales");
        prop_assert_eq!(cal.is_working_day(d), r.working(d), "{}", d);
        prop_assert_eq!(cal.working_day_on_or_after(d), r.on_or_after(d), "{}", d);
    }

    #[test]
    fn edges_match_reference(d in edge_date_strategy(), n in 0u32..120, span in -120i64..120) {
        let (cal, r) = snapshot_pair("england-and-wales");
        prop_assert_eq!(cal.add_working_days(d, n), r.add(d, n));
        prop_assert_eq!(cal.sub_working_days(d, n), r.sub(d, n));
        let b = d + chrono::TimeDelta::days(span);
        prop_assert_eq!(cal.working_days_between(d, b), r.between(d, b));
        prop_assert_eq!(cal.is_working_day(d), r.working(d));
    }

    #[test]
    fn random_holiday_sets_match_reference(
        hol in proptest::collection::vec(date_strategy(), 0..300),
        d in date_strategy(),
        n in 0u32..200,
    ) {
        let (cal, r) = london(hol);
        prop_assert_eq!(cal.add_working_days(d, n), r.add(d, n));
        prop_assert_eq!(cal.sub_working_days(d, n), r.sub(d, n));
        let b = d.checked_add_days(Days::new(n as u64)).unwrap();
        prop_assert_eq!(cal.working_days_between(d, b), r.between(d, b));
        prop_assert_eq!(cal.working_days_between(b, d), r.between(b, d));
        // Reversing the order negates the count once both ends are shifted by a day.
        prop_assert_eq!(
            cal.working_days_between(b, d),
            -cal.working_days_between(d.succ_opt().unwrap(), b.succ_opt().unwrap())
        );
    }

    /// Far outside the table (years 1..9999): the fallback agrees with the reference.
    #[test]
    fn far_dates_match_reference(
        n_day in ymd(1, 1, 1).num_days_from_ce()..ymd(9999, 1, 1).num_days_from_ce(),
        n in 0u32..60,
    ) {
        let (cal, r) = snapshot_pair("england-and-wales");
        let d = NaiveDate::from_num_days_from_ce_opt(n_day).unwrap();
        prop_assert_eq!(cal.add_working_days(d, n), r.add(d, n));
        prop_assert_eq!(cal.sub_working_days(d, n), r.sub(d, n));
        prop_assert_eq!(cal.is_working_day(d), r.working(d));
    }

    /// add and sub are inverse on working days, and count agrees with both.
    #[test]
    fn add_sub_count_are_consistent(d in date_strategy(), n in 1u32..2000) {
        let (cal, _) = snapshot_pair("england-and-wales");
        let w = cal.working_day_on_or_after(d);
        let f = cal.add_working_days(w, n);
        prop_assert!(cal.is_working_day(f));
        prop_assert_eq!(cal.sub_working_days(f, n), w);
        prop_assert_eq!(cal.working_days_between(w, f), n as i64);
    }
}

#[test]
fn extreme_dates_clamp_without_panicking() {
    let (cal, _) = snapshot_pair("england-and-wales");
    let max = NaiveDate::MAX;
    let min = NaiveDate::MIN;
    assert_eq!(cal.add_working_days(max, 10), max);
    assert_eq!(cal.sub_working_days(min, 10), min);
    // u32::MAX working days is about 16 million years: beyond chrono's range, so clamped.
    assert_eq!(cal.add_working_days(ymd(2024, 1, 1), u32::MAX), max);
    assert_eq!(cal.sub_working_days(ymd(2024, 1, 1), u32::MAX), min);
    // A million working days is representable: checked against the weekday arithmetic.
    // 2 Jan 2024 is a working day, so [d, far) holds d and the 999 999 days after it.
    let d = ymd(2024, 1, 2);
    let far = cal.add_working_days(d, 1_000_000);
    assert!(cal.is_working_day(far));
    assert_eq!(cal.working_days_between(d, far), 1_000_000);
    assert_eq!(cal.sub_working_days(far, 1_000_000), d);
    assert!(cal.working_days_between(min, max) > 0);
    // numpy semantics: [min, max) forwards, −(min, max] backwards; they differ by the ends.
    let ends = cal.is_working_day(max) as i64 - cal.is_working_day(min) as i64;
    assert_eq!(
        cal.working_days_between(min, max) + ends,
        -cal.working_days_between(max, min)
    );
    let _ = cal.working_day_on_or_after(max);
}

#[test]
fn table_counts_every_weekday_in_a_plain_year() {
    let cal = Calendar::new(
        Tz::UTC,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [],
    );
    // 2024 is a leap year starting on a Monday: 262 weekdays.
    assert_eq!(
        cal.working_days_between(ymd(2024, 1, 1), ymd(2025, 1, 1)),
        262
    );
    // The same year counted on the slow path (shifted by 400 years: identical weekdays).
    assert_eq!(
        cal.working_days_between(ymd(2424, 1, 1), ymd(2425, 1, 1)),
        262
    );
    assert_eq!(
        cal.working_days_between(ymd(1624, 1, 1), ymd(1625, 1, 1)),
        262
    );
}

#[test]
fn count_matches_numpy_busday_count_examples() {
    // Values printed by numpy 2.4 busday_count with weekmask 1111100 and no holidays.
    let cal = Calendar::new(Tz::UTC, NaiveTime::MIN, NaiveTime::MIN, []);
    let c = |a, b| cal.working_days_between(a, b);
    assert_eq!(c(ymd(2026, 1, 5), ymd(2026, 1, 9)), 4);
    assert_eq!(c(ymd(2026, 1, 9), ymd(2026, 1, 5)), -4);
    assert_eq!(c(ymd(2026, 1, 10), ymd(2026, 1, 5)), -4);
    assert_eq!(c(ymd(2026, 1, 5), ymd(2026, 1, 10)), 5);
    assert_eq!(c(ymd(2026, 1, 9), ymd(2026, 1, 12)), 1);
    assert_eq!(c(ymd(2026, 1, 12), ymd(2026, 1, 9)), -1);
    assert_eq!(c(ymd(2026, 1, 12), ymd(2026, 1, 12)), 0);
}
