//! What an import writes, as validated records: agencies, people, roles, cases with their events,
//! disputes with theirs, for one partnership. Any import format (today the JSON case file) is
//! validated into an [`ImportBatch`]; `store::import` writes one in a transaction and answers
//! with an [`ImportSummary`]. [`Known`] is what the database already holds, for checking a
//! file's references. Core types only: nothing here reads or writes anything.

use crate::domain::{
    AgencyId, CaseRef, DisputeEventKind, DisputeRef, EventKind, PartnershipId, Person, PersonId,
};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Ids a partnership's database already holds, as stored: a file may refer to them without
/// declaring them again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub people: HashSet<String>,
    pub agencies: HashSet<String>,
    /// Case references.
    pub cases: HashSet<String>,
}

/// Where a batch's events come from: the `source` they are stored under (`case-file`,
/// `cin-census`), the file, and whether the batch holds each of its cases' events from that
/// source completely (a census extract does: an event of a case it names but no longer
/// carries is gone; a case file may be partial, so only an explicit retraction removes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub source: String,
    pub file: String,
    pub complete: bool,
}

impl Provenance {
    /// A JSON case file.
    pub fn case_file(file: &str) -> Provenance {
        Provenance {
            source: CASE_FILE_SOURCE.into(),
            file: file.into(),
            complete: false,
        }
    }
}

/// The `source` of events imported from a JSON case file.
pub const CASE_FILE_SOURCE: &str = "case-file";

/// Everything one valid import writes, for one partnership.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportBatch {
    pub partnership: PartnershipId,
    pub provenance: Provenance,
    pub agencies: Vec<AgencyRecord>,
    pub people: Vec<Person>,
    /// role → person (`partnership_chair`, …).
    pub partnership_roles: Vec<(String, PersonId)>,
    pub cases: Vec<CaseRecord>,
    pub disputes: Vec<DisputeRecord>,
}

/// An agency and the people who hold its roles (`safeguarding_lead`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyRecord {
    pub id: AgencyId,
    pub name: String,
    pub roles: Vec<(String, PersonId)>,
}

/// A case as imported: its roles replace the stored ones; its events are added to them.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    pub reference: CaseRef,
    pub unborn: bool,
    /// 1–366 days.
    pub visit_interval_days: Option<u32>,
    /// role → person; a role held by several people appears once per person.
    pub roles: Vec<(String, PersonId)>,
    pub events: Vec<CaseEventRecord>,
    /// The sender's ids of events to remove.
    pub retracted: Vec<String>,
}

/// One case event as imported. With the sender's `id`, it replaces the stored event of that
/// id (if it differs); without one, an event already stored (same kind, instant and data) is
/// not added again.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseEventRecord {
    /// The sender's own id for the event.
    pub id: Option<String>,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    /// For scheduling events: when the meeting was booked.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Kind-specific fields, checked against the kind's field table.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A professional disagreement as imported. Stored already, only its subject and immediate
/// risk change; its events are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    pub reference: DisputeRef,
    /// The case it is about, in this batch or already stored.
    pub case: Option<CaseRef>,
    /// The escalation ladder's id.
    pub policy: String,
    pub raised_by: PersonId,
    pub respondent_person: Option<PersonId>,
    pub respondent_agency: Option<AgencyId>,
    pub subject: String,
    pub immediate_risk: bool,
    pub opened_at: DateTime<Utc>,
    pub disagreement_at: Option<DateTime<Utc>>,
    /// The canonical phrase of the dispute's own protective timescale, if any (Knowsley stages
    /// 1–3: "or a timescale that protects the child from harm, whichever is less").
    pub protective: Option<String>,
    pub events: Vec<DisputeEventRecord>,
    /// The sender's ids of events to remove.
    pub retracted: Vec<String>,
}

/// One dispute event as imported (with the sender's `id`: replaces the stored one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeEventRecord {
    pub id: Option<String>,
    pub kind: DisputeEventKind,
    pub at: DateTime<Utc>,
    /// For `escalated`: the stage asked for (within the ladder's stages).
    pub stage: Option<u32>,
    pub by: Option<PersonId>,
    pub outcome: Option<String>,
}

/// What an import wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub partnership: String,
    pub agencies: usize,
    pub people: usize,
    pub cases: usize,
    pub new_events: usize,
    pub disputes: usize,
    pub new_dispute_events: usize,
    /// Events (of cases and disputes) that replaced a stored one of the same id.
    pub corrected_events: usize,
    /// Events removed: retracted by id, or no longer in a complete extract.
    pub removed_events: usize,
}
