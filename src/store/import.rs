//! Import's two trips to the database: the ids a partnership already holds ([`known`]), and
//! the write of a validated [`ImportBatch`] ([`write`]). Call both inside one transaction.
//! Writing upserts agencies, people, roles, cases and disputes; a case's roles become the
//! batch's; events already stored are left alone, and a case or dispute that gained one is
//! marked to be looked at on the next pass. People, cases, case roles and case events are
//! written a few thousand rows a statement.

use super::schema::{
    agencies, agency_roles, case_events, case_roles, cases, dispute_events, disputes,
    partnership_roles, partnerships, people,
};
use super::{DbError, CHECK_NOW};
use crate::domain::{PartnershipId, Person};
use crate::records::{AgencyRecord, CaseRecord, DisputeRecord, ImportBatch, ImportSummary, Known};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::upsert::excluded;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The people, agencies and case references a partnership already holds.
pub fn known(conn: &mut PgConnection, partnership: &PartnershipId) -> Result<Known, DbError> {
    let p = partnership.as_str();
    let people: Vec<String> = people::table
        .filter(people::partnership_id.eq(p))
        .select(people::id)
        .load(conn)?;
    let agencies: Vec<String> = agencies::table
        .filter(agencies::partnership_id.eq(p))
        .select(agencies::id)
        .load(conn)?;
    let cases: Vec<String> = cases::table
        .filter(cases::partnership_id.eq(p))
        .select(cases::reference)
        .load(conn)?;
    Ok(Known {
        people: people.into_iter().collect(),
        agencies: agencies.into_iter().collect(),
        cases: cases.into_iter().collect(),
    })
}

/// Rows a multi-row statement carries: at most 6 binds each, well under PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 5_000;

/// Write a validated batch; what was written. Call inside a transaction. People and case
/// references must be unique within the batch (the validator sees to it); agencies and disputes
/// given twice are written twice, the last one standing.
pub fn write(conn: &mut PgConnection, batch: &ImportBatch) -> Result<ImportSummary, DbError> {
    let p = batch.partnership.as_str();
    let mut summary = ImportSummary {
        partnership: p.to_owned(),
        ..Default::default()
    };
    diesel::insert_into(partnerships::table)
        .values(partnerships::id.eq(p))
        .on_conflict_do_nothing()
        .execute(conn)?;
    write_agencies(conn, p, &batch.agencies)?;
    summary.agencies = batch.agencies.len();
    write_people(conn, p, &batch.people)?;
    summary.people = batch.people.len();
    write_roles(conn, p, batch)?;
    let case_ids = write_cases(conn, p, &batch.cases)?;
    summary.new_events = write_case_events(conn, &batch.cases, &case_ids)?;
    summary.cases = batch.cases.len();
    for d in &batch.disputes {
        summary.new_dispute_events += write_dispute(conn, p, d, &case_ids)?;
    }
    summary.disputes = batch.disputes.len();
    Ok(summary)
}

fn write_agencies(conn: &mut PgConnection, p: &str, list: &[AgencyRecord]) -> Result<(), DbError> {
    for a in list {
        diesel::insert_into(agencies::table)
            .values((
                agencies::partnership_id.eq(p),
                agencies::id.eq(a.id.as_str()),
                agencies::name.eq(&a.name),
            ))
            .on_conflict((agencies::partnership_id, agencies::id))
            .do_update()
            .set(agencies::name.eq(&a.name))
            .execute(conn)?;
    }
    Ok(())
}

fn write_people(conn: &mut PgConnection, p: &str, list: &[Person]) -> Result<(), DbError> {
    for chunk in list.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|person| {
                (
                    people::partnership_id.eq(p),
                    people::id.eq(person.id.as_str()),
                    people::name.eq(&person.name),
                    people::email.eq(person.email.as_ref().map(|e| e.as_str())),
                    people::agency_id.eq(person.agency.as_ref().map(|a| a.as_str())),
                    people::manager_id.eq(person.manager.as_ref().map(|m| m.as_str())),
                )
            })
            .collect();
        diesel::insert_into(people::table)
            .values(&rows)
            .on_conflict((people::partnership_id, people::id))
            .do_update()
            .set((
                people::name.eq(excluded(people::name)),
                people::email.eq(excluded(people::email)),
                people::agency_id.eq(excluded(people::agency_id)),
                people::manager_id.eq(excluded(people::manager_id)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Agency and partnership roles: each names its holder now.
fn write_roles(conn: &mut PgConnection, p: &str, batch: &ImportBatch) -> Result<(), DbError> {
    for a in &batch.agencies {
        for (role, person) in &a.roles {
            diesel::insert_into(agency_roles::table)
                .values((
                    agency_roles::partnership_id.eq(p),
                    agency_roles::agency_id.eq(a.id.as_str()),
                    agency_roles::role.eq(role),
                    agency_roles::person_id.eq(person.as_str()),
                ))
                .on_conflict((
                    agency_roles::partnership_id,
                    agency_roles::agency_id,
                    agency_roles::role,
                ))
                .do_update()
                .set(agency_roles::person_id.eq(person.as_str()))
                .execute(conn)?;
        }
    }
    for (role, person) in &batch.partnership_roles {
        diesel::insert_into(partnership_roles::table)
            .values((
                partnership_roles::partnership_id.eq(p),
                partnership_roles::role.eq(role),
                partnership_roles::person_id.eq(person.as_str()),
            ))
            .on_conflict((partnership_roles::partnership_id, partnership_roles::role))
            .do_update()
            .set(partnership_roles::person_id.eq(person.as_str()))
            .execute(conn)?;
    }
    Ok(())
}

/// Upsert the cases and make the batch's roles theirs; each case's id, by reference.
fn write_cases(
    conn: &mut PgConnection,
    p: &str,
    list: &[CaseRecord],
) -> Result<HashMap<String, i64>, DbError> {
    let mut ids = HashMap::with_capacity(list.len());
    for chunk in list.chunks(ROWS_PER_STATEMENT) {
        let mut rows = Vec::with_capacity(chunk.len());
        for case in chunk {
            rows.push((
                cases::partnership_id.eq(p),
                cases::reference.eq(case.reference.as_str()),
                cases::unborn.eq(case.unborn),
                cases::visit_interval_days.eq(case.visit_interval_days.map(to_int4).transpose()?),
            ));
        }
        let written: Vec<(i64, String)> = diesel::insert_into(cases::table)
            .values(&rows)
            .on_conflict((cases::partnership_id, cases::reference))
            .do_update()
            .set((
                cases::unborn.eq(excluded(cases::unborn)),
                cases::visit_interval_days.eq(excluded(cases::visit_interval_days)),
            ))
            .returning((cases::id, cases::reference))
            .get_results(conn)?;
        ids.extend(written.into_iter().map(|(id, r)| (r, id)));
    }
    // The batch's roles are the cases' roles now.
    let all: Vec<i64> = ids.values().copied().collect();
    diesel::delete(case_roles::table.filter(case_roles::case_id.eq_any(&all))).execute(conn)?;
    let mut roles = Vec::new();
    for case in list {
        let id = id_of(&ids, case)?;
        roles.extend(case.roles.iter().map(|(r, person)| {
            (
                case_roles::case_id.eq(id),
                case_roles::role.eq(r),
                case_roles::person_id.eq(person.as_str()),
            )
        }));
    }
    for chunk in roles.chunks(ROWS_PER_STATEMENT) {
        diesel::insert_into(case_roles::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(ids)
}

/// Add the cases' events not stored yet, and mark the cases that gained one to be looked at
/// on the next pass; how many events were new.
fn write_case_events(
    conn: &mut PgConnection,
    list: &[CaseRecord],
    ids: &HashMap<String, i64>,
) -> Result<usize, DbError> {
    let mut cases = Vec::with_capacity(list.len());
    for case in list {
        cases.push((id_of(ids, case)?, case));
    }
    let mut events = cases.into_iter().flat_map(|(id, case)| {
        case.events.iter().map(move |e| {
            (
                case_events::case_id.eq(id),
                case_events::kind.eq(e.kind.as_str()),
                case_events::at.eq(e.at),
                case_events::recorded_at.eq(e.recorded_at),
                case_events::data.eq(Value::Object(e.data.clone())),
            )
        })
    });
    let mut changed: Vec<i64> = Vec::new();
    loop {
        // A statement's worth at a time, so that only that many copies of event data are held.
        let chunk: Vec<_> = events.by_ref().take(ROWS_PER_STATEMENT).collect();
        if chunk.is_empty() {
            break;
        }
        let added: Vec<i64> = diesel::insert_into(case_events::table)
            .values(&chunk)
            .on_conflict_do_nothing()
            .returning(case_events::case_id)
            .get_results(conn)?;
        changed.extend(added);
    }
    let new_events = changed.len();
    changed.sort_unstable();
    changed.dedup();
    if !changed.is_empty() {
        diesel::update(cases::table.filter(cases::id.eq_any(&changed)))
            .set((
                cases::next_check_at.eq(CHECK_NOW),
                cases::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
    }
    Ok(new_events)
}

fn id_of(ids: &HashMap<String, i64>, case: &CaseRecord) -> Result<i64, DbError> {
    ids.get(case.reference.as_str())
        .copied()
        .ok_or(DbError::NotFound)
}

/// Upsert a dispute (about a case of the batch, or one stored) and add its new events; how
/// many events were new.
fn write_dispute(
    conn: &mut PgConnection,
    p: &str,
    d: &DisputeRecord,
    case_ids: &HashMap<String, i64>,
) -> Result<usize, DbError> {
    let case_id: Option<i64> = match &d.case {
        None => None,
        Some(r) => match case_ids.get(r.as_str()) {
            Some(id) => Some(*id),
            None => Some(
                cases::table
                    .filter(cases::partnership_id.eq(p))
                    .filter(cases::reference.eq(r.as_str()))
                    .select(cases::id)
                    .first(conn)?,
            ),
        },
    };
    let id: i64 = diesel::insert_into(disputes::table)
        .values((
            disputes::partnership_id.eq(p),
            disputes::reference.eq(d.reference.as_str()),
            disputes::case_id.eq(case_id),
            disputes::policy.eq(&d.policy),
            disputes::raised_by.eq(d.raised_by.as_str()),
            disputes::respondent_person.eq(d.respondent_person.as_ref().map(|x| x.as_str())),
            disputes::respondent_agency.eq(d.respondent_agency.as_ref().map(|x| x.as_str())),
            disputes::subject.eq(&d.subject),
            disputes::immediate_risk.eq(d.immediate_risk),
            disputes::opened_at.eq(d.opened_at),
            disputes::disagreement_at.eq(d.disagreement_at),
            disputes::stage_started_at.eq(d.opened_at),
        ))
        .on_conflict((disputes::partnership_id, disputes::reference))
        .do_update()
        .set((
            disputes::subject.eq(&d.subject),
            disputes::immediate_risk.eq(d.immediate_risk),
        ))
        .returning(disputes::id)
        .get_result(conn)?;
    let mut events = Vec::with_capacity(d.events.len());
    for e in &d.events {
        let mut data = Map::new();
        if let Some(outcome) = &e.outcome {
            data.insert("outcome".into(), Value::String(outcome.clone()));
        }
        if let Some(by) = &e.by {
            data.insert("by".into(), Value::String(by.to_string()));
        }
        events.push((
            dispute_events::dispute_id.eq(id),
            dispute_events::kind.eq(e.kind.as_str()),
            dispute_events::at.eq(e.at),
            dispute_events::stage.eq(e.stage.map(to_int4).transpose()?),
            dispute_events::data.eq(Value::Object(data)),
        ));
    }
    let new = diesel::insert_into(dispute_events::table)
        .values(&events)
        .on_conflict_do_nothing()
        .execute(conn)?;
    if new > 0 {
        diesel::update(disputes::table.find(id))
            .set(disputes::next_check_at.eq(CHECK_NOW))
            .execute(conn)?;
    }
    Ok(new)
}

/// A count for an `INT4` column (days, stages); one too large for it is refused, not wrapped.
fn to_int4(n: u32) -> Result<i32, DbError> {
    i32::try_from(n).map_err(|e| DbError::SerializationError(Box::new(e)))
}
