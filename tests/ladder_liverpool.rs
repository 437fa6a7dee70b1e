//! Liverpool LSCB procedure as adopted by a school (seed 001): DSL-centred, stages 2 and 3
//! together within one working week of stage 2's start (stage 2 its configured share, stage 3
//! to the end of that week; both the same day at immediate risk), same-day stage 4, summary logs
//! and report forms.

mod ladder_support;

use cpwatch::domain::DisputeEventKind::Resolved;
use ladder_support::*;

const P: &str = "liverpool-school-escalation";

fn opened() -> cpwatch::domain::Dispute {
    dispute(P, "2026-03-02T10:00:00Z", Some("2026-03-02T09:00:00Z"))
}

#[test]
fn resolved_on_the_day_sends_nothing() {
    let p = policy(P);
    let mut d = opened();
    d.events
        .push(event(Resolved, "2026-03-02T15:00:00Z", Some(1)));
    let o = eval(&p, &d, "2026-03-20T12:00:00Z");
    assert!(o.notifications.is_empty(), "{:?}", steps(&o));
    assert!(o.stage_changes.is_empty() && o.records.is_empty());
}

#[test]
fn four_stages_with_logs_and_report_forms() {
    let p = policy(P);
    let o = eval(&p, &opened(), "2026-03-20T12:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            // Stage 1: on the day of the disagreement.
            (1, 2, "2026-03-02T17:00:00Z".into(), "timescale lapsed"),
            // Stage 2: its share (3 of 5 working days) of the week stages 2 and 3 have together.
            (2, 3, "2026-03-05T17:00:00Z".into(), "timescale lapsed"),
            // Stage 3: the end of that same week, counted from stage 2's start: the dispute
            // reaches stage 4 on the fifth working day, not the sixth.
            (3, 4, "2026-03-09T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
    // Stage 4: same working day, entered at close → close of the next working day.
    assert_eq!(o.state.stage_deadline, t("2026-03-10T17:00:00Z"));
    let s2 = find(&o, &format!("{P}:2"), "entered").unwrap();
    assert_eq!(emails(&s2.to), ["p-hsl@example.org", "p-sl1@example.org"]);
    assert_eq!(emails(&s2.cc), ["p-hv1@example.org"]);
    let s3 = find(&o, &format!("{P}:3"), "entered").unwrap();
    assert_eq!(emails(&s3.to), ["p-hrep@example.org", "p-krep@example.org"]);
    assert_eq!(emails(&s3.cc), ["p-hsl@example.org", "p-bm@example.org"]);
    // The record the stage demands is a fact of the notice; its template says it in words.
    let story = s3
        .facts
        .dispute
        .as_ref()
        .expect("a dispute notice tells its story");
    assert_eq!(story.records, ["lscb_report_form", "summary_log.lscb"]);
    let words = cpwatch::mail::Renderer::new(false)
        .render(
            s3,
            "p-hrep@example.org",
            false,
            s3.due,
            chrono_tz::Europe::London,
        )
        .unwrap();
    assert!(words.text.contains("LSCB report form"), "{}", words.text);
    let s4 = find(&o, &format!("{P}:4"), "entered").unwrap();
    assert_eq!(emails(&s4.to), ["p-bm@example.org", "p-chair@example.org"]);
    let mut records: Vec<(String, u32)> = o
        .records
        .iter()
        .map(|r| (r.kind.to_string(), r.stage))
        .collect();
    records.sort();
    assert_eq!(
        records,
        vec![
            ("lscb_report_form".into(), 3),
            ("lscb_report_form".into(), 4),
            ("summary_log.lscb".into(), 3),
            ("summary_log.lscb".into(), 4),
            ("summary_log.safeguarding_leadership_team".into(), 2),
        ]
    );
}

#[test]
fn the_deputy_dsl_stands_in_when_there_is_no_dsl() {
    let p = policy(P);
    let mut dir = directory();
    let health = cpwatch::domain::AgencyId::parse("health").unwrap();
    dir.agency_roles
        .remove(&(health.clone(), "safeguarding_lead".into()));
    dir.agency_roles.insert(
        (health, "deputy_safeguarding_lead".into()),
        cpwatch::domain::PersonId::parse("p-hlm").unwrap(),
    );
    let o = eval_with(&p, &opened(), &dir, "2026-03-03T10:00:00Z");
    let s2 = find(&o, &format!("{P}:2"), "entered").unwrap();
    assert_eq!(emails(&s2.to), ["p-hlm@example.org", "p-sl1@example.org"]);
}

#[test]
fn immediate_risk_tells_the_dsl_and_strategic_leads_and_stages_two_and_three_run_same_day() {
    let p = policy(P);
    let mut d = opened();
    d.immediate_risk = true;
    let o = eval(&p, &d, "2026-03-02T10:00:00Z");
    assert!(o.stage_changes.is_empty());
    let n = find(&o, &format!("{P}:1"), "entered").expect("told at once");
    assert!(n.urgent);
    assert_eq!(n.send_after, t("2026-03-02T10:00:00Z"));
    assert_eq!(
        emails(&n.to),
        [
            "p-sw1@example.org",
            "p-hv1@example.org",
            "p-hsl@example.org",
            "p-lead@example.org"
        ]
    );
    let o = eval(&p, &d, "2026-03-04T18:00:00Z");
    // Stages 2 and 3 together on one working day (Tuesday, stage 2 having begun at Monday's
    // close): stage 2 has 60% of it, to 13:45; stage 3 the rest, to close.
    assert_eq!(
        changes(&o),
        vec![
            (1, 2, "2026-03-02T17:00:00Z".into(), "timescale lapsed"),
            (2, 3, "2026-03-03T13:45:00Z".into(), "timescale lapsed"),
            (3, 4, "2026-03-03T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
}
