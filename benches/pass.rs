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

/// The instant of the full pass: a Tuesday morning, cases opened through 2026 up to the day before.
const NOW: &str = "2026-12-01T10:00:00Z";
const PARTNERSHIP: &str = "knowsley";

fn main() -> anyhow::Result<()> {
    let n: i64 = env_or("CPWATCH_BENCH_CASES", 100_000);
    let repeat: usize = env_or("CPWATCH_BENCH_REPEAT", 3).max(1);
    let now: DateTime<Utc> = NOW.parse()?;

    println!("== machine: {}", machine());
    let db = BenchDb::create()?;
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

    let settings = Settings::defaults_with_database(&db.url)?;
    let batch_size = settings.database.batch_size;
    let runtime = cpwatch::jobs::Runtime::load(&settings, &mut conn);
    println!(
        "== pass at {NOW}, batch_size {batch_size}; read-only figures best of {repeat}, write passes once"
    );

    // 1. Baseline: what the pass reads, read the way the pass reads it, results discarded.
    let mut read = f64::MAX;
    let mut read_cases = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        read_cases = read_all(&mut conn, batch_size)?;
        read = read.min(t.elapsed().as_secs_f64());
    }
    // Reference: PostgreSQL scanning the same tables on its own, nothing sent to the client.
    let mut scan = f64::MAX;
    for _ in 0..repeat {
        let t = Instant::now();
        for table in ["cases", "case_roles", "case_events"] {
            count(&mut conn, &format!("SELECT count(*) AS n FROM {table}"))?;
        }
        scan = scan.min(t.elapsed().as_secs_f64());
    }
    let mut events_scan = f64::MAX;
    for _ in 0..repeat {
        let t = Instant::now();
        count(&mut conn, "SELECT count(*) AS n FROM case_events")?;
        events_scan = events_scan.min(t.elapsed().as_secs_f64());
    }
    let rss_read = vm_hwm_mb();

    // 3. The same pass as a dry run (evaluation without writes); before the write pass, so it
    //    sees the same state.
    let mut dry = f64::MAX;
    let mut dry_report = PassReport::default();
    for _ in 0..repeat {
        let pass = EvaluationPass {
            runtime: &runtime,
            now,
            mode: Mode::DryRun,
            full: true,
            batch_size,
        };
        let t = Instant::now();
        dry_report = pass.run(&mut conn, &mut |_| {})?;
        dry = dry.min(t.elapsed().as_secs_f64());
    }

    // 2. The full pass, writing.
    let pass = EvaluationPass {
        runtime: &runtime,
        now,
        mode: Mode::Write,
        full: true,
        batch_size,
    };
    let t = Instant::now();
    let full_report = pass.run(&mut conn, &mut |_| {})?;
    let full = t.elapsed().as_secs_f64();
    let outbox = count(&mut conn, "SELECT count(*) AS n FROM outbox")?;
    let due_next_hour = count_at(
        &mut conn,
        "SELECT count(*) AS n FROM cases WHERE closed_at IS NULL AND next_check_at <= $1",
        now + Duration::hours(1),
    )?;
    let never = count(
        &mut conn,
        "SELECT count(*) AS n FROM cases WHERE next_check_at IS NULL",
    )?;

    // 4. The idle pass straight after, an hour later.
    let idle_pass = EvaluationPass {
        runtime: &runtime,
        now: now + Duration::hours(1),
        mode: Mode::Write,
        full: false,
        batch_size,
    };
    let t = Instant::now();
    let idle_report = idle_pass.run(&mut conn, &mut |_| {})?;
    let idle = t.elapsed().as_secs_f64();
    let rss = vm_hwm_mb();

    // 2b. The full pass again, as the next forced full pass would find things: everything it
    //     decides is already queued, and the outbox has statistics (ANALYZE, as autovacuum does
    //     within a minute or so of the first pass; the first pass ran on a never-analyzed outbox).
    notices::analyze(&mut conn)?;
    let again_pass = EvaluationPass {
        runtime: &runtime,
        now,
        mode: Mode::Write,
        full: true,
        batch_size,
    };
    let t = Instant::now();
    let again_report = again_pass.run(&mut conn, &mut |_| {})?;
    let again = t.elapsed().as_secs_f64();

    // Where the time of a writing pass goes: the pass's steps replayed one by one with a clock
    // around each (same calls, same batches, one transaction per batch), on the state the full
    // pass started from (outbox emptied, every case due again). Not part of the figures above.
    diesel::sql_query("TRUNCATE deliveries, notices").execute(&mut conn)?;
    diesel::sql_query("UPDATE cases SET next_check_at = '-infinity'").execute(&mut conn)?;
    diesel::sql_query("VACUUM (ANALYZE) cases").execute(&mut conn)?;
    let prof = profile(&mut conn, &runtime, now, batch_size)?;

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
        "1. baseline: load_batch loop, Selection::All",
        read,
        read_cases,
    );
    row(
        "   reference: count(*) of cases, case_roles, case_events",
        scan,
        n as usize,
    );
    row(
        "   reference: count(*) of case_events alone",
        events_scan,
        n as usize,
    );
    row(
        "2. full pass (full = true, Mode::Write)",
        full,
        full_report.cases,
    );
    row(
        "2b. full pass again, all queued, outbox analyzed",
        again,
        again_report.cases,
    );
    row(
        "3. dry run (full = true, Mode::DryRun)",
        dry,
        dry_report.cases,
    );
    row(
        "4. idle pass (full = false, now + 1 h, Mode::Write)",
        idle,
        idle_report.cases,
    );
    println!();
    println!(
        "profile of a writing pass, step by step (seconds, summed over the batches; outbox emptied, \
         cases due again, the outbox's column statistics from 2b kept):"
    );
    for (name, s) in &prof.steps {
        println!("   {name:<40} {s:>9.3}  {:>5.1}%", 100.0 * s / prof.total);
    }
    println!("   {:<40} {:>9.3}", "total", prof.total);
    println!();
    println!(
        "full pass: {} notifications, {} outbox rows queued ({outbox} in the outbox), {} cancelled; \
         afterwards {due_next_hour} cases due by now + 1 h, {never} with nothing pending",
        full_report.notifications, full_report.queued, full_report.cancelled
    );
    println!(
        "full pass again: {} notifications, {} queued, {} cancelled",
        again_report.notifications, again_report.queued, again_report.cancelled
    );
    println!(
        "dry run: {} notifications; idle pass: {} cases, {} notifications, {} queued",
        dry_report.notifications, idle_report.cases, idle_report.notifications, idle_report.queued
    );
    println!(
        "5. peak RSS (VmHWM) of this process: {:.0} MB after the reads, {:.0} MB at the end",
        rss_read, rss
    );
    println!();
    println!(
        "ratio full pass / baseline read        {:>7.2}",
        full / read
    );
    println!(
        "ratio full pass again / baseline read  {:>7.2}",
        again / read
    );
    println!("ratio dry run / baseline read          {:>7.2}", dry / read);
    println!(
        "ratio idle pass / full pass            {:>9.4}",
        idle / full
    );
    println!(
        "ratio baseline read / count(*) scans   {:>7.2}",
        read / scan
    );
    println!(
        "RESULT cases={n} events={events} read_s={read:.3} scan_s={scan:.3} events_scan_s={events_scan:.3} \
         full_s={full:.3} again_s={again:.3} dry_s={dry:.3} idle_s={idle:.3} \
         notifications={} queued={} idle_cases={} full_over_read={:.2} dry_over_read={:.2} \
         idle_over_full={:.4} vm_hwm_mb={rss:.0}",
        full_report.notifications,
        full_report.queued,
        idle_report.cases,
        full / read,
        dry / read,
        idle / full
    );
    drop(conn);
    Ok(())
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
        let refs: Vec<String> = batch.iter().map(|(_, c)| c.reference.to_string()).collect();
        let keys: Vec<String> = notifications.iter().map(|n| n.key.to_string()).collect();
        lap(&mut eval_s);
        diesel::sql_query("BEGIN").execute(conn)?;
        notices::enqueue_new(conn, &notifications, &runtime.message_id_domain)?;
        lap(&mut enqueue_s);
        notices::cancel_superseded(conn, PARTNERSHIP, &refs, &keys, now)?;
        lap(&mut cancel_s);
        cases::set_next_checks(conn, &checks)?;
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
            ("cases::set_next_checks", next_s),
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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
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

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(String::new(), |kb| {
            format!("{:.0} GiB", kb / 1024.0 / 1024.0)
        });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {mem}")
}

/// A database of its own: a new one on DATABASE_URL's server (dropped at the end), or a private
/// server from the installed binaries (`cpwatch::pgserver`) when DATABASE_URL is unset.
struct BenchDb {
    url: String,
    name: String,
    origin: &'static str,
    admin: Option<String>,
    _temp: Option<cpwatch::pgserver::PrivateServer>,
}

impl BenchDb {
    fn create() -> anyhow::Result<BenchDb> {
        match std::env::var("DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!(
                    "cpwatch_bench_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .subsec_nanos()
                );
                let mut conn = PgConnection::establish(&admin)?;
                diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut conn)?;
                let base = admin.split('?').next().unwrap_or(&admin);
                let Some((server, _)) = base.rsplit_once('/') else {
                    anyhow::bail!("DATABASE_URL has no database name");
                };
                Ok(BenchDb {
                    url: format!("{server}/{name}"),
                    name,
                    origin: "a new database on DATABASE_URL's server",
                    admin: Some(admin),
                    _temp: None,
                })
            }
            _ => {
                let db = cpwatch::pgserver::PrivateServer::start()?;
                Ok(BenchDb {
                    url: db.url(),
                    name: "postgres".to_owned(),
                    origin: "a private server (cpwatch::pgserver)",
                    admin: None,
                    _temp: Some(db),
                })
            }
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if std::env::var("CPWATCH_BENCH_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("CPWATCH_BENCH_KEEP=1: database {} kept", self.name);
            return;
        }
        if let Some(admin) = &self.admin {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut conn);
            }
        }
    }
}
