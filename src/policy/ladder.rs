//! Professional-disagreement (escalation) ladders: policy files with `kind = "escalation"`.
//!
//! A ladder is a list of stages. Each stage has a deadline counted from its own start, from the
//! dispute's opening or from the disputed decision (`disagreement_at`), the people it reaches
//! (named relative to either party: `raiser.line_manager`, `respondent.agency.safeguarding_lead`,
//! `both.senior_manager`, or partnership and case roles), carbon copies, and the records the
//! policy demands. Parsing reports every problem with the file, the stage and the field.

use super::{PolicyError, RoleRef, Validator};
use crate::calendar::Timescale;
use serde::Deserialize;
use std::fmt;

/// Which party of a dispute a role is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Raiser,
    Respondent,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Raiser => "raiser",
            Side::Respondent => "respondent",
        })
    }
}

/// Someone a ladder stage names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LadderRole {
    /// The party themselves (`raiser`, `respondent`).
    Party(Side),
    /// A role relative to a party: `line_manager`, `senior_manager` or `agency.<role>`.
    OfParty(Side, RoleRef),
    /// A partnership role (`partnership_chair`) or a role on the dispute's case (`case.social_worker`).
    Other(RoleRef),
    /// The first of these that someone holds (`partnership_chair|partnership_vice_chair`).
    FirstOf(Vec<LadderRole>),
}

impl fmt::Display for LadderRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LadderRole::Party(s) => write!(f, "{s}"),
            LadderRole::OfParty(s, r) => write!(f, "{s}.{r}"),
            LadderRole::Other(RoleRef::Case(r)) => write!(f, "case.{r}"),
            LadderRole::Other(r) => write!(f, "{r}"),
            LadderRole::FirstOf(options) => {
                let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                f.write_str(&names.join("|"))
            }
        }
    }
}

impl LadderRole {
    /// Parse one name; `both.<role>` gives two (the raiser's and the respondent's).
    pub fn parse(s: &str) -> Result<Vec<LadderRole>, String> {
        let s = s.trim();
        if s.contains('|') {
            let mut options = Vec::new();
            for part in s.split('|') {
                let mut one = LadderRole::parse(part)?;
                if one.len() != 1 {
                    return Err(format!("{part:?}: `both.` cannot be an alternative"));
                }
                options.append(&mut one);
            }
            return Ok(vec![LadderRole::FirstOf(options)]);
        }
        if let Some(rest) = s.strip_prefix("both.") {
            let mut out = LadderRole::parse(&format!("raiser.{rest}"))?;
            out.extend(LadderRole::parse(&format!("respondent.{rest}"))?);
            return Ok(out);
        }
        for (prefix, side) in [("raiser", Side::Raiser), ("respondent", Side::Respondent)] {
            if s == prefix {
                return Ok(vec![LadderRole::Party(side)]);
            }
            if let Some(rest) = s.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
                let role = RoleRef::parse(rest)?;
                return match role {
                    RoleRef::LineManager | RoleRef::SeniorManager | RoleRef::Agency(_) => {
                        Ok(vec![LadderRole::OfParty(side, role)])
                    }
                    _ => Err(format!(
                        "{s:?}: a party's role is line_manager, senior_manager or agency.<role>"
                    )),
                };
            }
        }
        if let Some(rest) = s.strip_prefix("case.") {
            return match RoleRef::parse(rest)? {
                r @ RoleRef::Case(_) => Ok(vec![LadderRole::Other(r)]),
                _ => Err(format!("{rest:?} is not a case role")),
            };
        }
        match RoleRef::parse(s) {
            Ok(r @ RoleRef::Partnership(_)) => Ok(vec![LadderRole::Other(r)]),
            _ => Err(format!(
                "{s:?} is not a ladder role: use raiser, respondent, raiser.<role>, respondent.<role>, \
                 both.<role> (role = line_manager, senior_manager, agency.<agency role>), \
                 case.<case role>, a partnership role, or a|b (the first held)"
            )),
        }
    }
}

/// What a stage's deadline counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineFrom {
    /// The stage's own start.
    StageStart,
    /// When the dispute was raised.
    Opened,
    /// The disputed decision or the disagreement (`disagreement_at`, default `opened_at`).
    Disagreement,
    /// The start of an earlier stage (Liverpool: stages 2 and 3 together within a week of 2's start).
    StartOfStage(u32),
}

/// When two roles of a stage are one person (Richmond & Kingston step 2, a small agency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coalesce {
    /// Move straight to the next stage.
    Skip,
    /// Run the stage; the person is mailed once.
    MailOnce,
}

/// Deadlines of a dispute flagged as immediate risk of significant harm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskDeadlines {
    /// Every stage from the start runs on a same-working-day deadline (the default).
    SameWorkingDay,
    /// The stages keep their ordinary deadlines.
    Unchanged,
}

/// A record a dispute keeps: one a policy demands when a stage is entered, or a note cpwatch
/// keeps itself (a late raising, a stage passed over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum RecordKind {
    /// Knowsley: the Escalation Notice (record of discussion re escalation).
    #[serde(rename = "escalation_notice")]
    EscalationNotice,
    /// Liverpool: the LSCB report form (Multi-Agency Resolution Levels 3 and 4).
    #[serde(rename = "lscb_report_form")]
    LscbReportForm,
    /// Liverpool: the school's log of cases escalated to its safeguarding leadership team.
    #[serde(rename = "summary_log.safeguarding_leadership_team")]
    SummaryLogSafeguardingLeadershipTeam,
    /// Liverpool: the school's log of cases escalated to the LSCB.
    #[serde(rename = "summary_log.lscb")]
    SummaryLogLscb,
    /// Pan-Cheshire: the LSCB's record of step-4 escalations and outcomes.
    #[serde(rename = "step4_record")]
    Step4Record,
    /// Raised later than the policy's `raise_within` after the disagreement (a note).
    #[serde(rename = "late_raising")]
    LateRaising,
    /// A stage passed over because its people are one person (a note).
    #[serde(rename = "stage_skipped")]
    StageSkipped,
}

impl RecordKind {
    /// The records a policy file may demand of a stage.
    pub const DEMANDABLE: &'static [RecordKind] = &[
        RecordKind::EscalationNotice,
        RecordKind::LscbReportForm,
        RecordKind::SummaryLogSafeguardingLeadershipTeam,
        RecordKind::SummaryLogLscb,
        RecordKind::Step4Record,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::EscalationNotice => "escalation_notice",
            RecordKind::LscbReportForm => "lscb_report_form",
            RecordKind::SummaryLogSafeguardingLeadershipTeam => {
                "summary_log.safeguarding_leadership_team"
            }
            RecordKind::SummaryLogLscb => "summary_log.lscb",
            RecordKind::Step4Record => "step4_record",
            RecordKind::LateRaising => "late_raising",
            RecordKind::StageSkipped => "stage_skipped",
        }
    }

    /// One a policy may demand, by its name in the file.
    pub fn demandable(s: &str) -> Option<RecordKind> {
        Self::DEMANDABLE.iter().copied().find(|k| k.as_str() == s)
    }
}

impl PartialEq<&str> for RecordKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub number: u32,
    pub name: String,
    /// What the people of this stage should do, in a sentence for the mail.
    pub action: String,
    pub deadline: Timescale,
    /// The policy gives no figure; the deadline is the configured default.
    pub deadline_is_default: bool,
    pub from: DeadlineFrom,
    pub to: Vec<LadderRole>,
    pub cc: Vec<LadderRole>,
    pub records: Vec<RecordKind>,
    /// If these all resolve to one person, the policy's `coalesce` rule applies.
    pub same_person: Vec<LadderRole>,
    /// Who confirms the outcome in writing when the dispute is resolved at this stage.
    pub outcome_confirmed_by: Vec<LadderRole>,
    /// National or local (every shipped ladder is a local procedure).
    pub scope: super::Scope,
    /// This stage's part (0–1) of the working time to its deadline, when it shares that window
    /// with the next stage (Liverpool: stages 2 and 3 together within one working week).
    pub share: Option<f64>,
    /// A dispute's own protective timescale, when shorter, is this stage's deadline
    /// (Knowsley stages 1–3: "or a timescale that protects the child from harm (whichever is
    /// less)").
    pub protective: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImmediateRisk {
    pub start_stage: u32,
    /// Told at once, at any hour.
    pub tell: Vec<LadderRole>,
    pub deadlines: RiskDeadlines,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRule {
    /// A resolution at this stage or later is mailed to `to` and the stage's people.
    pub notify_from_stage: u32,
    pub to: Vec<LadderRole>,
    /// Where a stage names `outcome_confirmed_by`: the confirmation is due this long after the resolution.
    pub confirm_within: Option<Timescale>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AfterLastStage {
    pub every: Timescale,
    pub to: Vec<LadderRole>,
}

/// Reminders to someone to tell the family (Pan-Cheshire: the social worker tells parents and
/// carers of the escalation and its outcome unless that would put the child at risk).
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyNotice {
    pub from_stage: u32,
    pub to: Vec<LadderRole>,
    pub action: String,
}

/// A professional-disagreement ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderPolicy {
    pub id: String,
    pub title: String,
    /// The document the ladder comes from (`source`).
    pub source: String,
    /// Numbered 1..=n.
    pub stages: Vec<Stage>,
    /// Before each stage's deadline ("1 working day before"); None = no reminders.
    pub reminder: Option<Timescale>,
    pub coalesce: Coalesce,
    /// A manual escalation may go straight to the last stage (Knowsley: significant policy issues).
    pub escalate_to_last: bool,
    /// Raising later than this after `disagreement_at` is noted in the record.
    pub raise_within: Option<Timescale>,
    pub immediate_risk: ImmediateRisk,
    pub outcome: OutcomeRule,
    pub after_last_stage: AfterLastStage,
    pub family_notice: Option<FamilyNotice>,
}

impl LadderPolicy {
    pub fn stage(&self, n: u32) -> Option<&Stage> {
        n.checked_sub(1).and_then(|i| self.stages.get(i as usize))
    }
    pub fn last_stage(&self) -> u32 {
        self.stages.len() as u32
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLadder {
    id: String,
    title: String,
    kind: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    defaults: RawDefaults,
    immediate_risk: RawRisk,
    #[serde(default)]
    outcome: RawOutcome,
    after_last_stage: RawAfterLast,
    family_notice: Option<RawFamily>,
    #[serde(default)]
    stages: Vec<RawStage>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    /// For stages whose policy gives no figure (`deadline = "unspecified"` or none).
    deadline: Option<String>,
    reminder: Option<String>,
    coalesce: Option<Coalesce>,
    #[serde(default)]
    escalate_to_last: bool,
    raise_within: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    #[serde(default = "one")]
    start_stage: u32,
    tell: Vec<String>,
    deadlines: Option<RiskDeadlines>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutcome {
    #[serde(default = "two")]
    notify_from_stage: u32,
    #[serde(default = "parties")]
    to: Vec<String>,
    confirm_within: Option<String>,
}

fn two() -> u32 {
    2
}
fn parties() -> Vec<String> {
    vec!["raiser".into(), "respondent".into()]
}

impl Default for RawOutcome {
    fn default() -> Self {
        RawOutcome {
            notify_from_stage: 2,
            to: parties(),
            confirm_within: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAfterLast {
    every: String,
    to: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFamily {
    from_stage: u32,
    to: Vec<String>,
    action: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    stage: u32,
    name: String,
    action: String,
    deadline: Option<String>,
    #[serde(default = "stage_start")]
    from: String,
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    records: Vec<String>,
    #[serde(default)]
    same_person: Vec<String>,
    #[serde(default)]
    outcome_confirmed_by: Vec<String>,
    #[serde(default)]
    scope: super::Scope,
    share: Option<f64>,
    #[serde(default)]
    protective: bool,
}

fn stage_start() -> String {
    "stage".into()
}

/// The `kind` a policy file declares, if it can be read at all.
pub fn kind_of(text: &str) -> Option<String> {
    let value: toml::Table = toml::from_str(text).ok()?;
    value.get("kind")?.as_str().map(str::to_owned)
}

impl Validator {
    fn ladder_roles(&mut self, field: &str, names: &[String]) -> Vec<LadderRole> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match LadderRole::parse(name) {
                Ok(mut r) => out.append(&mut r),
                Err(msg) => self.problem(&format!("{field}[{i}]"), msg),
            }
        }
        out
    }
}

/// Parse and validate one escalation policy file; every problem is reported, not just the first.
pub fn parse_ladder(file: &str, text: &str) -> Result<LadderPolicy, PolicyError> {
    let raw: RawLadder = toml::from_str(text).map_err(|e| PolicyError::toml(file, &e))?;
    let mut v = Validator::new(file);
    if raw.kind != "escalation" {
        v.problem(
            "kind",
            format!(
                "{:?}: an escalation ladder has kind = \"escalation\"",
                raw.kind
            ),
        );
    }
    if !super::is_slug(&raw.id) {
        v.problem(
            "id",
            "policy ids are lower-case letters, digits and '-'".into(),
        );
    }
    let defaults = v.ladder_defaults(&raw.defaults);
    if raw.stages.is_empty() {
        v.problem("stages", "a ladder needs at least one stage".into());
    }
    let n_stages = raw.stages.len() as u32;
    let mut stages = Vec::new();
    for (i, s) in raw.stages.iter().enumerate() {
        v.place = Some(format!("stage {}", s.stage));
        stages.extend(v.stage(s, i as u32 + 1, n_stages, &raw, &defaults));
    }
    v.place = None;
    let immediate_risk = v.immediate_risk(&raw.immediate_risk, n_stages);
    let outcome = v.outcome(&raw.outcome, n_stages);
    let after_last_stage = v.after_last_stage(&raw.after_last_stage);
    let family_notice = raw
        .family_notice
        .as_ref()
        .map(|f| v.family_notice(f, n_stages));
    if !v.problems.is_empty() {
        return Err(PolicyError(v.problems));
    }
    Ok(LadderPolicy {
        id: raw.id,
        title: raw.title,
        source: raw.source,
        stages,
        reminder: defaults.reminder,
        coalesce: defaults.coalesce,
        escalate_to_last: raw.defaults.escalate_to_last,
        raise_within: defaults.raise_within,
        immediate_risk,
        outcome,
        after_last_stage,
        family_notice,
    })
}

/// A ladder's `[defaults]`, parsed.
struct LadderDefaults {
    deadline: Option<Timescale>,
    reminder: Option<Timescale>,
    raise_within: Option<Timescale>,
    coalesce: Coalesce,
}

fn counts_back(t: Timescale) -> bool {
    matches!(
        t,
        Timescale::WorkingDaysBefore(_) | Timescale::HoursBefore(_) | Timescale::DaysBefore(_)
    )
}

impl Validator {
    fn ladder_defaults(&mut self, d: &RawDefaults) -> LadderDefaults {
        let deadline = d
            .deadline
            .as_deref()
            .and_then(|x| self.timescale("defaults.deadline", x));
        let reminder = d
            .reminder
            .as_deref()
            .and_then(|x| self.timescale("defaults.reminder", x));
        if let Some(r) = reminder.filter(|r| !counts_back(*r)) {
            self.problem(
                "defaults.reminder",
                format!("{r} counts from nothing: use a \"... before\" phrase such as \"1 working day before\""),
            );
        }
        let raise_within = d
            .raise_within
            .as_deref()
            .and_then(|x| self.timescale("defaults.raise_within", x));
        LadderDefaults {
            deadline,
            reminder,
            raise_within,
            coalesce: d.coalesce.unwrap_or(Coalesce::MailOnce),
        }
    }

    /// Stage `expected` (1-based) of `n_stages`, or None when it cannot be used (reported).
    fn stage(
        &mut self,
        s: &RawStage,
        expected: u32,
        n_stages: u32,
        raw: &RawLadder,
        defaults: &LadderDefaults,
    ) -> Option<Stage> {
        if s.stage != expected {
            self.problem(
                "stage",
                format!("stages are numbered 1, 2, 3, ... in order; expected {expected}"),
            );
        }
        let (deadline, deadline_is_default) = self.stage_deadline(s, defaults);
        let from = self.deadline_from(&s.from, expected);
        let to = self.ladder_roles("to", &s.to);
        if s.to.is_empty() {
            self.problem("to", "names nobody".into());
        }
        let cc = self.ladder_roles("cc", &s.cc);
        let source = (!raw.source.trim().is_empty()).then_some(raw.source.as_str());
        self.source(s.scope, source);
        let records = self.records(&s.records);
        let same_person = self.ladder_roles("same_person", &s.same_person);
        if !s.same_person.is_empty() {
            if s.same_person.len() < 2 {
                self.problem(
                    "same_person",
                    "names fewer than two roles to compare".into(),
                );
            }
            if defaults.coalesce == Coalesce::Skip && (expected == 1 || expected == n_stages) {
                self.problem(
                    "same_person",
                    "the first and last stages cannot be skipped".into(),
                );
            }
        }
        let outcome_confirmed_by =
            self.ladder_roles("outcome_confirmed_by", &s.outcome_confirmed_by);
        if !s.outcome_confirmed_by.is_empty() && raw.outcome.confirm_within.is_none() {
            self.problem(
                "outcome_confirmed_by",
                "set outcome.confirm_within to say when the confirmation is due".into(),
            );
        }
        if let Some(share) = s.share {
            if !(share > 0.0 && share < 1.0) {
                self.problem(
                    "share",
                    format!("{share}: a stage's share of its window is between 0 and 1"),
                );
            }
            if expected == n_stages {
                self.problem(
                    "share",
                    "the last stage has no next stage to share its window with".into(),
                );
            }
        }
        Some(Stage {
            number: expected,
            name: s.name.clone(),
            action: s.action.clone(),
            deadline: deadline?,
            deadline_is_default,
            from: from?,
            to,
            cc,
            records,
            same_person,
            outcome_confirmed_by,
            scope: s.scope,
            share: s.share,
            protective: s.protective,
        })
    }

    /// The stage's deadline, and whether it is the configured default (the policy gives none).
    fn stage_deadline(
        &mut self,
        s: &RawStage,
        defaults: &LadderDefaults,
    ) -> (Option<Timescale>, bool) {
        let (deadline, is_default) = match s.deadline.as_deref() {
            None | Some("unspecified") => {
                if defaults.deadline.is_none() {
                    self.problem(
                        "deadline",
                        "no deadline, and no defaults.deadline to fall back on".into(),
                    );
                }
                (defaults.deadline, true)
            }
            Some(d) => (self.timescale("deadline", d), false),
        };
        if let Some(d) = deadline.filter(|d| counts_back(*d)) {
            self.problem(
                "deadline",
                format!("{d}: a stage deadline counts forwards, not \"before\""),
            );
        }
        (deadline, is_default)
    }

    fn deadline_from(&mut self, from: &str, stage: u32) -> Option<DeadlineFrom> {
        match from {
            "stage" => Some(DeadlineFrom::StageStart),
            "opened" => Some(DeadlineFrom::Opened),
            "disagreement" => Some(DeadlineFrom::Disagreement),
            other => match other
                .strip_prefix("stage ")
                .and_then(|n| n.trim().parse::<u32>().ok())
            {
                Some(n) if n >= 1 && n < stage => Some(DeadlineFrom::StartOfStage(n)),
                Some(_) => {
                    self.problem(
                        "from",
                        format!("{other:?}: only an earlier stage's start can be counted from"),
                    );
                    None
                }
                None => {
                    self.problem(
                        "from",
                        format!("{other:?} is not one of stage, opened, disagreement, \"stage N\""),
                    );
                    None
                }
            },
        }
    }

    fn records(&mut self, names: &[String]) -> Vec<RecordKind> {
        let mut records = Vec::new();
        for (j, r) in names.iter().enumerate() {
            match RecordKind::demandable(r) {
                Some(k) => records.push(k),
                None => {
                    let known: Vec<&str> =
                        RecordKind::DEMANDABLE.iter().map(|k| k.as_str()).collect();
                    self.problem(
                        &format!("records[{j}]"),
                        format!("{r:?} is not a record cpwatch keeps ({})", known.join(", ")),
                    )
                }
            }
        }
        records
    }

    fn stage_in_range(&mut self, field: &str, n: u32, n_stages: u32) {
        if !(n >= 1 && n <= n_stages.max(1)) {
            self.problem(field, format!("there is no stage {n}"));
        }
    }

    fn immediate_risk(&mut self, r: &RawRisk, n_stages: u32) -> ImmediateRisk {
        self.stage_in_range("immediate_risk.start_stage", r.start_stage, n_stages);
        let tell = self.ladder_roles("immediate_risk.tell", &r.tell);
        if r.tell.is_empty() {
            self.problem("immediate_risk.tell", "names nobody".into());
        }
        ImmediateRisk {
            start_stage: r.start_stage,
            tell,
            deadlines: r.deadlines.unwrap_or(RiskDeadlines::SameWorkingDay),
        }
    }

    fn outcome(&mut self, o: &RawOutcome, n_stages: u32) -> OutcomeRule {
        self.stage_in_range("outcome.notify_from_stage", o.notify_from_stage, n_stages);
        OutcomeRule {
            notify_from_stage: o.notify_from_stage,
            to: self.ladder_roles("outcome.to", &o.to),
            confirm_within: o
                .confirm_within
                .as_deref()
                .and_then(|c| self.timescale("outcome.confirm_within", c)),
        }
    }

    fn after_last_stage(&mut self, a: &RawAfterLast) -> AfterLastStage {
        let every = self.timescale("after_last_stage.every", &a.every);
        if let Some(e) = every {
            if !matches!(e, Timescale::Weeks(n) | Timescale::Days(n) if n > 0) {
                self.problem(
                    "after_last_stage.every",
                    format!(
                        "{e}: the interval of the repeated notice is a number of days or weeks"
                    ),
                );
            }
        }
        let to = self.ladder_roles("after_last_stage.to", &a.to);
        if a.to.is_empty() {
            self.problem("after_last_stage.to", "names nobody".into());
        }
        AfterLastStage {
            every: every.unwrap_or(Timescale::Weeks(1)),
            to,
        }
    }

    fn family_notice(&mut self, f: &RawFamily, n_stages: u32) -> FamilyNotice {
        self.stage_in_range("family_notice.from_stage", f.from_stage, n_stages);
        FamilyNotice {
            from_stage: f.from_stage,
            to: self.ladder_roles("family_notice.to", &f.to),
            action: f.action.clone(),
        }
    }
}
