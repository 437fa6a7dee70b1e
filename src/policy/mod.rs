//! Policies are data: TOML files under `config/policies/`, parsed and validated into typed rules.
//! Loading reads files; everything after that is pure.

mod roles;

use crate::calendar::Timescale;
use crate::domain::EventKind;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

pub use roles::RoleRef;

/// The policy files shipped with cpwatch, compiled into the binary so it runs with no files installed.
pub const SHIPPED: &[(&str, &str)] = &[(
    "knowsley-cp-2019.toml",
    include_str!("../../config/policies/knowsley-cp-2019.toml"),
)];

/// One problem found in a policy file, located by file, rule and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: String,
    pub rule: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Some(rule) => write!(
                f,
                "{}: rule {rule}: {}: {}",
                self.file, self.field, self.message
            ),
            None => write!(f, "{}: {}: {}", self.file, self.field, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid policy files:\n  {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
pub struct PolicyError(pub Vec<PolicyProblem>);

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
    pub when: BTreeMap<String, serde_json::Value>,
}

impl EventMatch {
    pub fn matches(&self, e: &crate::domain::Event) -> bool {
        e.kind == self.event && self.when.iter().all(|(k, v)| e.data.get(k) == Some(v))
    }
}

/// After `after` working days more, tell `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationStep {
    pub after: Timescale,
    pub to: Vec<RoleRef>,
}

/// One timescale of a standards policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub standard: String,
    pub title: String,
    /// What the responsible person must do, in a sentence for the mail.
    pub action: String,
    pub anchor: EventMatch,
    pub pick: Pick,
    pub deadline: Timescale,
    /// Phrases ending in "before" count back from the deadline; others count from the anchor.
    pub reminders: Vec<Timescale>,
    pub done_by: Vec<EventMatch>,
    pub cancelled_by: Vec<EventMatch>,
    pub responsible: Vec<RoleRef>,
    pub cc: Vec<RoleRef>,
    pub escalation: Vec<EscalationStep>,
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
                                rule: None,
                                field: "file".into(),
                                message: e.to_string(),
                            }),
                        }
                    }
                }
                Err(e) => problems.push(PolicyProblem {
                    file: dir.display().to_string(),
                    rule: None,
                    field: "policy_dir".into(),
                    message: e.to_string(),
                }),
            }
        }
        let mut catalogue = Catalogue::default();
        for (file, text) in sources {
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    event: String,
    #[serde(default)]
    when: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    standard: String,
    title: String,
    action: String,
    anchor: RawMatch,
    #[serde(default = "default_pick")]
    pick: Pick,
    deadline: String,
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
    let raw: RawPolicy = toml::from_str(text).map_err(|e| {
        PolicyError(vec![PolicyProblem {
            file: file.into(),
            rule: None,
            field: "toml".into(),
            message: e.message().to_owned()
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default(),
        }])
    })?;
    let mut v = Validator {
        file: file.to_owned(),
        rule: None,
        problems: Vec::new(),
    };
    if raw.kind != "standards" {
        v.problem(
            "kind",
            format!(
                "{:?} is not a policy kind this version knows (standards)",
                raw.kind
            ),
        );
    }
    let default_reminders = v.timescales("defaults.reminders", &raw.defaults.reminders);
    let default_escalation = v.steps("defaults.escalation", &raw.defaults.escalation);
    let mut rules = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &raw.rules {
        v.rule = Some(r.id.clone());
        if !seen.insert(r.id.clone()) {
            v.problem("id", "duplicate rule id".into());
        }
        if r.id.is_empty()
            || !r
                .id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            v.problem(
                "id",
                "rule ids are lower-case letters, digits and '-'".into(),
            );
        }
        let anchor = v.event_match("anchor", &r.anchor);
        let deadline = v.timescale("deadline", &r.deadline);
        let reminders = match &r.reminders {
            Some(list) => v.timescales("reminders", list),
            None => default_reminders.clone(),
        };
        let done_by = r
            .done_by
            .iter()
            .enumerate()
            .filter_map(|(i, m)| v.event_match(&format!("done_by[{i}]"), m))
            .collect();
        let cancelled_by = r
            .cancelled_by
            .iter()
            .enumerate()
            .filter_map(|(i, m)| v.event_match(&format!("cancelled_by[{i}]"), m))
            .collect();
        let responsible = v.roles("responsible", &r.responsible);
        if r.responsible.is_empty() {
            v.problem(
                "responsible",
                "at least one role must be responsible".into(),
            );
        }
        let cc = v.roles("cc", &r.cc);
        let escalation = match &r.escalation {
            Some(steps) => v.steps("escalation", steps),
            None => default_escalation.clone(),
        };
        if let (Some(anchor), Some(deadline)) = (anchor, deadline) {
            rules.push(Rule {
                id: r.id.clone(),
                standard: r.standard.clone(),
                title: r.title.clone(),
                action: r.action.clone(),
                anchor,
                pick: r.pick,
                deadline,
                reminders,
                done_by,
                cancelled_by,
                responsible,
                cc,
                escalation,
            });
        }
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

struct Validator {
    file: String,
    rule: Option<String>,
    problems: Vec<PolicyProblem>,
}

impl Validator {
    fn problem(&mut self, field: &str, message: String) {
        self.problems.push(PolicyProblem {
            file: self.file.clone(),
            rule: self.rule.clone(),
            field: field.into(),
            message,
        });
    }

    fn timescale(&mut self, field: &str, phrase: &str) -> Option<Timescale> {
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

    fn steps(&mut self, field: &str, steps: &[RawStep]) -> Vec<EscalationStep> {
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let after = self.timescale(&format!("{field}[{i}].after"), &s.after);
            let to = self.roles(&format!("{field}[{i}].to"), &s.to);
            if s.to.is_empty() {
                self.problem(&format!("{field}[{i}].to"), "names nobody".into());
            }
            if let Some(after) = after {
                out.push(EscalationStep { after, to });
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
        let mut when = BTreeMap::new();
        for (k, value) in &m.when {
            match serde_json::to_value(value) {
                Ok(json) => {
                    when.insert(k.clone(), json);
                }
                Err(e) => self.problem(&format!("{field}.when.{k}"), e.to_string()),
            }
        }
        Some(EventMatch { event, when })
    }
}
