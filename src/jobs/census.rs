//! The census half of `cpwatch report`: stream every case of each partnership, find the
//! occasions the children-in-need census measures count (`report::census`), and tally them
//! over the period, by team and by month.

use super::timeliness::Range;
use super::Runtime;
use crate::calendar::{BankHolidays, Calendar};
use crate::domain::{Case, Directory};
use crate::report::census::{occasions, CensusFigures, CensusTally, Month};
use crate::settings::Settings;
use crate::store::cases::{self, Selection};
use chrono::{DateTime, Duration, Utc};
use diesel::pg::PgConnection;

/// The team a case is counted under: its team manager (name and id), the only team the case
/// data records.
pub fn team_of(case: &Case, directory: &Directory) -> String {
    match case.role("team_manager") {
        Some(id) => match directory.person(id) {
            Some(p) if !p.name.trim().is_empty() => format!("{} ({id})", p.name.trim()),
            _ => id.to_string(),
        },
        None => "(no team manager)".into(),
    }
}

/// The working days the census counts: the division's bank holidays only (local closure days
/// are not in the census's arithmetic).
fn census_calendar(
    settings: &Settings,
    holidays: &BankHolidays,
    partnership: &str,
) -> Option<Calendar> {
    let p = settings.partnerships.get(partnership)?;
    Calendar::for_division(
        holidays,
        &p.division,
        p.timezone,
        settings.calendar.open,
        settings.calendar.close,
        [],
    )
}

/// The last month of the trend: the month of the period's end (`to`, exclusive), else of `now`.
fn last_month(cal: &Calendar, range: Range, now: DateTime<Utc>) -> Month {
    let end = range.to.map_or(now, |t| t - Duration::seconds(1));
    Month::of(cal.local_date(end))
}

/// Census figures per configured partnership with stored cases (only `only`, if given).
pub fn collect(
    conn: &mut PgConnection,
    runtime: &Runtime,
    settings: &Settings,
    only: Option<&str>,
    range: Range,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<CensusFigures>> {
    let holidays = match crate::store::holidays::load_feed(conn) {
        Ok(Some(h)) => h,
        _ => BankHolidays::snapshot(),
    };
    let batch_size = settings.database.batch_size;
    let mut out = Vec::new();
    for partnership in cases::partnerships(conn)? {
        if only.is_some_and(|p| p != partnership)
            || !runtime.partnerships.contains_key(&partnership)
        {
            continue;
        }
        let Some(cal) = census_calendar(settings, &holidays, &partnership) else {
            continue;
        };
        let directory = cases::load_directory(conn, &partnership, None)?;
        let mut tally = CensusTally::new(
            &partnership,
            range.from,
            range.to,
            last_month(&cal, range, now),
        );
        let mut after = 0;
        loop {
            let (batch, _) =
                cases::load_batch(conn, &partnership, Selection::All, after, batch_size)?;
            let Some(last) = batch.last() else { break };
            after = last.0;
            for (_, case) in &batch {
                let known: Vec<_> = case
                    .events
                    .iter()
                    .filter(|e| e.known_from() <= now && e.at <= now)
                    .cloned()
                    .collect();
                let as_known = Case {
                    events: known,
                    ..case.clone()
                };
                tally.add(&team_of(case, &directory), &occasions(&as_known, &cal));
            }
            if batch.len() < batch_size {
                break;
            }
        }
        out.push(tally.finish());
    }
    Ok(out)
}
