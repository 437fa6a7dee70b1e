//! `cpwatch report`: its options, and the run that reads the figures from the store (through
//! `jobs::timeliness`, `jobs::census`, `store::disputes`) and writes them as text, CSV tables or
//! one HTML file. The figures themselves are `crate::report`'s.

use super::{connect, InputError};
use crate::jobs::timeliness::Range;
use crate::jobs::Runtime;
use crate::report::{self, tables, Report};
use crate::settings::Settings;
use crate::store;
use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// For people, on a terminal.
    Text,
    /// One table per file (--out DIR) or the one named by --table, each with one header row.
    Csv,
    /// One self-contained page (inline SVG charts, no script) for a board paper.
    Html,
}

/// A bound of the period: a date (local midnight in the partnership's zone) or an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl Bound {
    pub fn parse(s: &str) -> Result<Bound, String> {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Bound::Date(d));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Bound::Instant(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!(
                    "{s:?} is neither a date (2026-04-01, meaning local midnight) nor an RFC 3339 \
                     instant (2026-04-01T00:00:00Z)"
                )
            })
    }

    /// The instant: a date is the first instant of that day in `tz`.
    fn resolve(self, tz: crate::calendar::Tz) -> DateTime<Utc> {
        use chrono::TimeZone as _;
        match self {
            Bound::Instant(t) => t,
            Bound::Date(d) => {
                let midnight = d.and_time(NaiveTime::MIN);
                match tz.from_local_datetime(&midnight) {
                    chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                        t.with_timezone(&Utc)
                    }
                    // Midnight skipped by a clock change: the day starts at the change.
                    chrono::LocalResult::None => tz
                        .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                        .earliest()
                        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc)),
                }
            }
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// text, csv (needs --table or --out) or html (one file: --out FILE, else standard output).
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
    /// Judge timeliness as at this instant (RFC 3339; default now).
    #[arg(long, value_parser = super::parse_instant)]
    pub at: Option<DateTime<Utc>>,
    /// The period's start: a date (2026-04-01 = local midnight) or an RFC 3339 instant. Rule
    /// occurrences count by their deadline, census measures by the date of what they count.
    #[arg(long, value_parser = Bound::parse)]
    pub from: Option<Bound>,
    /// The period's end (exclusive): a date (local midnight) or an RFC 3339 instant.
    #[arg(long, value_parser = Bound::parse)]
    pub to: Option<Bound>,
    /// Only this partnership (default: every configured partnership).
    #[arg(long)]
    pub partnership: Option<String>,
    /// CSV: print only this table (timeliness, census, census_by_team, census_by_month,
    /// escalation_stages, records).
    #[arg(long)]
    pub table: Option<String>,
    /// CSV: a directory to write every table into, one NAME.csv each; HTML or text: the file.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// The period in instants, checked: dates are midnight in `tz`; `from` must not be after `to`.
fn period(args: &ReportArgs, tz: crate::calendar::Tz) -> Result<Range, InputError> {
    let range = Range {
        from: args.from.map(|b| b.resolve(tz)),
        to: args.to.map(|b| b.resolve(tz)),
    };
    if let (Some(f), Some(t)) = (range.from, range.to) {
        if f > t {
            return Err(InputError(format!(
                "--from ({}) is after --to ({}): the period would be empty",
                crate::evaluate::rfc3339(f),
                crate::evaluate::rfc3339(t)
            )));
        }
    }
    Ok(range)
}

/// Refuse option combinations that cannot work, before reading anything.
fn check_args(settings: &Settings, args: &ReportArgs) -> Result<(), InputError> {
    if let Some(p) = &args.partnership {
        if !settings.partnerships.contains_key(p) {
            let known: Vec<&str> = settings.partnerships.keys().map(String::as_str).collect();
            return Err(InputError(format!(
                "--partnership: {p:?} is not configured (configured: {})",
                known.join(", ")
            )));
        }
    }
    let names = || {
        tables::TABLES
            .iter()
            .map(|(n, what)| format!("{n} ({what})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (args.format, &args.table, &args.out) {
        (ReportFormat::Csv, None, None) => Err(InputError(format!(
            "--format csv writes one table at a time: name it with --table, or give --out DIR \
             for one file per table. Tables: {}",
            names()
        ))),
        (ReportFormat::Csv, Some(t), _) if !tables::TABLES.iter().any(|(n, _)| n == t) => Err(
            InputError(format!("--table: no table {t:?}; tables: {}", names())),
        ),
        (ReportFormat::Csv, Some(_), Some(_)) => Err(InputError(
            "--table prints one table; --out DIR writes them all: give one of them".into(),
        )),
        (ReportFormat::Text | ReportFormat::Html, Some(_), _) => {
            Err(InputError("--table goes with --format csv".into()))
        }
        _ => Ok(()),
    }
}

pub fn run(settings: &Settings, args: ReportArgs) -> anyhow::Result<()> {
    check_args(settings, &args)?;
    let tz = args
        .partnership
        .as_ref()
        .and_then(|p| settings.partnerships.get(p))
        .map_or(settings.schedule.timezone, |p| p.timezone);
    let range = period(&args, tz)?;
    let at = args.at.unwrap_or_else(Utc::now);
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    let runtime = Runtime::load(settings, &mut conn);
    let only = args.partnership.as_deref();
    let batch = settings.database.batch_size;
    let mut timeliness = crate::jobs::timeliness::collect(&mut conn, &runtime, at, range, batch)?;
    timeliness.retain(|f| only.is_none_or(|p| f.partnership == p));
    let mut disputes = store::disputes::report_disputes(&mut conn)?;
    disputes.retain(|d| only.is_none_or(|p| d.partnership == p));
    let mut report = report::build(
        &disputes,
        &runtime.catalogue,
        &|p| runtime.partnerships.get(p).map(|r| &r.calendar),
        timeliness,
    );
    report.census = crate::jobs::census::collect(&mut conn, &runtime, settings, only, range, at)?;
    write(&report, &args, range, at, tz)
}

/// The period in a reader's words, in the partnership's zone: "1 Apr 2025 to 31 Mar 2026"
/// when the bounds are local midnights (the end is exclusive, so its day before is shown).
fn describe_period(range: Range, at: DateTime<Utc>, tz: crate::calendar::Tz) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz);
    let start = |t: DateTime<Utc>| {
        let l = local(t);
        if l.time() == NaiveTime::MIN {
            l.format("%-d %b %Y").to_string()
        } else {
            l.format("%-d %b %Y %H:%M").to_string()
        }
    };
    let end = |t: DateTime<Utc>| {
        let l = local(t);
        if l.time() == NaiveTime::MIN {
            (l.date_naive() - chrono::Days::new(1))
                .format("%-d %b %Y")
                .to_string()
        } else {
            format!("{} (not included)", l.format("%-d %b %Y %H:%M"))
        }
    };
    let upto = format!("{} {}", local(at).format("%-d %b %Y %H:%M"), tz.name());
    match (range.from, range.to) {
        (Some(f), Some(t)) => format!("{} to {}", start(f), end(t)),
        (Some(f), None) => format!("{} up to {upto}", start(f)),
        (None, Some(t)) => format!("all recorded history to {}", end(t)),
        (None, None) => format!("all recorded history up to {upto}"),
    }
}

fn write(
    r: &Report,
    args: &ReportArgs,
    range: Range,
    at: DateTime<Utc>,
    tz: crate::calendar::Tz,
) -> anyhow::Result<()> {
    let text = match args.format {
        ReportFormat::Text => report::render_text(r),
        ReportFormat::Html => {
            let mut names: Vec<String> = r.census.iter().map(|c| c.partnership.clone()).collect();
            names.dedup();
            let heading = report::html::Heading {
                generated_at: at,
                period: describe_period(range, at, tz),
                partnerships: names,
            };
            report::html::render(r, &heading)?
        }
        ReportFormat::Csv => match (&args.table, &args.out) {
            (Some(t), _) => tables::table(r, t).unwrap_or_default(),
            (None, Some(dir)) => return write_tables(r, dir),
            (None, None) => unreachable!("refused by check_args"),
        },
    };
    match &args.out {
        Some(path) => write_whole(path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// Write `text` to `path` whole or not at all (a temporary file beside it, then a rename).
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Every table into `dir` (created if missing), NAME.csv each; all written before any is renamed.
fn write_tables(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, _) in tables::TABLES {
        let path = dir.join(format!("{name}.csv"));
        let tmp = dir.join(format!(".{name}.csv.partial"));
        let text = tables::table(r, name).unwrap_or_default();
        if let Err(e) = std::fs::write(&tmp, text) {
            for (t, _) in &written {
                let _ = std::fs::remove_file(t);
            }
            return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
        }
        written.push((tmp, path));
    }
    for (tmp, path) in &written {
        std::fs::rename(tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {} tables to {}: {}",
        written.len(),
        dir.display(),
        tables::TABLES
            .iter()
            .map(|(n, _)| format!("{n}.csv"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
