//! Working-day offset and count on 10 million random dates (England and Wales holidays).
//!
//! Run through `benches/run-calendar-bench.sh`, which also runs numpy's `busday_offset` /
//! `busday_count` on the very same dates (written to `CPWATCH_BENCH_DATA`) and prints the ratio.
//!
//! Besides the criterion groups, this prints one `RESULT` line per operation: the best of
//! several timed passes over all 10 million dates, and a checksum of the results so the numpy
//! run can be checked to compute exactly the same answers.
//!
//! Environment: `CPWATCH_BENCH_N` (default 10 000 000), `CPWATCH_BENCH_DATA` (where to write the
//! dates; default `target/calendar-bench/dates.bin`), `CPWATCH_BENCH_CRITERION=0` to skip the
//! criterion groups.

use chrono::{Datelike, NaiveDate, NaiveTime};
use cpwatch::calendar::{BankHolidays, Calendar};
use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use std::io::Write;
use std::time::{Duration, Instant};

/// Days from 0001-01-01 (CE day 1) to 1970-01-01, numpy's datetime64 epoch.
const UNIX_EPOCH_CE: i32 = 719_163;
const SEED: u64 = 0x00C0_FFEE_2026;
const PASSES: usize = 5;

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Data {
    /// Start dates, uniform over 2018-01-01..=2027-12-31 (the snapshot's years).
    a: Vec<NaiveDate>,
    /// Working-day offsets, 1..=40.
    n: Vec<u32>,
    /// End dates for counting: a − 90 ..= a + 90 days.
    b: Vec<NaiveDate>,
}

fn ce(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

fn date(ce_day: i32) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(ce_day).expect("bench dates are in range")
}

fn generate(count: usize) -> Data {
    let lo = ce(NaiveDate::from_ymd_opt(2018, 1, 1).expect("valid"));
    let hi = ce(NaiveDate::from_ymd_opt(2027, 12, 31).expect("valid"));
    let span = (hi - lo + 1) as u64;
    let mut rng = SplitMix64(SEED);
    let mut data = Data {
        a: Vec::with_capacity(count),
        n: Vec::with_capacity(count),
        b: Vec::with_capacity(count),
    };
    for _ in 0..count {
        let a = lo + rng.below(span) as i32;
        data.a.push(date(a));
        data.n.push(1 + rng.below(40) as u32);
        data.b.push(date(a + rng.below(181) as i32 - 90));
    }
    data
}

/// Writes the dates as little-endian i32 arrays: a, n, b (dates as days since 1970-01-01).
fn dump(data: &Data, path: &str) -> std::io::Result<()> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Vec::with_capacity(data.a.len() * 12);
    for d in &data.a {
        bytes.extend_from_slice(&(ce(*d) - UNIX_EPOCH_CE).to_le_bytes());
    }
    for n in &data.n {
        bytes.extend_from_slice(&(*n as i32).to_le_bytes());
    }
    for d in &data.b {
        bytes.extend_from_slice(&(ce(*d) - UNIX_EPOCH_CE).to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&bytes)
}

fn add_all(cal: &Calendar, a: &[NaiveDate], n: &[u32], out: &mut [NaiveDate]) {
    for ((o, d), k) in out.iter_mut().zip(a).zip(n) {
        *o = cal.add_working_days(*d, *k);
    }
}

fn sub_all(cal: &Calendar, a: &[NaiveDate], n: &[u32], out: &mut [NaiveDate]) {
    for ((o, d), k) in out.iter_mut().zip(a).zip(n) {
        *o = cal.sub_working_days(*d, *k);
    }
}

fn count_all(cal: &Calendar, a: &[NaiveDate], b: &[NaiveDate], out: &mut [i64]) {
    for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
        *o = cal.working_days_between(*x, *y);
    }
}

fn date_checksum(v: &[NaiveDate]) -> i64 {
    v.iter().map(|d| (ce(*d) - UNIX_EPOCH_CE) as i64).sum()
}

/// Best wall time of `PASSES` passes (after one warm-up pass).
fn best_of(mut f: impl FnMut()) -> Duration {
    f();
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .expect("PASSES > 0")
}

fn report(op: &str, count: usize, took: Duration, checksum: i64) {
    let rate = count as f64 / took.as_secs_f64();
    println!(
        "RESULT impl=cpwatch op={op} n={count} seconds={:.6} rate={:.0} checksum={checksum}",
        took.as_secs_f64(),
        rate
    );
}

fn main() {
    let count: usize = std::env::var("CPWATCH_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let path = std::env::var("CPWATCH_BENCH_DATA")
        .unwrap_or_else(|_| "target/calendar-bench/dates.bin".to_owned());
    let cal = Calendar::for_division(
        &BankHolidays::snapshot(),
        "england-and-wales",
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).expect("valid"),
        NaiveTime::from_hms_opt(17, 0, 0).expect("valid"),
        [],
    )
    .expect("the snapshot has england-and-wales");

    let data = generate(count);
    if let Err(e) = dump(&data, &path) {
        eprintln!("could not write {path}: {e}");
        std::process::exit(1);
    }
    println!("DATA n={count} path={path} seed={SEED:#x}");

    let mut out_dates = vec![NaiveDate::MIN; count];
    let mut out_counts = vec![0i64; count];

    let took = best_of(|| add_all(&cal, black_box(&data.a), &data.n, &mut out_dates));
    report("offset_forward", count, took, date_checksum(&out_dates));
    let took = best_of(|| sub_all(&cal, black_box(&data.a), &data.n, &mut out_dates));
    report("offset_backward", count, took, date_checksum(&out_dates));
    let took = best_of(|| count_all(&cal, black_box(&data.a), &data.b, &mut out_counts));
    report("count", count, took, out_counts.iter().sum());

    if std::env::var("CPWATCH_BENCH_CRITERION").as_deref() == Ok("0") {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = c.benchmark_group("calendar");
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function(BenchmarkId::new("add_working_days", count), |bch| {
        bch.iter(|| add_all(&cal, black_box(&data.a), &data.n, &mut out_dates))
    });
    group.bench_function(BenchmarkId::new("sub_working_days", count), |bch| {
        bch.iter(|| sub_all(&cal, black_box(&data.a), &data.n, &mut out_dates))
    });
    group.bench_function(BenchmarkId::new("working_days_between", count), |bch| {
        bch.iter(|| count_all(&cal, black_box(&data.a), &data.b, &mut out_counts))
    });
    group.finish();
    c.final_summary();
}
