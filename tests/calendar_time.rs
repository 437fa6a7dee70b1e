//! Local time: the 2026 clock changes, hourly ticks, and every Timescale variant's deadline.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Europe::London;
use cpwatch::calendar::{hourly_ticks, BankHolidays, Calendar, Timescale, Tz};

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
}

/// A London wall-clock time that exists exactly once.
fn london(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    London
        .with_ymd_and_hms(y, m, d, h, mi, 0)
        .single()
        .expect("unambiguous local time")
        .with_timezone(&Utc)
}

fn local_hm(t: DateTime<Utc>) -> (NaiveDate, u32, u32) {
    let l = t.with_timezone(&London);
    (l.date_naive(), l.hour(), l.minute())
}

fn cal() -> Calendar {
    Calendar::for_division(
        &BankHolidays::snapshot(),
        "england-and-wales",
        London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [],
    )
    .unwrap()
}

#[test]
fn accessors_return_construction_values() {
    let c = cal();
    assert_eq!(c.tz(), London);
    assert_eq!(c.open(), NaiveTime::from_hms_opt(9, 0, 0).unwrap());
    assert_eq!(c.close(), NaiveTime::from_hms_opt(17, 0, 0).unwrap());
}

#[test]
fn hours_across_the_spring_change_2026() {
    let c = cal();
    // Sat 28 March 2026 10:00 GMT + 24 h = Sun 29 March 11:00 BST.
    let d = c.deadline(Timescale::Hours(24), utc(2026, 3, 28, 10, 0));
    assert_eq!(d, utc(2026, 3, 29, 10, 0));
    assert_eq!(local_hm(d), (ymd(2026, 3, 29), 11, 0));
    // 72 hours from Fri 27 March 16:00 GMT: Mon 30 March 17:00 BST (16:00 UTC).
    let d = c.deadline(Timescale::Hours(72), london(2026, 3, 27, 16, 0));
    assert_eq!(local_hm(d), (ymd(2026, 3, 30), 17, 0));
}

#[test]
fn hours_across_the_autumn_change_2026() {
    let c = cal();
    // Sat 24 Oct 2026 10:00 BST (09:00 UTC) + 24 h = Sun 25 Oct 09:00 GMT.
    let d = c.deadline(Timescale::Hours(24), london(2026, 10, 24, 10, 0));
    assert_eq!(d, utc(2026, 10, 25, 9, 0));
    assert_eq!(local_hm(d), (ymd(2026, 10, 25), 9, 0));
}

#[test]
fn hours_before_across_both_changes_2026() {
    let c = cal();
    // M = Sun 29 March 12:00 BST; − 24 h = Sat 28 March 11:00 GMT.
    let d = c.deadline(Timescale::HoursBefore(24), london(2026, 3, 29, 12, 0));
    assert_eq!(d, utc(2026, 3, 28, 11, 0));
    assert_eq!(local_hm(d), (ymd(2026, 3, 28), 11, 0));
    // M = Sun 25 Oct 12:00 GMT; − 24 h = Sat 24 Oct 13:00 BST.
    let d = c.deadline(Timescale::HoursBefore(24), london(2026, 10, 25, 12, 0));
    assert_eq!(d, utc(2026, 10, 24, 12, 0));
    assert_eq!(local_hm(d), (ymd(2026, 10, 24), 13, 0));
}

#[test]
fn close_of_business_is_17_local_on_both_sides_of_each_change() {
    let c = cal();
    assert_eq!(c.close_on(ymd(2026, 3, 27)), utc(2026, 3, 27, 17, 0)); // GMT
    assert_eq!(c.close_on(ymd(2026, 3, 29)), utc(2026, 3, 29, 16, 0)); // BST, the change day
    assert_eq!(c.close_on(ymd(2026, 3, 30)), utc(2026, 3, 30, 16, 0)); // BST
    assert_eq!(c.close_on(ymd(2026, 10, 23)), utc(2026, 10, 23, 16, 0)); // BST
    assert_eq!(c.close_on(ymd(2026, 10, 25)), utc(2026, 10, 25, 17, 0)); // GMT, the change day
    assert_eq!(c.close_on(ymd(2026, 10, 26)), utc(2026, 10, 26, 17, 0)); // GMT
    assert_eq!(c.open_on(ymd(2026, 3, 30)), utc(2026, 3, 30, 8, 0));
    // One working day from Friday 27 March (GMT) is Monday 30 March at 17:00 BST.
    let d = c.deadline(Timescale::WorkingDays(1), london(2026, 3, 27, 15, 0));
    assert_eq!(d, utc(2026, 3, 30, 16, 0));
    let d = c.deadline(Timescale::WorkingDays(1), london(2026, 10, 23, 15, 0));
    assert_eq!(d, utc(2026, 10, 26, 17, 0));
}

#[test]
fn at_local_in_the_gap_and_the_overlap() {
    let c = cal();
    // 01:30 on 29 March 2026 does not exist: the first valid instant after is 02:00 BST.
    let t = c.at_local(ymd(2026, 3, 29), NaiveTime::from_hms_opt(1, 30, 0).unwrap());
    assert_eq!(t, utc(2026, 3, 29, 1, 0));
    assert_eq!(local_hm(t), (ymd(2026, 3, 29), 2, 0));
    // 01:30 on 25 October 2026 happens twice: the earlier is 01:30 BST (00:30 UTC).
    let t = c.at_local(
        ymd(2026, 10, 25),
        NaiveTime::from_hms_opt(1, 30, 0).unwrap(),
    );
    assert_eq!(t, utc(2026, 10, 25, 0, 30));
    // A gap in a zone with a different rule: New York, 8 March 2026 02:30 → 03:00 EDT.
    let ny = Calendar::new(
        chrono_tz::America::New_York,
        NaiveTime::MIN,
        NaiveTime::MIN,
        [],
    );
    let t = ny.at_local(ymd(2026, 3, 8), NaiveTime::from_hms_opt(2, 30, 0).unwrap());
    assert_eq!(t, utc(2026, 3, 8, 7, 0));
}

#[test]
fn local_date_follows_the_zone() {
    let c = cal();
    assert_eq!(c.local_date(utc(2026, 3, 28, 23, 30)), ymd(2026, 3, 28)); // GMT
    assert_eq!(c.local_date(utc(2026, 6, 1, 23, 30)), ymd(2026, 6, 2)); // 00:30 BST
                                                                        // The anchor's local date is day 0: 00:30 BST on Tue 2 June + 1 working day = Wed 3 June.
    let d = c.deadline(Timescale::WorkingDays(1), utc(2026, 6, 1, 23, 30));
    assert_eq!(local_hm(d), (ymd(2026, 6, 3), 17, 0));
}

fn assert_hourly(ticks: &[DateTime<Utc>]) {
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], TimeDelta::hours(1), "{} → {}", w[0], w[1]);
    }
}

#[test]
fn hourly_ticks_neither_skip_nor_double_on_change_nights() {
    // Local day 29 March 2026: 00:00 GMT to 00:00 BST next day = 23 hours.
    let spring = hourly_ticks(London, london(2026, 3, 29, 0, 0), london(2026, 3, 30, 0, 0));
    assert_eq!(spring.len(), 23);
    assert_hourly(&spring);
    assert_eq!(spring[0], utc(2026, 3, 29, 0, 0));
    assert!(spring
        .iter()
        .all(|t| t.with_timezone(&London).minute() == 0));
    // Local day 25 October 2026: 00:00 BST to 00:00 GMT next day = 25 hours, 01:00 twice.
    let autumn = hourly_ticks(
        London,
        london(2026, 10, 25, 0, 0),
        london(2026, 10, 26, 0, 0),
    );
    assert_eq!(autumn.len(), 25);
    assert_hourly(&autumn);
    let one_am = autumn
        .iter()
        .filter(|t| t.with_timezone(&London).hour() == 1)
        .count();
    assert_eq!(one_am, 2);
    // An ordinary day has 24.
    let plain = hourly_ticks(London, london(2026, 7, 1, 0, 0), london(2026, 7, 2, 0, 0));
    assert_eq!(plain.len(), 24);
    // The whole of 2026: 8760 ticks, each one hour after the last.
    let year = hourly_ticks(London, london(2026, 1, 1, 0, 0), london(2027, 1, 1, 0, 0));
    assert_eq!(year.len(), 8760);
    assert_hourly(&year);
}

#[test]
fn hourly_ticks_respect_bounds_and_half_hour_zones() {
    // [from, to) with from off the hour.
    let t = hourly_ticks(London, utc(2026, 1, 5, 9, 30), utc(2026, 1, 5, 12, 0));
    assert_eq!(t, vec![utc(2026, 1, 5, 10, 0), utc(2026, 1, 5, 11, 0)]);
    assert!(hourly_ticks(London, utc(2026, 1, 5, 12, 0), utc(2026, 1, 5, 12, 0)).is_empty());
    // India is UTC+05:30: local "on the hour" is half past in UTC.
    let kolkata: Tz = chrono_tz::Asia::Kolkata;
    let t = hourly_ticks(kolkata, utc(2026, 1, 5, 0, 0), utc(2026, 1, 5, 3, 0));
    assert_eq!(
        t,
        vec![
            utc(2026, 1, 5, 0, 30),
            utc(2026, 1, 5, 1, 30),
            utc(2026, 1, 5, 2, 30)
        ]
    );
}

#[test]
fn next_working_instant() {
    let c = cal();
    // Inside hours: itself.
    let t = london(2026, 1, 9, 16, 59);
    assert_eq!(c.next_working_instant(t), t);
    // At close on Friday: Monday's open.
    assert_eq!(
        c.next_working_instant(london(2026, 1, 9, 17, 0)),
        london(2026, 1, 12, 9, 0)
    );
    // Before open: that day's open.
    assert_eq!(
        c.next_working_instant(london(2026, 1, 12, 7, 0)),
        london(2026, 1, 12, 9, 0)
    );
    // Good Friday 2026 → Tuesday 7 April (Easter Monday too), in BST.
    assert_eq!(
        c.next_working_instant(london(2026, 4, 3, 11, 0)),
        utc(2026, 4, 7, 8, 0)
    );
}

#[test]
fn same_working_day() {
    let c = cal();
    let ts = Timescale::SameWorkingDay;
    assert_eq!(
        c.deadline(ts, london(2026, 1, 12, 10, 0)),
        london(2026, 1, 12, 17, 0)
    );
    assert_eq!(
        c.deadline(ts, london(2026, 1, 12, 16, 59)),
        london(2026, 1, 12, 17, 0)
    );
    // At or after close: the next working day's close.
    assert_eq!(
        c.deadline(ts, london(2026, 1, 12, 17, 0)),
        london(2026, 1, 13, 17, 0)
    );
    // Saturday → Monday; early May bank holiday Monday 4 May 2026 → Tuesday.
    assert_eq!(
        c.deadline(ts, london(2026, 1, 10, 10, 0)),
        london(2026, 1, 12, 17, 0)
    );
    assert_eq!(
        c.deadline(ts, london(2026, 5, 4, 10, 0)),
        london(2026, 5, 5, 17, 0)
    );
}

#[test]
fn working_days_after_and_before() {
    let c = cal();
    // Thu 2 April 2026 + 15 working days, over Good Friday and Easter Monday = Mon 27 April.
    let d = c.deadline(Timescale::WorkingDays(15), london(2026, 4, 2, 11, 0));
    assert_eq!(d, london(2026, 4, 27, 17, 0));
    // One working week from Wednesday 7 Jan 2026 = Wednesday 14 Jan.
    let week: Timescale = "one working week".parse().unwrap();
    assert_eq!(
        c.deadline(week, london(2026, 1, 7, 9, 0)),
        london(2026, 1, 14, 17, 0)
    );
    // Saturday anchor: day 0 is the Saturday; 1 working day = Monday.
    let d = c.deadline(Timescale::WorkingDays(1), london(2026, 1, 10, 9, 0));
    assert_eq!(d, london(2026, 1, 12, 17, 0));
    // 3 working days before Thu 9 April 2026 (M's date is day 0) = Thu 2 April.
    let d = c.deadline(Timescale::WorkingDaysBefore(3), london(2026, 4, 9, 10, 0));
    assert_eq!(d, london(2026, 4, 2, 17, 0));
    // 5 working days before Monday 12 Jan 2026 = Monday 5 Jan.
    let d = c.deadline(Timescale::WorkingDaysBefore(5), london(2026, 1, 12, 10, 0));
    assert_eq!(d, london(2026, 1, 5, 17, 0));
}

#[test]
fn calendar_days_and_weeks() {
    let c = cal();
    // 7 days from Wed 25 March 2026 (GMT) = Wed 1 April at 17:00 BST.
    let d = c.deadline(Timescale::Days(7), london(2026, 3, 25, 10, 0));
    assert_eq!(d, utc(2026, 4, 1, 16, 0));
    // 7 days may land on a weekend; it stands.
    let d = c.deadline(Timescale::Days(1), london(2026, 1, 9, 10, 0));
    assert_eq!(d, london(2026, 1, 10, 17, 0));
    // 4 weeks from Mon 2 March 2026 = Mon 30 March at 17:00 BST.
    let d = c.deadline(Timescale::Weeks(4), london(2026, 3, 2, 10, 0));
    assert_eq!(d, utc(2026, 3, 30, 16, 0));
    // 2 days before Thu 10 Sept 2026 = Tue 8 Sept.
    let d = c.deadline(Timescale::DaysBefore(2), london(2026, 9, 10, 10, 0));
    assert_eq!(d, london(2026, 9, 8, 17, 0));
    // 2 days before Mon 7 Sept = Sat 5 → the working day before: Fri 4 Sept.
    let d = c.deadline(Timescale::DaysBefore(2), london(2026, 9, 7, 10, 0));
    assert_eq!(d, london(2026, 9, 4, 17, 0));
    // 2 days before Wed 28 Dec 2022 = Mon 26 (Boxing Day) → Fri 23 Dec.
    let d = c.deadline(Timescale::DaysBefore(2), london(2022, 12, 28, 10, 0));
    assert_eq!(d, london(2022, 12, 23, 17, 0));
}

#[test]
fn months_clamp_to_month_end() {
    let c = cal();
    let m = |n, y, mo, d| c.deadline(Timescale::Months(n), london(y, mo, d, 10, 0));
    assert_eq!(m(1, 2026, 1, 31), london(2026, 2, 28, 17, 0));
    assert_eq!(m(1, 2024, 1, 31), london(2024, 2, 29, 17, 0));
    assert_eq!(m(1, 2026, 3, 31), london(2026, 4, 30, 17, 0));
    assert_eq!(m(3, 2025, 11, 30), london(2026, 2, 28, 17, 0));
    assert_eq!(m(6, 2026, 8, 31), london(2027, 2, 28, 17, 0));
    assert_eq!(m(3, 2026, 1, 15), london(2026, 4, 15, 17, 0));
    assert_eq!(m(12, 2024, 2, 29), london(2025, 2, 28, 17, 0));
}

#[test]
fn extreme_anchors_do_not_panic() {
    let c = cal();
    let all = [
        Timescale::Hours(u32::MAX),
        Timescale::HoursBefore(u32::MAX),
        Timescale::SameWorkingDay,
        Timescale::WorkingDays(u32::MAX),
        Timescale::WorkingDaysBefore(u32::MAX),
        Timescale::Days(u32::MAX),
        Timescale::DaysBefore(u32::MAX),
        Timescale::Weeks(u32::MAX),
        Timescale::Months(u32::MAX),
    ];
    for anchor in [
        DateTime::<Utc>::MIN_UTC,
        DateTime::<Utc>::MAX_UTC,
        utc(2026, 1, 1, 0, 0),
    ] {
        for ts in all {
            let d = c.deadline(ts, anchor);
            let later = anchor
                .checked_add_signed(TimeDelta::days(3))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let earlier = anchor
                .checked_sub_signed(TimeDelta::days(3))
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            // Forward timescales never go backwards, backward ones never forwards (the 3 days
            // allow for the clamping at chrono's limits).
            match ts {
                Timescale::HoursBefore(_)
                | Timescale::WorkingDaysBefore(_)
                | Timescale::DaysBefore(_) => assert!(d <= later, "{ts} {anchor} → {d}"),
                _ => assert!(d >= earlier, "{ts} {anchor} → {d}"),
            }
        }
        let _ = c.next_working_instant(anchor);
        let _ = c.local_date(anchor);
    }
}
