//! Notices: what the evaluator decided, one row each (unique key, so writing a decision twice is
//! harmless), with one delivery row per recipient; and the withdrawal of queued notices a new
//! evaluation no longer calls for.

use super::payload::{self, Content, PayloadError};
use super::schema::{deliveries, notices};
use super::DbError;
use crate::domain::{CaseRef, DisputeRef, PartnershipId};
use crate::evaluate::{Kind, Notice, NoticeKey};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

#[derive(Insertable)]
#[diesel(table_name = notices)]
struct NewNotice<'a> {
    key: &'a str,
    partnership_id: &'a str,
    kind: &'a str,
    rule: &'a str,
    case_ref: Option<&'a str>,
    dispute_ref: Option<&'a str>,
    occurrence: &'a str,
    step: &'a str,
    due_at: DateTime<Utc>,
    trigger_at: DateTime<Utc>,
    send_after: DateTime<Utc>,
    urgent: bool,
    payload: serde_json::Value,
}

#[derive(Insertable)]
#[diesel(table_name = deliveries)]
struct NewDelivery<'a> {
    notice_id: i64,
    recipient: &'a str,
    position: &'a str,
    send_after: DateTime<Utc>,
    urgent: bool,
    message_id: String,
}

/// `<hash-of-key@domain>`: the same notice to the same person always has the same Message-ID.
/// `delivery_key` is `NoticeKey::for_recipient`.
pub fn message_id(delivery_key: &str, domain: &str) -> String {
    let digest = Sha256::digest(delivery_key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// Rows per statement: well under PostgreSQL's 65,535 bind parameters.
const NOTICE_CHUNK: usize = 2_000;
const DELIVERY_CHUNK: usize = 5_000;

/// Queue every notice and a delivery for each of its recipients; what is there already is left
/// alone. Returns how many deliveries were new.
pub fn enqueue(
    conn: &mut PgConnection,
    notices: &[Notice],
    domain: &str,
) -> Result<usize, DbError> {
    Ok(enqueue_new(conn, notices, domain)?.deliveries)
}

/// What queueing a set of notices added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Deliveries that were new.
    pub deliveries: usize,
    /// Keys of the notices that gained a delivery: the ones this call newly queued.
    pub new: HashSet<String>,
}

impl Enqueued {
    pub fn add(&mut self, other: Enqueued) {
        self.deliveries += other.deliveries;
        self.new.extend(other.new);
    }
}

/// `enqueue`, saying which notices were newly queued.
pub fn enqueue_new(
    conn: &mut PgConnection,
    notices: &[Notice],
    domain: &str,
) -> Result<Enqueued, DbError> {
    if notices.is_empty() {
        return Ok(Enqueued::default());
    }
    let ids = notice_ids(conn, notices)?;
    let mut rows = Vec::new();
    for n in notices {
        let Some(&notice_id) = ids.get(n.key.as_str()) else {
            continue;
        };
        for (r, position) in n.recipients() {
            rows.push(NewDelivery {
                notice_id,
                recipient: r.email.as_str(),
                position: position.as_str(),
                send_after: n.send_after,
                urgent: n.urgent,
                message_id: message_id(&n.key.for_recipient(r.email.as_str()), domain),
            });
        }
    }
    let mut out = Enqueued::default();
    let mut gained = HashSet::new();
    for chunk in rows.chunks(DELIVERY_CHUNK) {
        let new: Vec<i64> = diesel::insert_into(deliveries::table)
            .values(chunk)
            .on_conflict((deliveries::notice_id, deliveries::recipient))
            .do_nothing()
            .returning(deliveries::notice_id)
            .get_results(conn)?;
        out.deliveries += new.len();
        gained.extend(new);
    }
    out.new = ids
        .into_iter()
        .filter(|(_, id)| gained.contains(id))
        .map(|(key, _)| key)
        .collect();
    Ok(out)
}

/// The keys of these notices that are queued already: a notice row with a delivery for each of
/// its recipients (whatever has become of them since). What a dry run would not queue again.
pub fn queued_keys(
    conn: &mut PgConnection,
    notices: &[Notice],
) -> Result<HashSet<String>, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        key: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        recipient: String,
    }
    let mut stored: HashMap<String, HashSet<String>> = HashMap::new();
    let keys: Vec<&str> = notices.iter().map(|n| n.key.as_str()).collect();
    for chunk in keys.chunks(NOTICE_CHUNK) {
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT n.key, d.recipient FROM notices n JOIN deliveries d ON d.notice_id = n.id \
             WHERE n.key = ANY($1)",
        )
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(chunk)
        .load(conn)?;
        for r in rows {
            stored.entry(r.key).or_default().insert(r.recipient);
        }
    }
    Ok(notices
        .iter()
        .filter(|n| {
            stored
                .get(n.key.as_str())
                .is_some_and(|have| n.recipients().all(|(r, _)| have.contains(r.email.as_str())))
        })
        .map(|n| n.key.to_string())
        .collect())
}

/// Insert the notices that are new and return the id of every one, new or not, by key.
fn notice_ids(
    conn: &mut PgConnection,
    notices: &[Notice],
) -> Result<HashMap<String, i64>, DbError> {
    let rows: Vec<NewNotice> = notices.iter().map(new_notice).collect();
    let mut ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
    for chunk in rows.chunks(NOTICE_CHUNK) {
        let new: Vec<(i64, String)> = diesel::insert_into(notices::table)
            .values(chunk)
            .on_conflict(notices::key)
            .do_nothing()
            .returning((notices::id, notices::key))
            .get_results(conn)?;
        ids.extend(new.into_iter().map(|(id, key)| (key, id)));
    }
    let known: Vec<&str> = notices
        .iter()
        .map(|n| n.key.as_str())
        .filter(|k| !ids.contains_key(*k))
        .collect();
    for chunk in known.chunks(NOTICE_CHUNK) {
        let old: Vec<(i64, String)> = notices::table
            .filter(notices::key.eq_any(chunk))
            .select((notices::id, notices::key))
            .load(conn)?;
        ids.extend(old.into_iter().map(|(id, key)| (key, id)));
    }
    Ok(ids)
}

fn new_notice(n: &Notice) -> NewNotice<'_> {
    NewNotice {
        key: n.key.as_str(),
        partnership_id: n.partnership.as_str(),
        kind: n.kind.as_str(),
        rule: &n.rule,
        case_ref: n.case.as_ref().map(|c| c.as_str()),
        dispute_ref: n.dispute.as_ref().map(|d| d.as_str()),
        occurrence: &n.occurrence,
        step: &n.step,
        due_at: n.due,
        trigger_at: n.trigger_at,
        send_after: n.send_after,
        urgent: n.urgent,
        payload: payload::write(n),
    }
}

/// A notice's columns as stored, before they are read back into a `Notice`.
#[derive(Debug, Clone, QueryableByName)]
pub struct NoticeRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub key: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub partnership_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub rule: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub case_ref: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub dispute_ref: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub occurrence: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub step: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub due_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub trigger_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub send_after: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub urgent: bool,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    pub payload: serde_json::Value,
}

impl NoticeRow {
    /// The notice as the evaluator made it, from a row of any payload version.
    pub fn read(&self) -> Result<Notice, PayloadError> {
        let bad = |what: &str, value: &str| {
            PayloadError::Malformed(format!("notice {}: {what} {value:?}", self.key))
        };
        let kind = Kind::parse(&self.kind).ok_or_else(|| bad("kind", &self.kind))?;
        let partnership = PartnershipId::parse(&self.partnership_id)
            .map_err(|_| bad("partnership", &self.partnership_id))?;
        let case = match &self.case_ref {
            Some(c) => Some(CaseRef::parse(c).map_err(|_| bad("case", c))?),
            None => None,
        };
        let dispute = match &self.dispute_ref {
            Some(d) => Some(DisputeRef::parse(d).map_err(|_| bad("dispute", d))?),
            None => None,
        };
        let Content {
            title,
            standard,
            action,
            letter,
            to,
            cc,
        } = payload::read(&self.payload)?;
        Ok(Notice {
            key: NoticeKey::stored(self.key.clone()),
            kind,
            rule: self.rule.clone(),
            standard,
            title,
            action,
            partnership,
            case,
            dispute,
            occurrence: self.occurrence.clone(),
            step: self.step.clone(),
            due: self.due_at,
            trigger_at: self.trigger_at,
            send_after: self.send_after,
            urgent: self.urgent,
            to,
            cc,
            letter,
        })
    }
}

/// Cancel the queued, unclaimed deliveries of these cases' notices that their evaluation at
/// `now` no longer produces (the action was done first, or the case moved on). `current` holds
/// the key of every notice the evaluation produced. Returns how many deliveries were cancelled.
pub fn cancel_superseded(
    conn: &mut PgConnection,
    partnership: &str,
    case_refs: &[String],
    current: &[String],
    now: DateTime<Utc>,
) -> Result<usize, DbError> {
    if case_refs.is_empty() {
        return Ok(0);
    }
    use diesel::sql_types::{Array, Text, Timestamptz};
    let kinds: Vec<&str> = Kind::CASE_RULE.iter().map(|k| k.as_str()).collect();
    diesel::sql_query(
        "UPDATE deliveries d SET status = 'cancelled', \
                last_error = 'no longer due when evaluated at ' || to_char($4 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
         FROM notices n \
         WHERE d.notice_id = n.id AND d.status = 'pending' \
           AND n.partnership_id = $1 AND n.dispute_ref IS NULL AND n.case_ref = ANY($2) \
           AND n.kind = ANY($5) AND (d.locked_until IS NULL OR d.locked_until < now()) \
           AND NOT (n.key = ANY($3))",
    )
    .bind::<Text, _>(partnership)
    .bind::<Array<Text>, _>(case_refs)
    .bind::<Array<Text>, _>(current)
    .bind::<Timestamptz, _>(now)
    .bind::<Array<Text>, _>(kinds)
    .execute(conn)
}

/// Refresh the planner's statistics of the notice tables (a pass that queues many rows outgrows
/// them, and a new database has none).
pub fn analyze(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("ANALYZE notices").execute(conn)?;
    diesel::sql_query("ANALYZE deliveries").execute(conn)?;
    Ok(())
}
