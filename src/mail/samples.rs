//! Sample notices of every template, each with readers in every position it has: what `cpwatch
//! check` renders every template against, and what the snapshot tests show.

use super::render::render_parts;
use super::Renderer;
use crate::domain::{CaseRef, DisputeRef, Email, PartnershipId, PersonId};
use crate::evaluate::{
    DisputeFacts, Facts, Kind, Lateness, NextStage, Notice, NoticeKey, Recipient, StageVisit,
};
use crate::policy::Letter;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::json;

/// The names of the sample people: none may appear in a message with names off.
pub const PEOPLE: &[&str] = &[
    "Sam Worker",
    "Terry Manager",
    "Sue Senior",
    "Chris Chair",
    "Hannah Head",
    "Dee Lead",
    "Rita Raiser",
    "Len Linemanager",
];

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0)
        .single()
        .unwrap_or_default()
}

fn person(email: &str, name: &str, role: &str) -> Recipient {
    Recipient {
        email: Email::parse(email).unwrap_or_else(|_| unreachable!("a sample address")),
        person: PersonId::parse(&format!("p-{}", role.replace(['_', '.', '+'], "-"))).ok(),
        name: Some(name.to_owned()),
        role: role.to_owned(),
    }
}

fn sw() -> Recipient {
    person("sw@ksc.example.org", "Sam Worker", "social_worker")
}
fn tm() -> Recipient {
    person("tm@ksc.example.org", "Terry Manager", "team_manager")
}
fn sm() -> Recipient {
    person("sm@ksc.example.org", "Sue Senior", "senior_manager")
}
fn chair() -> Recipient {
    person("chair@ksc.example.org", "Chris Chair", "conference_chair")
}

/// A case-rule notice of `kind` at `step`.
fn case_notice(kind: Kind, step: &str, to: Vec<Recipient>, cc: Vec<Recipient>) -> Notice {
    let p = PartnershipId::parse("knowsley").unwrap_or_else(|_| unreachable!());
    let case = CaseRef::parse("KN-0001").unwrap_or_else(|_| unreachable!());
    let occurrence = "2026-03-02T10:00:00Z";
    Notice {
        key: NoticeKey::case_step(&p, &case, "icpc-within-15wd", occurrence, step),
        kind,
        rule: "icpc-within-15wd".into(),
        standard: Some("S10".into()),
        title:
            "Initial child protection conference within 15 working days of the strategy discussion"
                .into(),
        action: "Convene the initial child protection conference.".into(),
        partnership: p,
        case: Some(case),
        dispute: None,
        occurrence: occurrence.into(),
        step: step.into(),
        due: at(23, 17),
        trigger_at: at(23, 17),
        send_after: at(24, 9),
        urgent: false,
        to,
        cc,
        letter: None,
        facts: Facts::default(),
    }
}

fn escalations() -> Vec<(String, Notice)> {
    let mut esc = case_notice(
        Kind::OverdueEscalation,
        "escalation-1",
        vec![sm()],
        vec![tm()],
    );
    esc.letter = Some(Letter::Escalation);
    esc.facts.late = Some(Lateness::WorkingDays(2));
    let mut unreachable = esc.clone();
    unreachable.facts.below_unreachable = true;
    unreachable.cc.clear();
    let mut challenge = case_notice(
        Kind::OverdueEscalation,
        "chair-challenge-1",
        vec![tm(), sm()],
        vec![chair()],
    );
    challenge.letter = Some(Letter::ChairChallenge);
    challenge.facts.late = Some(Lateness::WorkingDays(3));
    let mut letter = case_notice(
        Kind::CauseForConcern,
        "cause-for-concern",
        vec![person(
            "head@school.example.org",
            "Hannah Head",
            "invitee_manager",
        )],
        vec![
            chair(),
            person("dsl@school.example.org", "Dee Lead", "invitee"),
        ],
    );
    letter.rule = "icpc-agency-report".into();
    letter.title =
        "Agency report to the conference chair 2 working days before the conference".into();
    letter.action = "Send the agency's report to the conference chair.".into();
    letter.letter = Some(Letter::CauseForConcern);
    letter.facts.late = Some(Lateness::WorkingDays(1));
    vec![
        ("overdue_escalation".into(), esc),
        ("overdue_escalation-unreachable".into(), unreachable),
        ("chair_challenge".into(), challenge),
        ("cause_for_concern".into(), letter),
    ]
}

fn story(stage: u32, name: &str) -> DisputeFacts {
    DisputeFacts {
        subject: "threshold for a strategy discussion not met".into(),
        policy_title: "Knowsley Safeguarding Children Partnership escalation policy (2019)".into(),
        stage,
        stage_name: name.into(),
        history: vec![
            StageVisit {
                stage: 1,
                name: "Practitioner to practitioner".into(),
                entered_at: at(2, 10),
                why: None,
            },
            StageVisit {
                stage: 2,
                name: "Line manager to line manager".into(),
                entered_at: at(4, 17),
                why: Some("timescale lapsed".into()),
            },
        ]
        .into_iter()
        .filter(|h| h.stage <= stage)
        .collect(),
        ..DisputeFacts::default()
    }
}

/// A dispute notice of `kind` at `step` about stage 2.
fn dispute_notice(kind: Kind, step: &str, to: Vec<Recipient>, cc: Vec<Recipient>) -> Notice {
    let p = PartnershipId::parse("knowsley").unwrap_or_else(|_| unreachable!());
    let d = DisputeRef::parse("D-7").unwrap_or_else(|_| unreachable!());
    let rule = "knowsley-escalation-2019:2";
    let mut facts = story(2, "Line manager to line manager");
    facts.why = Some("timescale lapsed".into());
    facts.records = vec!["escalation_notice".into()];
    facts.next = Some(NextStage {
        stage: 3,
        name: "Senior manager to senior manager".into(),
        at: at(11, 17),
        to: vec![
            "raiser.senior_manager".into(),
            "respondent.senior_manager".into(),
        ],
    });
    Notice {
        key: NoticeKey::dispute_step(&p, &d, rule, step),
        kind,
        rule: rule.into(),
        standard: None,
        title: "Knowsley Safeguarding Children Partnership escalation policy (2019), stage 2: Line manager to line manager".into(),
        action: "Discuss the disagreement with the other agency's line manager and agree a way forward.".into(),
        partnership: p,
        case: CaseRef::parse("KN-0001").ok(),
        dispute: Some(d),
        occurrence: "2026-03-02T10:00:00Z".into(),
        step: step.into(),
        due: at(11, 17),
        trigger_at: at(4, 17),
        send_after: at(5, 9),
        urgent: false,
        to,
        cc,
        letter: None,
        facts: Facts {
            dispute: Some(facts),
            ..Facts::default()
        },
    }
}

fn disputes() -> Vec<(String, Notice)> {
    let lm = || {
        person(
            "lm@health.example.org",
            "Len Linemanager",
            "respondent.line_manager",
        )
    };
    let raiser = || person("raiser@ksc.example.org", "Rita Raiser", "raiser");
    let entered = dispute_notice(Kind::EscalationStage, "entered", vec![lm()], vec![raiser()]);
    let reminder = dispute_notice(Kind::Reminder, "reminder", vec![lm()], vec![]);
    let mut weekly = dispute_notice(
        Kind::Overdue,
        "weekly-2",
        vec![person(
            "chair@lscp.example.org",
            "Chris Chair",
            "partnership_chair",
        )],
        vec![],
    );
    if let Some(d) = weekly.facts.dispute.as_mut() {
        d.next = None;
        d.within = Some("1 week".into());
    }
    let resolved = |kind, step: &str, to, cc| {
        let mut n = dispute_notice(kind, step, to, cc);
        if let Some(d) = n.facts.dispute.as_mut() {
            d.next = None;
            d.outcome = Some("strategy discussion held".into());
            d.within = Some("5 working days".into());
        }
        n
    };
    // Queued by a cpwatch before payload version 2: no story, the action says it all.
    let mut old = dispute_notice(Kind::EscalationStage, "entered", vec![lm()], vec![]);
    old.facts = Facts::default();
    old.action = "The previous stage's timescale lapsed with the disagreement unresolved, so it has moved to you. Discuss it with the other agency's line manager.".into();
    vec![
        ("escalation_stage-entered".into(), entered),
        ("escalation_stage-version-1".into(), old),
        ("escalation_stage-reminder".into(), reminder),
        ("escalation_stage-weekly".into(), weekly),
        (
            "escalation_outcome".into(),
            resolved(
                Kind::EscalationOutcome,
                "outcome",
                vec![raiser(), lm()],
                vec![],
            ),
        ),
        (
            "escalation_outcome-confirm".into(),
            resolved(Kind::Reminder, "confirm-outcome", vec![lm()], vec![]),
        ),
        (
            "escalation_outcome-confirm-overdue".into(),
            resolved(
                Kind::Overdue,
                "confirm-outcome-overdue",
                vec![lm()],
                vec![raiser()],
            ),
        ),
    ]
}

fn others() -> Vec<(String, Notice)> {
    let mut dq = case_notice(Kind::DataQuality, "no-email-p-sw", vec![tm()], vec![]);
    dq.rule = "data-quality".into();
    dq.standard = None;
    dq.title = "Case data that cpwatch cannot evaluate".into();
    dq.action = "Person p-sw (the child's social worker on case KN-0001) has no email address, so cpwatch cannot reach them.".into();
    let mut go_live = case_notice(Kind::GoLiveSummary, "go-live", vec![tm()], vec![]);
    go_live.case = None;
    go_live.rule = "go-live".into();
    go_live.standard = None;
    go_live.title = "2 timescales on 1 of your cases".into();
    go_live.action = "cpwatch started watching these cases on Monday 1 June 2026. The timescales below had already lapsed.\n\nKN-0001:\n  - due Mon 23 Mar: Initial conference (icpc-within-15wd, standard 10)".into();
    vec![
        ("data_quality".into(), dq),
        ("go_live_summary".into(), go_live),
    ]
}

/// Every sample: its label and the notice.
pub fn notices() -> Vec<(String, Notice)> {
    let reminder = case_notice(Kind::Reminder, "reminder-1", vec![tm()], vec![sw()]);
    let due = case_notice(Kind::Due, "due", vec![tm()], vec![]);
    let overdue = case_notice(Kind::Overdue, "overdue", vec![tm()], vec![sw()]);
    let mut all = vec![
        ("reminder".to_owned(), reminder),
        ("due".to_owned(), due),
        ("overdue".to_owned(), overdue),
    ];
    all.extend(escalations());
    all.extend(disputes());
    all.extend(others());
    all
}

/// The digest's sample context (engineer 13c's digest renders `digest` with this shape).
pub fn digest_context() -> serde_json::Value {
    json!({
        "reader": {"stance": "act", "role": "the team manager", "role_code": "team_manager"},
        "key": "knowsley/digest/2026-03-24/tm@ksc.example.org",
        "contact": null,
        "others": [],
        "digest": {
            "date": "Tuesday 24 March 2026",
            "count": 3,
            "cases": [
                {"ref": "KN-0001", "items": [
                    {"what": "Overdue", "title": "Initial child protection conference within 15 working days", "deadline": "Mon 23 Mar", "late": "1 working day", "stance": "escalated"},
                    {"what": "Reminder", "title": "Core group within 10 working days", "deadline": "Fri 27 Mar", "late": null, "stance": "act"}
                ]},
                {"ref": "KN-0002", "items": [
                    {"what": "Due today", "title": "Child seen every 4 weeks", "deadline": "Tue 24 Mar", "late": null, "stance": "informed"}
                ]}
            ]
        }
    })
}

/// Render every template against the samples, for each partnership's templates: every error,
/// with the template file and line.
pub fn check(renderer: &Renderer, partnerships: &[&str], tz: Tz) -> Vec<String> {
    let mut problems = Vec::new();
    for p in partnerships {
        for (label, mut n) in notices() {
            n.partnership = PartnershipId::parse(p).unwrap_or(n.partnership);
            for (r, _) in n.recipients() {
                if let Err(e) = renderer.render(&n, r.email.as_str(), false, n.due, tz) {
                    problems.push(format!("partnership {p}, sample {label}: {e}"));
                }
            }
        }
        let env = renderer.environment_of(p);
        let ctx = minijinja::Value::from_serialize(digest_context());
        if let Err(e) = render_parts(env, "digest", &ctx) {
            problems.push(format!("partnership {p}, sample digest: {e}"));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}
