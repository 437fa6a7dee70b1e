//! What the database benches (`pass`, `delivery`) share: the machine they ran on, their knobs
//! from the environment, and a database of their own.

use diesel::pg::PgConnection;
use diesel::prelude::*;

/// An environment variable's value (`_` allowed between digits), else `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// The CPU model, the number of cores and the memory, for the output's head.
pub fn machine() -> String {
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

/// The machine's CPU time so far, busy and in all, in clock ticks of all cores (/proc/stat).
pub fn cpu_ticks() -> (u64, u64) {
    let line = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = line
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The share of the machine's CPU (all cores) that was busy since `before` (`cpu_ticks`).
pub fn cpu_busy_since(before: (u64, u64)) -> f64 {
    let (busy, total) = cpu_ticks();
    let (b, t) = (busy - before.0, total - before.1);
    if t == 0 {
        0.0
    } else {
        b as f64 / t as f64
    }
}

/// A database of its own: a new one on DATABASE_URL's server (dropped at the end), or a private
/// server from the installed binaries (`cpwatch::pgserver`) when DATABASE_URL is unset.
pub struct BenchDb {
    pub url: String,
    pub name: String,
    pub origin: &'static str,
    admin: Option<String>,
    _temp: Option<cpwatch::pgserver::PrivateServer>,
}

impl BenchDb {
    /// A new database named `prefix`, the process id and the clock's nanoseconds.
    pub fn create(prefix: &str) -> anyhow::Result<BenchDb> {
        match std::env::var("DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!(
                    "{prefix}_{}_{}",
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
