//! Disputes: reading them for the ladder evaluator in batches, writing a batch's decisions
//! (stage changes by compare-and-set, stage history, audit rows, records, notices, next
//! checks) in one transaction, and the query behind `cpwatch report`'s escalation figures.

use super::cases::{BadRow, Selection};
use super::schema::{case_roles, cases, dispute_events, dispute_stage_history, disputes};
use super::{notices, DbError};
use crate::domain::{
    AgencyId, CaseRef, Dispute, DisputeEvent, DisputeEventKind, DisputeRef, PartnershipId,
    PersonId, StageEntry,
};
use crate::evaluate::dispute::DisputeOutcome;
use crate::evaluate::rfc3339;
use crate::report::ReportDispute;
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{Int4, Int8, Jsonb, Nullable, Text, Timestamptz};
use std::collections::HashMap;

/// Disputes by database id, and the rows that could not be read.
pub type Batch = (Vec<(i64, Dispute)>, Vec<BadRow>);

/// A dispute's own row, as selected (`DisputeRow::as_select()`: its fields are the columns).
#[derive(Queryable, Selectable)]
#[diesel(table_name = disputes, check_for_backend(diesel::pg::Pg))]
struct DisputeRow {
    id: i64,
    reference: String,
    case_id: Option<i64>,
    policy: String,
    raised_by: String,
    respondent_person: Option<String>,
    respondent_agency: Option<String>,
    subject: String,
    immediate_risk: bool,
    opened_at: DateTime<Utc>,
    disagreement_at: Option<DateTime<Utc>>,
    stage: i32,
    stage_started_at: DateTime<Utc>,
    protective_timescale: Option<String>,
}

/// The next batch of disputes with id > `after` whose check has come (or every one still open
/// or pending, for `Selection::All`), with their events, history and case roles, in id order.
pub fn load_batch(
    conn: &mut PgConnection,
    partnership: &str,
    selection: Selection,
    after: i64,
    limit: usize,
) -> Result<Batch, DbError> {
    let mut q = disputes::table
        .filter(disputes::partnership_id.eq(partnership))
        .filter(disputes::id.gt(after))
        .into_boxed();
    q = match selection {
        Selection::DueBy(now) => q.filter(disputes::next_check_at.le(now)),
        Selection::All => q.filter(
            disputes::next_check_at
                .is_not_null()
                .or(disputes::resolved_at.is_null()),
        ),
    };
    let rows: Vec<DisputeRow> = q
        .order(disputes::id)
        .limit(limit as i64)
        .select(DisputeRow::as_select())
        .load(conn)?;
    assemble(conn, partnership, rows)
}

/// Whether any of a partnership's disputes is due by `now` (one probe of the
/// `disputes_next_check` index).
pub fn any_due(
    conn: &mut PgConnection,
    partnership: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbError> {
    use diesel::dsl::exists;
    diesel::select(exists(
        disputes::table
            .filter(disputes::partnership_id.eq(partnership))
            .filter(disputes::next_check_at.le(now)),
    ))
    .get_result(conn)
}

/// Every dispute about one case (by the case's database id), resolved or not, in id order.
pub fn load_for_case(
    conn: &mut PgConnection,
    partnership: &str,
    case_id: i64,
) -> Result<Batch, DbError> {
    let rows: Vec<DisputeRow> = disputes::table
        .filter(disputes::partnership_id.eq(partnership))
        .filter(disputes::case_id.eq(case_id))
        .order(disputes::id)
        .select(DisputeRow::as_select())
        .load(conn)?;
    assemble(conn, partnership, rows)
}

/// The disputes of these rows with their events, history and case roles.
fn assemble(
    conn: &mut PgConnection,
    partnership: &str,
    rows: Vec<DisputeRow>,
) -> Result<Batch, DbError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut bad = Vec::new();
    let mut events = load_events(conn, &ids, &mut bad)?;
    let mut history = load_history(conn, &ids)?;
    let case_ids: Vec<i64> = rows.iter().filter_map(|r| r.case_id).collect();
    let cases = load_cases(conn, &case_ids)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id;
        let (case, case_roles) = row
            .case_id
            .and_then(|c| cases.get(&c))
            .map_or((None, Vec::new()), |(r, roles)| {
                (CaseRef::parse(r).ok(), roles.clone())
            });
        let parts = DisputeParts {
            case,
            case_roles,
            events: events.remove(&id).unwrap_or_default(),
            history: history.remove(&id).unwrap_or_default(),
        };
        match dispute_of(row, partnership, parts) {
            Ok(d) => out.push((id, d)),
            Err(b) => bad.push(b),
        }
    }
    Ok((out, bad))
}

/// What a dispute is read with besides its own row.
struct DisputeParts {
    case: Option<CaseRef>,
    case_roles: Vec<(String, PersonId)>,
    events: Vec<DisputeEvent>,
    history: Vec<StageEntry>,
}

fn dispute_of(row: DisputeRow, partnership: &str, parts: DisputeParts) -> Result<Dispute, BadRow> {
    let bad = || BadRow {
        case_id: row.id,
        message: format!(
            "dispute row {} ({:?}) has an invalid id in it",
            row.id, row.reference
        ),
    };
    let reference = DisputeRef::parse(&row.reference).map_err(|_| bad())?;
    let partnership = PartnershipId::parse(partnership).map_err(|_| bad())?;
    let raised_by = PersonId::parse(&row.raised_by).map_err(|_| bad())?;
    let respondent_person = row
        .respondent_person
        .as_deref()
        .map(PersonId::parse)
        .transpose()
        .map_err(|_| bad())?;
    let respondent_agency = row
        .respondent_agency
        .as_deref()
        .map(AgencyId::parse)
        .transpose()
        .map_err(|_| bad())?;
    let protective = row
        .protective_timescale
        .as_deref()
        .map(str::parse::<crate::calendar::Timescale>)
        .transpose()
        .map_err(|e| BadRow {
            case_id: row.id,
            message: format!(
                "dispute row {} ({:?}): protective_timescale: {e}",
                row.id, row.reference
            ),
        })?;
    Ok(Dispute {
        partnership,
        reference,
        case: parts.case,
        case_roles: parts.case_roles,
        policy: row.policy,
        raised_by,
        respondent_person,
        respondent_agency,
        subject: row.subject,
        immediate_risk: row.immediate_risk,
        opened_at: row.opened_at,
        disagreement_at: row.disagreement_at,
        protective,
        stage: u32::try_from(row.stage).unwrap_or(1).max(1),
        stage_started_at: row.stage_started_at,
        events: parts.events,
        history: parts.history,
    })
}

/// The events of these disputes, oldest first; unreadable ones go to `bad`.
fn load_events(
    conn: &mut PgConnection,
    ids: &[i64],
    bad: &mut Vec<BadRow>,
) -> Result<HashMap<i64, Vec<DisputeEvent>>, DbError> {
    type EventRow = (i64, String, DateTime<Utc>, Option<i32>, serde_json::Value);
    let rows: Vec<EventRow> = dispute_events::table
        .filter(dispute_events::dispute_id.eq_any(ids))
        .select((
            dispute_events::dispute_id,
            dispute_events::kind,
            dispute_events::at,
            dispute_events::stage,
            dispute_events::data,
        ))
        .order((
            dispute_events::dispute_id,
            dispute_events::at,
            dispute_events::id,
        ))
        .load(conn)?;
    let mut events: HashMap<i64, Vec<DisputeEvent>> = HashMap::new();
    for (id, kind, at, stage, data) in rows {
        let Some(kind) = DisputeEventKind::parse(&kind) else {
            bad.push(BadRow {
                case_id: id,
                message: format!("dispute row {id}: unknown dispute event kind {kind:?}"),
            });
            continue;
        };
        let text = |field: &str| data.get(field).and_then(|v| v.as_str());
        events.entry(id).or_default().push(DisputeEvent {
            kind,
            at,
            stage: stage.and_then(|s| u32::try_from(s).ok()),
            by: text("by").and_then(|s| PersonId::parse(s).ok()),
            outcome: text("outcome").map(str::to_owned),
        });
    }
    Ok(events)
}

/// The recorded stage moves of these disputes, oldest first.
fn load_history(
    conn: &mut PgConnection,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<StageEntry>>, DbError> {
    type HistoryRow = (i64, Option<i32>, i32, DateTime<Utc>, String);
    let rows: Vec<HistoryRow> = dispute_stage_history::table
        .filter(dispute_stage_history::dispute_id.eq_any(ids))
        .select((
            dispute_stage_history::dispute_id,
            dispute_stage_history::from_stage,
            dispute_stage_history::to_stage,
            dispute_stage_history::at,
            dispute_stage_history::why,
        ))
        .order((
            dispute_stage_history::dispute_id,
            dispute_stage_history::at,
            dispute_stage_history::id,
        ))
        .load(conn)?;
    let mut history: HashMap<i64, Vec<StageEntry>> = HashMap::new();
    for (id, from, to, at, why) in rows {
        history.entry(id).or_default().push(StageEntry {
            from: from.and_then(|f| u32::try_from(f).ok()),
            to: u32::try_from(to).unwrap_or(1),
            at,
            why,
        });
    }
    Ok(history)
}

/// A case's reference and roles.
type CaseRoles = (String, Vec<(String, PersonId)>);

/// The reference and roles of each of these cases, by id.
fn load_cases(
    conn: &mut PgConnection,
    case_ids: &[i64],
) -> Result<HashMap<i64, CaseRoles>, DbError> {
    let mut cases: HashMap<i64, CaseRoles> = cases::table
        .filter(cases::id.eq_any(case_ids))
        .select((cases::id, cases::reference))
        .load::<(i64, String)>(conn)?
        .into_iter()
        .map(|(id, r)| (id, (r, Vec::new())))
        .collect();
    let role_rows: Vec<(i64, String, String)> = case_roles::table
        .filter(case_roles::case_id.eq_any(case_ids))
        .select((case_roles::case_id, case_roles::role, case_roles::person_id))
        .order((case_roles::case_id, case_roles::role, case_roles::person_id))
        .load(conn)?;
    for (case_id, role, person) in role_rows {
        if let (Some(c), Ok(p)) = (cases.get_mut(&case_id), PersonId::parse(&person)) {
            c.1.push((role, p));
        }
    }
    Ok(cases)
}

/// What applying a batch wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub stage_changes: usize,
    pub queued: usize,
    /// Disputes whose stored stage had moved under us (another writer); left for the next pass.
    pub conflicts: usize,
    /// The database ids of those disputes: none of their notices was queued.
    pub conflicted: std::collections::HashSet<i64>,
    /// Keys of the notices newly queued.
    pub new: std::collections::HashSet<String>,
}

/// Write a batch's decisions. Call inside a transaction: stage changes are compare-and-set on
/// the stored stage, so a dispute moved by someone else meanwhile is left alone (its notices
/// and next check too) and looked at again on the next pass.
pub fn apply(
    conn: &mut PgConnection,
    decisions: &[(i64, &Dispute, &DisputeOutcome)],
    message_id_domain: &str,
) -> Result<Applied, DbError> {
    let mut applied = Applied::default();
    let mut notifications = Vec::new();
    for (id, dispute, outcome) in decisions {
        let moved = move_stages(conn, *id, dispute, outcome)?;
        applied.stage_changes += moved;
        if moved < outcome.stage_changes.len() {
            applied.conflicts += 1;
            applied.conflicted.insert(*id);
            diesel::update(disputes::table.find(id))
                .set(disputes::next_check_at.eq(Some(super::CHECK_NOW)))
                .execute(conn)?;
            continue;
        }
        write_records(conn, *id, outcome)?;
        write_state(conn, *id, outcome)?;
        notifications.extend(outcome.notifications.iter().cloned());
    }
    let queued = notices::enqueue_new(conn, &notifications, message_id_domain)?;
    applied.queued = queued.deliveries;
    applied.new = queued.new;
    Ok(applied)
}

/// Each stage change by compare-and-set on the stored stage, with its history and audit rows.
/// Returns how many were made: fewer than decided when the stage moved under this pass.
fn move_stages(
    conn: &mut PgConnection,
    id: i64,
    dispute: &Dispute,
    outcome: &DisputeOutcome,
) -> Result<usize, DbError> {
    let subject = format!("dispute {}/{}", dispute.partnership, dispute.reference);
    for (done, c) in outcome.stage_changes.iter().enumerate() {
        let n = diesel::update(
            disputes::table
                .filter(disputes::id.eq(id))
                .filter(disputes::stage.eq(c.from as i32)),
        )
        .set((
            disputes::stage.eq(c.to as i32),
            disputes::stage_started_at.eq(c.at),
            disputes::stage_deadline.eq(Some(c.deadline)),
        ))
        .execute(conn)?;
        if n == 0 {
            tracing::warn!(dispute = %subject, from = c.from, to = c.to,
                "the dispute's stage changed under this pass; it will be evaluated again");
            return Ok(done);
        }
        diesel::insert_into(dispute_stage_history::table)
            .values((
                dispute_stage_history::dispute_id.eq(id),
                dispute_stage_history::from_stage.eq(Some(c.from as i32)),
                dispute_stage_history::to_stage.eq(c.to as i32),
                dispute_stage_history::at.eq(c.at),
                dispute_stage_history::why.eq(c.why.as_str()),
                dispute_stage_history::by_person.eq(c.by.as_ref().map(|p| p.as_str())),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        super::audit(
            conn,
            "cpwatch",
            "dispute_stage_change",
            &subject,
            serde_json::json!({
                "policy": c.policy,
                "from": c.from,
                "to": c.to,
                "at": rfc3339(c.at),
                "why": c.why.as_str(),
                "by": c.by.as_ref().map(|p| p.as_str()),
                "skipped": c.skipped,
                "deadline": rfc3339(c.deadline),
            }),
        )?;
    }
    Ok(outcome.stage_changes.len())
}

/// The records the policy demands (once per dispute, kind and stage).
fn write_records(
    conn: &mut PgConnection,
    id: i64,
    outcome: &DisputeOutcome,
) -> Result<(), DbError> {
    for r in &outcome.records {
        diesel::sql_query(
            "INSERT INTO dispute_records (dispute_id, kind, stage, at, detail) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (dispute_id, kind, stage) DO NOTHING",
        )
        .bind::<Int8, _>(id)
        .bind::<Text, _>(r.kind.as_str())
        .bind::<Int4, _>(r.stage as i32)
        .bind::<Timestamptz, _>(r.at)
        .bind::<Jsonb, _>(&r.detail)
        .execute(conn)?;
    }
    Ok(())
}

/// Where the dispute stands now, and when to look again (only if its stage is still ours).
fn write_state(conn: &mut PgConnection, id: i64, outcome: &DisputeOutcome) -> Result<(), DbError> {
    let s = &outcome.state;
    diesel::sql_query(
        "UPDATE disputes SET stage_deadline = $2, resolved_at = $3, resolved_stage = $4, next_check_at = $5 \
         WHERE id = $1 AND stage = $6",
    )
    .bind::<Int8, _>(id)
    .bind::<Timestamptz, _>(s.stage_deadline)
    .bind::<Nullable<Timestamptz>, _>(s.resolved_at)
    .bind::<Nullable<Int4>, _>(s.resolved_stage.map(|x| x as i32))
    .bind::<Nullable<Timestamptz>, _>(outcome.next_check)
    .bind::<Int4, _>(s.stage as i32)
    .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct ReportRow {
    #[diesel(sql_type = Int8)]
    id: i64,
    #[diesel(sql_type = Text)]
    partnership_id: String,
    #[diesel(sql_type = Text)]
    reference: String,
    #[diesel(sql_type = Nullable<Text>)]
    case_ref: Option<String>,
    #[diesel(sql_type = Text)]
    policy: String,
    #[diesel(sql_type = Text)]
    raised_by: String,
    #[diesel(sql_type = Nullable<Text>)]
    raiser_agency: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    respondent_person: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    respondent_agency: Option<String>,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Timestamptz)]
    opened_at: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    stage: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    resolved_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Int4>)]
    resolved_stage: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    outcome: Option<String>,
}

#[derive(QueryableByName)]
struct RecordRow {
    #[diesel(sql_type = Int8)]
    dispute_id: i64,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Int4)]
    stage: i32,
    #[diesel(sql_type = Timestamptz)]
    at: DateTime<Utc>,
}

/// Every dispute, with its history, records and outcome, in (partnership, policy, reference) order.
pub fn report_disputes(conn: &mut PgConnection) -> Result<Vec<ReportDispute>, DbError> {
    let rows: Vec<ReportRow> = diesel::sql_query(
        "SELECT d.id, d.partnership_id, d.ref AS reference, c.ref AS case_ref, d.policy, d.raised_by, \
                p.agency_id AS raiser_agency, d.respondent_person, \
                COALESCE(d.respondent_agency, rp.agency_id) AS respondent_agency, d.subject, d.opened_at, \
                d.stage, d.resolved_at, d.resolved_stage, \
                (SELECT e.data->>'outcome' FROM dispute_events e WHERE e.dispute_id = d.id \
                   AND e.kind = 'resolved' ORDER BY e.at LIMIT 1) AS outcome \
         FROM disputes d \
         LEFT JOIN cases c ON c.id = d.case_id \
         LEFT JOIN people p ON p.partnership_id = d.partnership_id AND p.id = d.raised_by \
         LEFT JOIN people rp ON rp.partnership_id = d.partnership_id AND rp.id = d.respondent_person \
         ORDER BY d.partnership_id, d.policy, d.ref",
    )
    .load(conn)?;
    type HistoryRow = (i64, Option<i32>, i32, DateTime<Utc>, String);
    let history: Vec<HistoryRow> = dispute_stage_history::table
        .select((
            dispute_stage_history::dispute_id,
            dispute_stage_history::from_stage,
            dispute_stage_history::to_stage,
            dispute_stage_history::at,
            dispute_stage_history::why,
        ))
        .order((dispute_stage_history::at, dispute_stage_history::id))
        .load(conn)?;
    let records: Vec<RecordRow> = diesel::sql_query(
        "SELECT dispute_id, kind, stage, at FROM dispute_records ORDER BY at, stage, kind",
    )
    .load(conn)?;
    let mut by_id: HashMap<i64, ReportDispute> = HashMap::new();
    let mut order = Vec::new();
    for r in rows {
        order.push(r.id);
        by_id.insert(
            r.id,
            ReportDispute {
                partnership: r.partnership_id,
                reference: r.reference,
                case: r.case_ref,
                policy: r.policy,
                raised_by: r.raised_by,
                raiser_agency: r.raiser_agency,
                respondent: r.respondent_person,
                respondent_agency: r.respondent_agency,
                subject: r.subject,
                opened_at: r.opened_at,
                stage: u32::try_from(r.stage).unwrap_or(1),
                resolved_at: r.resolved_at,
                resolved_stage: r.resolved_stage.and_then(|s| u32::try_from(s).ok()),
                outcome: r.outcome,
                history: Vec::new(),
                records: Vec::new(),
            },
        );
    }
    for (id, from, to, at, why) in history {
        if let Some(d) = by_id.get_mut(&id) {
            d.history.push((
                from.and_then(|f| u32::try_from(f).ok()),
                u32::try_from(to).unwrap_or(1),
                at,
                why,
            ));
        }
    }
    for r in records {
        if let Some(d) = by_id.get_mut(&r.dispute_id) {
            d.records
                .push((r.kind, u32::try_from(r.stage).unwrap_or(1), r.at));
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect())
}
