//! Pan-Cheshire multi-agency escalation procedure (seed 004): four steps, configured defaults for
//! the steps without a figure, a small agency's practitioner who is also its designated lead.

mod ladder_support;

use cpwatch::domain::DisputeEventKind::{Escalated, Resolved};
use cpwatch::domain::{AgencyId, Email, Person, PersonId};
use cpwatch::evaluate::Kind;
use ladder_support::*;

const P: &str = "pan-cheshire-escalation";

fn opened() -> cpwatch::domain::Dispute {
    dispute(P, "2026-03-02T10:00:00Z", None)
}

#[test]
fn resolved_at_step_one_needs_no_mail() {
    let p = policy(P);
    let mut d = opened();
    d.events
        .push(event(Resolved, "2026-03-02T16:00:00Z", Some(1)));
    let o = eval(&p, &d, "2026-03-09T12:00:00Z");
    assert!(o.notifications.is_empty(), "{:?}", steps(&o));
}

#[test]
fn four_steps_with_configured_defaults_and_the_step_four_record() {
    let p = policy(P);
    assert!(p.stage(2).unwrap().deadline_is_default);
    let o = eval(&p, &opened(), "2026-03-25T10:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            (1, 2, "2026-03-03T17:00:00Z".into(), "timescale lapsed"),
            (2, 3, "2026-03-10T17:00:00Z".into(), "timescale lapsed"),
            (3, 4, "2026-03-17T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
    assert_eq!(o.state.stage_deadline, t("2026-03-24T17:00:00Z"));
    let s4 = find(&o, &format!("{P}:4"), "entered").unwrap();
    assert_eq!(emails(&s4.to), ["p-bm@example.org", "p-chair@example.org"]);
    assert_eq!(emails(&s4.cc), ["p-hsm@example.org", "p-sm1@example.org"]);
    assert!(o
        .records
        .iter()
        .any(|r| r.kind == "step4_record" && r.stage == 4));
    assert!(find(&o, &format!("{P}:4"), "weekly-0").is_some());
    // The social worker is reminded to tell the family (cpwatch never mails families).
    let f = find(&o, &format!("{P}:2"), "tell-family").unwrap();
    assert_eq!(emails(&f.to), ["p-sw1@example.org"]);
    assert_eq!(f.kind, Kind::Reminder);
}

#[test]
fn the_practitioner_who_is_also_the_designated_lead_is_mailed_once_and_the_step_runs() {
    let p = policy(P);
    let mut dir = directory();
    let vcs = AgencyId::parse("vcs").unwrap();
    let me = PersonId::parse("p-vol").unwrap();
    dir.people.insert(
        me.clone(),
        Person {
            id: me.clone(),
            name: "V Worker".into(),
            email: Some(Email::parse("p-vol@example.org").unwrap()),
            agency: Some(vcs.clone()),
            manager: None,
        },
    );
    dir.agency_roles
        .insert((vcs, "safeguarding_lead".into()), me.clone());
    let mut d = opened();
    d.raised_by = me;
    let o = eval_with(&p, &d, &dir, "2026-03-03T17:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-03-03T17:00:00Z".into(), "timescale lapsed")]
    );
    let n = find(&o, &format!("{P}:2"), "entered").unwrap();
    assert_eq!(emails(&n.to), ["p-vol@example.org", "p-sl1@example.org"]);
    assert!(
        n.cc.is_empty(),
        "not copied on their own message: {:?}",
        n.cc
    );
    // Of the alternatives, the one the person holds names their role (as for a case rule).
    assert_eq!(n.to[0].role, "raiser.agency.safeguarding_lead+raiser");
    assert_eq!(
        o.state.stage_deadline,
        t("2026-03-10T17:00:00Z"),
        "timescales still apply"
    );
}

#[test]
fn immediate_risk_tells_the_contact_and_referral_team_too() {
    let p = policy(P);
    let mut d = opened();
    d.immediate_risk = true;
    let o = eval(&p, &d, "2026-03-02T10:00:00Z");
    let n = find(&o, &format!("{P}:1"), "entered").unwrap();
    assert!(n.urgent);
    assert_eq!(
        emails(&n.to),
        [
            "p-sw1@example.org",
            "p-hsl@example.org",
            "p-sl1@example.org",
            "p-crt@example.org"
        ]
    );
    assert_eq!(o.state.stage_deadline, t("2026-03-02T17:00:00Z"));
}

#[test]
fn a_manual_escalation_cannot_jump_past_the_next_step() {
    let p = policy(P);
    let mut d = opened();
    d.events
        .push(event(Escalated, "2026-03-02T12:00:00Z", Some(4)));
    let o = eval(&p, &d, "2026-03-02T12:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-03-02T12:00:00Z".into(), "escalated by hand")]
    );
}
