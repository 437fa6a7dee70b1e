//! `cpwatch import FILE`: a JSON case file into the database, in one transaction.
//! Read it ([`json`]) → look up the ids its partnership already holds (`store::import`) →
//! check it against them ([`validate`], pure) → write the records (`store::import`).
//! Every problem is reported with where it is (case, event, field); nothing is written unless
//! the whole file is valid. Importing the same file twice changes nothing.

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
