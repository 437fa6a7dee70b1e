//! The digest step, in the delivery loop (`cpwatch run` and `cpwatch deliver`): hold reminders
//! and "due today" notices for people who opted in (in the pass's transaction that queued them),
//! and at each person's digest time make their digest: in ONE transaction, the digest notice
//! with its one delivery, and every delivery it carries marked `digested` with its id. So a
//! crash before the commit leaves everything held as it was, and after it the digest is an
//! ordinary outbox entry (claimed under a lease, sent once); nothing is carried twice.

use super::delivery::{Db, Delivery};
use super::Runtime;
use crate::digest::{self, OptIn};
use crate::domain::{Email, PartnershipId};
use crate::evaluate::{Kind, Notice};
use crate::settings::{DigestSettings, Partnership};
use crate::store::deliveries::Claimed;
use crate::store::{digests, notices, DbError};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::Connection as _;

/// Test-only fault point: when set (to anything), the process aborts right after it committed a
/// digest, before sending it (a crash between making a digest and sending it). Inert unless set.
pub const FAULT_ABORT_AFTER_DIGEST: &str = "FAULT_CPWATCH_ABORT_AFTER_DIGEST";

/// Who receives digests in partnership `p`: its own `digest_people` / `digest_roles`, else
/// `[digest]`'s. None when digests are off or nobody opted in.
pub fn opt_in(d: &DigestSettings, p: &Partnership) -> Option<OptIn> {
    if !d.enabled {
        return None;
    }
    let people = p.digest_people.as_ref().unwrap_or(&d.people);
    let roles = p.digest_roles.as_ref().unwrap_or(&d.roles);
    (!people.is_empty() || !roles.is_empty()).then(|| OptIn {
        time: d.time,
        people: people.iter().cloned().collect(),
        roles: roles.iter().cloned().collect(),
    })
}

/// In the transaction that queued `queued` for `partnership` at `now`: hold the deliveries that
/// wait for a digest (`digest::holds`). Returns how many were held.
pub fn hold<N: std::borrow::Borrow<Notice>>(
    conn: &mut PgConnection,
    runtime: &Runtime,
    partnership: &str,
    queued: &[N],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    let Some(p) = runtime.partnerships.get(partnership) else {
        return Ok(0);
    };
    let Some(opt) = &p.digest else {
        return Ok(0);
    };
    let holds = digest::holds(opt, &p.calendar, queued, now);
    digests::hold(conn, &holds)
}

/// What one digest step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DigestReport {
    /// Digests made (each one outbox entry).
    pub digests: usize,
    /// Deliveries carried by them.
    pub carried: usize,
    /// Held deliveries whose deadline passed before their digest: cancelled.
    pub stale: usize,
    /// Held deliveries let go on their own (their digest was made already, digests were
    /// switched off, or the notice cannot be read).
    pub released: usize,
}

impl DigestReport {
    fn add(&mut self, o: DigestReport) {
        self.digests += o.digests;
        self.carried += o.carried;
        self.stale += o.stale;
        self.released += o.released;
    }
}

/// Make every digest whose time has come by `now` (and whose pass has run: `digest::ready_by`),
/// one person per transaction.
pub fn make_due(
    conn: &mut PgConnection,
    runtime: &Runtime,
    now: DateTime<Utc>,
) -> Result<DigestReport, DbError> {
    let mut report = DigestReport::default();
    let off: Vec<String> = runtime
        .partnerships
        .iter()
        .filter(|(_, p)| p.digest.is_none())
        .map(|(name, _)| name.clone())
        .collect();
    report.released += digests::release_partnerships(conn, &off)?;
    // Most rounds have nothing held whose time has come: then the audit log is not read.
    if digests::due(conn, now)?.is_empty() {
        return Ok(report);
    }
    let ready = digest::ready_by(now, digests::last_pass_instant(conn)?);
    for (partnership, recipient) in digests::due(conn, ready)? {
        let one = conn.transaction(|conn| {
            make_one(conn, runtime, (&partnership, &recipient), (ready, now))
        })?;
        report.add(one);
        if one.digests > 0 {
            fault_after_digest();
        }
    }
    if report != DigestReport::default() {
        tracing::info!(
            digests = report.digests,
            carried = report.carried,
            stale = report.stale,
            released = report.released,
            "digests made"
        );
    }
    Ok(report)
}

/// One person's digest in one partnership: take their held deliveries, cancel the stale ones,
/// queue the digest and mark what it carries.
fn make_one(
    conn: &mut PgConnection,
    runtime: &Runtime,
    (partnership, recipient): (&str, &str),
    (ready, now): (DateTime<Utc>, DateTime<Utc>),
) -> Result<DigestReport, DbError> {
    let mut report = DigestReport::default();
    let mut readable = Vec::new();
    let mut loose = Vec::new();
    for h in digests::take(conn, partnership, recipient, ready)? {
        match h.notice.read() {
            Ok(n) => readable.push((h.id, n)),
            Err(_) => loose.push(h.id),
        }
    }
    let (fresh, stale) = digest::split_stale(readable, now);
    let why = "stale: its deadline passed before its digest";
    report.stale += digests::cancel(conn, &stale, why)?;
    let (ids, items): (Vec<i64>, Vec<Notice>) = fresh.into_iter().unzip();
    let target = runtime.partnerships.get(partnership).and_then(|p| {
        let pid = PartnershipId::parse(partnership).ok()?;
        Some((p, pid, Email::parse(recipient).ok()?))
    });
    let Some((p, pid, email)) = target.filter(|_| !items.is_empty()) else {
        loose.extend(ids);
        report.released += digests::release(conn, &loose)?;
        return Ok(report);
    };
    report.released += digests::release(conn, &loose)?;
    let role = digest::role_of(recipient, &items);
    let date = p.calendar.local_date(now);
    let d = digest::notice(&pid, &email, &role, date, now, items.len());
    let queued = notices::enqueue_new(conn, std::slice::from_ref(&d), &runtime.message_id_domain)?;
    let id = digests::notice_id(conn, d.key.as_str())?;
    let Some(id) = id.filter(|_| queued.new.contains(d.key.as_str())) else {
        // This person's digest for today was made already: these go on their own.
        report.released += digests::release(conn, &ids)?;
        return Ok(report);
    };
    report.carried += digests::carry(conn, &ids, id)?;
    report.digests += 1;
    Ok(report)
}

fn fault_after_digest() {
    if std::env::var_os(FAULT_ABORT_AFTER_DIGEST).is_some() {
        eprintln!("{FAULT_ABORT_AFTER_DIGEST}: aborting after making a digest, before sending it");
        std::process::abort();
    }
}

impl Delivery<'_> {
    /// For a digest: the notices it carries, to word it; None for any other notice.
    pub(super) fn digest_items(
        &self,
        db: &mut Db<'_>,
        row: &Claimed,
    ) -> anyhow::Result<Option<Vec<Notice>>> {
        let Ok(n) = &row.notice else {
            return Ok(None);
        };
        if n.kind != Kind::Digest {
            return Ok(None);
        }
        let rows = db.call(|conn| digests::items(conn, n.key.as_str()))?;
        Ok(Some(rows.iter().filter_map(|r| r.read().ok()).collect()))
    }
}
