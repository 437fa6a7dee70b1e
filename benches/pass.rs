//! The hourly evaluation pass at scale, against the time PostgreSQL needs to read the same data.
//!
//! Run through `benches/run-pass-bench.sh` (release mode). It creates a fresh database (on
//! `DATABASE_URL`'s server, or a private server (`cpwatch::pgserver`) when `DATABASE_URL` is
//! unset), bulk-loads `CPWATCH_BENCH_CASES` (default 100 000) synthetic open Knowsley cases with
//! realistic histories in SQL, and measures in one run:
//!
//! 1. baseline: the pass's own reading code (`store::cases::load_batch`, keyset batches over
//!    cases, case_roles and case_events, `Selection::All`) with the results thrown away; and, for
//!    reference, plain server-side full scans (`count(*)`) of the same three tables;
//! 2. a full pass (`full = true`, `Mode::Write`) at an instant where many cases have work due
//!    (the first pass on this database: empty, never-analyzed notice tables); 2b. the same full pass
//!    again after `ANALYZE` of the notice tables (everything already queued: the steady-state cost);
//! 3. the same pass as a dry run (evaluation, no writes);
//! 4. an idle pass one hour later (`full = false`): only the cases whose next check has come;
//! 5. the process's peak RSS (VmHWM);
//!
//! and, apart from those figures, a profile: the pass's steps replayed with a clock around each
//! (read, evaluate, enqueue, cancel_superseded, set_next_checks, commit) from the same start state.
//!
//! It prints a table with each figure and the ratios full/baseline, dry-run/baseline and
//! idle/full. Read-only measurements are the best of `CPWATCH_BENCH_REPEAT` (default 3) runs;
//! the write passes run once, since each changes the database. The database is dropped at the end.
//!
//! A plain `harness = false` main rather than criterion: each measurement is a single, stateful
//! operation lasting seconds (the idle pass only means something straight after the full pass),
//! so criterion's repeated sampling of an unchanged operation does not fit.

use chrono::{DateTime, Duration, Utc};
use cpwatch::jobs::evaluation::{EvaluationPass, Mode, PassReport};
use cpwatch::settings::Settings;
use cpwatch::store::cases::{self, Selection};
use cpwatch::store::notices;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use std::time::Instant;

/// The allocator the `cpwatch` binary uses (src/main.rs), so the pass is measured as it runs.
#[path = "support/mod.rs"]
mod support;

use support::{env_or, machine, BenchDb};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The instant of the full pass: a Tuesday morning, cases opened through 2026 up to the day before.
const NOW: &str = "2026-12-01T10:00:00Z";
const PARTNERSHIP: &str = "knowsley";

fn main() -> anyhow::Result<()> {
    let n: i64 = env_or("CPWATCH_BENCH_CASES", 100_000);
    let repeat: usize = env_or("CPWATCH_BENCH_REPEAT", 3).max(1);
    let now: DateTime<Utc> = NOW.parse()?;

    println!("== machine: {}", machine());
    let db = BenchDb::create("cpwatch_bench")?;
    println!("== database: {} ({})", db.name, db.origin);
    let mut conn = PgConnection::establish(&db.url)?;
    println!("== server: {}", text(&mut conn, "SELECT version() AS v")?);
    cpwatch::store::migrate(&mut conn)?;

    let t = Instant::now();
    load(&mut conn, n, now)?;
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    diesel::sql_query("VACUUM (ANALYZE)").execute(&mut conn)?;
    let vacuum_s = t.elapsed().as_secs_f64();
    let events = count(&mut conn, "SELECT count(*) AS n FROM case_events")?;
    let roles = count(&mut conn, "SELECT count(*) AS n FROM case_roles")?;
    let people = count(&mut conn, "SELECT count(*) AS n FROM people")?;
    let per_case = text(
        &mut conn,
        "SELECT min(c) || '/' || round(avg(c), 1) || '/' || max(c) AS v \
         FROM (SELECT count(*) AS c FROM case_events GROUP BY case_id) x",
    )?;
    let size = text(
        &mut conn,
        "SELECT pg_size_pretty(pg_database_size(current_database())) AS v",
    )?;
    println!(
        "== data: {n} open cases, {roles} case roles, {people} people, {events} events \
         (min/mean/max per case {per_case}), database {size}; \
         loaded in {load_s:.1} s, VACUUM ANALYZE {vacuum_s:.1} s"
    );

    let mut settings = Settings::defaults_with_database(&db.url)?;
    // A second partnership with the same policies, for the replicas' measurement (7).
    let knowsley = settings.partnerships[PARTNERSHIP].clone();
    settings.partnerships.insert(SECOND.to_owned(), knowsley);
    let batch_size = env_or("CPWATCH_BENCH_BATCH", settings.database.batch_size);
    let runtime = cpwatch::jobs::Runtime::load(&settings, &mut conn);
    println!(
        "== pass at {NOW}, batch_size {batch_size}; read-only figures best of {repeat}, write passes once"
    );
    let f = measure(&mut conn, &db.url, &runtime, now, batch_size, repeat)?;
    f.print(n, events);
    f.check()?;
    if std::env::var("CPWATCH_BENCH_EXPLAIN").map_or(true, |v| v != "0") {
        explain(&mut conn, now)?;
        explain_writes(&mut conn, &runtime, now)?;
    }
    drop(conn);
    Ok(())
}

/// The second partnership of measurement 7 (half of the cases move to it).
const SECOND: &str = "sefton";

/// Every figure of one run.
#[derive(Default)]
struct Figures {
    read: f64,
    read_cases: usize,
    copy_text: f64,
    copy_binary: f64,
    scan: f64,
    full: f64,
    /// The machine's CPU busy during the full pass (share of all cores).
    full_cpu: f64,
    full_report: PassReport,
    again: f64,
    again_report: PassReport,
    dry: f64,
    dry_report: PassReport,
    idle: f64,
    idle_report: PassReport,
    hour: f64,
    hour_report: PassReport,
    hour_due: i64,
    outbox: i64,
    due_next_hour: i64,
    never: i64,
    rss_read: f64,
    rss_dry: f64,
    rss_pass: f64,
    rss: f64,
    prof: Option<Profile>,
    one_replica: f64,
    two_replicas: f64,
    replica_reports: Vec<PassReport>,
}

fn pass<'a>(
    runtime: &'a cpwatch::jobs::Runtime,
    now: DateTime<Utc>,
    mode: Mode,
    full: bool,
    batch_size: usize,
) -> EvaluationPass<'a> {
    EvaluationPass {
        runtime,
        now,
        mode,
        full,
        batch_size,
    }
}

/// Run a pass and time it.
fn timed(conn: &mut PgConnection, p: &EvaluationPass) -> anyhow::Result<(f64, PassReport)> {
    let t = Instant::now();
    let report = p.run(conn, &mut |_| {})?;
    Ok((t.elapsed().as_secs_f64(), report))
}

fn measure(
    conn: &mut PgConnection,
    url: &str,
    runtime: &cpwatch::jobs::Runtime,
    now: DateTime<Utc>,
    batch_size: usize,
    repeat: usize,
) -> anyhow::Result<Figures> {
    let mut f = Figures {
        read: f64::MAX,
        copy_text: f64::MAX,
        copy_binary: f64::MAX,
        scan: f64::MAX,
        dry: f64::MAX,
        ..Figures::default()
    };
    // 1. Baseline: what the pass reads, read the way the pass reads it, results discarded; and
    //    PostgreSQL's own read of the same rows (COPY to a client that throws them away).
    for _ in 0..repeat {
        let t = Instant::now();
        f.read_cases = read_all(conn, batch_size)?;
        f.read = f.read.min(t.elapsed().as_secs_f64());
        f.copy_text = f.copy_text.min(copy_seconds(url, false)?);
        f.copy_binary = f.copy_binary.min(copy_seconds(url, true)?);
        let t = Instant::now();
        for table in ["cases", "case_roles", "case_events"] {
            count(conn, &format!("SELECT count(*) AS n FROM {table}"))?;
        }
        f.scan = f.scan.min(t.elapsed().as_secs_f64());
    }
    f.rss_read = vm_hwm_mb();
    // 3. The dry run, before the write pass so it sees the same state.
    for _ in 0..repeat {
        let (s, r) = timed(conn, &pass(runtime, now, Mode::DryRun, true, batch_size))?;
        if s < f.dry {
            (f.dry, f.dry_report) = (s, r);
        }
    }
    f.rss_dry = vm_hwm_mb();
    // 2. The full pass, writing: the first on this database.
    let ticks = support::cpu_ticks();
    (f.full, f.full_report) = timed(conn, &pass(runtime, now, Mode::Write, true, batch_size))?;
    f.full_cpu = support::cpu_busy_since(ticks);
    f.outbox = count(conn, "SELECT count(*) AS n FROM outbox")?;
    let later = now + Duration::hours(1);
    f.due_next_hour = count_at(
        conn,
        "SELECT count(*) AS n FROM cases WHERE closed_at IS NULL AND next_check_at <= $1",
        later,
    )?;
    f.never = count(
        conn,
        "SELECT count(*) AS n FROM cases WHERE next_check_at IS NULL",
    )?;
    // 4. The idle pass straight after, an hour later.
    (f.idle, f.idle_report) = timed(conn, &pass(runtime, later, Mode::Write, false, batch_size))?;
    f.rss_pass = vm_hwm_mb();
    f.rss = f.rss_pass;
    // 2b. The full pass again: everything it decides is already queued.
    (f.again, f.again_report) = timed(conn, &pass(runtime, now, Mode::Write, true, batch_size))?;
    // 6. A typical hour: 2% of the cases get an event from the case system (a visit) between
    //    two hourly passes; the pass at now + 2 h looks at those alone.
    let hour = now + Duration::hours(2);
    f.hour_due = typical_hour(conn, now + Duration::minutes(90))?;
    (f.hour, f.hour_report) = timed(conn, &pass(runtime, hour, Mode::Write, false, batch_size))?;
    f.rss = f.rss.max(vm_hwm_mb());
    // The profile: the pass's steps one after another with a clock around each.
    if std::env::var("CPWATCH_BENCH_PROFILE").map_or(true, |v| v != "0") {
        reset(conn)?;
        f.prof = Some(profile(conn, runtime, now, batch_size)?);
    }
    // 7. Two partnerships: one replica evaluating both, then two replicas at once.
    split_partnership(conn)?;
    reset(conn)?;
    // Every case due (reset), an hourly pass (full = false): a replica that comes to a
    // partnership the other has finished finds nothing due there.
    (f.one_replica, _) = timed(conn, &pass(runtime, now, Mode::Write, false, batch_size))?;
    reset(conn)?;
    (f.two_replicas, f.replica_reports) = two_replicas(url, runtime, now, batch_size)?;
    f.rss = f.rss.max(vm_hwm_mb());
    Ok(f)
}

/// Empty the notice tables and make every case due again with nothing known of it.
fn reset(conn: &mut PgConnection) -> anyhow::Result<()> {
    diesel::sql_query("TRUNCATE deliveries, notices").execute(conn)?;
    diesel::sql_query("UPDATE cases SET next_check_at = '-infinity', decided_hash = NULL")
        .execute(conn)?;
    diesel::sql_query("VACUUM (ANALYZE) cases").execute(conn)?;
    Ok(())
}

/// 2% of the cases: a visit recorded at `at` (the case system's write leaves a check request).
fn typical_hour(conn: &mut PgConnection, at: DateTime<Utc>) -> anyhow::Result<i64> {
    diesel::sql_query(
        "INSERT INTO case_events (case_id, kind, at, data, source) \
         SELECT id, 'child_seen', $1, '{}', 'case-file' FROM cases WHERE id % 50 = 7",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(at)
    .execute(conn)?;
    count(conn, "SELECT count(*) AS n FROM check_requests")
}

/// Move every other case (and a copy of the people) to the second partnership.
fn split_partnership(conn: &mut PgConnection) -> anyhow::Result<()> {
    conn.batch_execute(&format!(
        "INSERT INTO partnerships (id) VALUES ('{SECOND}'); \
         INSERT INTO agencies (partnership_id, id, name) \
           SELECT '{SECOND}', id, name FROM agencies WHERE partnership_id = '{PARTNERSHIP}'; \
         INSERT INTO people (partnership_id, id, name, email, agency_id, manager_id) \
           SELECT '{SECOND}', id, name, email, agency_id, manager_id FROM people \
           WHERE partnership_id = '{PARTNERSHIP}'; \
         INSERT INTO agency_roles (partnership_id, agency_id, role, person_id) \
           SELECT '{SECOND}', agency_id, role, person_id FROM agency_roles \
           WHERE partnership_id = '{PARTNERSHIP}'; \
         UPDATE cases SET partnership_id = '{SECOND}' WHERE id % 2 = 0; \
         DELETE FROM check_requests;"
    ))?;
    Ok(())
}

/// Two replicas (threads, each with its own connection) running a full pass at once; the time
/// until both are done, and what each evaluated.
fn two_replicas(
    url: &str,
    runtime: &cpwatch::jobs::Runtime,
    now: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<(f64, Vec<PassReport>)> {
    let mut conns = [PgConnection::establish(url)?, PgConnection::establish(url)?];
    let t = Instant::now();
    let reports = std::thread::scope(|s| {
        let jobs: Vec<_> = conns
            .iter_mut()
            .map(|c| {
                s.spawn(move || {
                    pass(runtime, now, Mode::Write, false, batch_size).run(c, &mut |_| {})
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .map_err(|_| anyhow::anyhow!("a replica panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    Ok((t.elapsed().as_secs_f64(), reports))
}

/// What a pass reads (the open cases of the partnership, their roles, their events, in the
/// pass's order), as COPY of each query.
const COPY_QUERIES: [&str; 3] = [
    "SELECT id, ref, unborn, visit_interval_days, next_check_at FROM cases \
     WHERE partnership_id = 'knowsley' AND closed_at IS NULL ORDER BY id",
    "SELECT r.case_id, r.role, r.person_id FROM case_roles r JOIN cases c ON c.id = r.case_id \
     WHERE c.partnership_id = 'knowsley' AND c.closed_at IS NULL ORDER BY r.case_id, r.role, r.person_id",
    "SELECT e.case_id, e.kind, e.at, e.recorded_at, e.data, e.source FROM case_events e \
     JOIN cases c ON c.id = e.case_id WHERE c.partnership_id = 'knowsley' AND c.closed_at IS NULL \
     ORDER BY e.case_id, e.at, e.id",
];

/// Seconds for `psql` to COPY the rows a pass reads to a client that throws them away.
fn copy_seconds(url: &str, binary: bool) -> anyhow::Result<f64> {
    let t = Instant::now();
    for q in COPY_QUERIES {
        let format = if binary { " (FORMAT binary)" } else { "" };
        let status = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c"])
            .arg(format!("COPY ({q}) TO STDOUT{format}"))
            .stdout(std::process::Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "psql COPY failed: {status}");
    }
    Ok(t.elapsed().as_secs_f64())
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the pass's reading queries, as a pass at now + 1 h runs them.
fn explain(conn: &mut PgConnection, now: DateTime<Utc>) -> anyhow::Result<()> {
    let later = cpwatch::evaluate::rfc3339(now + Duration::hours(1));
    let ids = "ARRAY(SELECT id FROM cases WHERE partnership_id = 'knowsley' ORDER BY id LIMIT 500)";
    let queries = [
        ("idle probe: earliest next check (cases::earliest_check)",
         "SELECT next_check_at FROM cases WHERE partnership_id = 'knowsley' AND closed_at IS NULL \
          AND next_check_at IS NOT NULL ORDER BY next_check_at LIMIT 1".to_owned()),
        ("the cases due (cases::due_ids)",
         format!("SELECT id FROM cases WHERE partnership_id = 'knowsley' AND closed_at IS NULL \
                  AND next_check_at <= '{later}' ORDER BY id")),
        ("a full pass's batch of cases (cases::load_pass_batch)",
         "SELECT id, ref, unborn, visit_interval_days, next_check_at, decided_hash FROM cases \
          WHERE partnership_id = 'knowsley' AND closed_at IS NULL AND id > 0 ORDER BY id LIMIT 500".to_owned()),
        ("their roles", format!("SELECT case_id, role, person_id FROM case_roles \
          WHERE case_id = ANY({ids}) ORDER BY case_id, role, person_id")),
        ("their events", format!("SELECT case_id, kind, at, recorded_at, data, source FROM case_events \
          WHERE case_id = ANY({ids}) ORDER BY case_id, at, id")),
    ];
    println!();
    for (name, q) in queries {
        print_plan(name, &cpwatch::store::explain(conn, &q)?);
    }
    Ok(())
}

impl Figures {
    /// What must hold whatever the speed (the CI smoke run checks these): the passes decided the
    /// same, the repeated pass queued nothing, the idle pass read nothing, both replicas worked.
    fn check(&self) -> anyhow::Result<()> {
        let (full, again) = (&self.full_report, &self.again_report);
        anyhow::ensure!(full.queued > 0, "the full pass queued nothing");
        anyhow::ensure!(
            self.dry_report.notifications == full.notifications
                && again.notifications == full.notifications,
            "the dry run, the full pass and the repeated pass decided differently"
        );
        anyhow::ensure!(
            again.queued == 0,
            "the repeated pass queued {}",
            again.queued
        );
        anyhow::ensure!(self.idle_report.cases == 0, "the idle pass read cases");
        anyhow::ensure!(
            self.hour_report.cases as i64 == self.hour_due,
            "the typical hour evaluated {} cases for {} check requests",
            self.hour_report.cases,
            self.hour_due
        );
        let evaluated: usize = self.replica_reports.iter().map(|r| r.evaluated.len()).sum();
        anyhow::ensure!(
            evaluated >= 2,
            "the replicas evaluated {evaluated} partnerships"
        );
        Ok(())
    }

    fn print(&self, n: i64, events: i64) {
        let rate = |cases: usize, s: f64| cases as f64 / s;
        println!();
        println!(
            "{:<58} {:>9} {:>10} {:>13}",
            "measurement", "seconds", "cases", "cases/s"
        );
        let row = |name: &str, s: f64, cases: usize| {
            println!("{name:<58} {s:>9.3} {cases:>10} {:>13.0}", rate(cases, s))
        };
        row(
            "1. baseline: COPY of the rows the pass reads (text)",
            self.copy_text,
            n as usize,
        );
        row(
            "   COPY of the same rows (binary)",
            self.copy_binary,
            n as usize,
        );
        row(
            "   the pass's own read (load_batch loop)",
            self.read,
            self.read_cases,
        );
        row(
            "   reference: count(*) of cases, case_roles, case_events",
            self.scan,
            n as usize,
        );
        row(
            "2. full pass (full = true, Mode::Write)",
            self.full,
            self.full_report.cases,
        );
        row(
            "2b. full pass again, all queued",
            self.again,
            self.again_report.cases,
        );
        row(
            "3. dry run (full = true, Mode::DryRun)",
            self.dry,
            self.dry_report.cases,
        );
        row(
            "4. idle pass (full = false, now + 1 h, Mode::Write)",
            self.idle,
            self.idle_report.cases,
        );
        row(
            "6. typical hour: 2% of cases changed, pass at now + 2 h",
            self.hour,
            self.hour_report.cases,
        );
        row(
            "7. two partnerships, all due, one replica",
            self.one_replica,
            n as usize,
        );
        row(
            "   two partnerships, two replicas at once",
            self.two_replicas,
            n as usize,
        );
        if let Some(prof) = &self.prof {
            println!();
            println!("profile: a writing pass's steps one after another (not overlapped as in the pass), \
                      seconds summed over the batches, from an emptied outbox, every case due:");
            for (name, s) in &prof.steps {
                println!("   {name:<40} {s:>9.3}  {:>5.1}%", 100.0 * s / prof.total);
            }
            println!("   {:<40} {:>9.3}", "total", prof.total);
        }
        println!();
        let (fr, ar, ir, hr) = (
            &self.full_report,
            &self.again_report,
            &self.idle_report,
            &self.hour_report,
        );
        println!(
            "full pass: {} notifications, {} deliveries queued ({} in the outbox), {} cancelled; \
                  afterwards {} cases due by now + 1 h, {} with nothing pending",
            fr.notifications, fr.queued, self.outbox, fr.cancelled, self.due_next_hour, self.never
        );
        println!(
            "full pass again: {} notifications, {} queued, {} cancelled",
            ar.notifications, ar.queued, ar.cancelled
        );
        println!(
            "dry run: {} notifications; idle pass: {} cases, {} notifications, {} queued",
            self.dry_report.notifications, ir.cases, ir.notifications, ir.queued
        );
        println!("typical hour: {} check requests, {} cases evaluated, {} notifications, {} queued, {} cancelled; \
                  {:.3} ms per case due",
                 self.hour_due, hr.cases, hr.notifications, hr.queued, hr.cancelled,
                 1000.0 * self.hour / (hr.cases.max(1) as f64));
        for (i, r) in self.replica_reports.iter().enumerate() {
            println!(
                "replica {}: evaluated {:?}, left to the other {:?}, {} cases",
                i + 1,
                r.evaluated,
                r.held_elsewhere,
                r.cases
            );
        }
        println!(
            "5. peak RSS (VmHWM) of this process: {:.0} MB after the reads, {:.0} MB after the dry run, \
             {:.0} MB after the full and idle passes, {:.0} MB at the end (with two replicas' passes in this one process)",
            self.rss_read, self.rss_dry, self.rss_pass, self.rss
        );
        let c = self.copy_text;
        println!();
        println!(
            "ratio pass's read / COPY               {:>7.2}",
            self.read / c
        );
        println!(
            "ratio full pass / COPY                 {:>7.2}",
            self.full / c
        );
        println!(
            "CPU busy during the full pass           {:>6.0}% of all cores",
            100.0 * self.full_cpu
        );
        println!(
            "ratio full pass again / COPY           {:>7.2}",
            self.again / c
        );
        println!(
            "ratio dry run / COPY                   {:>7.2}",
            self.dry / c
        );
        println!(
            "ratio two replicas / one replica       {:>7.2}",
            self.two_replicas / self.one_replica
        );
        println!(
            "RESULT cases={n} events={events} copy_s={c:.3} copy_binary_s={:.3} read_s={:.3} full_s={:.3} \
             again_s={:.3} dry_s={:.3} idle_s={:.4} hour_s={:.3} hour_cases={} one_replica_s={:.3} \
             two_replicas_s={:.3} notifications={} queued={} idle_cases={} full_over_copy={:.2} \
             again_over_copy={:.2} dry_over_copy={:.2} vm_hwm_mb={:.0} full_cpu_busy={:.2}",
            self.copy_binary, self.read, self.full, self.again, self.dry, self.idle, self.hour, hr.cases,
            self.one_replica, self.two_replicas, fr.notifications, fr.queued, ir.cases,
            self.full / c, self.again / c, self.dry / c, self.rss, self.full_cpu
        );
    }
}

struct Profile {
    steps: Vec<(&'static str, f64)>,
    total: f64,
}

/// The case loop of `EvaluationPass::run_locked` (Mode::Write, full), with a clock per step.
fn profile(
    conn: &mut PgConnection,
    runtime: &cpwatch::jobs::Runtime,
    now: DateTime<Utc>,
    batch_size: usize,
) -> anyhow::Result<Profile> {
    let rt = &runtime.partnerships[PARTNERSHIP];
    let policy = runtime
        .catalogue
        .standards
        .get(&rt.standards_policy)
        .expect("the Knowsley standards policy is built in");
    let start = Instant::now();
    let mut t = Instant::now();
    let mut lap = |acc: &mut f64| {
        *acc += t.elapsed().as_secs_f64();
        t = Instant::now();
    };
    let (mut dir_s, mut load_s, mut eval_s, mut enqueue_s, mut cancel_s, mut next_s, mut commit_s) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let directory = cases::load_directory(conn, PARTNERSHIP, runtime.admin_email.clone())?;
    lap(&mut dir_s);
    let ctx = cpwatch::evaluate::Context {
        calendar: &rt.calendar,
        directory: &directory,
        now,
    };
    let mut after = 0;
    loop {
        let (batch, _) = cases::load_batch(conn, PARTNERSHIP, Selection::All, after, batch_size)?;
        lap(&mut load_s);
        let Some(last) = batch.last() else { break };
        after = last.0;
        let mut notifications = Vec::new();
        let mut checks = Vec::with_capacity(batch.len());
        for (id, case) in &batch {
            let outcome = cpwatch::evaluate::evaluate_case(policy, case, &ctx);
            checks.push((*id, outcome.next_check));
            notifications.extend(outcome.notifications);
        }
        let refs: Vec<&str> = batch.iter().map(|(_, c)| c.reference.as_str()).collect();
        let keys: Vec<&str> = notifications.iter().map(|n| n.key.as_str()).collect();
        lap(&mut eval_s);
        diesel::sql_query("BEGIN").execute(conn)?;
        notices::cancel_superseded(conn, PARTNERSHIP, &refs, &keys, now)?;
        lap(&mut cancel_s);
        notices::enqueue_new(conn, &notifications, &runtime.message_id_domain)?;
        lap(&mut enqueue_s);
        let checks: Vec<cases::CheckWrite> = checks
            .into_iter()
            .map(|(id, next_check_at)| cases::CheckWrite {
                id,
                next_check_at,
                decided_hash: None,
            })
            .collect();
        cases::set_checks(conn, &checks)?;
        lap(&mut next_s);
        diesel::sql_query("COMMIT").execute(conn)?;
        lap(&mut commit_s);
        if batch.len() < batch_size {
            break;
        }
    }
    Ok(Profile {
        steps: vec![
            ("load_directory", dir_s),
            ("load_batch (read cases, roles, events)", load_s),
            ("evaluate_case", eval_s),
            ("notices::enqueue_new", enqueue_s),
            ("notices::cancel_superseded", cancel_s),
            ("cases::set_checks", next_s),
            ("commit", commit_s),
        ],
        total: start.elapsed().as_secs_f64(),
    })
}

/// Read every open case the way a pass does, and throw it away.
fn read_all(conn: &mut PgConnection, batch_size: usize) -> anyhow::Result<usize> {
    let mut after = 0;
    let mut total = 0;
    loop {
        let (batch, _) = cases::load_batch(conn, PARTNERSHIP, Selection::All, after, batch_size)?;
        let Some(last) = batch.last() else { break };
        after = last.0;
        total += batch.len();
        std::hint::black_box(&batch);
        if batch.len() < batch_size {
            break;
        }
    }
    Ok(total)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the statements a writing pass runs for one batch, at this
/// scale (the notice tables hold the whole last pass's rows): the first 500 open cases, their
/// notices removed as before a first pass, evaluated and written as a pass writes them, in one
/// transaction that is rolled back.
fn explain_writes(
    conn: &mut PgConnection,
    runtime: &cpwatch::jobs::Runtime,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let rt = &runtime.partnerships[PARTNERSHIP];
    let policy = &runtime.catalogue.standards[&rt.standards_policy];
    let directory = cases::load_directory(conn, PARTNERSHIP, runtime.admin_email.clone())?;
    let ctx = cpwatch::evaluate::Context {
        calendar: &rt.calendar,
        directory: &directory,
        now,
    };
    let which = cases::Which::After(Selection::All, 0, 500);
    let (batch, _) = cases::load_pass_batch(conn, PARTNERSHIP, which)?;
    let mut decided = Vec::new();
    let mut checks = Vec::new();
    for c in &batch {
        let outcome = cpwatch::evaluate::evaluate_case(policy, &c.case, &ctx);
        checks.push(cases::CheckWrite {
            id: c.id,
            next_check_at: outcome.next_check,
            decided_hash: Some(cases::decided_hash(&outcome.notifications)),
        });
        decided.extend(outcome.notifications);
    }
    let refs: Vec<&str> = batch.iter().map(|c| c.case.reference.as_str()).collect();
    let keys: Vec<&str> = decided.iter().map(|n| n.key.as_str()).collect();
    let domain = &runtime.message_id_domain;
    diesel::sql_query("BEGIN").execute(conn)?;
    let plans = (|| -> anyhow::Result<_> {
        diesel::sql_query(
            "WITH gone AS (DELETE FROM notices WHERE partnership_id = $1 AND case_ref = ANY($2) \
             RETURNING id) DELETE FROM deliveries WHERE notice_id IN (SELECT id FROM gone)",
        )
        .bind::<Text, _>(PARTNERSHIP)
        .bind::<diesel::sql_types::Array<Text>, _>(&refs)
        .execute(conn)?;
        Ok([
            (
                "withdrawal (notices::cancel_superseded)",
                notices::explain_cancel_superseded(conn, PARTNERSHIP, &refs, &keys, now)?,
            ),
            (
                "queueing (notices::enqueue_new)",
                notices::explain_enqueue(conn, &decided, domain)?,
            ),
            (
                "next checks (cases::set_checks)",
                cases::explain_set_checks(conn, &checks)?,
            ),
        ])
    })();
    diesel::sql_query("ROLLBACK").execute(conn)?;
    println!();
    println!(
        "writing one batch ({} cases, {} notices), in a transaction rolled back:",
        batch.len(),
        decided.len()
    );
    for (name, plan) in plans? {
        print_plan(name, &plan);
    }
    Ok(())
}

/// One statement's `EXPLAIN (ANALYZE, BUFFERS)` under its name, indented.
fn print_plan(name: &str, lines: &[String]) {
    println!("EXPLAIN (ANALYZE, BUFFERS): {name}");
    for line in lines {
        println!("    {line}");
    }
}

/// The synthetic partnership: ~430 people, N open cases with four roles each and a history of
/// up to 19 events in 2026 (strategy discussion, ICPC with a plan and its follow-ups, the latest
/// core groups and visits, reviews, the next review booked and its reports), a few percent of the
/// follow-ups missing.
fn load(conn: &mut PgConnection, n: i64, now: DateTime<Utc>) -> anyhow::Result<()> {
    conn.batch_execute(
        r#"
        INSERT INTO partnerships (id) VALUES ('knowsley');
        INSERT INTO agencies (partnership_id, id, name) VALUES
            ('knowsley', 'ksc', 'Children''s Social Care'),
            ('knowsley', 'health', 'Health'),
            ('knowsley', 'school', 'School');
        INSERT INTO people (partnership_id, id, name, email, agency_id, manager_id)
                  SELECT 'knowsley', 'p-hos', 'Head of Service', 'hos@ksc.example.org', 'ksc', NULL
        UNION ALL SELECT 'knowsley', 'p-sqa', 'SQA Manager', 'sqa@ksc.example.org', 'ksc', NULL
        UNION ALL SELECT 'knowsley', 'p-hsl', 'Health Lead', 'hsl@health.example.org', 'health', NULL
        UNION ALL SELECT 'knowsley', 'p-hsm', 'Health Senior', 'hsm@health.example.org', 'health', NULL
        UNION ALL SELECT 'knowsley', 'p-dsl', 'School Lead', 'dsl@school.example.org', 'school', NULL
        UNION ALL SELECT 'knowsley', 'p-head', 'Head Teacher', 'head@school.example.org', 'school', NULL
        UNION ALL SELECT 'knowsley', 'p-sm-' || g, 'Senior Manager ' || g, 'sm' || g || '@ksc.example.org',
                         'ksc', 'p-hos' FROM generate_series(0, 11) g
        UNION ALL SELECT 'knowsley', 'p-tm-' || g, 'Team Manager ' || g, 'tm' || g || '@ksc.example.org',
                         'ksc', 'p-sm-' || (g % 12) FROM generate_series(0, 49) g
        UNION ALL SELECT 'knowsley', 'p-sw-' || g, 'Social Worker ' || g, 'sw' || g || '@ksc.example.org',
                         'ksc', 'p-tm-' || (g % 50) FROM generate_series(0, 249) g
        UNION ALL SELECT 'knowsley', 'p-ch-' || g, 'Chair ' || g, 'chair' || g || '@ksc.example.org',
                         'ksc', 'p-sqa' FROM generate_series(0, 29) g
        UNION ALL SELECT 'knowsley', 'p-hv-' || g, 'Health Visitor ' || g, 'hv' || g || '@health.example.org',
                         'health', 'p-hsl' FROM generate_series(0, 79) g;
        INSERT INTO agency_roles (partnership_id, agency_id, role, person_id) VALUES
            ('knowsley', 'health', 'safeguarding_lead', 'p-hsl'),
            ('knowsley', 'health', 'senior_manager', 'p-hsm'),
            ('knowsley', 'school', 'safeguarding_lead', 'p-dsl'),
            ('knowsley', 'school', 'senior_manager', 'p-head');
        -- A deterministic pseudo-random percentage per case and salt.
        CREATE FUNCTION bench_pct(bigint, int) RETURNS int LANGUAGE sql IMMUTABLE
            AS 'SELECT (abs(hashint8extended($1, $2)) % 100)::int';
        "#,
    )?;
    diesel::sql_query(
        "INSERT INTO cases (id, partnership_id, ref, visit_interval_days) \
         SELECT g, 'knowsley', 'KN-' || lpad(g::text, 7, '0'), CASE WHEN bench_pct(g, 9) < 5 THEN 10 END \
         FROM generate_series(1, $1) g",
    )
    .bind::<BigInt, _>(n)
    .execute(conn)?;
    conn.batch_execute(
        r#"
        SELECT setval('cases_id_seq', (SELECT max(id) FROM cases));
        -- Each social worker's team manager and senior manager hold those roles on the case.
        INSERT INTO case_roles (case_id, role, person_id)
        SELECT c.id, r.role, r.person
        FROM (SELECT id, abs(hashint8extended(id, 11)) % 250 AS sw,
                     abs(hashint8extended(id, 12)) % 30 AS ch FROM cases) c
        CROSS JOIN LATERAL (VALUES
            ('social_worker', 'p-sw-' || c.sw),
            ('team_manager', 'p-tm-' || (c.sw % 50)),
            ('conference_chair', 'p-ch-' || c.ch),
            ('senior_manager', 'p-sm-' || ((c.sw % 50) % 12))
        ) AS r(role, person);
        "#,
    )?;
    // Histories: strategy discussion (s47) on a day of 2026; ICPC 16 days later with a plan and
    // its follow-ups; the two latest core groups and visits before now (the latest up to ~5
    // weeks ago, so some are late); reviews at 85 and 260 days; the next review booked 4 weeks
    // ahead. Only what has happened (or was booked) by now is there.
    diesel::sql_query(
        r#"
        WITH b AS (
            SELECT id, s, s + interval '16 days 1 hour' AS icpc,
                   s + interval '101 days 1 hour' AS r1, s + interval '276 days 1 hour' AS r2,
                   $1::timestamptz - (bench_pct(id, 20) % 32) * interval '1 day' - interval '3 hours' AS cg,
                   $1::timestamptz - (bench_pct(id, 22) % 31) * interval '1 day' - interval '5 hours' AS seen
            FROM (SELECT id, timestamptz '2026-01-05 09:00:00+00'
                             + (abs(hashint8extended(id, 1)) % 330) * interval '1 day'
                             + (abs(hashint8extended(id, 2)) % 7) * interval '1 hour' AS s
                  FROM cases) x
        )
        INSERT INTO case_events (case_id, kind, at, recorded_at, data, source)
        SELECT b.id, e.kind, e.at, e.recorded_at, e.data, 'case-file'
        FROM b CROSS JOIN LATERAL (VALUES
            ('strategy_discussion_held', b.s, NULL::timestamptz, '{"s47_initiated": true}'::jsonb, true),
            ('strategy_decisions_recorded', b.s + interval '20 hours', NULL, '{}', bench_pct(b.id, 3) < 97),
            ('strategy_minutes_circulated', b.s + interval '22 hours', NULL, '{}', bench_pct(b.id, 4) < 97),
            ('icpc_held', b.icpc, NULL, '{"outcome": "plan", "meeting": "icpc-1"}', true),
            ('decisions_circulated', b.icpc + interval '20 hours', NULL, '{}', bench_pct(b.id, 5) < 97),
            ('outline_plan_recorded', b.icpc + interval '21 hours', NULL, '{}', bench_pct(b.id, 6) < 97),
            ('family_debriefed', b.icpc + interval '2 days', NULL, '{}', bench_pct(b.id, 7) < 97),
            ('minutes_circulated', b.icpc + interval '12 days', NULL, '{}', bench_pct(b.id, 8) < 97),
            ('minutes_sent_to_family', b.icpc + interval '13 days', NULL, '{}', bench_pct(b.id, 10) < 97),
            ('core_group_held', b.cg, NULL, '{}', b.cg > b.icpc + interval '5 days'),
            ('core_group_minutes_circulated', b.cg + interval '2 days', NULL, '{}',
                b.cg > b.icpc + interval '5 days' AND bench_pct(b.id, 21) < 97),
            ('core_group_held', b.cg - interval '28 days', NULL, '{}', b.cg - interval '28 days' > b.icpc + interval '5 days'),
            ('core_group_minutes_circulated', b.cg - interval '26 days', NULL, '{}',
                b.cg - interval '28 days' > b.icpc + interval '5 days'),
            ('child_seen', b.seen, NULL, '{}', b.seen > b.icpc),
            ('child_seen', b.seen - interval '25 days', NULL, '{}', b.seen - interval '25 days' > b.icpc),
            ('rcpc_held', b.r1, NULL, '{"outcome": "continue", "meeting": "rcpc-1"}', bench_pct(b.id, 23) < 96),
            ('rcpc_held', b.r2, NULL, '{"outcome": "continue", "meeting": "rcpc-2"}', bench_pct(b.id, 24) < 96),
            ('rcpc_scheduled', CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END,
                CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END - interval '28 days',
                jsonb_build_object('meeting', CASE WHEN b.r1 > $1 THEN 'rcpc-1' ELSE 'rcpc-2' END,
                                   'invited_agencies', jsonb_build_array('health'),
                                   'invitees', jsonb_build_object('health', 'p-hv-' || (b.id % 80))),
                CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END > $1),
            ('report_received', CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END - interval '8 days', NULL,
                jsonb_build_object('meeting', CASE WHEN b.r1 > $1 THEN 'rcpc-1' ELSE 'rcpc-2' END, 'agency', 'health'),
                CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END > $1 AND bench_pct(b.id, 25) < 90),
            ('report_received', CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END - interval '8 days', NULL,
                jsonb_build_object('meeting', CASE WHEN b.r1 > $1 THEN 'rcpc-1' ELSE 'rcpc-2' END, 'agency', 'ksc'),
                CASE WHEN b.r1 > $1 THEN b.r1 ELSE b.r2 END > $1 AND bench_pct(b.id, 26) < 90)
        ) AS e(kind, at, recorded_at, data, keep)
        WHERE e.keep AND coalesce(e.recorded_at, e.at) <= $1
        "#,
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .execute(conn)?;
    conn.batch_execute("DROP FUNCTION bench_pct(bigint, int)")?;
    Ok(())
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct V {
    #[diesel(sql_type = Text)]
    v: String,
}

fn count(conn: &mut PgConnection, sql: &str) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql).get_result::<N>(conn)?.n)
}

fn count_at(conn: &mut PgConnection, sql: &str, at: DateTime<Utc>) -> anyhow::Result<i64> {
    Ok(diesel::sql_query(sql)
        .bind::<diesel::sql_types::Timestamptz, _>(at)
        .get_result::<N>(conn)?
        .n)
}

fn text(conn: &mut PgConnection, sql: &str) -> anyhow::Result<String> {
    Ok(diesel::sql_query(sql).get_result::<V>(conn)?.v)
}

/// Peak resident set size of this process, in MB.
fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
