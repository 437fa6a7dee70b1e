//! `cpwatch case REF`: what is due on one case and who has been told, on one screen. Built from
//! what it is given (the case, the evaluator's occurrences and ladder outcomes, the notices the
//! store holds about it) and rendered as text for a chair or as one JSON document. Pure.

use crate::calendar::Tz;
use crate::domain::{Case, Dispute, Event};
use crate::evaluate::dispute::DisputeOutcome;
use crate::evaluate::{rfc3339, OccurrenceView, Recipient, Timeliness, Upcoming};
use crate::policy::LadderPolicy;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// One delivery of a notice about the case, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeLine {
    pub key: String,
    pub kind: String,
    pub rule: String,
    pub step: String,
    pub dispute: Option<String>,
    pub due: DateTime<Utc>,
    pub recipient: String,
    /// `to` or `cc`.
    pub position: String,
    /// pending, sent, failed, dead, cancelled.
    pub status: String,
    pub queued_at: DateTime<Utc>,
    pub send_after: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Why it failed or was withdrawn.
    pub reason: Option<String>,
}

/// One dispute about the case, as its ladder stands.
pub struct DisputeView<'a> {
    pub dispute: &'a Dispute,
    pub policy: &'a LadderPolicy,
    pub outcome: DisputeOutcome,
}

/// Everything `cpwatch case` shows.
pub struct CaseView<'a> {
    pub case: &'a Case,
    pub at: DateTime<Utc>,
    pub tz: Tz,
    pub occurrences: Vec<OccurrenceView>,
    pub disputes: Vec<DisputeView<'a>>,
    pub notices: Vec<NoticeLine>,
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// How an occurrence stands, in words.
pub fn status_words(o: &OccurrenceView, tz: Tz) -> String {
    let f = &o.fact;
    let when = |t: Option<DateTime<Utc>>| t.map(|t| local(t, tz)).unwrap_or_default();
    match (f.status, &f.cancelled) {
        (Timeliness::OnTime, _) => format!("done on time ({})", when(f.done_at)),
        (Timeliness::Late, _) => format!("done late ({})", when(f.done_at)),
        (Timeliness::Pending, _) => "pending".into(),
        (Timeliness::Overdue, None) => "overdue".into(),
        (Timeliness::Overdue, Some((at, by))) => {
            format!("missed, then made moot by {by} ({})", local(*at, tz))
        }
        (Timeliness::Cancelled, Some((at, by))) => {
            format!("cancelled: {by} ({})", local(*at, tz))
        }
        (Timeliness::Cancelled, None) => "cancelled".into(),
    }
}

fn status_code(t: Timeliness) -> &'static str {
    match t {
        Timeliness::OnTime => "done_on_time",
        Timeliness::Late => "done_late",
        Timeliness::Overdue => "overdue",
        Timeliness::Pending => "pending",
        Timeliness::Cancelled => "cancelled",
    }
}

fn emails(list: &[Recipient]) -> Vec<&str> {
    list.iter().map(|r| r.email.as_str()).collect()
}

/// An event's fields, as `name=value` (people by id: no names).
fn fields(e: &Event) -> String {
    e.data
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl CaseView<'_> {
    fn closed(&self) -> Option<DateTime<Utc>> {
        self.case
            .events
            .iter()
            .find(|e| e.kind == crate::domain::EventKind::CaseClosed && e.at <= self.at)
            .map(|e| e.at)
    }

    /// The text a chair reads.
    pub fn text(&self) -> String {
        let tz = self.tz;
        let mut out = format!(
            "Case {} ({}), as at {}{}\n",
            self.case.reference,
            self.case.partnership,
            local(self.at, tz),
            self.closed()
                .map(|c| format!("; closed {}", local(c, tz)))
                .unwrap_or_default()
        );
        out.push_str("\nEvents\n");
        for e in self
            .case
            .events
            .iter()
            .filter(|e| e.known_from() <= self.at)
        {
            let line = format!("  {:<26} {} {}", local(e.at, tz), e.kind, fields(e));
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("\nTimescales (deadline, status, next step)\n");
        if self.occurrences.is_empty() {
            out.push_str("  none started\n");
        }
        for o in &self.occurrences {
            out.push_str(&self.occurrence_text(o));
        }
        out.push_str("\nProfessional disagreements\n");
        if self.disputes.is_empty() {
            out.push_str("  none\n");
        }
        for d in &self.disputes {
            out.push_str(&dispute_text(d, tz));
        }
        out.push_str("\nNotices (queued, sent, failed or withdrawn)\n");
        if self.notices.is_empty() {
            out.push_str("  none\n");
        }
        for n in &self.notices {
            out.push_str(&notice_text(n, tz));
        }
        out
    }

    fn occurrence_text(&self, o: &OccurrenceView) -> String {
        let tz = self.tz;
        let f = &o.fact;
        // An occurrence is named by its anchor's instant, or by a meeting (and agency).
        let occurrence = if f.occurrence == rfc3339(f.anchor_at) {
            String::new()
        } else {
            format!(" ({})", f.occurrence)
        };
        let mut s = format!(
            "  {} ({}) {}\n    from {} {}{occurrence}; deadline {}: {}\n",
            f.rule,
            o.standard,
            o.title,
            f.anchor,
            local(f.anchor_at, tz),
            local(f.deadline, tz),
            status_words(o, tz)
        );
        if let Some(n) = &o.next {
            s.push_str(&format!("    next: {}\n", next_text(n, tz)));
        }
        s
    }

    /// The JSON document.
    pub fn json(&self) -> Value {
        let tz = self.tz;
        json!({
            "case": self.case.reference.as_str(),
            "partnership": self.case.partnership.as_str(),
            "at": rfc3339(self.at),
            "closed_at": self.closed().map(rfc3339),
            "events": self.case.events.iter().filter(|e| e.known_from() <= self.at).map(|e| json!({
                "kind": e.kind.as_str(),
                "at": rfc3339(e.at),
                "recorded_at": e.recorded_at.map(rfc3339),
                "fields": Value::Object(e.data.clone()),
            })).collect::<Vec<_>>(),
            "timescales": self.occurrences.iter().map(|o| occurrence_json(o, tz)).collect::<Vec<_>>(),
            "disputes": self.disputes.iter().map(|d| dispute_json(d, tz)).collect::<Vec<_>>(),
            "notices": self.notices.iter().map(notice_json).collect::<Vec<_>>(),
        })
    }
}

fn next_text(n: &Upcoming, tz: Tz) -> String {
    let cc = if n.cc.is_empty() {
        String::new()
    } else {
        format!(", cc {}", emails(&n.cc).join(", "))
    };
    format!(
        "{} ({}) {} to {}{cc}",
        n.step,
        n.kind,
        local(n.at, tz),
        emails(&n.to).join(", ")
    )
}

fn occurrence_json(o: &OccurrenceView, tz: Tz) -> Value {
    let f = &o.fact;
    json!({
        "rule": f.rule,
        "standard": o.standard,
        "title": o.title,
        "occurrence": f.occurrence,
        "anchor": {"kind": f.anchor.as_str(), "at": rfc3339(f.anchor_at)},
        "deadline": rfc3339(f.deadline),
        "deadline_local": local(f.deadline, tz),
        "status": status_code(f.status),
        "status_words": status_words(o, tz),
        "done_at": f.done_at.map(rfc3339),
        "cancelled": f.cancelled.map(|(at, by)| json!({"by": by.as_str(), "at": rfc3339(at)})),
        "next": o.next.as_ref().map(|n| json!({
            "step": n.step,
            "kind": n.kind.as_str(),
            "at": rfc3339(n.at),
            "at_local": local(n.at, tz),
            "to": emails(&n.to),
            "cc": emails(&n.cc),
        })),
    })
}

/// What happens when the current stage's deadline passes.
fn then_words(d: &DisputeView) -> String {
    let s = &d.outcome.state;
    if s.resolved_at.is_some() {
        return "resolved".into();
    }
    match d.policy.stage(s.stage + 1) {
        Some(next) => format!("then stage {} ({})", next.number, next.name),
        None => format!(
            "then the partnership chair and manager are told every {}",
            d.policy.after_last_stage.every
        ),
    }
}

fn stage_name(d: &DisputeView, n: u32) -> String {
    d.policy
        .stage(n)
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

fn dispute_text(d: &DisputeView, tz: Tz) -> String {
    let s = &d.outcome.state;
    let mut out = format!(
        "  {} under {} (\"{}\"), opened {}\n",
        d.dispute.reference,
        d.policy.id,
        d.dispute.subject,
        local(d.dispute.opened_at, tz)
    );
    match (s.resolved_at, s.resolved_stage) {
        (Some(at), Some(stage)) => out.push_str(&format!(
            "    resolved at stage {stage} ({}) {}\n",
            stage_name(d, stage),
            local(at, tz)
        )),
        _ => out.push_str(&format!(
            "    now at stage {} ({}), deadline {}; {}\n",
            s.stage,
            stage_name(d, s.stage),
            local(s.stage_deadline, tz),
            then_words(d)
        )),
    }
    for h in &d.dispute.history {
        out.push_str(&format!(
            "    stage {} -> {} {} ({})\n",
            h.from.map_or("-".into(), |f| f.to_string()),
            h.to,
            local(h.at, tz),
            h.why
        ));
    }
    for c in &d.outcome.stage_changes {
        out.push_str(&format!(
            "    stage {} -> {} {} ({}; the next pass records it)\n",
            c.from,
            c.to,
            local(c.at, tz),
            c.why.as_str()
        ));
    }
    out
}

fn dispute_json(d: &DisputeView, tz: Tz) -> Value {
    let s = &d.outcome.state;
    let recorded = d.dispute.history.iter().map(|h| {
        json!({"from": h.from, "to": h.to, "at": rfc3339(h.at), "why": h.why, "recorded": true})
    });
    let pending = d.outcome.stage_changes.iter().map(|c| {
        json!({"from": c.from, "to": c.to, "at": rfc3339(c.at), "why": c.why.as_str(), "recorded": false})
    });
    json!({
        "dispute": d.dispute.reference.as_str(),
        "policy": d.policy.id,
        "subject": d.dispute.subject,
        "opened_at": rfc3339(d.dispute.opened_at),
        "immediate_risk": d.dispute.immediate_risk,
        "stage": s.stage,
        "stage_name": stage_name(d, s.stage),
        "stage_deadline": (s.resolved_at.is_none()).then(|| rfc3339(s.stage_deadline)),
        "stage_deadline_local": (s.resolved_at.is_none()).then(|| local(s.stage_deadline, tz)),
        "then": then_words(d),
        "resolved_at": s.resolved_at.map(rfc3339),
        "resolved_stage": s.resolved_stage,
        "history": recorded.chain(pending).collect::<Vec<_>>(),
    })
}

fn notice_text(n: &NoticeLine, tz: Tz) -> String {
    let when = match (&n.sent_at, n.status.as_str()) {
        (Some(t), _) => format!("sent {}", local(*t, tz)),
        (None, "pending") => format!("to go {}", local(n.send_after, tz)),
        (None, _) => format!("queued {}", local(n.queued_at, tz)),
    };
    let status = match n.status.as_str() {
        "cancelled" => "withdrawn",
        "digested" => "in digest",
        other => other,
    };
    format!(
        "  {:<9} {:<18} {:<32} {:<17} {} {}  ({}){}\n",
        status,
        n.kind,
        n.rule,
        n.step,
        n.position,
        n.recipient,
        when,
        n.reason
            .as_ref()
            .filter(|_| n.status != "sent")
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )
}

fn notice_json(n: &NoticeLine) -> Value {
    json!({
        "key": n.key,
        "kind": n.kind,
        "rule": n.rule,
        "step": n.step,
        "dispute": n.dispute,
        "due": rfc3339(n.due),
        "recipient": n.recipient,
        "position": n.position,
        "status": n.status,
        "queued_at": rfc3339(n.queued_at),
        "send_after": rfc3339(n.send_after),
        "sent_at": n.sent_at.map(rfc3339),
        "reason": n.reason,
    })
}
