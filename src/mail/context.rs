//! The context a template is rendered from (documented in `config/templates/README.md`): the
//! notice's facts for one reader, with times in the partnership's zone and roles in words.

use super::render::{described, stance_of};
use crate::evaluate::{
    DisputeFacts, GoLiveFacts, Lateness, Notice, Position, ProblemFacts, Stance,
};
use crate::policy::role_words::in_words;
use crate::settings::PartnershipMail;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

/// "Monday 23 March 2026, 17:00 GMT".
pub fn long_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%A %-d %B %Y, %H:%M %Z")
        .to_string()
}

/// "Mon 23 Mar".
fn short_date(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%a %-d %b").to_string()
}

/// "3 working days", "5 hours", "1 day".
pub fn late_words(l: Lateness) -> String {
    let (n, unit) = match l {
        Lateness::WorkingDays(n) => (n, "working day"),
        Lateness::Days(n) => (n, "day"),
        Lateness::Hours(n) => (n, "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The template context for `recipient` at `position` on `n`.
pub fn build(
    n: &Notice,
    recipient: &str,
    position: Position,
    tz: Tz,
    mail: Option<&PartnershipMail>,
    names: bool,
) -> Value {
    let me = n.recipients().find(|(r, _)| r.email.as_str() == recipient);
    let role_code = me.map_or("recipient".to_owned(), |(r, _)| r.role.clone());
    let stance = stance_of(n, position);
    let others_at = |p: Position| -> Vec<String> {
        n.recipients()
            .filter(|(r, at)| *at == p && r.email.as_str() != recipient)
            .map(|(r, _)| described(r, names))
            .collect()
    };
    let others: Vec<String> = n
        .recipients()
        .filter(|(r, _)| r.email.as_str() != recipient)
        .map(|(r, _)| described(r, names))
        .collect();
    // For an escalation, those copied are the people below it.
    let below = match stance {
        Stance::Escalated if n.dispute.is_none() => others_at(Position::Cc),
        _ => Vec::new(),
    };
    let chair = n
        .recipients()
        .find(|(r, _)| r.role.split('+').any(|x| x == "conference_chair"))
        .and_then(|(r, _)| r.name.clone())
        .filter(|_| names);
    json!({
        "kind": n.kind.as_str(),
        "step": n.step,
        "step_base": step_base(&n.step),
        "ref": reference(n),
        "case": n.case.as_ref().map(|c| c.as_str()),
        "dispute": n.dispute.as_ref().map(|d| d.as_str()),
        "title": n.title,
        "action": n.action,
        "rule": rule(n),
        "deadline": long_time(n.due, tz),
        "deadline_short": short_date(n.due, tz),
        "late": n.facts.late.map(late_words),
        "below_unreachable": n.facts.below_unreachable,
        "reader": {
            "stance": stance.as_str(),
            "role": in_words(&role_code),
            "role_code": role_code,
            "name": me.and_then(|(r, _)| r.name.clone()).filter(|_| names),
        },
        "acting": others_at(Position::To),
        "copied": others_at(Position::Cc),
        "others": others,
        "below": below,
        "story": n.facts.dispute.as_ref().map(|d| story(d, tz)),
        "problem": n.facts.problem.as_ref().map(problem),
        "go_live": n.facts.go_live.as_ref().map(|g| go_live(g, tz)),
        "names": names,
        "chair_name": chair,
        "signature": mail.and_then(|m| m.signature.clone()),
        "contact": mail.and_then(|m| m.contact.as_ref()).map(|c| c.to_string()),
        "partnership": n.partnership.as_str(),
        "key": n.key.as_str(),
    })
}

/// The reference a subject starts with: the dispute's (with its case), else the case's.
fn reference(n: &Notice) -> Option<String> {
    match (&n.dispute, &n.case) {
        (Some(d), _) => Some(d.to_string()),
        (None, Some(c)) => Some(c.to_string()),
        (None, None) => None,
    }
}

fn rule(n: &Notice) -> Value {
    if n.dispute.is_some() || n.standard.is_none() {
        return json!({});
    }
    json!({
        "id": n.rule,
        "title": n.title,
        "standard": n.standard,
        "standard_number": n.standard.as_deref().map(|s| s.trim_start_matches('S')),
    })
}

/// `weekly-3` → `weekly`, `reminder-1` → `reminder`, `chair-challenge-2` → `chair-challenge`.
fn step_base(step: &str) -> &str {
    match step.rsplit_once('-') {
        Some((base, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => base,
        _ => step,
    }
}

fn story(d: &DisputeFacts, tz: Tz) -> Value {
    json!({
        "subject": d.subject,
        "policy_title": d.policy_title,
        "stage": d.stage,
        "stage_name": d.stage_name,
        "why": d.why,
        "immediate_risk": d.immediate_risk,
        "skipped": d.skipped,
        "records": d.records,
        "history": d.history.iter().map(|h| json!({
            "stage": h.stage,
            "name": h.name,
            "entered": long_time(h.entered_at, tz),
            "why": h.why,
        })).collect::<Vec<_>>(),
        "next": d.next.as_ref().map(|x| json!({
            "stage": x.stage,
            "name": x.name,
            "at": long_time(x.at, tz),
            "to": x.to.iter().map(|r| in_words(r)).collect::<Vec<_>>(),
        })),
        "outcome": d.outcome,
        "within": d.within,
    })
}

/// A data-quality problem: its facts as stored (`what` and what varies), the role in words
/// (`role_words`) where it names one.
fn problem(p: &ProblemFacts) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    let role = v.get("role").and_then(Value::as_str).map(in_words);
    if let (Some(role), Some(obj)) = (role, v.as_object_mut()) {
        obj.insert("role_words".into(), Value::String(role));
    }
    v
}

/// A go-live summary: when cpwatch started, how many timescales on how many cases, and each
/// case's lapsed timescales with their deadlines in `tz` ("Wed 1 Apr 2026 17:00").
fn go_live(g: &GoLiveFacts, tz: Tz) -> Value {
    let count: usize = g.cases.iter().map(|c| c.lapsed.len()).sum();
    json!({
        "started": long_time(g.started, tz),
        "count": count,
        "case_count": g.cases.len(),
        "cases": g.cases.iter().map(|c| json!({
            "case": c.case.as_str(),
            "lapsed": c.lapsed.iter().map(|l| json!({
                "deadline": l.deadline.with_timezone(&tz).format("%a %-d %b %Y %H:%M").to_string(),
                "rule": l.rule,
                "standard": l.standard,
                "title": l.title,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
