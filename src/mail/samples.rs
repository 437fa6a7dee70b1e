//! Sample notices of every template, each with readers in every position it has: what `cpwatch
//! check` renders every template against, and what the snapshot tests show.

use super::Renderer;
use crate::domain::{CaseRef, DisputeRef, Email, PartnershipId, PersonId};
use crate::evaluate::{
    About, DisputeFacts, Facts, GoLiveCase, GoLiveFacts, Kind, LapsedTimescale, Lateness,
    NextStage, Notice, NoticeKey, ProblemFacts, Recipient, StageVisit,
};
use crate::policy::Letter;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

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
        title: DisputeFacts::TITLE.into(),
        action:
            "Discuss the disagreement with the other agency's line manager and agree a way forward."
                .into(),
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
    old.title = "Knowsley Safeguarding Children Partnership escalation policy (2019), stage 2: Line manager to line manager".into();
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

fn data_quality() -> Vec<(String, Notice)> {
    let case = || CaseRef::parse("KN-0001").unwrap_or_else(|_| unreachable!());
    let dq = |step: &str, problem: ProblemFacts| {
        let mut n = case_notice(Kind::DataQuality, step, vec![tm()], vec![]);
        n.rule = "data-quality".into();
        n.standard = None;
        n.title = "case-data".into();
        n.action = String::new();
        n.facts.problem = Some(problem);
        n
    };
    let no_email = dq(
        "no-email-p-sw",
        ProblemFacts::NoEmail {
            person: "p-sw".into(),
            role: "social_worker".into(),
            about: About::Case(case()),
        },
    );
    let mut dispute = dq(
        "unknown-person-p-lm",
        ProblemFacts::UnknownPerson {
            person: "p-lm".into(),
            role: "respondent.line_manager".into(),
            about: About::Dispute(DisputeRef::parse("D-7").unwrap_or_else(|_| unreachable!())),
        },
    );
    dispute.title = "dispute-data".into();

    dispute.dispute = DisputeRef::parse("D-7").ok();
    let letter = dq(
        "no-manager-for-cause-for-concern-school",
        ProblemFacts::NoManagerForCauseForConcern {
            agency: "school".into(),
            rule: "icpc-agency-report".into(),
        },
    );
    let target = |d: u32| at(d, 12).date_naive();
    let census = dq(
        "census-icpc-target-2026-03-02",
        ProblemFacts::CensusIcpcTarget {
            case: case(),
            started: target(2),
            target: target(20),
            ours: target(23),
        },
    );
    // Queued by a cpwatch before payload version 3: the title and the problem in words.
    let mut old = dq(
        "no-email-p-sw",
        ProblemFacts::CensusRolesUnknown { case: case() },
    );
    old.facts.problem = None;
    old.title = "Case data that cpwatch cannot evaluate".into();
    old.action = "Person p-sw (the child's social worker on case KN-0001) has no email address, so cpwatch cannot reach them.".into();
    vec![
        ("data_quality".into(), no_email),
        ("data_quality-dispute".into(), dispute),
        ("data_quality-cause-for-concern".into(), letter),
        ("data_quality-census".into(), census),
        ("data_quality-version-2".into(), old),
    ]
}

fn go_live() -> Vec<(String, Notice)> {
    let mut n = case_notice(Kind::GoLiveSummary, "go-live", vec![tm()], vec![]);
    n.case = None;
    n.rule = "go-live".into();
    n.standard = None;
    n.title = "go-live-summary".into();
    n.action = String::new();
    let lapsed = |d: u32, rule: &str, standard: &str, title: &str| LapsedTimescale {
        deadline: at(d, 17),
        rule: rule.into(),
        standard: standard.into(),
        title: title.into(),
    };
    n.facts.go_live = Some(GoLiveFacts {
        started: Utc
            .with_ymd_and_hms(2026, 6, 1, 8, 0, 0)
            .single()
            .unwrap_or_default(),
        cases: vec![
            GoLiveCase {
                case: CaseRef::parse("KN-0001").unwrap_or_else(|_| unreachable!()),
                lapsed: vec![
                    lapsed(
                        23,
                        "icpc-within-15wd",
                        "S10",
                        "Initial conference within 15 working days",
                    ),
                    lapsed(25, "icpc-minutes", "S11", "Conference minutes circulated"),
                ],
            },
            GoLiveCase {
                case: CaseRef::parse("KN-0002").unwrap_or_else(|_| unreachable!()),
                lapsed: vec![lapsed(
                    30,
                    "child-seen-every-4-weeks",
                    "S12",
                    "Child seen every 4 weeks",
                )],
            },
        ],
    });
    // Queued by a cpwatch before payload version 3: its title and list in words.
    let mut old = n.clone();
    old.facts.go_live = None;
    old.title = "2 timescales on 1 of your cases".into();
    old.action = "cpwatch started watching these cases on Monday 1 June 2026. The timescales below had already lapsed.\n\nKN-0001:\n  - due Mon 23 Mar: Initial conference (icpc-within-15wd, standard 10)".into();
    vec![
        ("go_live_summary".into(), n),
        ("go_live_summary-version-2".into(), old),
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
    all.extend(data_quality());
    all.extend(go_live());
    all
}

/// A sample morning digest for the social worker and the notices it carries (two cases,
/// three items): what `cpwatch check` renders `digest.*.j2` against, through
/// `Renderer::render_digest`, like the digest job does.
pub fn digest() -> (Notice, Vec<Notice>) {
    let p = PartnershipId::parse("knowsley").unwrap_or_else(|_| unreachable!());
    let item = |kind: Kind, case: &str, rule: &str, title: &str, due: u32, cc: Vec<Recipient>| {
        let mut n = case_notice(kind, kind.as_str(), vec![sw()], cc);
        n.case = CaseRef::parse(case).ok();
        n.rule = rule.into();
        n.standard = Some("S6".into());
        n.title = title.into();
        n.action = "Record it in the case system when it is done.".into();
        n.due = at(due, 17);
        n.key = NoticeKey::case_step(
            &p,
            &CaseRef::parse(case).unwrap_or_else(|_| unreachable!()),
            rule,
            "2026-03-02T09:00:00Z",
            kind.as_str(),
        );
        n
    };
    let items = vec![
        item(
            Kind::Reminder,
            "KN-0001",
            "core-group-within-10wd",
            "Core group within 10 working days",
            27,
            vec![tm()],
        ),
        item(
            Kind::Due,
            "KN-0001",
            "visit-every-4-weeks",
            "Child seen every 4 weeks",
            24,
            vec![],
        ),
        item(
            Kind::Reminder,
            "KN-0002",
            "rcpc-sw-report",
            "Social worker's report to the review conference",
            26,
            vec![],
        ),
    ];
    let mut digest = case_notice(Kind::Digest, "digest", vec![sw()], vec![]);
    digest.case = None;
    digest.rule = "digest".into();
    digest.standard = None;
    digest.title = "digest".into();
    digest.action = String::new();
    digest.send_after = at(24, 8);
    digest.key = NoticeKey::digest(&p, at(24, 8).date_naive(), sw().email.as_str());
    (digest, items)
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
        let (mut d, items) = digest();
        d.partnership = PartnershipId::parse(p).unwrap_or(d.partnership);
        if let Err(e) = renderer.render_digest(&d, &items, sw().email.as_str(), tz) {
            problems.push(format!("partnership {p}, sample digest: {e}"));
        }
    }
    problems.sort();
    problems.dedup();
    problems
}
