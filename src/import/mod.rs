//! `cpwatch import FILE`: a JSON case file, or a children-in-need census extract, into the
//! database in one transaction.
//! JSON: read it ([`json`]) → look up the ids its partnership already holds (`store::import`) →
//! check it against them ([`validate`], pure) → write the records (`store::import`).
//! Census: read the header for the local authority → its partnership → stream the children
//! ([`census`]), map each to cases and events ([`census_map`], with the role mapping of
//! [`census_roles`]) and write them a few hundred cases at a time, in the same transaction.
//! Every problem is reported with where it is; nothing is written unless the whole file is
//! valid. Importing the same file twice changes nothing.

pub mod census;
pub mod census_map;
pub mod census_roles;
pub mod json;
pub mod limits;
pub mod validate;

pub use crate::records::ImportSummary;
use crate::store;
use diesel::pg::PgConnection;
use diesel::Connection;
use std::collections::HashMap;

/// The escalation ladders a dispute may name, by id (the loaded catalogue's).
pub type Ladders = HashMap<String, crate::policy::LadderPolicy>;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: not valid JSON: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: the case file was rejected, nothing was imported:\n  {}", problems.join("\n  "))]
    Invalid { file: String, problems: Vec<String> },
    #[error("database error during import (nothing was imported): {0}")]
    Db(#[from] diesel::result::Error),
}

/// Validate and write a case file in one transaction, against the built-in escalation ladders.
pub fn import(
    conn: &mut PgConnection,
    file: &str,
    text: &str,
    partnerships_configured: &[String],
) -> Result<ImportSummary, ImportError> {
    let ladders = crate::policy::Catalogue::load(None)
        .map(|c| c.ladders)
        .unwrap_or_default();
    import_with(conn, file, text, partnerships_configured, &ladders)
}

/// Validate and write a case file in one transaction; disputes may name any of `ladders`.
pub fn import_with(
    conn: &mut PgConnection,
    file: &str,
    text: &str,
    partnerships_configured: &[String],
    ladders: &Ladders,
) -> Result<ImportSummary, ImportError> {
    let invalid = |problems| ImportError::Invalid {
        file: file.into(),
        problems,
    };
    conn.transaction(|conn| {
        let doc = json::parse(text).map_err(|e| ImportError::Syntax {
            file: file.into(),
            message: e.to_string(),
        })?;
        let partnership = validate::partnership(&doc).map_err(invalid)?;
        let known = store::import::known(conn, &partnership)?;
        let mut batch =
            validate::validate(&doc, partnerships_configured, ladders, &known).map_err(invalid)?;
        batch.provenance.file = file.into();
        Ok(store::import::write(conn, &batch)?)
    })
}

/// What a census import needs besides the file.
pub struct CensusOptions<'a> {
    /// The file's name, for messages and the audit log.
    pub file: &'a str,
    /// Configured partnerships and their local authority codes.
    pub partnerships: &'a [(String, Vec<String>)],
    /// Import into this partnership whatever the header's code (`--partnership`).
    pub partnership: Option<&'a str>,
    /// The role mapping CSV (file name and text), if any.
    pub roles: Option<(&'a str, &'a str)>,
    /// A partnership's working-day calendar.
    pub calendar_of: &'a dyn Fn(&str) -> Option<crate::calendar::Calendar>,
}

/// What a census import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CensusSummary {
    pub partnership: String,
    pub la_code: Option<String>,
    pub children: usize,
    pub cases: usize,
    pub added: usize,
    pub corrected: usize,
    pub removed: usize,
    /// Cases with no team manager in the role mapping.
    pub unmanaged: usize,
    /// Enquiries whose census target disagrees with cpwatch's 15 working days.
    pub target_disagreements: Vec<String>,
}

/// Cases written per statement group of a census import.
const CENSUS_CHUNK: usize = 500;
/// Problems listed before a bad extract stops being read.
const MAX_PROBLEMS: usize = 200;

/// Import a census extract in one transaction: all of it, or (with every problem) nothing.
pub fn import_census<R: std::io::BufRead>(
    conn: &mut PgConnection,
    input: R,
    opts: &CensusOptions,
) -> Result<CensusSummary, ImportError> {
    let invalid = |problems| ImportError::Invalid {
        file: opts.file.into(),
        problems,
    };
    let bad = |e: census::CensusError| invalid(vec![e.to_string()]);
    conn.transaction(|conn| {
        let mut reader = census::CensusReader::new(input);
        let codes = reader.header().map_err(bad)?;
        let (partnership, la_code) = census_partnership(&codes, opts).map_err(invalid)?;
        let calendar = (opts.calendar_of)(partnership.as_str())
            .ok_or_else(|| invalid(vec![format!("partnership {partnership} is not configured")]))?;
        let known = store::import::known(conn, &partnership)?;
        let roles = match opts.roles {
            Some((file, text)) => {
                census_roles::RoleMap::parse(file, text, &known).map_err(invalid)?
            }
            None => census_roles::RoleMap::default(),
        };
        let mut summary = CensusSummary {
            partnership: partnership.to_string(),
            la_code,
            ..Default::default()
        };
        let mut problems = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut chunk = Vec::new();
        while let Some(child) = reader.next_child().map_err(|e| {
            let mut p = std::mem::take(&mut problems);
            p.push(e.to_string());
            invalid(p)
        })? {
            let mapped = census_map::map_child(&child, &calendar, &roles, &mut problems);
            if !mapped.id.is_empty() && !seen.insert(mapped.id.clone()) {
                problems.push(format!(
                    "line {}, Child {}: the child appears twice in the extract",
                    child.line, mapped.id
                ));
            }
            summary.children += 1;
            summary.cases += mapped.cases.len();
            summary.unmanaged += mapped.unmanaged;
            summary
                .target_disagreements
                .extend(mapped.target_disagreements);
            if problems.len() >= MAX_PROBLEMS {
                problems.push(format!(
                    "(stopped reading at line {}: too many problems)",
                    reader.line()
                ));
                break;
            }
            if problems.is_empty() {
                chunk.extend(mapped.cases);
                if chunk.len() >= CENSUS_CHUNK {
                    write_census_chunk(conn, &partnership, opts.file, &mut chunk, &mut summary)?;
                }
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        write_census_chunk(conn, &partnership, opts.file, &mut chunk, &mut summary)?;
        Ok(summary)
    })
}

/// The partnership an extract is for: `--partnership`, else the one whose `la_codes` name the
/// header's code.
fn census_partnership(
    codes: &[String],
    opts: &CensusOptions,
) -> Result<(crate::domain::PartnershipId, Option<String>), Vec<String>> {
    let code = codes.first().cloned();
    let name = match (opts.partnership, &code) {
        (Some(p), _) => {
            if !opts.partnerships.iter().any(|(n, _)| n == p) {
                let names: Vec<&str> = opts.partnerships.iter().map(|(n, _)| n.as_str()).collect();
                return Err(vec![format!(
                    "--partnership {p:?} is not a configured partnership (configured: {})",
                    names.join(", ")
                )]);
            }
            p.to_owned()
        }
        (None, None) => {
            return Err(vec![
                "the extract's header names no local authority (Header/Source/LEA); give --partnership".into(),
            ])
        }
        (None, Some(code)) => match opts.partnerships.iter().find(|(_, c)| c.contains(code)) {
            Some((n, _)) => n.clone(),
            None => {
                return Err(vec![format!(
                    "Header/Source/LEA: {code:?} is not the local authority code of any configured partnership \
                     (add it to la_codes in [partnerships.NAME], or give --partnership); nothing was imported"
                )])
            }
        },
    };
    crate::domain::PartnershipId::parse(&name)
        .map(|p| (p, code))
        .map_err(|e| vec![e.to_string()])
}

fn write_census_chunk(
    conn: &mut PgConnection,
    partnership: &crate::domain::PartnershipId,
    file: &str,
    chunk: &mut Vec<crate::records::CaseRecord>,
    summary: &mut CensusSummary,
) -> Result<(), ImportError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let batch = crate::records::ImportBatch {
        partnership: partnership.clone(),
        provenance: crate::records::Provenance {
            source: crate::domain::CENSUS_SOURCE.into(),
            file: file.into(),
            complete: true,
        },
        agencies: Vec::new(),
        people: Vec::new(),
        partnership_roles: Vec::new(),
        cases: std::mem::take(chunk),
        disputes: Vec::new(),
    };
    let written = store::import::write(conn, &batch)?;
    summary.added += written.new_events;
    summary.corrected += written.corrected_events;
    summary.removed += written.removed_events;
    Ok(())
}
