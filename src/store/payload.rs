//! The notice's stored payload: the on-disk format of what the mail needs, versioned so a row
//! written by one version of cpwatch is read by the next.
//!
//! | version | written by | shape |
//! |---|---|---|
//! | 0 (no `v`) | cpwatch before the notice table | the evaluator's whole notification, one copy per recipient |
//! | 1 | cpwatch before its templates per kind | `{"v": 1, "title", "standard", "action", "letter", "to": [...], "cc": [...]}` |
//! | 2 | cpwatch before problems and go-live summaries were facts | version 1 and `"facts"`: lateness, why it came, the dispute's story (`evaluate::Facts`); a dispute's `action` is its policy's text alone |
//! | 3 | cpwatch before a dispute's title was facts | version 2; a data-quality notice's problem is `facts.problem` (its `title` a code, `case-data` or `dispute-data`, and its `action` empty), a go-live summary's lapsed timescales `facts.go_live` (its `action` empty). A version 2 cpwatch would mail those empty, so it waits for them |
//! | 4 | this version | version 3; a disagreement notice's `title` is the code `dispute-stage`, worded from `facts.dispute` (`policy_title`, `stage`, `stage_name`). A version 3 cpwatch would print the code, so it waits for them |
//!
//! Everything else about a notice (key, kind, rule, case, dispute, occurrence, step, deadline,
//! send-after, urgency) is a column of `notices`. The Rust types here are the format: renaming a
//! field of `evaluate::Notice` changes nothing on disk.

use crate::domain::{Email, PersonId};
use crate::evaluate::{Facts, Notice, Recipient};
use crate::policy::Letter;
use serde::{Deserialize, Serialize};

/// The payload version this cpwatch writes.
pub const CURRENT: u64 = 4;

/// What the mail says, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub title: String,
    pub standard: Option<String>,
    pub action: String,
    pub letter: Option<Letter>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    /// Empty for versions 0 and 1 (their `action` says it all).
    pub facts: Facts,
}

/// A payload that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Written by a newer cpwatch: another replica, or this one once upgraded, can read it.
    #[error("payload version {0} is newer than this cpwatch reads (up to {CURRENT})")]
    Newer(u64),
    #[error("the stored notice cannot be read: {0}")]
    Malformed(String),
}

impl PayloadError {
    /// Whether waiting can help (a newer version's row), or not (a malformed one).
    pub fn is_permanent(&self) -> bool {
        matches!(self, PayloadError::Malformed(_))
    }
}

#[derive(Serialize, Deserialize)]
struct StoredRecipient {
    email: Email,
    #[serde(default)]
    person: Option<PersonId>,
    #[serde(default)]
    name: Option<String>,
    role: String,
}

/// Versions 1 to 4: version 2 added `facts`, version 3 the facts of problems and go-live,
/// version 4 a dispute's title as a code (the same shape).
#[derive(Serialize, Deserialize)]
struct V1 {
    v: u64,
    title: String,
    #[serde(default)]
    standard: Option<String>,
    action: String,
    #[serde(default)]
    letter: Option<Letter>,
    to: Vec<StoredRecipient>,
    #[serde(default)]
    cc: Vec<StoredRecipient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    facts: Option<Facts>,
}

/// Version 0: the whole notification as the evaluator had it. Only the fields the mail needs
/// are read; the rest are columns of the notice now.
#[derive(Deserialize)]
struct V0 {
    title: String,
    #[serde(default)]
    standard: Option<String>,
    action: String,
    #[serde(default)]
    letter: Option<Letter>,
    to: Vec<StoredRecipient>,
    #[serde(default)]
    cc: Vec<StoredRecipient>,
}

fn stored(r: &Recipient) -> StoredRecipient {
    StoredRecipient {
        email: r.email.clone(),
        person: r.person.clone(),
        name: r.name.clone(),
        role: r.role.clone(),
    }
}

fn recipient(r: StoredRecipient) -> Recipient {
    Recipient {
        email: r.email,
        person: r.person,
        name: r.name,
        role: r.role,
    }
}

/// The payload to store for a notice.
pub fn write(n: &Notice) -> serde_json::Value {
    let v1 = V1 {
        v: CURRENT,
        title: n.title.clone(),
        standard: n.standard.clone(),
        action: n.action.clone(),
        letter: n.letter,
        to: n.to.iter().map(stored).collect(),
        cc: n.cc.iter().map(stored).collect(),
        facts: Some(n.facts.clone()),
    };
    // A struct of strings, enums and lists always serializes.
    serde_json::to_value(v1).unwrap_or(serde_json::Value::Null)
}

/// Read a stored payload of any version this cpwatch knows.
pub fn read(value: &serde_json::Value) -> Result<Content, PayloadError> {
    let malformed = |e: serde_json::Error| PayloadError::Malformed(e.to_string());
    match value.get("v").map(|v| v.as_u64()) {
        None => {
            let v0: V0 = serde_json::from_value(value.clone()).map_err(malformed)?;
            Ok(content(
                v0.title,
                v0.standard,
                v0.action,
                v0.letter,
                (v0.to, v0.cc),
                Facts::default(),
            ))
        }
        Some(Some(1..=4)) => {
            let v1: V1 = serde_json::from_value(value.clone()).map_err(malformed)?;
            Ok(content(
                v1.title,
                v1.standard,
                v1.action,
                v1.letter,
                (v1.to, v1.cc),
                v1.facts.unwrap_or_default(),
            ))
        }
        Some(Some(v)) if v > CURRENT => Err(PayloadError::Newer(v)),
        Some(other) => Err(PayloadError::Malformed(format!(
            "unknown payload version {other:?}"
        ))),
    }
}

fn content(
    title: String,
    standard: Option<String>,
    action: String,
    letter: Option<Letter>,
    (to, cc): (Vec<StoredRecipient>, Vec<StoredRecipient>),
    facts: Facts,
) -> Content {
    Content {
        title,
        standard,
        action,
        letter,
        to: to.into_iter().map(recipient).collect(),
        cc: cc.into_iter().map(recipient).collect(),
        facts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn version_0_payloads_are_read() {
        let v0 = json!({
            "key": "knowsley/case/KN-1/icpc-within-15wd/2026-03-02T10:00:00Z/overdue",
            "kind": "overdue", "rule": "icpc-within-15wd", "standard": "S10",
            "title": "Initial conference within 15 working days", "action": "Convene it.",
            "partnership": "knowsley", "case": "KN-1", "dispute": null,
            "occurrence": "2026-03-02T10:00:00Z", "step": "overdue",
            "due": "2026-03-23T17:00:00Z", "trigger_at": "2026-03-23T17:00:00Z",
            "send_after": "2026-03-24T09:00:00Z", "urgent": false,
            "to": [{"email": "tm@x.org", "person": "p-tm", "name": "T M", "role": "team_manager"}],
            "cc": [], "letter": null
        });
        let c = read(&v0).unwrap();
        assert_eq!(c.title, "Initial conference within 15 working days");
        assert_eq!(c.to[0].email.as_str(), "tm@x.org");
        assert_eq!(c.to[0].role, "team_manager");
        assert_eq!(c.standard.as_deref(), Some("S10"));
        assert_eq!(c.facts, Facts::default());
    }

    #[test]
    fn version_1_payloads_are_read_without_facts_and_version_2_keeps_them() {
        let v1 = json!({"v": 1, "title": "T", "action": "A", "to": [{"email": "a@x.org", "role": "team_manager"}]});
        let c = read(&v1).unwrap();
        assert_eq!((c.title.as_str(), c.action.as_str()), ("T", "A"));
        assert_eq!(c.facts, Facts::default());
        let v2 = json!({"v": 2, "title": "T", "action": "A", "to": [],
            "facts": {"late": {"unit": "working_days", "n": 3}, "below_unreachable": true}});
        let c = read(&v2).unwrap();
        assert_eq!(
            c.facts.late,
            Some(crate::evaluate::Lateness::WorkingDays(3))
        );
        assert!(c.facts.below_unreachable);
    }

    #[test]
    fn version_3_keeps_a_problem_and_a_go_live_summary_and_version_2_has_neither() {
        let v3 = json!({"v": 3, "title": "case-data", "action": "", "to": [],
            "facts": {"problem": {"what": "no_email", "person": "p-sw", "role": "social_worker",
                                  "about": {"kind": "case", "ref": "KN-1"}}}});
        let c = read(&v3).unwrap();
        assert_eq!(
            c.facts.problem,
            Some(crate::evaluate::ProblemFacts::NoEmail {
                person: "p-sw".into(),
                role: "social_worker".into(),
                about: crate::evaluate::About::Case(crate::domain::CaseRef::parse("KN-1").unwrap()),
            })
        );
        let v2 = json!({"v": 2, "title": "Case data that cpwatch cannot evaluate",
            "action": "Person p-sw has no email address.", "to": [], "facts": {}});
        let c = read(&v2).unwrap();
        assert_eq!((c.facts.problem, c.facts.go_live), (None, None));
        assert_eq!(c.action, "Person p-sw has no email address.");
    }

    #[test]
    fn version_4_titles_a_dispute_with_a_code_and_version_3_in_words() {
        let dispute = json!({"subject": "threshold", "policy_title": "Knowsley policy",
                             "stage": 2, "stage_name": "Line manager to line manager"});
        let v4 = json!({"v": 4, "title": "dispute-stage", "action": "Discuss it.", "to": [],
                        "facts": {"dispute": dispute}});
        let c = read(&v4).unwrap();
        assert_eq!(c.title, crate::evaluate::DisputeFacts::TITLE);
        let story = c.facts.dispute.expect("the story");
        assert_eq!(
            (story.policy_title.as_str(), story.stage),
            ("Knowsley policy", 2)
        );
        let v3 = json!({"v": 3, "title": "Knowsley policy, stage 2: Line manager to line manager",
                        "action": "Discuss it.", "to": [], "facts": {"dispute": dispute}});
        assert_eq!(
            read(&v3).unwrap().title,
            "Knowsley policy, stage 2: Line manager to line manager"
        );
    }

    #[test]
    fn newer_versions_wait_and_nonsense_fails() {
        assert_eq!(
            read(&json!({"v": 5, "anything": true})),
            Err(PayloadError::Newer(5))
        );
        assert!(!PayloadError::Newer(5).is_permanent());
        let bad = read(&json!({"v": 1, "title": 3})).unwrap_err();
        assert!(bad.is_permanent(), "{bad}");
    }
}
