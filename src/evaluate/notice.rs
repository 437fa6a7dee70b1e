//! What the evaluator decides, as data: a notice (one message to its recipients), the key that
//! makes it unique, and the one rule that mails a person once. Easy to print, assert and write
//! in bulk; the store keeps it as a notice row plus one delivery row per recipient.

use crate::domain::{CaseRef, DisputeRef, Email, PartnershipId, PersonId};
use crate::policy::Letter;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// At go-live: one team manager's list of what was already overdue on their cases.
    GoLiveSummary,
    /// One person's morning digest of their reminders and "due today" notices (`crate::digest`).
    Digest,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Reminder,
        Kind::Due,
        Kind::Overdue,
        Kind::OverdueEscalation,
        Kind::CauseForConcern,
        Kind::EscalationStage,
        Kind::EscalationOutcome,
        Kind::DataQuality,
        Kind::GoLiveSummary,
        Kind::Digest,
    ];

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
            Kind::GoLiveSummary => "go_live_summary",
            Kind::Digest => "digest",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The kinds a case's rules produce, and so the kinds a later evaluation may withdraw.
    pub const CASE_RULE: &'static [Kind] = &[
        Kind::Reminder,
        Kind::Due,
        Kind::Overdue,
        Kind::OverdueEscalation,
        Kind::CauseForConcern,
    ];

    /// A reminder or "due today" notice is pointless once its deadline has passed.
    pub fn stale_after_deadline(self) -> bool {
        matches!(self, Kind::Reminder | Kind::Due)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone a notice reaches, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub email: Email,
    pub person: Option<PersonId>,
    pub name: Option<String>,
    /// The role they are told as (`team_manager`, `senior_manager`, `admin`, ...); a person
    /// holding several roles of one notice has them joined with `+`.
    pub role: String,
}

/// A notice's unique key. Every key is made here, so the scheme is in one place:
///
/// | notice | key |
/// |---|---|
/// | a step of a case rule | `{partnership}/case/{ref}/{rule}/{occurrence}/{step}` |
/// | a cause-for-concern letter (once per meeting and agency, whichever rule found it) | `{partnership}/case/{ref}/cause-for-concern/{occurrence}` |
/// | a step of a dispute's ladder | `{partnership}/dispute/{ref}/{policy}:{stage}/{step}` |
/// | case or dispute data that cannot be evaluated | `{partnership}/case/{ref}/data-quality/{code}`, `{partnership}/dispute/{ref}/data-quality/{code}` |
/// | a refused delivery | `{partnership}/{case/REF\|dispute/REF\|partnership}/data-quality/undeliverable/{email}` |
/// | the go-live summary to one team manager | `{partnership}/go-live/{instant}/{email}` |
/// | one person's morning digest | `{partnership}/digest/{local date}/{email}` |
///
/// Each recipient's delivery is keyed `{key}/{email}`; its `Message-ID` is derived from that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NoticeKey(String);

impl NoticeKey {
    pub fn case_step(
        p: &PartnershipId,
        case: &CaseRef,
        rule: &str,
        occurrence: &str,
        step: &str,
    ) -> Self {
        NoticeKey(format!("{p}/case/{case}/{rule}/{occurrence}/{step}"))
    }

    pub fn cause_for_concern(p: &PartnershipId, case: &CaseRef, occurrence: &str) -> Self {
        NoticeKey(format!("{p}/case/{case}/cause-for-concern/{occurrence}"))
    }

    /// `rule` is `{policy}:{stage}`.
    pub fn dispute_step(p: &PartnershipId, dispute: &DisputeRef, rule: &str, step: &str) -> Self {
        NoticeKey(format!("{p}/dispute/{dispute}/{rule}/{step}"))
    }

    pub fn data_quality(p: &PartnershipId, about: &About, code: &str) -> Self {
        NoticeKey(format!("{p}/{about}/data-quality/{code}"))
    }

    /// A notice that could not be delivered to `rejected`, for whoever can pass it on.
    pub fn undeliverable(p: &PartnershipId, about: Option<&About>, rejected: &Email) -> Self {
        let about = about.map_or("partnership".to_owned(), |a| a.to_string());
        NoticeKey(format!("{p}/{about}/data-quality/undeliverable/{rejected}"))
    }

    /// The go-live summary (go-live at `go_live`, RFC 3339) to one recipient.
    pub fn go_live_summary(p: &PartnershipId, go_live: &str, to: &Email) -> Self {
        NoticeKey(format!("{p}/go-live/{go_live}/{to}"))
    }

    /// One person's digest of the working morning `date` (local, `YYYY-MM-DD`).
    pub fn digest(p: &PartnershipId, date: chrono::NaiveDate, to: &str) -> Self {
        NoticeKey(format!("{p}/digest/{}/{to}", date.format("%Y-%m-%d")))
    }

    /// A key read back from the store (it was made by one of the constructors).
    pub fn stored(key: String) -> Self {
        NoticeKey(key)
    }

    /// The key of one recipient's delivery.
    pub fn for_recipient(&self, email: &str) -> String {
        format!("{}/{email}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NoticeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<String> for NoticeKey {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<&str> for NoticeKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// What a notice is about, as its key says it (`case/KN-1`, `dispute/D-1`); stored in a
/// problem's facts as `{"kind": "case", "ref": "KN-1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ref", rename_all = "snake_case")]
pub enum About {
    Case(CaseRef),
    Dispute(DisputeRef),
}

impl fmt::Display for About {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            About::Case(c) => write!(f, "case/{c}"),
            About::Dispute(d) => write!(f, "dispute/{d}"),
        }
    }
}

/// One message to its recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub key: NoticeKey,
    pub kind: Kind,
    /// The rule id, or `{policy}:{stage}` for a dispute, or `data-quality`.
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
    /// The deadline this notice is about.
    pub due: DateTime<Utc>,
    /// When this step became due (reminder time, deadline, escalation time).
    pub trigger_at: DateTime<Utc>,
    /// Not before this instant (working hours for non-urgent mail).
    pub send_after: DateTime<Utc>,
    pub urgent: bool,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    /// For escalations: how it is worded (an escalation, a cause for concern letter, the chair's challenge).
    pub letter: Option<Letter>,
    /// What the templates say in words: how late, why it came, the dispute's story.
    pub facts: Facts,
}

/// The facts a notice's words are made from, decided by the evaluator (no wording here: the
/// templates under `config/templates/` say them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// How late the deadline was when this step fell due (working days for a working-day rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<Lateness>,
    /// The person below (who should have been told first) could not be reached: no email
    /// address. Why an escalation came.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub below_unreachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<DisputeFacts>,
    /// A data-quality notice's problem (payload version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemFacts>,
    /// A go-live summary's lapsed timescales (payload version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_live: Option<GoLiveFacts>,
}

/// What a data-quality problem is, with the facts that vary; `_problem.txt.j2` words each.
/// Stored as `{"what": "no_email", "person": ..., ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum ProblemFacts {
    /// An initial conference (on `on`) with no strategy discussion before it.
    IcpcWithoutStrategyDiscussion { case: CaseRef, on: NaiveDate },
    /// A plan's event (`event`, on `on`) with no conference that started a plan before it.
    PlanWithoutStart {
        case: CaseRef,
        event: String,
        on: NaiveDate,
    },
    /// A case from the census (which names no workers) with no team manager.
    CensusRolesUnknown { case: CaseRef },
    /// The census's initial-conference target (`target`) for the enquiry that started on
    /// `started` is not cpwatch's 15 working days (`ours`).
    CensusIcpcTarget {
        case: CaseRef,
        started: NaiveDate,
        target: NaiveDate,
        ours: NaiveDate,
    },
    /// Nobody holds `role` on the case or dispute `about`.
    NoRole { about: About, role: String },
    /// `person`, named as `role` on `about`, is not in the directory.
    UnknownPerson {
        person: String,
        role: String,
        about: About,
    },
    /// `person` (`role` on `about`) has no email address.
    NoEmail {
        person: String,
        role: String,
        about: About,
    },
    /// A cause-for-concern letter about `agency` (found by `rule`) has nobody to go to.
    NoManagerForCauseForConcern { agency: String, rule: String },
}

/// What was already overdue on one team manager's cases when cpwatch started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoLiveFacts {
    /// The go-live instant.
    pub started: DateTime<Utc>,
    /// Cases in the order of their oldest lapse.
    pub cases: Vec<GoLiveCase>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoLiveCase {
    pub case: CaseRef,
    /// Its lapsed timescales, oldest first.
    pub lapsed: Vec<LapsedTimescale>,
}

/// One timescale that had lapsed by go-live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LapsedTimescale {
    pub deadline: DateTime<Utc>,
    pub rule: String,
    pub standard: String,
    pub title: String,
}

/// Lateness in the unit its rule counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "unit", content = "n", rename_all = "snake_case")]
pub enum Lateness {
    WorkingDays(i64),
    Days(i64),
    Hours(i64),
}

/// A professional disagreement as its mail tells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DisputeFacts {
    /// What the disagreement is about (the dispute's `subject`).
    pub subject: String,
    pub policy_title: String,
    /// The stage this notice is about, and its name.
    pub stage: u32,
    pub stage_name: String,
    /// Why it reached this stage: `timescale lapsed`, `escalated by hand`, `immediate risk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    #[serde(default)]
    pub immediate_risk: bool,
    /// Stages passed over because their people are one person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<u32>,
    /// The records the stage demands (`escalation_notice`, `lscb_report_form`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<String>,
    /// The stages so far, oldest first.
    #[serde(default)]
    pub history: Vec<StageVisit>,
    /// Where it goes if not resolved: the next stage, when, and whom it reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextStage>,
    /// The outcome, once resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// A timescale phrase the notice needs: confirm the outcome within it, or told every it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
}

impl DisputeFacts {
    /// A dispute notice's stored title (payload version 4): a code, worded by the templates
    /// (`_dispute_title.j2`) from the policy's title, the stage and its name. A notice queued
    /// before keeps its title in words.
    pub const TITLE: &'static str = "dispute-stage";
}

/// One stage the dispute was at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageVisit {
    pub stage: u32,
    pub name: String,
    pub entered_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The stage a dispute moves to next if nobody resolves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextStage {
    pub stage: u32,
    pub name: String,
    pub at: DateTime<Utc>,
    /// Role expressions of the people it reaches (`respondent.line_manager`).
    pub to: Vec<String>,
}

/// Where a recipient stands in a notice: asked to act, told because the person below has not
/// acted (or could not be reached), or copied for information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stance {
    Act,
    Escalated,
    Informed,
}

impl Stance {
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Act => "act",
            Stance::Escalated => "escalated",
            Stance::Informed => "informed",
        }
    }
}

impl Notice {
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
            "key": self.key.as_str(),
        })
    }

    /// Where someone addressed at `position` stands: the people an overdue escalation or a
    /// chair's challenge reaches are told because the person below has not acted; a dispute's
    /// weekly notice after its last stage goes to those it was escalated to; the rest addressed
    /// act; anyone copied is told for information.
    pub fn stance(&self, position: Position) -> Stance {
        match (position, self.kind) {
            (Position::Cc, _) => Stance::Informed,
            (Position::To, Kind::OverdueEscalation) => Stance::Escalated,
            (Position::To, Kind::EscalationStage)
                if self
                    .facts
                    .dispute
                    .as_ref()
                    .is_some_and(|d| d.why.as_deref() == Some("timescale lapsed")) =>
            {
                Stance::Escalated
            }
            (Position::To, _) => Stance::Act,
        }
    }

    /// The conversation this notice belongs to: one per occurrence of a case rule (reminder,
    /// due, overdue and escalations alike), one per dispute; a letter or data-quality notice
    /// is its own. Messages of one thread point at one root `Message-ID` derived from it.
    pub fn thread_key(&self) -> String {
        let p = &self.partnership;
        match (&self.dispute, &self.case, self.kind) {
            (Some(d), _, k) if k != Kind::DataQuality => format!("{p}/dispute/{d}"),
            (None, Some(c), k) if Kind::CASE_RULE.contains(&k) && k != Kind::CauseForConcern => {
                format!("{p}/case/{c}/{}/{}", self.rule, self.occurrence)
            }
            _ => self.key.as_str().to_owned(),
        }
    }

    /// Every (recipient, `to`/`cc`) pair, `to` first.
    pub fn recipients(&self) -> impl Iterator<Item = (&Recipient, Position)> {
        self.to
            .iter()
            .map(|r| (r, Position::To))
            .chain(self.cc.iter().map(|r| (r, Position::Cc)))
    }
}

/// Whether a recipient is addressed (`to`) or copied (`cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    To,
    Cc,
}

impl Position {
    pub fn as_str(self) -> &'static str {
        match self {
            Position::To => "to",
            Position::Cc => "cc",
        }
    }
    pub fn parse(s: &str) -> Option<Position> {
        match s {
            "to" => Some(Position::To),
            "cc" => Some(Position::Cc),
            _ => None,
        }
    }
}

/// The parts of a notice that change from one step to the next; the evaluator that drafts it
/// fills in the rest (key, rule, wording, subject).
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub kind: Kind,
    pub step: String,
    /// When the step falls due.
    pub trigger: DateTime<Utc>,
    /// The deadline it is about.
    pub due: DateTime<Utc>,
    pub urgent: bool,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
}

/// One person, one message: someone named twice (or holding two roles) is mailed once, as both
/// (`a+b`), and is not copied on what is addressed to them.
pub fn merge_people(to: Vec<Recipient>, cc: Vec<Recipient>) -> (Vec<Recipient>, Vec<Recipient>) {
    let mut out_to: Vec<Recipient> = Vec::new();
    for r in to {
        add_or_merge(&mut out_to, r);
    }
    let mut out_cc: Vec<Recipient> = Vec::new();
    for r in cc {
        match out_to.iter_mut().find(|x| x.email == r.email) {
            Some(x) => merge_role(x, &r.role),
            None => add_or_merge(&mut out_cc, r),
        }
    }
    (out_to, out_cc)
}

fn add_or_merge(list: &mut Vec<Recipient>, r: Recipient) {
    match list.iter_mut().find(|x| x.email == r.email) {
        Some(x) => merge_role(x, &r.role),
        None => list.push(r),
    }
}

fn merge_role(r: &mut Recipient, role: &str) {
    if !r.role.split('+').any(|p| p == role) {
        r.role = format!("{}+{role}", r.role);
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// What evaluating one case at one instant decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseOutcome {
    pub notifications: Vec<Notice>,
    /// The next instant at which evaluating again can change anything; None = nothing pending.
    pub next_check: Option<DateTime<Utc>>,
}
