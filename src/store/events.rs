//! Writing imported events with their sources: events without an id are added once (same kind,
//! instant and data); events with the sender's id replace the stored event of that id when they
//! differ, and are removed when retracted (or, for a complete extract such as the census, when a
//! case it carries no longer has them). Events of other sources are never touched. Every change
//! is written to the audit log, one row per case or dispute: what changed, from which source and
//! file; the triggers then ask for the case or dispute to be checked.

use super::schema::{case_events, cases, dispute_events, disputes};
use super::{audit, DbError, CHECK_NOW};
use crate::records::{CaseEventRecord, CaseRecord, DisputeEventRecord, DisputeRecord, Provenance};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// Rows a multi-row statement carries: at most 7 binds each, well under PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 5_000;

/// What writing a batch's events changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts {
    pub added: usize,
    pub corrected: usize,
    pub removed: usize,
}

impl EventCounts {
    fn add(&mut self, o: EventCounts) {
        self.added += o.added;
        self.corrected += o.corrected;
        self.removed += o.removed;
    }
}

/// One stored event with a sender's id, as compared with an imported one.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    row: i64,
    kind: String,
    at: DateTime<Utc>,
    /// `recorded_at` of a case event, `stage` of a dispute event, as JSON.
    extra: Value,
    data: Value,
}

/// What one case's or dispute's events came to, for the audit row.
#[derive(Default)]
struct Diff {
    inserts: Vec<(String, Stored)>,
    updates: Vec<(Stored, Stored)>,
    deletes: Vec<(String, Stored)>,
}

impl Diff {
    fn counts(&self) -> EventCounts {
        EventCounts {
            added: self.inserts.len(),
            corrected: self.updates.len(),
            removed: self.deletes.len(),
        }
    }
    fn is_empty(&self) -> bool {
        self.inserts.is_empty() && self.updates.is_empty() && self.deletes.is_empty()
    }
}

/// Compare the imported events with ids (`given`, by id) with the stored ones of this source;
/// `retracted` ids are removed; with `complete`, so is every stored id not given.
fn diff(
    given: Vec<(String, Stored)>,
    mut stored: HashMap<String, Stored>,
    retracted: &[String],
    complete: bool,
) -> Diff {
    let mut d = Diff::default();
    let mut seen = HashSet::new();
    for (id, new) in given {
        seen.insert(id.clone());
        match stored.remove(&id) {
            None => d.inserts.push((id, new)),
            Some(old) => {
                let same = old.kind == new.kind
                    && old.at == new.at
                    && old.extra == new.extra
                    && old.data == new.data;
                if !same {
                    d.updates.push((
                        old.clone(),
                        Stored {
                            row: old.row,
                            ..new
                        },
                    ));
                }
            }
        }
    }
    for id in retracted {
        if let Some(old) = stored.remove(id) {
            d.deletes.push((id.clone(), old));
        }
    }
    if complete {
        let mut rest: Vec<_> = stored
            .into_iter()
            .filter(|(id, _)| !seen.contains(id))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        d.deletes.extend(rest);
    }
    d
}

fn event_json(id: &str, e: &Stored) -> Value {
    json!({"id": id, "kind": e.kind, "at": crate::evaluate::rfc3339(e.at), "data": e.data})
}

/// The audit row of one case's or dispute's event changes.
fn audit_diff(
    conn: &mut PgConnection,
    prov: &Provenance,
    subject: &str,
    d: &Diff,
    added_without_id: usize,
) -> Result<(), DbError> {
    if d.is_empty() && added_without_id == 0 {
        return Ok(());
    }
    let corrected: Vec<Value> = d
        .updates
        .iter()
        .map(|(old, new)| {
            json!({"kind": new.kind, "from": {"at": crate::evaluate::rfc3339(old.at), "kind": old.kind, "data": old.data},
                   "to": {"at": crate::evaluate::rfc3339(new.at), "data": new.data}, "row": old.row})
        })
        .collect();
    let detail = json!({
        "source": prov.source,
        "file": prov.file,
        "added": d.inserts.iter().map(|(id, e)| event_json(id, e)).collect::<Vec<_>>(),
        "added_without_id": added_without_id,
        "corrected": corrected,
        "removed": d.deletes.iter().map(|(id, e)| event_json(id, e)).collect::<Vec<_>>(),
    });
    audit(conn, &prov.source, "events_changed", subject, detail)
}

fn stored_case_event(e: &CaseEventRecord) -> Stored {
    Stored {
        row: 0,
        kind: e.kind.as_str().to_owned(),
        at: e.at,
        extra: json!(e.recorded_at),
        data: Value::Object(e.data.clone()),
    }
}

/// Write the events of these cases (database id, record, reference); how many were added,
/// corrected and removed. Cases that changed are marked to be checked on the next pass.
pub fn write_case_events(
    conn: &mut PgConnection,
    partnership: &str,
    prov: &Provenance,
    list: &[(i64, &CaseRecord)],
) -> Result<EventCounts, DbError> {
    let mut total = EventCounts::default();
    let mut changed: Vec<i64> = Vec::new();
    let without_id = add_case_events_without_id(conn, prov, list)?;
    let mut stored = stored_case_events(conn, prov, list)?;
    for (id, case) in list {
        let given: Vec<(String, Stored)> = case
            .events
            .iter()
            .filter_map(|e| e.id.clone().map(|i| (i, stored_case_event(e))))
            .collect();
        let mine = stored.remove(id).unwrap_or_default();
        let d = diff(given, mine, &case.retracted, prov.complete);
        apply_case_diff(conn, prov, *id, &d)?;
        let plain = without_id.get(id).copied().unwrap_or(0);
        let subject = format!("{partnership}/case/{}", case.reference);
        audit_diff(conn, prov, &subject, &d, plain)?;
        let mut c = d.counts();
        c.added += plain;
        if c != EventCounts::default() {
            changed.push(*id);
        }
        total.add(c);
    }
    for chunk in changed.chunks(ROWS_PER_STATEMENT) {
        diesel::update(cases::table.filter(cases::id.eq_any(chunk)))
            .set((
                cases::next_check_at.eq(CHECK_NOW),
                cases::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
    }
    Ok(total)
}

/// Add the events without an id not stored yet; how many were new, by case.
fn add_case_events_without_id(
    conn: &mut PgConnection,
    prov: &Provenance,
    list: &[(i64, &CaseRecord)],
) -> Result<HashMap<i64, usize>, DbError> {
    let mut rows = list.iter().flat_map(|(id, case)| {
        case.events.iter().filter(|e| e.id.is_none()).map(move |e| {
            (
                case_events::case_id.eq(*id),
                case_events::kind.eq(e.kind.as_str()),
                case_events::at.eq(e.at),
                case_events::recorded_at.eq(e.recorded_at),
                case_events::data.eq(Value::Object(e.data.clone())),
                case_events::source.eq(prov.source.as_str()),
            )
        })
    });
    let mut added: HashMap<i64, usize> = HashMap::new();
    loop {
        // A statement's worth at a time, so that only that many copies of event data are held.
        let chunk: Vec<_> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        if chunk.is_empty() {
            break;
        }
        let new: Vec<i64> = diesel::insert_into(case_events::table)
            .values(&chunk)
            .on_conflict_do_nothing()
            .returning(case_events::case_id)
            .get_results(conn)?;
        for id in new {
            *added.entry(id).or_default() += 1;
        }
    }
    Ok(added)
}

/// The stored events with ids of this source, by case and id.
fn stored_case_events(
    conn: &mut PgConnection,
    prov: &Provenance,
    list: &[(i64, &CaseRecord)],
) -> Result<HashMap<i64, HashMap<String, Stored>>, DbError> {
    type Row = (
        i64,
        i64,
        Option<String>,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Value,
    );
    let ids: Vec<i64> = list
        .iter()
        .filter(|(_, c)| {
            prov.complete || c.events.iter().any(|e| e.id.is_some()) || !c.retracted.is_empty()
        })
        .map(|(id, _)| *id)
        .collect();
    let mut out: HashMap<i64, HashMap<String, Stored>> = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<Row> = case_events::table
            .filter(case_events::case_id.eq_any(chunk))
            .filter(case_events::source.eq(&prov.source))
            .filter(case_events::source_id.is_not_null())
            .select((
                case_events::id,
                case_events::case_id,
                case_events::source_id,
                case_events::kind,
                case_events::at,
                case_events::recorded_at,
                case_events::data,
            ))
            .load(conn)?;
        for (row, case, sid, kind, at, recorded_at, data) in rows {
            let Some(sid) = sid else { continue };
            let e = Stored {
                row,
                kind,
                at,
                extra: json!(recorded_at),
                data,
            };
            out.entry(case).or_default().insert(sid, e);
        }
    }
    Ok(out)
}

fn apply_case_diff(
    conn: &mut PgConnection,
    prov: &Provenance,
    case: i64,
    d: &Diff,
) -> Result<(), DbError> {
    let gone: Vec<i64> = d.deletes.iter().map(|(_, e)| e.row).collect();
    if !gone.is_empty() {
        diesel::delete(case_events::table.filter(case_events::id.eq_any(&gone))).execute(conn)?;
    }
    for (_, new) in &d.updates {
        diesel::update(case_events::table.find(new.row))
            .set((
                case_events::kind.eq(&new.kind),
                case_events::at.eq(new.at),
                case_events::recorded_at.eq(recorded(&new.extra)),
                case_events::data.eq(&new.data),
            ))
            .execute(conn)?;
    }
    let rows: Vec<_> = d
        .inserts
        .iter()
        .map(|(id, e)| {
            (
                case_events::case_id.eq(case),
                case_events::kind.eq(e.kind.as_str()),
                case_events::at.eq(e.at),
                case_events::recorded_at.eq(recorded(&e.extra)),
                case_events::data.eq(e.data.clone()),
                case_events::source.eq(prov.source.as_str()),
                case_events::source_id.eq(id.as_str()),
            )
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        diesel::insert_into(case_events::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}

fn recorded(extra: &Value) -> Option<DateTime<Utc>> {
    extra
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn stored_dispute_event(e: &DisputeEventRecord) -> Stored {
    let mut data = Map::new();
    if let Some(outcome) = &e.outcome {
        data.insert("outcome".into(), Value::String(outcome.clone()));
    }
    if let Some(by) = &e.by {
        data.insert("by".into(), Value::String(by.to_string()));
    }
    Stored {
        row: 0,
        kind: e.kind.as_str().to_owned(),
        at: e.at,
        extra: json!(e.stage),
        data: Value::Object(data),
    }
}

/// Write one dispute's events; what changed. The dispute is marked to be checked if anything did.
pub fn write_dispute_events(
    conn: &mut PgConnection,
    partnership: &str,
    prov: &Provenance,
    id: i64,
    d: &DisputeRecord,
) -> Result<EventCounts, DbError> {
    let added_plain = add_dispute_events_without_id(conn, prov, id, d)?;
    let stored = stored_dispute_events(conn, prov, id)?;
    let given = d
        .events
        .iter()
        .filter_map(|e| e.id.clone().map(|i| (i, stored_dispute_event(e))))
        .collect();
    let diff = diff(given, stored, &d.retracted, prov.complete);
    apply_dispute_diff(conn, prov, id, &diff)?;
    audit_diff(
        conn,
        prov,
        &format!("{partnership}/dispute/{}", d.reference),
        &diff,
        added_plain,
    )?;
    let mut counts = diff.counts();
    counts.added += added_plain;
    if counts != EventCounts::default() {
        diesel::update(disputes::table.find(id))
            .set(disputes::next_check_at.eq(CHECK_NOW))
            .execute(conn)?;
    }
    Ok(counts)
}

/// Add a dispute's events without an id not stored yet; how many were new.
fn add_dispute_events_without_id(
    conn: &mut PgConnection,
    prov: &Provenance,
    id: i64,
    d: &DisputeRecord,
) -> Result<usize, DbError> {
    let plain: Vec<_> = d
        .events
        .iter()
        .filter(|e| e.id.is_none())
        .map(|e| {
            let s = stored_dispute_event(e);
            (
                dispute_events::dispute_id.eq(id),
                dispute_events::kind.eq(s.kind),
                dispute_events::at.eq(s.at),
                dispute_events::stage.eq(stage(&s.extra)),
                dispute_events::data.eq(s.data),
                dispute_events::source.eq(prov.source.as_str()),
            )
        })
        .collect();
    let mut added = 0;
    for chunk in plain.chunks(ROWS_PER_STATEMENT) {
        added += diesel::insert_into(dispute_events::table)
            .values(chunk)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(added)
}

/// A dispute's stored events with ids of this source, by id.
fn stored_dispute_events(
    conn: &mut PgConnection,
    prov: &Provenance,
    id: i64,
) -> Result<HashMap<String, Stored>, DbError> {
    type Row = (
        i64,
        Option<String>,
        String,
        DateTime<Utc>,
        Option<i32>,
        Value,
    );
    let rows: Vec<Row> = dispute_events::table
        .filter(dispute_events::dispute_id.eq(id))
        .filter(dispute_events::source.eq(&prov.source))
        .filter(dispute_events::source_id.is_not_null())
        .select((
            dispute_events::id,
            dispute_events::source_id,
            dispute_events::kind,
            dispute_events::at,
            dispute_events::stage,
            dispute_events::data,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(row, sid, kind, at, st, data)| {
            Some((
                sid?,
                Stored {
                    row,
                    kind,
                    at,
                    extra: json!(st),
                    data,
                },
            ))
        })
        .collect())
}

fn stage(extra: &Value) -> Option<i32> {
    extra.as_i64().and_then(|n| i32::try_from(n).ok())
}

fn apply_dispute_diff(
    conn: &mut PgConnection,
    prov: &Provenance,
    dispute: i64,
    d: &Diff,
) -> Result<(), DbError> {
    let gone: Vec<i64> = d.deletes.iter().map(|(_, e)| e.row).collect();
    if !gone.is_empty() {
        diesel::delete(dispute_events::table.filter(dispute_events::id.eq_any(&gone)))
            .execute(conn)?;
    }
    for (_, new) in &d.updates {
        diesel::update(dispute_events::table.find(new.row))
            .set((
                dispute_events::kind.eq(&new.kind),
                dispute_events::at.eq(new.at),
                dispute_events::stage.eq(stage(&new.extra)),
                dispute_events::data.eq(&new.data),
            ))
            .execute(conn)?;
    }
    let rows: Vec<_> = d
        .inserts
        .iter()
        .map(|(id, e)| {
            (
                dispute_events::dispute_id.eq(dispute),
                dispute_events::kind.eq(e.kind.as_str()),
                dispute_events::at.eq(e.at),
                dispute_events::stage.eq(stage(&e.extra)),
                dispute_events::data.eq(e.data.clone()),
                dispute_events::source.eq(prov.source.as_str()),
                dispute_events::source_id.eq(id.as_str()),
            )
        })
        .collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        diesel::insert_into(dispute_events::table)
            .values(chunk)
            .execute(conn)?;
    }
    Ok(())
}
