//! Notices: what the evaluator decided, one row each (unique key, so writing a decision twice is
//! harmless), with one delivery row per recipient; and the withdrawal of queued notices a new
//! evaluation no longer calls for.

use super::payload::{self, Content, PayloadError};
use super::DbError;
use crate::domain::{CaseRef, DisputeRef, PartnershipId};
use crate::evaluate::{Kind, Notice, NoticeKey};
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};

/// `<hash-of-key@domain>`: the same notice to the same person always has the same Message-ID.
/// `delivery_key` is `NoticeKey::for_recipient`.
pub fn message_id(delivery_key: &str, domain: &str) -> String {
    let digest = Sha256::digest(delivery_key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// Notices per statement (each statement binds one array per column, so this bounds memory,
/// not bind parameters).
const CHUNK: usize = 5_000;

/// Queue every notice and a delivery for each of its recipients; what is there already is left
/// alone. Returns how many deliveries were new.
pub fn enqueue<N: Borrow<Notice>>(
    conn: &mut PgConnection,
    notices: &[N],
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
pub fn enqueue_new<N: Borrow<Notice>>(
    conn: &mut PgConnection,
    notices: &[N],
    domain: &str,
) -> Result<Enqueued, DbError> {
    let mut out = Enqueued::default();
    for chunk in notices.chunks(CHUNK) {
        out.add(enqueue_chunk(conn, chunk, domain)?);
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct Gained {
    #[diesel(sql_type = diesel::sql_types::Text)]
    key: String,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    deliveries: i64,
}

/// One statement: the new notices inserted, then a delivery per recipient of every notice of
/// the chunk, new or already there (a recipient added since is queued; one already queued is
/// not); returns each notice that gained deliveries, and how many. The notices there already
/// are found by their keys in the unique index (`= ANY`), never by a join the planner could
/// turn into a scan of the whole table once per chunk; they are disjoint from the ones `new`
/// inserts (parts of one statement do not see each other's rows), hence `UNION ALL`.
fn enqueue_chunk<N: Borrow<Notice>>(
    conn: &mut PgConnection,
    notices: &[N],
    domain: &str,
) -> Result<Enqueued, DbError> {
    let n = Columns::of(notices);
    let d = RecipientColumns::of(notices, domain);
    let gained: Vec<Gained> = enqueue_statement(ENQUEUE, &n, &d).load(conn)?;
    Ok(Enqueued {
        deliveries: gained.iter().map(|g| g.deliveries as usize).sum(),
        new: gained.into_iter().map(|g| g.key).collect(),
    })
}

const ENQUEUE: &str = "WITH input AS ( \
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                            $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], \
                            $11::timestamptz[], $12::boolean[], $13::jsonb[]) \
         AS i(key, partnership_id, kind, rule, case_ref, dispute_ref, occurrence, step, due_at, \
              trigger_at, send_after, urgent, payload)), \
     new AS ( \
       INSERT INTO notices (key, partnership_id, kind, rule, case_ref, dispute_ref, occurrence, \
                            step, due_at, trigger_at, send_after, urgent, payload) \
       SELECT * FROM input ON CONFLICT (key) DO NOTHING RETURNING id, key), \
     ids AS ( \
       SELECT id, key FROM new \
       UNION ALL SELECT n.id, n.key FROM notices n WHERE n.key = ANY($1::text[])), \
     added AS ( \
       INSERT INTO deliveries (notice_id, recipient, position, send_after, urgent, message_id) \
       SELECT ids.id, r.recipient, r.position, r.send_after, r.urgent, r.message_id \
       FROM unnest($14::text[], $15::text[], $16::text[], $17::timestamptz[], $18::boolean[], \
                   $19::text[]) WITH ORDINALITY \
            AS r(key, recipient, position, send_after, urgent, message_id, ord) \
       JOIN ids ON ids.key = r.key ORDER BY r.ord \
       ON CONFLICT (notice_id, recipient) DO NOTHING RETURNING notice_id) \
     SELECT ids.key, count(*) AS deliveries FROM added JOIN ids ON ids.id = added.notice_id \
     GROUP BY ids.key";

/// `sql` (`ENQUEUE`, or its EXPLAIN) bound to a chunk's columns.
fn enqueue_statement<'a>(
    sql: &str,
    n: &'a Columns<'a>,
    d: &'a RecipientColumns<'a>,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz};
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Array<Text>, _>(&n.key)
        .bind::<Array<Text>, _>(&n.partnership)
        .bind::<Array<Text>, _>(&n.kind)
        .bind::<Array<Text>, _>(&n.rule)
        .bind::<Array<Nullable<Text>>, _>(&n.case_ref)
        .bind::<Array<Nullable<Text>>, _>(&n.dispute_ref)
        .bind::<Array<Text>, _>(&n.occurrence)
        .bind::<Array<Text>, _>(&n.step)
        .bind::<Array<Timestamptz>, _>(&n.due_at)
        .bind::<Array<Timestamptz>, _>(&n.trigger_at)
        .bind::<Array<Timestamptz>, _>(&n.send_after)
        .bind::<Array<Bool>, _>(&n.urgent)
        .bind::<Array<Jsonb>, _>(&n.payload)
        .bind::<Array<Text>, _>(&d.key)
        .bind::<Array<Text>, _>(&d.recipient)
        .bind::<Array<Text>, _>(&d.position)
        .bind::<Array<Timestamptz>, _>(&d.send_after)
        .bind::<Array<Bool>, _>(&d.urgent)
        .bind::<Array<Text>, _>(&d.message_id)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of queueing these notices (at most one chunk), as `enqueue`
/// runs it. It is run for real: the caller's transaction is to be rolled back.
pub fn explain_enqueue(
    conn: &mut PgConnection,
    notices: &[Notice],
    domain: &str,
) -> Result<Vec<String>, DbError> {
    let notices = &notices[..notices.len().min(CHUNK)];
    let (n, d) = (Columns::of(notices), RecipientColumns::of(notices, domain));
    super::plan(conn, enqueue_statement(&super::explained(ENQUEUE), &n, &d))
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
    for chunk in keys.chunks(CHUNK) {
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

/// A chunk of notices, column by column, for `unnest`.
struct Columns<'a> {
    key: Vec<&'a str>,
    partnership: Vec<&'a str>,
    kind: Vec<&'static str>,
    rule: Vec<&'a str>,
    case_ref: Vec<Option<&'a str>>,
    dispute_ref: Vec<Option<&'a str>>,
    occurrence: Vec<&'a str>,
    step: Vec<&'a str>,
    due_at: Vec<DateTime<Utc>>,
    trigger_at: Vec<DateTime<Utc>>,
    send_after: Vec<DateTime<Utc>>,
    urgent: Vec<bool>,
    payload: Vec<serde_json::Value>,
}

impl<'a> Columns<'a> {
    fn of<N: Borrow<Notice>>(notices: &'a [N]) -> Self {
        let notices = || notices.iter().map(|n| n.borrow());
        Columns {
            key: notices().map(|n| n.key.as_str()).collect(),
            partnership: notices().map(|n| n.partnership.as_str()).collect(),
            kind: notices().map(|n| n.kind.as_str()).collect(),
            rule: notices().map(|n| n.rule.as_str()).collect(),
            case_ref: notices()
                .map(|n| n.case.as_ref().map(|c| c.as_str()))
                .collect(),
            dispute_ref: notices()
                .map(|n| n.dispute.as_ref().map(|d| d.as_str()))
                .collect(),
            occurrence: notices().map(|n| n.occurrence.as_str()).collect(),
            step: notices().map(|n| n.step.as_str()).collect(),
            due_at: notices().map(|n| n.due).collect(),
            trigger_at: notices().map(|n| n.trigger_at).collect(),
            send_after: notices().map(|n| n.send_after).collect(),
            urgent: notices().map(|n| n.urgent).collect(),
            payload: notices().map(payload::write).collect(),
        }
    }
}

/// Every recipient of a chunk of notices, column by column, for `unnest`.
#[derive(Default)]
struct RecipientColumns<'a> {
    key: Vec<&'a str>,
    recipient: Vec<&'a str>,
    position: Vec<&'static str>,
    send_after: Vec<DateTime<Utc>>,
    urgent: Vec<bool>,
    message_id: Vec<String>,
}

impl<'a> RecipientColumns<'a> {
    fn of<N: Borrow<Notice>>(notices: &'a [N], domain: &str) -> Self {
        let mut c = RecipientColumns::default();
        for n in notices.iter().map(|n| n.borrow()) {
            for (r, position) in n.recipients() {
                c.key.push(n.key.as_str());
                c.recipient.push(r.email.as_str());
                c.position.push(position.as_str());
                c.send_after.push(n.send_after);
                c.urgent.push(n.urgent);
                c.message_id
                    .push(message_id(&n.key.for_recipient(r.email.as_str()), domain));
            }
        }
        c
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
            facts,
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
            facts,
        })
    }
}

/// What withdrawing superseded notices did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    /// Deliveries cancelled.
    pub cancelled: usize,
    /// Cases with a superseded delivery that a worker held (claimed, lease running), so it was
    /// not cancelled: the next pass must look at them again.
    pub held: HashSet<String>,
}

#[derive(QueryableByName)]
struct WithdrawnRow {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    cancelled: i64,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    held: Vec<String>,
}

/// Cancel the queued, unclaimed deliveries of these cases' notices that their evaluation at
/// `now` no longer produces (the action was done first, or the case moved on). `current` holds
/// the key of every notice the evaluation produced. Returns how many deliveries were cancelled,
/// and the cases whose superseded deliveries were held by a worker.
pub fn cancel_superseded(
    conn: &mut PgConnection,
    partnership: &str,
    case_refs: &[&str],
    current: &[&str],
    now: DateTime<Utc>,
) -> Result<Withdrawn, DbError> {
    if case_refs.is_empty() {
        return Ok(Withdrawn::default());
    }
    let row: WithdrawnRow =
        cancel_statement(CANCEL, partnership, case_refs, current, now).get_result(conn)?;
    Ok(Withdrawn {
        cancelled: usize::try_from(row.cancelled).unwrap_or(0),
        held: row.held.into_iter().collect(),
    })
}

const CANCEL: &str = "WITH superseded AS ( \
       SELECT d.id, n.case_ref \
       FROM deliveries d JOIN notices n ON d.notice_id = n.id \
       WHERE d.status = 'pending' \
         AND n.partnership_id = $1 AND n.dispute_ref IS NULL AND n.case_ref = ANY($2) \
         AND n.kind = ANY($5) AND NOT (n.key = ANY($3))), \
     cancelled AS ( \
       UPDATE deliveries d SET status = 'cancelled', \
              last_error = 'no longer due when evaluated at ' || to_char($4 AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
       FROM superseded s WHERE d.id = s.id AND d.status = 'pending' \
         AND (d.locked_until IS NULL OR d.locked_until < now()) RETURNING d.id) \
     SELECT (SELECT count(*) FROM cancelled) AS cancelled, \
            ARRAY(SELECT DISTINCT s.case_ref FROM superseded s \
                  WHERE s.id NOT IN (SELECT id FROM cancelled)) AS held";

/// `sql` (`CANCEL`, or its EXPLAIN) bound to what `cancel_superseded` is given.
fn cancel_statement<'a>(
    sql: &str,
    partnership: &'a str,
    case_refs: &'a [&'a str],
    current: &'a [&'a str],
    now: DateTime<Utc>,
) -> BoxedSqlQuery<'a, Pg, SqlQuery> {
    use diesel::sql_types::{Array, Text, Timestamptz};
    let kinds: Vec<&str> = Kind::CASE_RULE.iter().map(|k| k.as_str()).collect();
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<Text, _>(partnership)
        .bind::<Array<Text>, _>(case_refs)
        .bind::<Array<Text>, _>(current)
        .bind::<Timestamptz, _>(now)
        .bind::<Array<Text>, _>(kinds)
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of `cancel_superseded` with these arguments, run for real: the
/// caller's transaction is to be rolled back.
pub fn explain_cancel_superseded(
    conn: &mut PgConnection,
    partnership: &str,
    case_refs: &[&str],
    current: &[&str],
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbError> {
    let sql = super::explained(CANCEL);
    super::plan(
        conn,
        cancel_statement(&sql, partnership, case_refs, current, now),
    )
}

/// Refresh the planner's statistics of the notice tables (a pass that queues many rows outgrows
/// them, and a new database has none): of the columns the pass's and delivery's queries filter
/// and join on only, not the payload (sampling its JSON is most of a whole-table ANALYZE).
pub fn analyze(conn: &mut PgConnection) -> Result<(), DbError> {
    diesel::sql_query("ANALYZE notices (id, key, partnership_id, kind, case_ref, dispute_ref)")
        .execute(conn)?;
    diesel::sql_query("ANALYZE deliveries (id, notice_id, recipient, status, send_after)")
        .execute(conn)?;
    Ok(())
}
