//! Import's two trips to the database: the ids a partnership already holds ([`known`]), and
//! the write of a validated [`ImportBatch`] ([`write`]). Call both inside one transaction.
//! Writing upserts agencies, people, roles, cases and disputes; a case's roles become the
//! batch's (a census case without mapped roles keeps its own); events go through
//! `store::events` (added once, corrected and retracted by the sender's id), and a case or
//! dispute whose events changed is marked to be looked at on the next pass. People, cases, case
//! roles and events are written a few thousand rows a statement.

use super::schema::{
    agencies, agency_roles, case_roles, cases, disputes, partnership_roles, partnerships, people,
};
use super::DbError;
use crate::domain::CENSUS_SOURCE;
use crate::domain::{PartnershipId, Person};
use crate::records::{AgencyRecord, CaseRecord, DisputeRecord, ImportBatch, ImportSummary, Known};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::upsert::excluded;
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
    let keep_unmapped_roles = batch.provenance.source == CENSUS_SOURCE;
    let case_ids = write_cases(conn, p, &batch.cases, keep_unmapped_roles)?;
    let mut with_ids = Vec::with_capacity(batch.cases.len());
    for case in &batch.cases {
        with_ids.push((id_of(&case_ids, case)?, case));
    }
    let counts = super::events::write_case_events(conn, p, &batch.provenance, &with_ids)?;
    summary.new_events = counts.added;
    summary.corrected_events = counts.corrected;
    summary.removed_events = counts.removed;
    summary.cases = batch.cases.len();
    for d in &batch.disputes {
        let id = write_dispute(conn, p, d, &case_ids)?;
        let counts = super::events::write_dispute_events(conn, p, &batch.provenance, id, d)?;
        summary.new_dispute_events += counts.added;
        summary.corrected_events += counts.corrected;
        summary.removed_events += counts.removed;
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

/// Upsert the cases and make the batch's roles theirs (with `keep_unmapped_roles`, a census
/// batch: only for cases the batch gives roles, and the stored visiting interval is kept); each
/// case's id, by reference.
fn write_cases(
    conn: &mut PgConnection,
    p: &str,
    list: &[CaseRecord],
    keep_unmapped_roles: bool,
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
        let upsert = diesel::insert_into(cases::table)
            .values(&rows)
            .on_conflict((cases::partnership_id, cases::reference))
            .do_update();
        // The census knows nothing of a visiting interval: one set otherwise is kept.
        let written: Vec<(i64, String)> = if keep_unmapped_roles {
            upsert
                .set(cases::unborn.eq(excluded(cases::unborn)))
                .returning((cases::id, cases::reference))
                .get_results(conn)?
        } else {
            upsert
                .set((
                    cases::unborn.eq(excluded(cases::unborn)),
                    cases::visit_interval_days.eq(excluded(cases::visit_interval_days)),
                ))
                .returning((cases::id, cases::reference))
                .get_results(conn)?
        };
        ids.extend(written.into_iter().map(|(id, r)| (r, id)));
    }
    // The batch's roles are the cases' roles now.
    let mut all = Vec::with_capacity(list.len());
    for case in list {
        if !(keep_unmapped_roles && case.roles.is_empty()) {
            all.push(id_of(&ids, case)?);
        }
    }
    for chunk in all.chunks(ROWS_PER_STATEMENT) {
        diesel::delete(case_roles::table.filter(case_roles::case_id.eq_any(chunk)))
            .execute(conn)?;
    }
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

fn id_of(ids: &HashMap<String, i64>, case: &CaseRecord) -> Result<i64, DbError> {
    ids.get(case.reference.as_str())
        .copied()
        .ok_or(DbError::NotFound)
}

/// Upsert a dispute (about a case of the batch, or one stored); its id.
fn write_dispute(
    conn: &mut PgConnection,
    p: &str,
    d: &DisputeRecord,
    case_ids: &HashMap<String, i64>,
) -> Result<i64, DbError> {
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
            disputes::protective_timescale.eq(d.protective.as_deref()),
        ))
        .on_conflict((disputes::partnership_id, disputes::reference))
        .do_update()
        .set((
            disputes::subject.eq(&d.subject),
            disputes::immediate_risk.eq(d.immediate_risk),
            disputes::protective_timescale.eq(d.protective.as_deref()),
        ))
        .returning(disputes::id)
        .get_result(conn)?;
    Ok(id)
}

/// A count for an `INT4` column (days, stages); one too large for it is refused, not wrapped.
fn to_int4(n: u32) -> Result<i32, DbError> {
    i32::try_from(n).map_err(|e| DbError::SerializationError(Box::new(e)))
}
