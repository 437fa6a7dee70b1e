//! Reading cases and people for the evaluator, in batches; writing next-check instants.

use super::schema::{agency_roles, case_events, case_roles, cases, partnership_roles, people};
use super::DbError;
use crate::domain::{
    AgencyId, Case, CaseRef, Directory, Email, Event, EventKind, PartnershipId, Person, PersonId,
};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
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
    let mut q = cases::table
        .filter(cases::partnership_id.eq(partnership))
        .filter(cases::closed_at.is_null())
        .filter(cases::id.gt(after))
        .into_boxed();
    if let Selection::DueBy(now) = selection {
        q = q.filter(cases::next_check_at.le(now));
    }
    let rows: Vec<(i64, String, bool, Option<i32>)> = q
        .order(cases::id)
        .limit(limit as i64)
        .select((
            cases::id,
            cases::reference,
            cases::unborn,
            cases::visit_interval_days,
        ))
        .load(conn)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let mut bad = Vec::new();
    let mut roles = load_roles(conn, &ids, &mut bad)?;
    let mut events = load_events(conn, &ids, &mut bad)?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, reference, unborn, visit) in rows {
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
        out.push((
            id,
            Case {
                partnership,
                reference,
                unborn,
                visit_interval_days: visit.and_then(|v| u32::try_from(v).ok()),
                roles: roles.remove(&id).unwrap_or_default(),
                events: events.remove(&id).unwrap_or_default(),
            },
        ));
    }
    Ok((out, bad))
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
