//! `cpwatch import --format cin-census FILE.xml`: open the extract (streamed, never read
//! whole) and the role mapping, run the import, and say what it did in a chair's and an
//! operator's words: cases, events added, moved and removed, cases nobody manages, and where
//! the census's own conference target disagrees with cpwatch's calendar.

use super::{connect, InputError};
use crate::import::{self, CensusOptions, CensusSummary};
use crate::jobs::Runtime;
use crate::settings::Settings;
use crate::store;
use std::path::Path;

pub fn import(
    settings: &Settings,
    file: &Path,
    partnership: Option<&str>,
    roles: Option<&Path>,
    go_live: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<()> {
    let cannot =
        |path: &Path, e: std::io::Error| InputError(format!("cannot read {}: {e}", path.display()));
    let input = std::fs::File::open(file).map_err(|e| cannot(file, e))?;
    let roles_text = match roles {
        Some(path) => Some((
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|e| cannot(path, e))?,
        )),
        None => None,
    };
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    let runtime = Runtime::load(settings, &mut conn);
    let partnerships: Vec<(String, Vec<String>)> = settings
        .partnerships
        .iter()
        .map(|(n, p)| (n.clone(), p.la_codes.clone()))
        .collect();
    let calendar_of = |p: &str| runtime.partnerships.get(p).map(|r| r.calendar.clone());
    let name = file.display().to_string();
    let opts = CensusOptions {
        file: &name,
        partnerships: &partnerships,
        partnership,
        roles: roles_text.as_ref().map(|(f, t)| (f.as_str(), t.as_str())),
        calendar_of: &calendar_of,
    };
    let summary = import::import_census(
        &mut conn,
        std::io::BufReader::with_capacity(64 * 1024, input),
        &opts,
    )?;
    print_summary(&summary, settings.mail.admin_address.is_some());
    if let Some(g) = go_live {
        super::record_go_live(&mut conn, settings, &summary.partnership, g)?;
    }
    Ok(())
}

fn print_summary(s: &CensusSummary, admin: bool) {
    println!(
        "imported the CIN census extract into {}{}: {} children, {} cases; census events: {} added, {} moved or changed, {} removed",
        s.partnership,
        s.la_code.as_ref().map_or(String::new(), |c| format!(" (local authority {c})")),
        s.children,
        s.cases,
        s.added,
        s.corrected,
        s.removed
    );
    if s.unmanaged > 0 {
        println!(
            "{} case(s) have no team manager in the role mapping: each gets a data-quality notice, sent to {}",
            s.unmanaged,
            if admin {
                "mail.admin_address"
            } else {
                "nobody until mail.admin_address is set or the roles are mapped (--roles)"
            }
        );
    }
    if !s.target_disagreements.is_empty() {
        println!(
            "the census's initial conference target disagrees with cpwatch's 15 working days for {} enquiry(ies) \
             (one of the two calendars is wrong; each case also gets a data-quality notice):",
            s.target_disagreements.len()
        );
        for d in &s.target_disagreements {
            println!("  {d}");
        }
    }
}
