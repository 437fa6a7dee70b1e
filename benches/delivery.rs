//! Delivery throughput: `cpwatch deliver --once` draining queued deliveries from PostgreSQL into
//! a fast SMTP sink on loopback, against the sink's own ceiling.
//!
//! Run through `benches/run-delivery-bench.sh` (release mode). In one run:
//!
//! 1. a fast sink (`smtp_sink`: a thread per connection, buffered) starts on loopback;
//! 2. a fresh database (on `DATABASE_URL`'s server, or a private server when it is unset) gets
//!    one imported case, one evaluation, and then `CPWATCH_BENCH_MESSAGES` (default 15 000, a
//!    morning backlog) copies of a real overdue notice queued as deliveries in SQL;
//! 3. the sink's ceiling: the same exchange cpwatch makes (RSET, MAIL, RCPT, DATA, the message
//!    at the size cpwatch's are) over one reused connection, then over three at once;
//! 4. the backlog drained by 1 process, then (queued afresh) by 3 at once, then by 1 with
//!    `delivery.mark_every = 1` (each message marked as it is sent: today's guarantee of one);
//!    messages/s from the processes' start to the last one's exit (start-up included) and
//!    between the first and the last message at the sink; every Message-ID checked to have
//!    arrived exactly once and every row to be `sent`.
//!
//! It prints the machine, the load average before and after, and each figure with its ratio to
//! the sink's ceiling. A plain `harness = false` main: each figure is one stateful run.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "smtp_sink/mod.rs"]
mod smtp_sink;
#[path = "support/mod.rs"]
#[allow(dead_code)]
mod support;

use diesel::prelude::*;
use serde_json::json;
use std::process::Command;
use std::time::Instant;
use support::{env_or, machine, BenchDb};

const BIN: &str = env!("CARGO_BIN_EXE_cpwatch");

fn main() -> anyhow::Result<()> {
    let n: usize = env_or("CPWATCH_BENCH_MESSAGES", 15_000);
    println!("== machine: {}", machine());
    println!("== load average before: {}", load());
    let sink = smtp_sink::Sink::start()?;
    let db = BenchDb::create("cpwatch_delivery_bench")?;
    println!("== database: {} ({})", db.name, db.origin);
    let env = config(&db.url, sink.port);
    prepare(&env)?;

    // One message first, to learn the size of cpwatch's messages for the ceiling.
    queue(&db.url, "size", 1)?;
    run(&env, 1, &[])?;
    let size = sink.take().last_size;
    let message = synthetic(size);
    let one = smtp_sink::ceiling(sink.port, 1, 20_000, &message)?;
    let three = smtp_sink::ceiling(sink.port, 3, 30_000, &message)?;
    sink.take();
    println!("== message size {size} bytes; {n} deliveries per run");
    println!("sink ceiling, 1 connection reused: {one:>8.0} messages/s");
    println!("sink ceiling, 3 connections:       {three:>8.0} messages/s");

    let runs: [Run; 3] = [
        ("1 process", 1, &[]),
        ("3 processes", 3, &[]),
        (
            "1 process, mark_every = 1",
            1,
            &[("CPWATCH_DELIVERY__MARK_EVERY", "1")],
        ),
    ];
    for (i, (label, procs, extra)) in runs.into_iter().enumerate() {
        let tag = format!("run{i}");
        let ids = queue(&db.url, &tag, n)?;
        let elapsed = run(&env, procs, extra)?;
        let seen = sink.take();
        check(&db.url, &tag, &ids, &seen)?;
        let wall = n as f64 / elapsed;
        let at_sink = seen.span.map_or(0.0, |s| (n - 1) as f64 / s.as_secs_f64());
        let ceiling = if procs == 1 { one } else { three };
        println!(
            "{label:<28} {wall:>7.0} messages/s start to exit, {at_sink:>7.0}/s at the sink \
             ({:.0}% of the ceiling); {} connections; {elapsed:.2} s",
            100.0 * at_sink / ceiling,
            seen.connections
        );
    }
    println!("== load average after: {}", load());
    Ok(())
}

/// A run: its label, how many processes, extra configuration.
type Run = (&'static str, usize, &'static [(&'static str, &'static str)]);

/// Every queued Message-ID arrived exactly once, and every row is marked sent.
fn check(url: &str, tag: &str, ids: &[String], seen: &smtp_sink::Seen) -> anyhow::Result<()> {
    let missing = ids.iter().filter(|i| !seen.counts.contains_key(*i)).count();
    let twice = seen.counts.values().filter(|&&c| c > 1).count();
    let sent = count(
        url,
        &format!(
            "SELECT count(*) AS n FROM deliveries d JOIN notices o ON o.id = d.notice_id \
             WHERE o.key LIKE 'load/{tag}/%' AND d.status = 'sent'"
        ),
    )?;
    anyhow::ensure!(
        missing == 0 && twice == 0 && sent == ids.len() as i64 && seen.total == ids.len() as u64,
        "{tag}: {missing} missing, {twice} more than once, {} received, {sent} of {} marked sent",
        seen.total,
        ids.len()
    );
    Ok(())
}

/// `procs` processes of `cpwatch deliver --once` at once; seconds until the last exits.
fn run(env: &[(String, String)], procs: usize, extra: &[(&str, &str)]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            cpwatch(env)
                .args(["deliver", "--once"])
                .envs(extra.iter().copied())
                .stdout(std::process::Stdio::null())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        anyhow::ensure!(c.wait()?.success(), "cpwatch deliver failed");
    }
    Ok(started.elapsed().as_secs_f64())
}

fn cpwatch(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("CPWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

fn config(url: &str, port: u16) -> Vec<(String, String)> {
    [
        ("CPWATCH_DATABASE__URL", url.to_owned()),
        ("CPWATCH_SMTP__HOST", "127.0.0.1".into()),
        ("CPWATCH_SMTP__PORT", port.to_string()),
        ("CPWATCH_SMTP__SECURITY", "plain".into()),
        (
            "CPWATCH_SMTP__FROM",
            "cpwatch <cpwatch@lscp.example.org>".into(),
        ),
        (
            "CPWATCH_MAIL__ADMIN_ADDRESS",
            "admin@lscp.example.org".into(),
        ),
        ("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false".into()),
        (
            "CPWATCH_CALENDAR__HOLIDAY_FEED_URL",
            "http://127.0.0.1:9/none".into(),
        ),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Migrate, import one long-overdue case and evaluate it: a real notice to copy.
fn prepare(env: &[(String, String)]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("case.json");
    std::fs::write(
        &file,
        common::case_file(json!([
            {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
        ])),
    )?;
    let file = file.to_string_lossy().into_owned();
    for args in [
        vec!["migrate"],
        vec!["import", &file],
        vec!["evaluate", "--at", "2026-04-01T12:00:00Z"],
    ] {
        let out = cpwatch(env).args(&args).output()?;
        anyhow::ensure!(
            out.status.success(),
            "cpwatch {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Queue `n` copies of the evaluator's overdue notice, one delivery each (keys `load/<tag>/<i>`),
/// and cancel everything else. Returns their Message-IDs.
fn queue(url: &str, tag: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut conn = PgConnection::establish(url)?;
    diesel::sql_query(format!(
        "INSERT INTO notices (key, partnership_id, kind, rule, case_ref, occurrence, step, due_at, \
                              trigger_at, send_after, urgent, payload) \
         SELECT 'load/{tag}/' || i, 'knowsley', 'overdue', t.rule, 'KN-0001', t.occurrence, t.step, \
                '2026-03-23T17:00:00Z', t.trigger_at, now() - interval '1 minute', false, t.payload \
         FROM (SELECT * FROM notices WHERE key NOT LIKE 'load/%' AND kind = 'overdue' ORDER BY id LIMIT 1) t, \
              generate_series(1, {n}) AS i"
    ))
    .execute(&mut conn)?;
    diesel::sql_query(format!(
        "INSERT INTO deliveries (notice_id, recipient, position, send_after, urgent, message_id) \
         SELECT id, 'r' || split_part(key, '/', 3) || '@load.example.org', 'to', send_after, false, \
                '<load-{tag}-' || split_part(key, '/', 3) || '@cpwatch.test>' \
         FROM notices WHERE key LIKE 'load/{tag}/%' ORDER BY id"
    ))
    .execute(&mut conn)?;
    diesel::sql_query(
        "UPDATE deliveries d SET status = 'cancelled' FROM notices o \
         WHERE o.id = d.notice_id AND o.key NOT LIKE 'load/%' AND d.status = 'pending'",
    )
    .execute(&mut conn)?;
    diesel::sql_query("UPDATE cases SET next_check_at = NULL").execute(&mut conn)?;
    diesel::sql_query("ANALYZE deliveries").execute(&mut conn)?;
    Ok((1..=n)
        .map(|i| format!("<load-{tag}-{i}@cpwatch.test>"))
        .collect())
}

/// A message of `size` bytes in 76-character lines, for the ceiling.
fn synthetic(size: usize) -> Vec<u8> {
    let mut m = b"Subject: ceiling\r\n\r\n".to_vec();
    while m.len() + 78 <= size.max(100) {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn count(url: &str, sql: &str) -> anyhow::Result<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let r: N = diesel::sql_query(sql).get_result(&mut PgConnection::establish(url)?)?;
    Ok(r.n)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
