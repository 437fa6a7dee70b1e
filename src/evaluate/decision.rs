//! What the evaluator decides, as data: easy to print, assert and write in bulk.

use crate::domain::{CaseRef, DisputeRef, Email, PartnershipId, PersonId};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Reminder,
    Due,
    Overdue,
    OverdueEscalation,
    CauseForConcern,
    EscalationStage,
    EscalationOutcome,
    DataQuality,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reminder => "reminder",
            Kind::Due => "due",
            Kind::Overdue => "overdue",
            Kind::OverdueEscalation => "overdue_escalation",
            Kind::CauseForConcern => "cause_for_concern",
            Kind::EscalationStage => "escalation_stage",
            Kind::EscalationOutcome => "escalation_outcome",
            Kind::DataQuality => "data_quality",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone a notification reaches, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub email: Email,
    pub person: Option<PersonId>,
    pub name: Option<String>,
    /// The role they are told as (`team_manager`, `senior_manager`, `admin`, ...).
    pub role: String,
}

/// One message to its recipients. Each recipient becomes one outbox row keyed `key/email`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// subject/rule/occurrence/step; unique per notification.
    pub key: String,
    pub kind: Kind,
    pub rule: String,
    pub standard: Option<String>,
    pub title: String,
    /// What the recipient should do.
    pub action: String,
    pub partnership: PartnershipId,
    pub case: Option<CaseRef>,
    pub dispute: Option<DisputeRef>,
    pub occurrence: String,
    pub step: String,
    /// The deadline this notification is about.
    pub due: DateTime<Utc>,
    /// When this step became due (reminder time, deadline, escalation time).
    pub trigger_at: DateTime<Utc>,
    /// Not before this instant (working hours for non-urgent mail).
    pub send_after: DateTime<Utc>,
    pub urgent: bool,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    /// For escalations: how it is worded (an escalation, a cause for concern letter, the chair's challenge).
    #[serde(default)]
    pub letter: Option<crate::policy::Letter>,
}

impl Notification {
    /// The `--format json` line of the command-line contract (plus a few useful extras).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind.as_str(),
            "rule": self.rule,
            "case": self.case.as_ref().map(|c| c.as_str()),
            "dispute": self.dispute.as_ref().map(|d| d.as_str()),
            "due": rfc3339(self.due),
            "to": self.to.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
            "cc": self.cc.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
            "standard": self.standard,
            "step": self.step,
            "send_after": rfc3339(self.send_after),
            "key": self.key,
        })
    }

    /// Every (recipient, `to`/`cc`) pair, `to` first.
    pub fn recipients(&self) -> impl Iterator<Item = (&Recipient, &'static str)> {
        self.to
            .iter()
            .map(|r| (r, "to"))
            .chain(self.cc.iter().map(|r| (r, "cc")))
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What evaluating one case at one instant decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseOutcome {
    pub notifications: Vec<Notification>,
    /// The next instant at which evaluating again can change anything; None = nothing pending.
    pub next_check: Option<DateTime<Utc>>,
}
