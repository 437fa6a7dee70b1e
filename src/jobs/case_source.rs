//! Where a pass's cases come from: batches of one partnership's open cases, read on the pass's
//! own connection, or — when there is more than one batch to read — by a reader thread on a
//! connection of its own, so that reading the next batches overlaps evaluating and writing this
//! one (the pass's connection is busy writing for most of a big pass).
//!
//! Reading on a second connection changes nothing the pass relies on: each batch was always read
//! by its own statement outside the writing transactions, batches hold disjoint cases, and the
//! check requests are taken (and committed) before the first batch is read.

use crate::store::cases::{self, BadRow, PassBatch, PassCase, Selection, Which};
use crate::store::{self, DbError};
use diesel::pg::PgConnection;
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::Scope;

/// Batches the reader thread may have read before the pass takes them.
const READ_AHEAD: usize = 2;

/// Which of a partnership's cases a pass reads.
pub enum Source {
    /// The case asked for by reference (taken once read).
    One(Option<String>),
    /// Every open case, in keyset batches after this id (None: done).
    All { after: Option<i64> },
    /// The cases due, collected from the index at the start, read `batch_size` at a time.
    Due { ids: Vec<i64>, at: usize },
}

impl Source {
    /// Nothing to read: an hourly pass with no case due.
    pub fn is_idle(&self) -> bool {
        matches!(self, Source::Due { ids, .. } if ids.is_empty())
    }

    /// More than one batch to read.
    fn is_large(&self, batch_size: usize) -> bool {
        match self {
            Source::One(_) => false,
            Source::All { .. } => true,
            Source::Due { ids, .. } => ids.len() > batch_size,
        }
    }

    /// The next batch and its unreadable rows (None: no more).
    pub fn next(
        &mut self,
        conn: &mut PgConnection,
        partnership: &str,
        batch_size: usize,
    ) -> Result<Option<PassBatch>, DbError> {
        let (batch, bad) = match self {
            Source::One(reference) => {
                let Some(reference) = reference.take() else {
                    return Ok(None);
                };
                one(conn, partnership, &reference)?
            }
            Source::All { after } => {
                let Some(from) = *after else { return Ok(None) };
                let which = Which::After(Selection::All, from, batch_size);
                let (batch, bad) = cases::load_pass_batch(conn, partnership, which)?;
                *after = match batch.last() {
                    Some(last) if batch.len() >= batch_size => Some(last.id),
                    _ => None,
                };
                (batch, bad)
            }
            Source::Due { ids, at } => {
                let chunk = &ids[(*at).min(ids.len())..(*at + batch_size).min(ids.len())];
                if chunk.is_empty() {
                    return Ok(None);
                }
                *at += chunk.len();
                cases::load_pass_batch(conn, partnership, Which::Ids(chunk))?
            }
        };
        Ok((!batch.is_empty() || !bad.is_empty()).then_some((batch, bad)))
    }
}

/// The case asked for by reference, if open; written whatever was stored for it.
fn one(conn: &mut PgConnection, partnership: &str, reference: &str) -> Result<PassBatch, DbError> {
    let mut bad: Vec<BadRow> = Vec::new();
    let found = cases::load_one(conn, partnership, reference, &mut bad)?;
    let open = found.filter(|(_, _, closed_at)| closed_at.is_none());
    let batch = open.map(|(id, case, _)| PassCase {
        id,
        case,
        next_check_at: None,
        decided_hash: None,
    });
    Ok((batch.into_iter().collect(), bad))
}

/// The batches of one partnership's case loop, in order.
pub enum Batches {
    /// Read on the pass's connection when asked for.
    Inline(Source),
    /// Read ahead by a reader thread; the channel closes after the last batch (or an error).
    Reader(Receiver<Result<PassBatch, DbError>>),
}

impl Batches {
    /// Start reading `source` of `partnership`: by a reader thread of `s` on its own connection
    /// to `url` when there is more than one batch, else (or if that connection cannot be made)
    /// on the pass's connection.
    pub fn start<'scope>(
        s: &'scope Scope<'scope, '_>,
        url: &str,
        partnership: &'scope str,
        mut source: Source,
        batch_size: usize,
    ) -> Batches {
        if !source.is_large(batch_size) {
            return Batches::Inline(source);
        }
        let mut conn = match store::connect(url) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "no second connection for reading ahead; reading on the pass's own");
                return Batches::Inline(source);
            }
        };
        let (tx, rx) = sync_channel(READ_AHEAD);
        s.spawn(move || loop {
            let next = source.next(&mut conn, partnership, batch_size).transpose();
            let Some(next) = next else { break };
            let failed = next.is_err();
            if tx.send(next).is_err() || failed {
                break;
            }
        });
        Batches::Reader(rx)
    }
}
