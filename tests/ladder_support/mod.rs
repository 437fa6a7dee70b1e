//! Shared fixtures for the pure ladder tests: a directory of people in two agencies and a
//! partnership, the shipped ladders, and an England-and-Wales calendar.
#![allow(dead_code)]

use chrono::{DateTime, NaiveTime, Utc};
use cpwatch::calendar::{BankHolidays, Calendar};
use cpwatch::domain::{
    AgencyId, CaseRef, Directory, Dispute, DisputeEvent, DisputeEventKind, DisputeRef, Email,
    PartnershipId, Person, PersonId,
};
use cpwatch::evaluate::dispute::{evaluate_dispute, DisputeOutcome};
use cpwatch::evaluate::{Context, Notice as Notification};
use cpwatch::policy::ladder::parse_ladder;
use cpwatch::policy::{LadderPolicy, SHIPPED};

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

pub fn calendar() -> Calendar {
    let holidays = BankHolidays::snapshot();
    Calendar::new(
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        holidays.dates("england-and-wales").unwrap(),
    )
}

pub fn policy(id: &str) -> LadderPolicy {
    let file = format!("{id}.toml");
    let (_, text) = SHIPPED
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap_or_else(|| panic!("{file} is not shipped"));
    parse_ladder(&file, text).unwrap_or_else(|e| panic!("{e}"))
}

fn pid(s: &str) -> PersonId {
    PersonId::parse(s).unwrap()
}

/// Raiser p-hv1 (health visitor, manager p-hlm), respondent p-sw1 (social worker, manager p-tm1,
/// whose manager is p-sm1). Health names its safeguarding lead p-hsl, senior manager p-hsm and
/// LSCP representative p-hrep; children's social care (ksc) names p-sl1 and p-krep. Every
/// partnership role is held.
pub fn directory() -> Directory {
    let mut d = Directory::default();
    let people = [
        ("p-hv1", "health", Some("p-hlm")),
        ("p-hlm", "health", Some("p-hsm")),
        ("p-hsl", "health", None),
        ("p-hsm", "health", None),
        ("p-hrep", "health", None),
        ("p-sw1", "ksc", Some("p-tm1")),
        ("p-tm1", "ksc", Some("p-sm1")),
        ("p-sm1", "ksc", None),
        ("p-sl1", "ksc", None),
        ("p-krep", "ksc", None),
        ("p-chair", "lscp", None),
        ("p-vice", "lscp", None),
        ("p-pm", "lscp", None),
        ("p-bm", "lscp", None),
        ("p-qa", "lscp", None),
        ("p-scr", "lscp", None),
        ("p-lead", "lscp", None),
        ("p-crt", "ksc", None),
    ];
    for (id, agency, manager) in people {
        d.people.insert(
            pid(id),
            Person {
                id: pid(id),
                name: format!("Name of {id}"),
                email: Some(Email::parse(&format!("{id}@example.org")).unwrap()),
                agency: Some(AgencyId::parse(agency).unwrap()),
                manager: manager.map(pid),
            },
        );
    }
    for (agency, role, person) in [
        ("health", "safeguarding_lead", "p-hsl"),
        ("health", "senior_manager", "p-hsm"),
        ("health", "lscp_representative", "p-hrep"),
        ("ksc", "safeguarding_lead", "p-sl1"),
        ("ksc", "lscp_representative", "p-krep"),
    ] {
        d.agency_roles
            .insert((AgencyId::parse(agency).unwrap(), role.into()), pid(person));
    }
    for (role, person) in [
        ("partnership_chair", "p-chair"),
        ("partnership_vice_chair", "p-vice"),
        ("partnership_manager", "p-pm"),
        ("business_manager", "p-bm"),
        ("qa_subgroup_chair", "p-qa"),
        ("scr_subgroup", "p-scr"),
        ("strategic_leads", "p-lead"),
        ("contact_and_referral_team", "p-crt"),
    ] {
        d.partnership_roles.insert(role.into(), pid(person));
    }
    d.admin_email = Some(Email::parse("admin@example.org").unwrap());
    d
}

pub fn dispute(policy: &str, opened: &str, disagreement: Option<&str>) -> Dispute {
    Dispute {
        partnership: PartnershipId::parse("knowsley").unwrap(),
        reference: DisputeRef::parse("D-1").unwrap(),
        case: Some(CaseRef::parse("KN-0001").unwrap()),
        case_roles: vec![("social_worker".into(), pid("p-sw1"))],
        policy: policy.into(),
        raised_by: pid("p-hv1"),
        respondent_person: Some(pid("p-sw1")),
        respondent_agency: None,
        subject: "threshold decision".into(),
        immediate_risk: false,
        opened_at: t(opened),
        disagreement_at: disagreement.map(t),
        protective: None,
        stage: 1,
        stage_started_at: t(opened),
        events: vec![],
        history: vec![],
    }
}

pub fn event(kind: DisputeEventKind, at: &str, stage: Option<u32>) -> DisputeEvent {
    DisputeEvent {
        kind,
        at: t(at),
        stage,
        by: None,
        outcome: Some("agreed".into()),
    }
}

pub fn eval_with(
    policy: &LadderPolicy,
    d: &Dispute,
    directory: &Directory,
    now: &str,
) -> DisputeOutcome {
    let cal = calendar();
    let ctx = Context {
        calendar: &cal,
        directory,
        now: t(now),
    };
    evaluate_dispute(policy, d, &ctx)
}

pub fn eval(policy: &LadderPolicy, d: &Dispute, now: &str) -> DisputeOutcome {
    eval_with(policy, d, &directory(), now)
}

/// (from, to, at, why) of each stage change.
pub fn changes(o: &DisputeOutcome) -> Vec<(u32, u32, String, &'static str)> {
    o.stage_changes
        .iter()
        .map(|c| {
            (
                c.from,
                c.to,
                cpwatch::evaluate::rfc3339(c.at),
                c.why.as_str(),
            )
        })
        .collect()
}

/// The notification of a rule and step, if decided.
pub fn find<'a>(o: &'a DisputeOutcome, rule: &str, step: &str) -> Option<&'a Notification> {
    o.notifications
        .iter()
        .find(|n| n.rule == rule && n.step == step)
}

pub fn emails(list: &[cpwatch::evaluate::Recipient]) -> Vec<String> {
    list.iter().map(|r| r.email.to_string()).collect()
}

/// (rule, step) of every notification, sorted.
pub fn steps(o: &DisputeOutcome) -> Vec<(String, String)> {
    let mut v: Vec<_> = o
        .notifications
        .iter()
        .map(|n| (n.rule.clone(), n.step.clone()))
        .collect();
    v.sort();
    v
}

/// Apply an outcome's stage changes to the dispute, as the store would.
pub fn store(d: &mut Dispute, o: &DisputeOutcome) {
    for c in &o.stage_changes {
        assert_eq!(d.stage, c.from, "compare-and-set on the stored stage");
        d.stage = c.to;
        d.stage_started_at = c.at;
        d.history.push(cpwatch::domain::StageEntry {
            from: Some(c.from),
            to: c.to,
            at: c.at,
            why: c.why.as_str().into(),
        });
    }
}
