//! Reading cases and people for the evaluator, in batches; writing next-check instants.

use super::schema::{agency_roles, case_events, case_roles, cases, partnership_roles, people};
use super::DbError;
use crate::domain::{
    AgencyId, Case, CaseRef, Directory, Email, Event, EventKind, PartnershipId, Person, PersonId,
};
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use std::collections::HashMap;

/// A stored row the core cannot read (a bad kind or id written by a case system).
#[derive(Debug, Clone)]
pub struct BadRow {
    pub case_id: i64,
    pub message: String,
}

/// Everyone in a partnership, with their agency and partnership roles.
pub fn load_directory(
    conn: &mut PgConnection,
    partnership: &str,
    admin: Option<Email>,
) -> Result<Directory, DbError> {
    let mut d = Directory {
        admin_email: admin,
        ..Directory::default()
    };
    type PersonRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<PersonRow> = people::table
        .filter(people::partnership_id.eq(partnership))
        .select((
            people::id,
            people::name,
            people::email,
            people::agency_id,
            people::manager_id,
        ))
        .load(conn)?;
    for (id, name, email, agency, manager) in rows {
        let Ok(pid) = PersonId::parse(&id) else {
            tracing::warn!(partnership, person = %id, "skipping a person with an invalid id");
            continue;
        };
        let email = email.as_deref().and_then(|e| Email::parse(e).ok());
        d.people.insert(
            pid.clone(),
            Person {
                id: pid,
                name,
                email,
                agency: agency.as_deref().and_then(|a| AgencyId::parse(a).ok()),
                manager: manager.as_deref().and_then(|m| PersonId::parse(m).ok()),
            },
        );
    }
    let roles: Vec<(String, String, String)> = agency_roles::table
        .filter(agency_roles::partnership_id.eq(partnership))
        .select((
            agency_roles::agency_id,
            agency_roles::role,
            agency_roles::person_id,
        ))
        .load(conn)?;
    for (agency, role, person) in roles {
        if let (Ok(a), Ok(p)) = (AgencyId::parse(&agency), PersonId::parse(&person)) {
            d.agency_roles.insert((a, role), p);
        }
    }
    let roles: Vec<(String, String)> = partnership_roles::table
        .filter(partnership_roles::partnership_id.eq(partnership))
        .select((partnership_roles::role, partnership_roles::person_id))
        .load(conn)?;
    for (role, person) in roles {
        if let Ok(p) = PersonId::parse(&person) {
            d.partnership_roles.insert(role, p);
        }
    }
    Ok(d)
}

/// Partnerships that have any rows.
pub fn partnerships(conn: &mut PgConnection) -> Result<Vec<String>, DbError> {
    use super::schema::partnerships::dsl as p;
    p::partnerships.select(p::id).order(p::id).load(conn)
}

/// Which cases a pass looks at.
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    /// Open cases whose next check has come (the hourly pass).
    DueBy(DateTime<Utc>),
    /// Every open case (dry runs and forced full passes).
    All,
}

/// Cases by database id, and the rows that could not be read.
pub type Batch = (Vec<(i64, Case)>, Vec<BadRow>);

/// The next batch of cases with id > `after`, with their roles and events, in id order.
pub fn load_batch(
    conn: &mut PgConnection,
    partnership: &str,
    selection: Selection,
    after: i64,
    limit: usize,
) -> Result<Batch, DbError> {
    let (cases, bad) = load_pass_batch(conn, partnership, Which::After(selection, after, limit))?;
    Ok((cases.into_iter().map(|c| (c.id, c.case)).collect(), bad))
}

/// A case as a pass reads it: with what the last writing pass stored for it.
#[derive(Debug, Clone)]
pub struct PassCase {
    pub id: i64,
    pub case: Case,
    /// The stored next check (the pass writes it only when it changes).
    pub next_check_at: Option<DateTime<Utc>>,
    /// `decided_hash` of what the last writing pass decided for it (None: not known).
    pub decided_hash: Option<i64>,
}

/// Which cases of a partnership a batch reads.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// Those selected with id > `after`, at most `limit`, in id order.
    After(Selection, i64, usize),
    /// These (open ones only), in id order.
    Ids(&'a [i64]),
}

/// Cases as a pass reads them, and the rows that could not be read.
pub type PassBatch = (Vec<PassCase>, Vec<BadRow>);

type CaseRow = (
    i64,
    String,
    bool,
    Option<i32>,
    Option<DateTime<Utc>>,
    Option<i64>,
);

/// A batch of a partnership's open cases with their roles and events, in id order: three
/// queries (cases, then the roles and the events of those cases).
pub fn load_pass_batch(
    conn: &mut PgConnection,
    partnership: &str,
    which: Which<'_>,
) -> Result<PassBatch, DbError> {
    let mut q = cases::table
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::closed_at.is_null())
        .into_boxed();
    match which {
        Which::After(selection, after, limit) => {
            q = q.filter(cases::id.gt(after)).limit(limit as i64);
            if let Selection::DueBy(now) = selection {
                q = q.filter(cases::next_check_at.le(now));
            }
        }
        Which::Ids(ids) => q = q.filter(cases::id.eq_any(ids)),
    }
    let rows: Vec<CaseRow> = q
        .order(cases::id)
        .select((
            cases::id,
            cases::reference,
            cases::unborn,
            cases::visit_interval_days,
            stored_check(),
            cases::decided_hash,
        ))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut bad = Vec::new();
    let mut roles = load_roles(conn, &ids, &mut bad)?;
    let mut events = load_events(conn, &ids, &mut bad)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, reference, unborn, visit, next_check_at, decided_hash) in rows {
        let (Ok(reference), Ok(partnership)) = (
            CaseRef::parse(&reference),
            PartnershipId::parse(partnership),
        ) else {
            bad.push(BadRow {
                case_id: id,
                message: format!("invalid case reference {reference:?}"),
            });
            continue;
        };
        let case = Case {
            partnership,
            reference,
            unborn,
            visit_interval_days: visit.and_then(|v| u32::try_from(v).ok()),
            roles: roles.remove(&id).unwrap_or_default(),
            events: events.remove(&id).unwrap_or_default(),
        };
        out.push(PassCase {
            id,
            case,
            next_check_at,
            decided_hash,
        });
    }
    Ok((out, bad))
}

/// `next_check_at` as chrono can hold it: `-infinity` (what writers set for "look at it now")
/// reads as `store::CHECK_NOW`, NULL (nothing pending) stays NULL.
fn stored_check(
) -> diesel::expression::SqlLiteral<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>> {
    diesel::dsl::sql(
        "CASE WHEN next_check_at IS NULL THEN NULL \
         ELSE least(greatest(next_check_at, 'epoch'::timestamptz), '9999-12-31'::timestamptz) END",
    )
}

/// The earliest next check of a partnership's open cases (None: nothing pending on any).
/// The first entry of the `cases_due` index, whatever the planner's statistics: what an idle
/// pass costs, at any number of cases.
pub fn earliest_check(
    conn: &mut PgConnection,
    partnership: &str,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let first: Option<Option<DateTime<Utc>>> = cases::table
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::closed_at.is_null())
        .filter(cases::next_check_at.is_not_null())
        .order(cases::next_check_at)
        .select(stored_check())
        .first(conn)
        .optional()?;
    Ok(first.flatten())
}

/// The ids of a partnership's open cases whose next check has come by `now`, in id order
/// (from the `cases_due` index: cost proportional to the cases due).
pub fn due_ids(
    conn: &mut PgConnection,
    partnership: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, DbError> {
    cases::table
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::closed_at.is_null())
        .filter(cases::next_check_at.le(now))
        .order(cases::id)
        .select(cases::id)
        .load(conn)
}

/// A stable hash of what a pass decided for one case: each notice's key and recipients, in the
/// order decided. Stored with the case (`cases.decided_hash`) so that the next pass deciding
/// the same writes nothing for it. The first 8 bytes of a SHA-256, so it is the same on every
/// replica and version that decides the same.
pub fn decided_hash<'n>(notices: impl IntoIterator<Item = &'n crate::evaluate::Notice>) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for n in notices {
        h.update(n.key.as_str().as_bytes());
        for (r, position) in n.recipients() {
            h.update([0u8]);
            h.update(position.as_str().as_bytes());
            h.update([b':']);
            h.update(r.email.as_str().as_bytes());
        }
        h.update([b'\n']);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// What a pass writes for one case: its next check and the hash of what it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckWrite {
    pub id: i64,
    pub next_check_at: Option<DateTime<Utc>>,
    pub decided_hash: Option<i64>,
}

/// Write cases' next checks and decided hashes, in one statement.
pub fn set_checks(conn: &mut PgConnection, checks: &[CheckWrite]) -> Result<(), DbError> {
    if checks.is_empty() {
        return Ok(());
    }
    let c = CheckColumns::of(checks);
    set_checks_statement(SET_CHECKS, &c).execute(conn)?;
    Ok(())
}

const SET_CHECKS: &str = "UPDATE cases SET next_check_at = u.at, decided_hash = u.h \
     FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[]) AS u(id, at, h) \
     WHERE cases.id = u.id";

/// The case rows to write, column by column, for `unnest`.
struct CheckColumns {
    ids: Vec<i64>,
    at: Vec<Option<DateTime<Utc>>>,
    hash: Vec<Option<i64>>,
}

impl CheckColumns {
    fn of(checks: &[CheckWrite]) -> Self {
        CheckColumns {
            ids: checks.iter().map(|c| c.id).collect(),
            at: checks.iter().map(|c| c.next_check_at).collect(),
            hash: checks.iter().map(|c| c.decided_hash).collect(),
        }
    }
}

/// `sql` (`SET_CHECKS`, or its EXPLAIN) bound to the rows to write.
fn set_checks_statement<'a>(sql: &str, c: &'a CheckColumns) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    use diesel::sql_types::{Array, Int8, Nullable, Timestamptz};
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Array<Int8>, _>(&c.ids)
        .bind::<Array<Nullable<Timestamptz>>, _>(&c.at)
        .bind::<Array<Nullable<Int8>>, _>(&c.hash)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of `set_checks` of these rows, run for real: the caller's
/// transaction is to be rolled back.
pub fn explain_set_checks(
    conn: &mut PgConnection,
    checks: &[CheckWrite],
) -> Result<Vec<String>, DbError> {
    let c = CheckColumns::of(checks);
    super::plan(
        conn,
        set_checks_statement(&super::explained(SET_CHECKS), &c),
    )
}

/// The partnerships that hold a case with this reference.
pub fn partnerships_with_case(
    conn: &mut PgConnection,
    reference: &str,
) -> Result<Vec<String>, DbError> {
    cases::table
        .filter(cases::reference.eq(reference))
        .select(cases::partnership_id)
        .order(cases::partnership_id)
        .load(conn)
}

/// A case with its database id and, if the case system closed it, when.
pub type OneCase = (i64, Case, Option<DateTime<Utc>>);

/// One case by reference, closed or open, with its roles and events; its database id and when
/// it closed. None if there is no such case (or its stored rows cannot be read: `bad`).
pub fn load_one(
    conn: &mut PgConnection,
    partnership: &str,
    reference: &str,
    bad: &mut Vec<BadRow>,
) -> Result<Option<OneCase>, DbError> {
    type Row = (i64, bool, Option<i32>, Option<DateTime<Utc>>);
    let row: Option<Row> = cases::table
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::reference.eq(reference))
        .select((
            cases::id,
            cases::unborn,
            cases::visit_interval_days,
            cases::closed_at,
        ))
        .first(conn)
        .optional()?;
    let Some((id, unborn, visit, closed_at)) = row else {
        return Ok(None);
    };
    let (Ok(reference), Ok(partnership)) =
        (CaseRef::parse(reference), PartnershipId::parse(partnership))
    else {
        bad.push(BadRow {
            case_id: id,
            message: format!("invalid case reference {reference:?}"),
        });
        return Ok(None);
    };
    let mut roles = load_roles(conn, &[id], bad)?;
    let mut events = load_events(conn, &[id], bad)?;
    let case = Case {
        partnership,
        reference,
        unborn,
        visit_interval_days: visit.and_then(|v| u32::try_from(v).ok()),
        roles: roles.remove(&id).unwrap_or_default(),
        events: events.remove(&id).unwrap_or_default(),
    };
    Ok(Some((id, case, closed_at)))
}

/// The roles of these cases (role → person), by case id.
fn load_roles(
    conn: &mut PgConnection,
    ids: &[i64],
    bad: &mut Vec<BadRow>,
) -> Result<HashMap<i64, Vec<(String, PersonId)>>, DbError> {
    let mut roles: HashMap<i64, Vec<(String, PersonId)>> = HashMap::new();
    let rows: Vec<(i64, String, String)> = case_roles::table
        .filter(case_roles::case_id.eq_any(ids))
        .select((case_roles::case_id, case_roles::role, case_roles::person_id))
        .order((case_roles::case_id, case_roles::role, case_roles::person_id))
        .load(conn)?;
    for (id, role, person) in rows {
        match PersonId::parse(&person) {
            Ok(p) => roles.entry(id).or_default().push((role, p)),
            Err(e) => bad.push(BadRow {
                case_id: id,
                message: e.to_string(),
            }),
        }
    }
    Ok(roles)
}

/// The events of these cases, oldest first, by case id; unreadable ones go to `bad`.
fn load_events(
    conn: &mut PgConnection,
    ids: &[i64],
    bad: &mut Vec<BadRow>,
) -> Result<HashMap<i64, Vec<Event>>, DbError> {
    type EventRow = (
        i64,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        serde_json::Value,
        String,
    );
    let rows: Vec<EventRow> = case_events::table
        .filter(case_events::case_id.eq_any(ids))
        .select((
            case_events::case_id,
            case_events::kind,
            case_events::at,
            case_events::recorded_at,
            case_events::data,
            case_events::source,
        ))
        .order((case_events::case_id, case_events::at, case_events::id))
        .load(conn)?;
    let mut events: HashMap<i64, Vec<Event>> = HashMap::new();
    for (id, kind, at, recorded_at, data, source) in rows {
        let Some(kind) = EventKind::parse(&kind) else {
            bad.push(BadRow {
                case_id: id,
                message: format!("unknown event kind {kind:?}"),
            });
            continue;
        };
        let data = match data {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let event = Event {
            kind,
            at,
            recorded_at,
            data,
            origin: crate::domain::Origin::of_source(&source),
        };
        push_unique(events.entry(id).or_default(), event);
    }
    Ok(events)
}

/// Add an event to a case's list (sorted by time) unless the same event, sent by another
/// source, is there already; the case system's copy wins over the census's (it may start
/// every rule).
fn push_unique(list: &mut Vec<Event>, e: Event) {
    let same = list
        .iter_mut()
        .rev()
        .take_while(|x| x.at == e.at)
        .find(|x| x.kind == e.kind && x.recorded_at == e.recorded_at && x.data == e.data);
    match same {
        Some(x) => {
            if e.origin == crate::domain::Origin::CaseSystem {
                x.origin = e.origin;
            }
        }
        None => list.push(e),
    }
}

/// Write each case's next-check instant (None = nothing pending) in one statement.
pub fn set_next_checks(
    conn: &mut PgConnection,
    checks: &[(i64, Option<DateTime<Utc>>)],
) -> Result<(), DbError> {
    if checks.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = checks.iter().map(|c| c.0).collect();
    let at: Vec<Option<DateTime<Utc>>> = checks.iter().map(|c| c.1).collect();
    diesel::sql_query(
        "UPDATE cases SET next_check_at = u.at FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at) \
         WHERE cases.id = u.id",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Int8>, _>(ids)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>>, _>(at)
    .execute(conn)?;
    Ok(())
}

/// The e-mail address of a case's team manager, if the case system recorded one.
pub fn team_manager_email(
    conn: &mut PgConnection,
    partnership: &str,
    case_ref: &str,
) -> Result<Option<String>, DbError> {
    let found: Option<Option<String>> = cases::table
        .inner_join(case_roles::table)
        .inner_join(
            people::table.on(people::partnership_id
                .eq(cases::partnership_id)
                .and(people::id.eq(case_roles::person_id))),
        )
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::reference.eq(case_ref))
        .filter(case_roles::role.eq("team_manager"))
        .select(people::email)
        .first(conn)
        .optional()?;
    Ok(found.flatten())
}

/// After a pass that moved many next checks: clear the versions it replaced out of `cases_due`
/// (else the next idle probe steps over one dead index entry per row written, reading the heap
/// for each) and refresh the planner's statistics, so the hourly pass's query for what is due
/// keeps its index plan. Not `SKIP_LOCKED`: autovacuum, likely busy with the same table after
/// a big pass, gives way to it (a replica vacuuming at the same time is waited for). Not inside
/// a transaction.
pub fn vacuum_analyze(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("VACUUM (ANALYZE) cases").execute(conn)?;
    Ok(())
}
