//! Policies are data: TOML files under `config/policies/`, parsed and validated into typed rules.
//! Loading reads files; everything after that is pure.

pub mod ladder;
pub mod role_words;
mod roles;

use crate::calendar::Timescale;
use crate::domain::EventKind;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

pub use ladder::LadderPolicy;
pub use roles::RoleRef;

/// The policy files shipped with cpwatch, compiled into the binary so it runs with no files installed.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "knowsley-cp-2019.toml",
        include_str!("../../config/policies/knowsley-cp-2019.toml"),
    ),
    (
        "england-wt-2023.toml",
        include_str!("../../config/policies/england-wt-2023.toml"),
    ),
    (
        "knowsley-escalation-2019.toml",
        include_str!("../../config/policies/knowsley-escalation-2019.toml"),
    ),
    (
        "liverpool-school-escalation.toml",
        include_str!("../../config/policies/liverpool-school-escalation.toml"),
    ),
    (
        "richmond-kingston-6-step.toml",
        include_str!("../../config/policies/richmond-kingston-6-step.toml"),
    ),
    (
        "pan-cheshire-escalation.toml",
        include_str!("../../config/policies/pan-cheshire-escalation.toml"),
    ),
];

/// The standards policy of a partnership that names none: the timescales Working Together to
/// Safeguard Children 2023 sets for every English area.
pub const NATIONAL_BASELINE: &str = "england-wt-2023";

/// One problem found in a policy file, located by file, place (`rule r1`, `stage 2`) and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: String,
    pub place: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Some(place) => write!(
                f,
                "{}: {place}: {}: {}",
                self.file, self.field, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid policy files:\n  {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
pub struct PolicyError(pub Vec<PolicyProblem>);

impl PolicyError {
    /// A file that is not TOML of the expected shape.
    pub(crate) fn toml(file: &str, e: &toml::de::Error) -> Self {
        let at = e
            .span()
            .map(|s| format!(" (at byte {})", s.start))
            .unwrap_or_default();
        PolicyError(vec![PolicyProblem {
            file: file.into(),
            place: None,
            field: "toml".into(),
            message: e.message().to_owned() + &at,
        }])
    }
}

/// Which occurrences of the anchor event start a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// Only the first matching event.
    First,
    /// Only the latest matching event.
    Last,
    /// Every matching event starts its own occurrence.
    Each,
}

/// An event kind with field conditions, e.g. `strategy_discussion_held` with `s47_initiated = true`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMatch {
    pub event: EventKind,
    /// Fields that must have these values.
    pub when: BTreeMap<String, serde_json::Value>,
    /// Fields that must not have these values (a missing field passes: `shared_with_family`
    /// defaults to true, so `unless = { shared_with_family = false }`).
    pub unless: BTreeMap<String, serde_json::Value>,
    /// Fields that must equal the occurrence's: `meeting` (the anchor's) and/or `agency`.
    pub same: Vec<SameField>,
}

/// A field of a *done by* event that must equal the occurrence's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameField {
    /// The anchor's meeting (`meeting`).
    Meeting,
    /// The occurrence's agency (per-agency rules), else the responsible person's.
    Agency,
}

impl SameField {
    pub fn parse(s: &str) -> Option<SameField> {
        match s {
            "meeting" => Some(SameField::Meeting),
            "agency" => Some(SameField::Agency),
            _ => None,
        }
    }
}

impl EventMatch {
    /// Matches on kind and field conditions (not `same`, which needs the occurrence).
    pub fn matches(&self, e: &crate::domain::Event) -> bool {
        e.kind == self.event
            && self.when.iter().all(|(k, v)| e.data.get(k) == Some(v))
            && self.unless.iter().all(|(k, v)| e.data.get(k) != Some(v))
    }
}

/// How an overdue step is worded and who it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Letter {
    /// An overdue notice to the next manager up.
    #[default]
    Escalation,
    /// Standard 11/13: a cause for concern letter from the conference chair to the agency's manager.
    CauseForConcern,
    /// Standard 13: the conference chair's challenge to the named managers.
    ChairChallenge,
}

/// A step of a case rule once it is overdue: after `after` more, tell `to` (the policy file's
/// `escalation` list: "who is told next").
#[derive(Debug, Clone, PartialEq)]
pub struct OverdueStep {
    pub after: Timescale,
    pub to: Vec<RoleRef>,
    pub letter: Letter,
}

/// Conditions on the case when the anchor happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// A child-protection plan was open.
    PlanOpen,
    /// The case is (or was) about an unborn child.
    Unborn,
}

/// Where the window for the *done by* event starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DoneSince {
    /// At the anchor (after booking, for a scheduled meeting).
    #[default]
    Anchor,
    /// After the last conference (ICPC or review) held before the anchor's meeting.
    PreviousConference,
    /// At any time, before the anchor too (consent obtained before the examination): with
    /// `done_by_deadline`, only a done-by event no later than the deadline counts.
    AnyTime,
}

/// A guard: an event that must not happen within a window after the anchor.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub forbidden: EventMatch,
    pub within: Timescale,
}

/// Whether a rule is the statutory minimum every English area keeps (Working Together) or a
/// partnership's own standard that goes beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Set by national statutory guidance (Working Together to Safeguard Children).
    National,
    /// Set by the partnership (the default: a rule is national only if its file says so).
    #[default]
    Local,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::National => "national",
            Scope::Local => "local",
        }
    }
}

/// One timescale of a standards policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub standard: String,
    pub title: String,
    /// National (the statutory minimum) or local (the partnership's own).
    pub scope: Scope,
    /// Where the rule comes from (document, chapter, paragraph).
    pub source: Option<String>,
    /// What the responsible person must do, in a sentence for the mail.
    pub action: String,
    /// Any of these events starts a clock.
    pub anchors: Vec<EventMatch>,
    pub pick: Pick,
    /// One occurrence per agency invited to the anchor's meeting.
    pub per_invited_agency: bool,
    pub requires: Vec<Requirement>,
    /// The clock starts this long after the anchor, if the rule still applies then (a trigger).
    pub starts_after: Option<Timescale>,
    pub deadline: Timescale,
    /// The case's `visit_interval_days`, when set, replaces the deadline.
    pub case_interval: bool,
    pub done_since: DoneSince,
    /// Only a *done by* event no later than the deadline counts.
    pub done_by_deadline: bool,
    pub guard: Option<Guard>,
    /// Phrases ending in "before" count back from the deadline; others count from the anchor.
    pub reminders: Vec<Timescale>,
    pub done_by: Vec<EventMatch>,
    pub cancelled_by: Vec<EventMatch>,
    pub responsible: Vec<RoleRef>,
    pub cc: Vec<RoleRef>,
    /// Who is told next, step by step, while it stays undone (the file's `escalation`).
    pub overdue_steps: Vec<OverdueStep>,
}

/// A partnership's child-protection standards: a set of rules.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardsPolicy {
    pub id: String,
    pub title: String,
    pub rules: Vec<Rule>,
}

/// Every policy cpwatch knows, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub standards: HashMap<String, StandardsPolicy>,
    /// Professional-disagreement ladders (`kind = "escalation"`).
    pub ladders: HashMap<String, LadderPolicy>,
}

impl Catalogue {
    /// The shipped policies, then every `*.toml` in `dir` (same id replaces the shipped one).
    pub fn load(dir: Option<&Path>) -> Result<Catalogue, PolicyError> {
        let mut sources: Vec<(String, String)> = SHIPPED
            .iter()
            .map(|(name, text)| (format!("(built in) {name}"), (*text).to_owned()))
            .collect();
        let mut problems = Vec::new();
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut paths: Vec<_> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                        .collect();
                    paths.sort();
                    for path in paths {
                        match std::fs::read_to_string(&path) {
                            Ok(text) => sources.push((path.display().to_string(), text)),
                            Err(e) => problems.push(PolicyProblem {
                                file: path.display().to_string(),
                                place: None,
                                field: "file".into(),
                                message: e.to_string(),
                            }),
                        }
                    }
                }
                Err(e) => problems.push(PolicyProblem {
                    file: dir.display().to_string(),
                    place: None,
                    field: "policy_dir".into(),
                    message: e.to_string(),
                }),
            }
        }
        let mut catalogue = Catalogue::default();
        for (file, text) in sources {
            if ladder::kind_of(&text).as_deref() == Some("escalation") {
                match ladder::parse_ladder(&file, &text) {
                    Ok(p) => {
                        catalogue.ladders.insert(p.id.clone(), p);
                    }
                    Err(PolicyError(mut ps)) => problems.append(&mut ps),
                }
                continue;
            }
            match parse_standards(&file, &text) {
                Ok(p) => {
                    catalogue.standards.insert(p.id.clone(), p);
                }
                Err(PolicyError(mut ps)) => problems.append(&mut ps),
            }
        }
        if problems.is_empty() {
            Ok(catalogue)
        } else {
            Err(PolicyError(problems))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: String,
    title: String,
    kind: String,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    reminders: Vec<String>,
    #[serde(default)]
    escalation: Vec<RawStep>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawStep {
    after: String,
    to: Vec<String>,
    #[serde(default)]
    letter: Letter,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    event: String,
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
    #[serde(default)]
    unless: BTreeMap<String, toml::Value>,
    #[serde(default)]
    same: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(t) => std::slice::from_ref(t),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    event: String,
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
    within: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    standard: String,
    title: String,
    #[serde(default)]
    scope: Scope,
    #[serde(default)]
    source: Option<String>,
    action: String,
    anchor: OneOrMany<RawMatch>,
    #[serde(default = "default_pick")]
    pick: Pick,
    #[serde(default)]
    per: Option<String>,
    #[serde(default)]
    requires: Vec<Requirement>,
    #[serde(default)]
    starts_after: Option<String>,
    deadline: String,
    #[serde(default)]
    case_interval: Option<String>,
    #[serde(default)]
    done_since: DoneSince,
    #[serde(default)]
    done_by_deadline: bool,
    #[serde(default)]
    guard: Option<RawGuard>,
    reminders: Option<Vec<String>>,
    #[serde(default)]
    done_by: Vec<RawMatch>,
    #[serde(default)]
    cancelled_by: Vec<RawMatch>,
    responsible: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    escalation: Option<Vec<RawStep>>,
}

fn default_pick() -> Pick {
    Pick::Each
}

/// Parse and validate one standards policy file; every problem is reported, not just the first.
pub fn parse_standards(file: &str, text: &str) -> Result<StandardsPolicy, PolicyError> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::toml(file, &e))?;
    let mut v = Validator::new(file);
    if raw.kind != "standards" {
        v.problem(
            "kind",
            format!(
                "{:?} is not a policy kind this version knows (standards)",
                raw.kind
            ),
        );
    }
    let defaults = Defaults {
        reminders: v.timescales("defaults.reminders", &raw.defaults.reminders),
        overdue_steps: v.steps("defaults.escalation", &raw.defaults.escalation),
    };
    let mut rules = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &raw.rules {
        v.place = Some(format!("rule {}", r.id));
        if !seen.insert(r.id.clone()) {
            v.problem("id", "duplicate rule id".into());
        }
        rules.extend(v.rule(r, &defaults));
    }
    if v.problems.is_empty() {
        Ok(StandardsPolicy {
            id: raw.id,
            title: raw.title,
            rules,
        })
    } else {
        Err(PolicyError(v.problems))
    }
}

/// What a rule that says nothing of its own reminders or overdue steps gets.
struct Defaults {
    reminders: Vec<Timescale>,
    overdue_steps: Vec<OverdueStep>,
}

/// Whether `id` is lower-case letters, digits and '-' (rule and policy ids).
pub(crate) fn is_slug(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Validator {
    /// One rule, or None when it has a problem that stops it being a rule (reported).
    fn rule(&mut self, r: &RawRule, defaults: &Defaults) -> Option<Rule> {
        if !is_slug(&r.id) {
            self.problem(
                "id",
                "rule ids are lower-case letters, digits and '-'".into(),
            );
        }
        let anchors = self.anchors(r);
        let deadline = self.timescale("deadline", &r.deadline);
        let per_invited_agency = self.per_invited_agency(r);
        let starts_after = r
            .starts_after
            .as_deref()
            .and_then(|p| self.timescale("starts_after", p));
        let case_interval = self.case_interval(r);
        let guard = r.guard.as_ref().and_then(|g| self.guard(g));
        let reminders = match &r.reminders {
            Some(list) => self.timescales("reminders", list),
            None => defaults.reminders.clone(),
        };
        let done_by = self.event_matches("done_by", &r.done_by);
        let cancelled_by = self.event_matches("cancelled_by", &r.cancelled_by);
        let responsible = self.roles("responsible", &r.responsible);
        if r.responsible.is_empty() {
            self.problem(
                "responsible",
                "at least one role must be responsible".into(),
            );
        }
        let cc = self.roles("cc", &r.cc);
        self.source(r.scope, r.source.as_deref());
        let overdue_steps = match &r.escalation {
            Some(steps) => self.steps("escalation", steps),
            None => defaults.overdue_steps.clone(),
        };
        Some(Rule {
            id: r.id.clone(),
            standard: r.standard.clone(),
            title: r.title.clone(),
            scope: r.scope,
            source: r.source.clone(),
            action: r.action.clone(),
            anchors: anchors?,
            pick: r.pick,
            per_invited_agency,
            requires: r.requires.clone(),
            starts_after,
            deadline: deadline?,
            case_interval,
            done_since: r.done_since,
            done_by_deadline: r.done_by_deadline,
            guard,
            reminders,
            done_by,
            cancelled_by,
            responsible,
            cc,
            overdue_steps,
        })
    }

    /// A national rule must say where the nation sets it; a source, when given, says something.
    pub(crate) fn source(&mut self, scope: Scope, source: Option<&str>) {
        match source {
            Some(s) if s.trim().is_empty() => {
                self.problem("source", "empty; leave it out or name the document".into())
            }
            None if scope == Scope::National => self.problem(
                "source",
                "a national rule must cite its source (document, chapter and paragraph)".into(),
            ),
            _ => {}
        }
    }

    /// The rule's anchors, if every one of them is valid.
    fn anchors(&mut self, r: &RawRule) -> Option<Vec<EventMatch>> {
        let raw = r.anchor.as_slice();
        let anchors = self.event_matches("anchor", raw);
        (anchors.len() == raw.len() && !anchors.is_empty()).then_some(anchors)
    }

    fn event_matches(&mut self, field: &str, raw: &[RawMatch]) -> Vec<EventMatch> {
        raw.iter()
            .enumerate()
            .filter_map(|(i, m)| self.event_match(&format!("{field}[{i}]"), m))
            .collect()
    }

    fn per_invited_agency(&mut self, r: &RawRule) -> bool {
        let per = match r.per.as_deref() {
            None => return false,
            Some("invited_agency") => true,
            Some(other) => {
                self.problem("per", format!("{other:?} is not known (invited_agency)"));
                return false;
            }
        };
        let scheduled = r
            .anchor
            .as_slice()
            .iter()
            .all(|a| EventKind::parse(&a.event).is_some_and(|k| k.is_scheduling()));
        if !scheduled {
            self.problem("per", "per invited agency needs a scheduled meeting (icpc_scheduled, rcpc_scheduled) as anchor".into());
        }
        per
    }

    fn case_interval(&mut self, r: &RawRule) -> bool {
        match r.case_interval.as_deref() {
            None => false,
            Some("visit_interval_days") => true,
            Some(other) => {
                self.problem(
                    "case_interval",
                    format!("{other:?} is not a case field (visit_interval_days)"),
                );
                false
            }
        }
    }

    fn guard(&mut self, g: &RawGuard) -> Option<Guard> {
        let raw = RawMatch {
            event: g.event.clone(),
            when: g.when.clone(),
            unless: BTreeMap::new(),
            same: vec![],
        };
        let forbidden = self.event_match("guard", &raw)?;
        let within = self.timescale("guard.within", &g.within)?;
        Some(Guard { forbidden, within })
    }
}

/// Collects a policy file's problems, each located by the place being read.
pub(crate) struct Validator {
    file: String,
    /// `rule r1`, `stage 2`, or None for the file's top level.
    pub(crate) place: Option<String>,
    pub(crate) problems: Vec<PolicyProblem>,
}

impl Validator {
    pub(crate) fn new(file: &str) -> Self {
        Validator {
            file: file.to_owned(),
            place: None,
            problems: Vec::new(),
        }
    }

    pub(crate) fn problem(&mut self, field: &str, message: String) {
        self.problems.push(PolicyProblem {
            file: self.file.clone(),
            place: self.place.clone(),
            field: field.into(),
            message,
        });
    }

    pub(crate) fn timescale(&mut self, field: &str, phrase: &str) -> Option<Timescale> {
        match phrase.parse::<Timescale>() {
            Ok(t) => Some(t),
            Err(e) => {
                self.problem(field, e.to_string());
                None
            }
        }
    }

    fn timescales(&mut self, field: &str, phrases: &[String]) -> Vec<Timescale> {
        phrases
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.timescale(&format!("{field}[{i}]"), p))
            .collect()
    }

    fn steps(&mut self, field: &str, steps: &[RawStep]) -> Vec<OverdueStep> {
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let after = self.timescale(&format!("{field}[{i}].after"), &s.after);
            let to = self.roles(&format!("{field}[{i}].to"), &s.to);
            if s.to.is_empty() {
                self.problem(&format!("{field}[{i}].to"), "names nobody".into());
            }
            if let Some(after) = after {
                out.push(OverdueStep {
                    after,
                    to,
                    letter: s.letter,
                });
            }
        }
        out
    }

    fn roles(&mut self, field: &str, names: &[String]) -> Vec<RoleRef> {
        let mut out = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match RoleRef::parse(name) {
                Ok(r) => out.push(r),
                Err(msg) => self.problem(&format!("{field}[{i}]"), msg),
            }
        }
        out
    }

    fn event_match(&mut self, field: &str, m: &RawMatch) -> Option<EventMatch> {
        let Some(event) = EventKind::parse(&m.event) else {
            self.problem(
                &format!("{field}.event"),
                format!("{:?} is not an event kind", m.event),
            );
            return None;
        };
        let when = self.values(&format!("{field}.when"), &m.when);
        let unless = self.values(&format!("{field}.unless"), &m.unless);
        let mut same = Vec::new();
        for f in &m.same {
            match SameField::parse(f) {
                Some(s) => same.push(s),
                None => self.problem(
                    &format!("{field}.same"),
                    format!("{f:?} cannot be compared (meeting, agency)"),
                ),
            }
        }
        Some(EventMatch {
            event,
            when,
            unless,
            same,
        })
    }

    fn values(
        &mut self,
        field: &str,
        raw: &BTreeMap<String, toml::Value>,
    ) -> BTreeMap<String, serde_json::Value> {
        let mut out = BTreeMap::new();
        for (k, value) in raw {
            match serde_json::to_value(value) {
                Ok(json) => {
                    out.insert(k.clone(), json);
                }
                Err(e) => self.problem(&format!("{field}.{k}"), e.to_string()),
            }
        }
        out
    }
}
