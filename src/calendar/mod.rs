//! The working-day calendar: bank holidays, every timescale phrase of the spec's time table, and
//! local-time arithmetic that stays right across the BST/GMT changes.
//!
//! Pure: no I/O, no clock reads. Working-day offsets and counts are O(1) inside the precomputed
//! table range (at least 1990-01-01..=2100-12-31) and fall back to an exact weekday formula plus a
//! binary search outside it, clamped to chrono's date range, never panicking.

mod holidays;
mod timescale;

pub use chrono_tz::Tz;
pub use holidays::{
    BankHoliday, BankHolidays, FeedError, DIVISIONS, MAX_YEAR, MIN_YEAR, SNAPSHOT_JSON,
};
pub use timescale::{Timescale, TimescaleError};

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime};
use chrono::{TimeDelta, TimeZone, Timelike, Utc};
use std::fmt;
use std::sync::Arc;

/// First day covered by the O(1) tables.
pub const TABLE_START: NaiveDate = match NaiveDate::from_ymd_opt(1990, 1, 1) {
    Some(d) => d,
    None => panic!("valid date"),
};
/// Last day covered by the O(1) tables.
pub const TABLE_END: NaiveDate = match NaiveDate::from_ymd_opt(2100, 12, 31) {
    Some(d) => d,
    None => panic!("valid date"),
};

/// Day number: days since 0001-12-31 (so 0001-01-01, a Monday, is day 1).
#[inline(always)]
fn day_num(d: NaiveDate) -> i64 {
    d.num_days_from_ce() as i64
}

fn min_day() -> i64 {
    day_num(NaiveDate::MIN)
}

fn max_day() -> i64 {
    day_num(NaiveDate::MAX)
}

/// The date of a day number, clamped to chrono's range.
#[inline]
fn day_date(n: i64) -> NaiveDate {
    if n <= min_day() {
        return NaiveDate::MIN;
    }
    if n >= max_day() {
        return NaiveDate::MAX;
    }
    NaiveDate::from_num_days_from_ce_opt(n as i32).unwrap_or(NaiveDate::MAX)
}

/// 0 = Monday … 6 = Sunday.
#[inline]
fn weekday0(n: i64) -> i64 {
    (n - 1).rem_euclid(7)
}

/// Number of Monday–Friday days in [1, x) (negative for x < 1): an exact closed form.
#[inline]
fn weekdays_before(x: i64) -> i64 {
    let k = x - 1;
    k.div_euclid(7) * 5 + k.rem_euclid(7).min(5)
}

/// A working-day calendar: Monday–Friday minus holidays, in a time zone with opening hours.
///
/// Cloning is cheap (the tables are shared).
#[derive(Clone)]
pub struct Calendar {
    tz: Tz,
    open: NaiveTime,
    close: NaiveTime,
    /// Sorted, deduplicated day numbers of holidays that fall on Monday–Friday.
    holidays: Arc<[i64]>,
    /// Day number of [`TABLE_START`].
    base: i64,
    /// `cum[i]` = working days in `[base, base + i)`; `cum.len() = span + 1`.
    cum: Arc<[u32]>,
    /// The working days of the table, by ordinal.
    wd: Arc<[NaiveDate]>,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar")
            .field("tz", &self.tz)
            .field("open", &self.open)
            .field("close", &self.close)
            .field("weekday_holidays", &self.holidays.len())
            .field("table", &(TABLE_START, TABLE_END))
            .finish()
    }
}

impl Calendar {
    /// A calendar in `tz`, open `[open, close)` local time on working days.
    /// `holidays`: the division's dates plus local closure days (weekend dates are harmless).
    pub fn new(
        tz: Tz,
        open: NaiveTime,
        close: NaiveTime,
        holidays: impl IntoIterator<Item = NaiveDate>,
    ) -> Calendar {
        let mut hol: Vec<i64> = holidays
            .into_iter()
            .map(day_num)
            .filter(|&n| weekday0(n) < 5)
            .collect();
        hol.sort_unstable();
        hol.dedup();

        let base = day_num(TABLE_START);
        let end = day_num(TABLE_END) + 1; // exclusive
        let span = (end - base) as usize;
        let mut cum = Vec::with_capacity(span + 1);
        let mut wd = Vec::with_capacity(span * 5 / 7 + 8);
        let mut h = hol.partition_point(|&x| x < base);
        let mut count = 0u32;
        for n in base..end {
            cum.push(count);
            while h < hol.len() && hol[h] < n {
                h += 1;
            }
            let is_hol = h < hol.len() && hol[h] == n;
            if weekday0(n) < 5 && !is_hol {
                wd.push(day_date(n));
                count += 1;
            }
        }
        cum.push(count);

        Calendar {
            tz,
            open,
            close,
            holidays: hol.into(),
            base,
            cum: cum.into(),
            wd: wd.into(),
        }
    }

    /// A calendar for one division of a feed plus local closure days; `None` for an unknown
    /// division.
    pub fn for_division(
        feed: &BankHolidays,
        division: &str,
        tz: Tz,
        open: NaiveTime,
        close: NaiveTime,
        extra_closures: impl IntoIterator<Item = NaiveDate>,
    ) -> Option<Calendar> {
        let mut dates = feed.dates(division)?;
        dates.extend(extra_closures);
        Some(Calendar::new(tz, open, close, dates))
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    pub fn open(&self) -> NaiveTime {
        self.open
    }

    pub fn close(&self) -> NaiveTime {
        self.close
    }

    /// Working days in `[base, x)` for any day number `x` (negative below the table).
    #[inline(always)]
    fn ord(&self, x: i64) -> i64 {
        let i = x.wrapping_sub(self.base);
        if (i as u64) < self.cum.len() as u64 {
            return self.cum[i as usize] as i64;
        }
        self.ord_slow(x)
    }

    #[cold]
    fn ord_slow(&self, x: i64) -> i64 {
        let weekdays = weekdays_before(x) - weekdays_before(self.base);
        let hol = self.holidays.partition_point(|&h| h < x) as i64
            - self.holidays.partition_point(|&h| h < self.base) as i64;
        weekdays - hol
    }

    /// The working day whose ordinal (as counted by `ord`) is `t`, clamped to chrono's range.
    #[inline(always)]
    fn nth_working(&self, t: i64) -> NaiveDate {
        if (t as u64) < self.wd.len() as u64 {
            return self.wd[t as usize];
        }
        self.nth_working_slow(t)
    }

    #[cold]
    fn nth_working_slow(&self, t: i64) -> NaiveDate {
        let (mut lo, mut hi) = (min_day(), max_day());
        if self.ord(lo) > t {
            return NaiveDate::MIN;
        }
        if self.ord(hi + 1) <= t {
            return NaiveDate::MAX;
        }
        // Smallest x with ord(x + 1) > t: the working day with ordinal t.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ord(mid + 1) > t {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        day_date(lo)
    }

    /// Monday–Friday and not a holiday.
    #[inline]
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        let n = day_num(d);
        self.ord(n + 1) - self.ord(n) == 1
    }

    /// The nth working day after d (d is day 0, whatever its weekday). n = 0 returns d.
    /// Clamped to chrono's last date if the result is not representable.
    #[inline]
    pub fn add_working_days(&self, d: NaiveDate, n: u32) -> NaiveDate {
        if n == 0 {
            return d;
        }
        self.nth_working(self.ord(day_num(d) + 1) + n as i64 - 1)
    }

    /// The nth working day before d (d is day 0). n = 0 returns d.
    /// Clamped to chrono's first date if the result is not representable.
    #[inline]
    pub fn sub_working_days(&self, d: NaiveDate, n: u32) -> NaiveDate {
        if n == 0 {
            return d;
        }
        self.nth_working(self.ord(day_num(d)) - n as i64)
    }

    /// Number of working days in [a, b) (negative if b < a), exactly like numpy `busday_count`:
    /// the start is counted and the end is not, in either direction. So for b ≥ a it is the
    /// number of working days in [a, b), and for b < a it is minus the number in (b, a].
    #[inline]
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        let (a, b) = (day_num(a), day_num(b));
        let shift = (b < a) as i64;
        self.ord(b + shift) - self.ord(a + shift)
    }

    /// d if a working day, else the next working day.
    #[inline]
    pub fn working_day_on_or_after(&self, d: NaiveDate) -> NaiveDate {
        self.nth_working(self.ord(day_num(d)))
    }

    /// d if a working day, else the previous working day.
    #[inline]
    pub fn working_day_on_or_before(&self, d: NaiveDate) -> NaiveDate {
        if self.is_working_day(d) {
            d
        } else {
            self.sub_working_days(d, 1)
        }
    }

    /// The local date of an instant in the calendar's zone.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        clamp_instant(t).with_timezone(&self.tz).date_naive()
    }

    /// Local wall-clock time on date d as an instant (spring-forward gap → the first valid
    /// instant after, i.e. the moment the clocks change; autumn ambiguity → the earlier).
    pub fn at_local(&self, d: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        local_to_utc(self.tz, clamp_date(d).and_time(time))
    }

    /// Close of business on d: `at_local(d, close)`.
    pub fn close_on(&self, d: NaiveDate) -> DateTime<Utc> {
        self.at_local(d, self.close)
    }

    /// Opening on d: `at_local(d, open)`.
    pub fn open_on(&self, d: NaiveDate) -> DateTime<Utc> {
        self.at_local(d, self.open)
    }

    /// t itself if t is inside [open, close) of a working day; otherwise the next working day's
    /// open.
    pub fn next_working_instant(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let d = self.local_date(t);
        if self.is_working_day(d) {
            let open = self.open_on(d);
            if t < open {
                return open;
            }
            if t < self.close_on(d) {
                return t;
            }
        }
        self.open_on(self.add_working_days(d, 1))
    }

    /// The instant by which `share` (0–1) of the working time (open to close on working days)
    /// between `start` and `end` has passed, to the nearest quarter hour. Two ladder stages that
    /// share one window divide it this way: 0.6 of a working week entered at close is the close
    /// of its third working day; 0.6 of the same working day entered at close is 13:45 on the
    /// next. `end` itself when the window holds no working time.
    pub fn share_of_working_time(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        share: f64,
    ) -> DateTime<Utc> {
        let segments = self.working_segments(start, end);
        let total: i64 = segments.iter().map(|(a, b)| (*b - *a).num_seconds()).sum();
        if total <= 0 {
            return end;
        }
        const QUARTER: i64 = 15 * 60;
        let wanted = (total as f64 * share.clamp(0.0, 1.0) / QUARTER as f64).round() as i64;
        let mut left = (wanted * QUARTER).clamp(QUARTER.min(total), total);
        for (a, b) in segments {
            let len = (b - a).num_seconds();
            if left <= len {
                return a + TimeDelta::seconds(left);
            }
            left -= len;
        }
        end
    }

    /// The stretches of working time (open to close of each working day) inside [start, end).
    fn working_segments(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        if end <= start {
            return out;
        }
        let mut d = self.local_date(start);
        let last = self.local_date(end);
        while d <= last {
            if self.is_working_day(d) {
                let (a, b) = (self.open_on(d).max(start), self.close_on(d).min(end));
                if a < b {
                    out.push((a, b));
                }
            }
            d = self.add_working_days(d, 1);
        }
        out
    }

    /// The instant a timescale lapses, counted from `anchor` (for the *Before variants, anchor is
    /// the meeting M).
    pub fn deadline(&self, ts: Timescale, anchor: DateTime<Utc>) -> DateTime<Utc> {
        let d = self.local_date(anchor);
        match ts {
            Timescale::Hours(n) => anchor
                .checked_add_signed(TimeDelta::hours(n as i64))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            Timescale::HoursBefore(n) => anchor
                .checked_sub_signed(TimeDelta::hours(n as i64))
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
            Timescale::SameWorkingDay => {
                if self.is_working_day(d) && anchor < self.close_on(d) {
                    self.close_on(d)
                } else {
                    self.close_on(self.add_working_days(d, 1))
                }
            }
            Timescale::WorkingDays(n) => self.close_on(self.add_working_days(d, n)),
            Timescale::WorkingDaysBefore(n) => self.close_on(self.sub_working_days(d, n)),
            Timescale::Days(n) => self.close_on(
                d.checked_add_days(Days::new(n as u64))
                    .unwrap_or(NaiveDate::MAX),
            ),
            Timescale::DaysBefore(n) => {
                let x = d
                    .checked_sub_days(Days::new(n as u64))
                    .unwrap_or(NaiveDate::MIN);
                self.close_on(self.working_day_on_or_before(x))
            }
            Timescale::Weeks(n) => self.close_on(
                d.checked_add_days(Days::new(7 * n as u64))
                    .unwrap_or(NaiveDate::MAX),
            ),
            Timescale::Months(n) => self.close_on(
                d.checked_add_months(Months::new(n))
                    .unwrap_or(NaiveDate::MAX),
            ),
        }
    }
}

/// Keeps dates two days inside chrono's range so offset arithmetic cannot overflow.
fn clamp_date(d: NaiveDate) -> NaiveDate {
    let lo = NaiveDate::MIN + Days::new(2);
    let hi = NaiveDate::MAX - Days::new(2);
    d.clamp(lo, hi)
}

fn clamp_instant(t: DateTime<Utc>) -> DateTime<Utc> {
    let lo = DateTime::<Utc>::MIN_UTC + TimeDelta::days(2);
    let hi = DateTime::<Utc>::MAX_UTC - TimeDelta::days(2);
    t.clamp(lo, hi)
}

/// Local wall-clock → instant: gap → the instant the clocks change; ambiguity → the earlier.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => gap_end(tz, local),
    }
}

fn offset_secs(tz: Tz, utc: NaiveDateTime) -> i64 {
    use chrono::Offset;
    tz.offset_from_utc_datetime(&utc).fix().local_minus_utc() as i64
}

/// The first instant whose local wall clock reads at or after `local`, for a `local` that falls
/// in a spring-forward gap.
fn gap_end(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let before = offset_secs(tz, local - TimeDelta::days(1));
    let after = offset_secs(tz, local + TimeDelta::days(1));
    // The transition lies in [local - after, local - before] (as UTC) when after > before.
    let mut lo = (local - TimeDelta::seconds(after)).and_utc().timestamp();
    let mut hi = (local - TimeDelta::seconds(before)).and_utc().timestamp();
    if lo >= hi {
        // Not a simple forward jump; the naive reading is the best available answer.
        return (local - TimeDelta::seconds(before)).and_utc();
    }
    let reads_at_or_after = |s: i64| -> bool {
        match DateTime::from_timestamp(s, 0) {
            Some(t) => t.with_timezone(&tz).naive_local() >= local,
            None => true,
        }
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reads_at_or_after(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::from_timestamp(lo, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Every local "on the hour" instant in [from, to), in order. A local hour that occurs twice (the
/// autumn change) gives two ticks; one that does not occur (the spring change) gives none, so the
/// ticks are always strictly increasing.
pub fn hourly_ticks(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if from >= to {
        return out;
    }
    let from_c = clamp_instant(from);
    let to_c = clamp_instant(to);
    // Start a day early in local terms so no hour near `from` is missed whatever the offset.
    let start_local = from_c.with_timezone(&tz).naive_local() - TimeDelta::days(1);
    let mut h = start_local
        .date()
        .and_hms_opt(start_local.hour(), 0, 0)
        .unwrap_or(start_local);
    let stop_local = to_c.with_timezone(&tz).naive_local() + TimeDelta::days(1);
    while h <= stop_local {
        match tz.from_local_datetime(&h) {
            LocalResult::Single(t) => out.push(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => {
                out.push(a.with_timezone(&Utc));
                out.push(b.with_timezone(&Utc));
            }
            LocalResult::None => {}
        }
        h += TimeDelta::hours(1);
    }
    out.retain(|t| *t >= from && *t < to);
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn cal() -> Calendar {
        let feed = BankHolidays::snapshot();
        Calendar::for_division(
            &feed,
            "england-and-wales",
            chrono_tz::Europe::London,
            NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            [],
        )
        .unwrap()
    }

    #[test]
    fn weekday_formula_matches_chrono() {
        for n in -3000..3000i64 {
            let d = day_date(day_num(ymd(2000, 1, 1)) + n);
            assert_eq!(
                weekday0(day_num(d)),
                d.weekday().num_days_from_monday() as i64
            );
        }
        assert_eq!(weekdays_before(1), 0);
        assert_eq!(weekdays_before(8), 5);
        assert_eq!(weekdays_before(0), 0); // day 0 is a Sunday
        assert_eq!(weekdays_before(-1), 0); // [-1, 1) is Saturday and Sunday
        assert_eq!(weekdays_before(-2), -1); // day -2 is a Friday
    }

    #[test]
    fn slow_path_agrees_with_table() {
        let c = cal();
        for x in (c.base - 10)..(c.base + c.cum.len() as i64 + 10) {
            assert_eq!(c.ord(x), c.ord_slow(x), "day {x}");
        }
        for t in [
            -5i64,
            0,
            1,
            100,
            c.wd.len() as i64 - 1,
            c.wd.len() as i64 + 3,
        ] {
            assert_eq!(c.nth_working(t), c.nth_working_slow(t), "ordinal {t}");
        }
    }

    #[test]
    fn simple_offsets() {
        let c = cal();
        // Thu 23 Dec 2021 + 1 working day = Wed 29 Dec (27, 28 are substitutes).
        assert_eq!(c.add_working_days(ymd(2021, 12, 23), 1), ymd(2021, 12, 24));
        assert_eq!(c.add_working_days(ymd(2021, 12, 24), 1), ymd(2021, 12, 29));
        assert_eq!(c.sub_working_days(ymd(2021, 12, 29), 1), ymd(2021, 12, 24));
        assert_eq!(
            c.working_days_between(ymd(2021, 12, 24), ymd(2021, 12, 29)),
            1
        );
        assert_eq!(
            c.working_days_between(ymd(2021, 12, 29), ymd(2021, 12, 24)),
            -1
        );
        assert_eq!(
            c.working_day_on_or_after(ymd(2021, 12, 25)),
            ymd(2021, 12, 29)
        );
    }
}
