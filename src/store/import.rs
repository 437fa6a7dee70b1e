//! Import's two trips to the database: the ids a partnership already holds ([`known`]), and
//! the write of a validated [`ImportBatch`] ([`write`]). Call both inside one transaction.
//! Writing upserts agencies, people, roles, cases and disputes; a case's roles become the
//! batch's; events already stored are left alone, and a case or dispute that gained one is
//! marked to be looked at on the next pass.

use super::schema::{
    agencies, agency_roles, case_events, case_roles, cases, dispute_events, disputes,
    partnership_roles, partnerships, people,
};
use super::{DbError, CHECK_NOW};
use crate::domain::{PartnershipId, Person};
use crate::records::{AgencyRecord, CaseRecord, DisputeRecord, ImportBatch, ImportSummary, Known};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde_json::{Map, Value};

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

/// Write a validated batch; what was written. Call inside a transaction.
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
    for case in &batch.cases {
        summary.new_events += write_case(conn, p, case)?;
    }
    summary.cases = batch.cases.len();
    for d in &batch.disputes {
        summary.new_dispute_events += write_dispute(conn, p, d)?;
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
    for person in list {
        let fields = (
            people::name.eq(&person.name),
            people::email.eq(person.email.as_ref().map(|e| e.as_str())),
            people::agency_id.eq(person.agency.as_ref().map(|a| a.as_str())),
            people::manager_id.eq(person.manager.as_ref().map(|m| m.as_str())),
        );
        diesel::insert_into(people::table)
            .values((
                people::partnership_id.eq(p),
                people::id.eq(person.id.as_str()),
                fields,
            ))
            .on_conflict((people::partnership_id, people::id))
            .do_update()
            .set(fields)
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

/// Upsert a case, replace its roles, add its new events; how many events were new.
fn write_case(conn: &mut PgConnection, p: &str, case: &CaseRecord) -> Result<usize, DbError> {
    let days = case.visit_interval_days.map(to_int4).transpose()?;
    let id: i64 = diesel::insert_into(cases::table)
        .values((
            cases::partnership_id.eq(p),
            cases::reference.eq(case.reference.as_str()),
            cases::unborn.eq(case.unborn),
            cases::visit_interval_days.eq(days),
        ))
        .on_conflict((cases::partnership_id, cases::reference))
        .do_update()
        .set((
            cases::unborn.eq(case.unborn),
            cases::visit_interval_days.eq(days),
        ))
        .returning(cases::id)
        .get_result(conn)?;
    // The batch's roles are the case's roles now.
    diesel::delete(case_roles::table.filter(case_roles::case_id.eq(id))).execute(conn)?;
    let roles: Vec<_> = case
        .roles
        .iter()
        .map(|(r, person)| {
            (
                case_roles::case_id.eq(id),
                case_roles::role.eq(r),
                case_roles::person_id.eq(person.as_str()),
            )
        })
        .collect();
    diesel::insert_into(case_roles::table)
        .values(&roles)
        .on_conflict_do_nothing()
        .execute(conn)?;
    let events: Vec<_> = case
        .events
        .iter()
        .map(|e| {
            (
                case_events::case_id.eq(id),
                case_events::kind.eq(e.kind.as_str()),
                case_events::at.eq(e.at),
                case_events::recorded_at.eq(e.recorded_at),
                case_events::data.eq(Value::Object(e.data.clone())),
            )
        })
        .collect();
    let new_events = diesel::insert_into(case_events::table)
        .values(&events)
        .on_conflict_do_nothing()
        .execute(conn)?;
    if new_events > 0 {
        // Something changed: the next pass must look at this case.
        diesel::update(cases::table.find(id))
            .set((
                cases::next_check_at.eq(CHECK_NOW),
                cases::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
    }
    Ok(new_events)
}

/// Upsert a dispute and add its new events; how many events were new.
fn write_dispute(conn: &mut PgConnection, p: &str, d: &DisputeRecord) -> Result<usize, DbError> {
    let case_id: Option<i64> = match &d.case {
        Some(r) => Some(
            cases::table
                .filter(cases::partnership_id.eq(p))
                .filter(cases::reference.eq(r.as_str()))
                .select(cases::id)
                .first(conn)?,
        ),
        None => None,
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
