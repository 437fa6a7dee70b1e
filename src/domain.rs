//! Records and newtypes shared by the core and the adapters: people, cases, events, roles.
//! Values are validated when parsed, so the evaluator never sees a malformed one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// A value that failed validation at the edge; `field` names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidValue {
    pub field: String,
    pub message: String,
}

impl InvalidValue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

macro_rules! id_newtype {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts 1–100 visible characters without spaces or slashes.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                let ok = !s.is_empty()
                    && s.len() <= 100
                    && s.chars().all(|c| c.is_ascii_graphic() && c != '/');
                if ok {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidValue::new(
                        $what,
                        format!("{s:?} is not a valid {} (1-100 printable characters, no spaces or '/')", $what),
                    ))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(CaseRef, "case reference");
id_newtype!(PersonId, "person id");
id_newtype!(AgencyId, "agency id");
id_newtype!(PartnershipId, "partnership id");
id_newtype!(DisputeRef, "dispute id");

/// An email address, checked for the shape `local@domain` (the SMTP server has the last word).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let valid = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && s.len() <= 254
                    && s.chars().all(|c| c.is_ascii_graphic())
            }
            None => false,
        };
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "email",
                format!("{s:?} is not an email address"),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for Email {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}
impl From<Email> for String {
    fn from(v: Email) -> String {
        v.0
    }
}
impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! event_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Every case event kind cpwatch understands (the spec's vocabulary).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventKind {
            $(#[serde(rename = $name)] $variant,)*
        }

        impl EventKind {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }
            pub fn parse(s: &str) -> Option<EventKind> {
                match s {
                    $($name => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    ReferralReceived => "referral_received",
    MarfReceived => "marf_received",
    ReferralActioned => "referral_actioned",
    ReferrerInformed => "referrer_informed",
    ReferralNfa => "referral_nfa",
    NfaLetterSent => "nfa_letter_sent",
    AssessmentDecision => "assessment_decision",
    AssessmentDecisionRecorded => "assessment_decision_recorded",
    AssessmentStarted => "assessment_started",
    AssessmentCompleted => "assessment_completed",
    AssessmentFeedbackSent => "assessment_feedback_sent",
    StrategyDiscussionDecided => "strategy_discussion_decided",
    StrategyDiscussionHeld => "strategy_discussion_held",
    StrategyDecisionsRecorded => "strategy_decisions_recorded",
    StrategyMinutesCirculated => "strategy_minutes_circulated",
    MedicalExamination => "medical_examination",
    MedicalReportReceived => "medical_report_received",
    S47Completed => "s47_completed",
    S47OutcomeSignedOff => "s47_outcome_signed_off",
    IcpcScheduled => "icpc_scheduled",
    IcpcHeld => "icpc_held",
    ReportReceived => "report_received",
    SingleAssessmentSent => "single_assessment_sent",
    SingleAssessmentShared => "single_assessment_shared",
    DecisionsCirculated => "decisions_circulated",
    OutlinePlanRecorded => "outline_plan_recorded",
    FamilyDebriefed => "family_debriefed",
    MinutesCirculated => "minutes_circulated",
    MinutesSentToFamily => "minutes_sent_to_family",
    CoreGroupHeld => "core_group_held",
    CoreGroupMinutesCirculated => "core_group_minutes_circulated",
    ChildSeen => "child_seen",
    RcpcScheduled => "rcpc_scheduled",
    RcpcHeld => "rcpc_held",
    PlanAuditDone => "plan_audit_done",
    SingleAssessmentUpdated => "single_assessment_updated",
    LegalAdviceSought => "legal_advice_sought",
    Birth => "birth",
    CpPlanEnded => "cp_plan_ended",
    CinPlanStarted => "cin_plan_started",
    CinPlanEnded => "cin_plan_ended",
    HosExceptionAgreed => "hos_exception_agreed",
    CaseClosed => "case_closed",
    ChairMetFamily => "chair_met_family",
    MedicalConsentObtained => "medical_consent_obtained",
}

impl EventKind {
    /// For scheduling events `at` is the meeting's own date and time.
    pub fn is_scheduling(self) -> bool {
        matches!(self, EventKind::IcpcScheduled | EventKind::RcpcScheduled)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened (or, for a scheduling event, is booked to happen) on a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub recorded_at: Option<DateTime<Utc>>,
    /// Kind-specific fields (`s47_initiated`, `meeting`, `agency`, `outcome`, …).
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Where it came from, and so which rules it may start.
    #[serde(default)]
    pub origin: Origin,
}

/// Where an event came from. A source that records only some kinds of event (the children-in-need
/// census) can start only the rules whose completion it can also record: a census strategy
/// discussion starts the 15-working-day conference clock, but not "minutes circulated", which no
/// census will ever tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The case system, through a case file or direct writes: any kind of event.
    #[default]
    CaseSystem,
    /// The children-in-need census extract.
    Census,
}

impl Origin {
    /// The kinds of event the census extract can record.
    pub const CENSUS_KINDS: &'static [EventKind] = &[
        EventKind::ReferralReceived,
        EventKind::ReferralNfa,
        EventKind::AssessmentStarted,
        EventKind::AssessmentCompleted,
        EventKind::StrategyDiscussionHeld,
        EventKind::S47Completed,
        EventKind::IcpcHeld,
        EventKind::RcpcHeld,
        EventKind::CpPlanEnded,
        EventKind::CinPlanStarted,
        EventKind::CinPlanEnded,
        EventKind::Birth,
        EventKind::CaseClosed,
    ];

    /// Whether this source ever records events of `kind`.
    pub fn records(self, kind: EventKind) -> bool {
        match self {
            Origin::CaseSystem => true,
            Origin::Census => Self::CENSUS_KINDS.contains(&kind),
        }
    }

    /// The `source` column's value this origin is stored under (`cin-census`), else any other.
    pub fn of_source(source: &str) -> Origin {
        if source == CENSUS_SOURCE {
            Origin::Census
        } else {
            Origin::CaseSystem
        }
    }
}

/// The `source` of events imported from a children-in-need census extract.
pub const CENSUS_SOURCE: &str = "cin-census";

impl Event {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(|v| v.as_str())
    }
    /// When cpwatch may know of the event: booking time for scheduling events, else `at`.
    pub fn known_from(&self) -> DateTime<Utc> {
        if self.kind.is_scheduling() {
            self.recorded_at.unwrap_or(DateTime::<Utc>::MIN_UTC)
        } else {
            self.at
        }
    }
}

/// A person who can be told something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    pub email: Option<Email>,
    pub agency: Option<AgencyId>,
    pub manager: Option<PersonId>,
}

/// Everyone a partnership's mail can reach, and the roles they hold in agencies and the partnership.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub people: HashMap<PersonId, Person>,
    /// (agency, role) → person, e.g. (`school`, `safeguarding_lead`).
    pub agency_roles: HashMap<(AgencyId, String), PersonId>,
    /// role → person, e.g. `partnership_chair`.
    pub partnership_roles: HashMap<String, PersonId>,
    /// Where data-quality notices go when a case has no reachable team manager.
    pub admin_email: Option<Email>,
}

impl Directory {
    pub fn person(&self, id: &PersonId) -> Option<&Person> {
        self.people.get(id)
    }
    pub fn manager_of(&self, id: &PersonId) -> Option<&PersonId> {
        self.people.get(id).and_then(|p| p.manager.as_ref())
    }
    /// The agency's named senior manager, else the person's manager's manager.
    pub fn senior_manager_of(&self, id: &PersonId) -> Option<&PersonId> {
        let person = self.people.get(id)?;
        if let Some(agency) = &person.agency {
            if let Some(sm) = self
                .agency_roles
                .get(&(agency.clone(), "senior_manager".into()))
            {
                if sm != id {
                    return Some(sm);
                }
            }
        }
        self.manager_of(id).and_then(|m| self.manager_of(m))
    }
    pub fn agency_role(&self, agency: &AgencyId, role: &str) -> Option<&PersonId> {
        self.agency_roles.get(&(agency.clone(), role.to_owned()))
    }
}

/// A case as the evaluator sees it.
#[derive(Debug, Clone)]
pub struct Case {
    pub partnership: PartnershipId,
    pub reference: CaseRef,
    pub unborn: bool,
    pub visit_interval_days: Option<u32>,
    /// role → person (a role held by several people, like `core_group_member`, appears once per person).
    pub roles: Vec<(String, PersonId)>,
    /// Sorted by `at`.
    pub events: Vec<Event>,
}

impl Case {
    pub fn role(&self, role: &str) -> Option<&PersonId> {
        self.roles.iter().find(|(r, _)| r == role).map(|(_, p)| p)
    }
}

/// Case roles a policy or a case file may name.
pub const CASE_ROLES: &[&str] = &[
    "social_worker",
    "team_manager",
    "assistant_team_manager",
    "conference_chair",
    "senior_manager",
    "head_of_service_safeguarding",
    "legal",
    "core_group_member",
    "mash_team_manager",
];

/// Roles an agency may name.
pub const AGENCY_ROLES: &[&str] = &[
    "safeguarding_lead",
    "deputy_safeguarding_lead",
    "senior_manager",
    "lscp_representative",
];

/// Roles the partnership names.
pub const PARTNERSHIP_ROLES: &[&str] = &[
    "partnership_chair",
    "partnership_vice_chair",
    "partnership_manager",
    "business_manager",
    "qa_subgroup_chair",
    "scr_subgroup",
    "strategic_leads",
    "contact_and_referral_team",
];

/// What can happen to a professional disagreement besides its timescales lapsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeEventKind {
    /// Escalated by hand (to `stage`) before the current stage's deadline.
    Escalated,
    /// Resolved at whatever stage the dispute is in.
    Resolved,
    /// The receiving manager confirmed the outcome in writing to the raising agency.
    OutcomeConfirmed,
}

impl DisputeEventKind {
    pub const ALL: &'static [DisputeEventKind] = &[
        DisputeEventKind::Escalated,
        DisputeEventKind::Resolved,
        DisputeEventKind::OutcomeConfirmed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeEventKind::Escalated => "escalated",
            DisputeEventKind::Resolved => "resolved",
            DisputeEventKind::OutcomeConfirmed => "outcome_confirmed",
        }
    }
    pub fn parse(s: &str) -> Option<DisputeEventKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeEvent {
    pub kind: DisputeEventKind,
    pub at: DateTime<Utc>,
    /// For `escalated`: the stage asked for.
    pub stage: Option<u32>,
    pub by: Option<PersonId>,
    pub outcome: Option<String>,
}

/// A stage move already recorded (`dispute_stage_history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEntry {
    pub from: Option<u32>,
    pub to: u32,
    pub at: DateTime<Utc>,
    pub why: String,
}

/// A professional disagreement as the ladder evaluator sees it.
#[derive(Debug, Clone)]
pub struct Dispute {
    pub partnership: PartnershipId,
    pub reference: DisputeRef,
    /// The case it is about, if any, and that case's roles.
    pub case: Option<CaseRef>,
    pub case_roles: Vec<(String, PersonId)>,
    pub policy: String,
    pub raised_by: PersonId,
    pub respondent_person: Option<PersonId>,
    pub respondent_agency: Option<AgencyId>,
    pub subject: String,
    pub immediate_risk: bool,
    pub opened_at: DateTime<Utc>,
    /// The disputed decision or the disagreement; `opened_at` when not given.
    pub disagreement_at: Option<DateTime<Utc>>,
    /// A shorter timescale that protects the child from harm, where the policy's stages allow
    /// one ("whichever is less"): each such stage's deadline is the earlier of the two.
    pub protective: Option<crate::calendar::Timescale>,
    /// The stage stored now, and since when.
    pub stage: u32,
    pub stage_started_at: DateTime<Utc>,
    /// Sorted by `at`.
    pub events: Vec<DisputeEvent>,
    /// Recorded stage moves, oldest first.
    pub history: Vec<StageEntry>,
}

impl Dispute {
    pub fn disagreement(&self) -> DateTime<Utc> {
        self.disagreement_at.unwrap_or(self.opened_at)
    }
}
