//! The Knowsley escalation ladder (seed 000 appendix 1 §4, seed 002), as tables of
//! (dispute, now) → decisions. March 2026: no bank holidays; GMT until Sunday 29 March.

mod ladder_support;

use cpwatch::domain::DisputeEventKind::{Escalated, OutcomeConfirmed, Resolved};
use cpwatch::evaluate::Kind;
use ladder_support::*;

const P: &str = "knowsley-escalation-2019";

fn opened_monday() -> cpwatch::domain::Dispute {
    // Raised on Monday 2 March 2026 at 10:00 about a decision made that morning.
    dispute(P, "2026-03-02T10:00:00Z", Some("2026-03-02T09:00:00Z"))
}

#[test]
fn resolved_at_stage_one_sends_no_escalation_mail() {
    let p = policy(P);
    let mut d = opened_monday();
    d.events
        .push(event(Resolved, "2026-03-04T08:00:00Z", Some(1)));
    for now in [
        "2026-03-04T08:00:00Z",
        "2026-03-06T12:00:00Z",
        "2026-04-30T12:00:00Z",
    ] {
        let o = eval(&p, &d, now);
        assert!(o.notifications.is_empty(), "{now}: {:?}", steps(&o));
        assert!(o.stage_changes.is_empty());
        assert_eq!(o.state.stage, 1);
        assert_eq!(o.state.resolved_at, Some(t("2026-03-04T08:00:00Z")));
        assert_eq!(o.next_check, None);
    }
    // Before the resolution the receiver was reminded on the working day before the deadline.
    let before = eval(&p, &opened_monday(), "2026-03-04T09:00:00Z");
    let r = find(&before, "knowsley-escalation-2019:1", "reminder").expect("a reminder");
    assert_eq!(emails(&r.to), ["p-sw1@example.org"]);
    assert_eq!(r.due, t("2026-03-05T17:00:00Z"));
    assert_eq!(r.kind, Kind::Reminder);
}

#[test]
fn stage_one_deadline_is_three_working_days_from_opening() {
    let p = policy(P);
    let o = eval(&p, &opened_monday(), "2026-03-02T10:00:00Z");
    assert!(o.notifications.is_empty(), "{:?}", steps(&o));
    assert_eq!(o.state.stage_deadline, t("2026-03-05T17:00:00Z"));
    // Nothing happens until the reminder at 09:00 on Wednesday.
    assert_eq!(o.next_check, Some(t("2026-03-04T09:00:00Z")));
}

#[test]
fn lapses_through_every_stage_to_the_chair_one_pass_at_a_time() {
    let p = policy(P);
    let mut d = opened_monday();
    let table = [
        // (now, stage, stage start, deadline, stage-entered recipients, cc)
        (
            "2026-03-05T17:00:00Z",
            2,
            "2026-03-05T17:00:00Z",
            "2026-03-12T17:00:00Z",
            vec!["p-hlm@example.org", "p-tm1@example.org"],
            vec!["p-hv1@example.org", "p-sw1@example.org"],
        ),
        (
            "2026-03-12T17:00:00Z",
            3,
            "2026-03-12T17:00:00Z",
            "2026-03-19T17:00:00Z",
            vec!["p-hsm@example.org", "p-sm1@example.org"],
            vec!["p-pm@example.org", "p-hlm@example.org", "p-tm1@example.org"],
        ),
        (
            "2026-03-19T17:00:00Z",
            4,
            "2026-03-19T17:00:00Z",
            "2026-03-26T17:00:00Z",
            vec!["p-chair@example.org"],
            vec!["p-pm@example.org", "p-hsm@example.org", "p-sm1@example.org"],
        ),
    ];
    let mut from = 1;
    for (now, stage, start, deadline, to, cc) in table {
        // A second before the lapse: nothing moves.
        let just_before = (t(now) - chrono::Duration::seconds(1)).to_rfc3339();
        assert!(eval(&p, &d, &just_before).stage_changes.is_empty());
        let o = eval(&p, &d, now);
        assert_eq!(
            changes(&o),
            vec![(from, stage, start.to_owned(), "timescale lapsed")]
        );
        assert_eq!(o.state.stage_deadline, t(deadline));
        let rule = format!("{P}:{stage}");
        let n = find(&o, &rule, "entered").expect("the stage's people are told");
        assert_eq!(n.kind, Kind::EscalationStage);
        assert_eq!(emails(&n.to), to, "stage {stage} to");
        assert_eq!(emails(&n.cc), cc, "stage {stage} cc");
        assert_eq!(n.due, t(deadline));
        assert_eq!(n.key, format!("knowsley/dispute/D-1/{rule}/entered"));
        assert!(!n.urgent);
        // Lapsing at 17:00 is after working hours: the mail goes at 09:00 the next working day.
        assert_eq!(n.send_after, t(now) + chrono::Duration::hours(16));
        if stage == 3 {
            assert!(n.action.contains("Escalation Notice"), "{}", n.action);
            assert!(o
                .records
                .iter()
                .any(|r| r.kind == "escalation_notice" && r.stage == 3));
        }
        store(&mut d, &o);
        from = stage;
    }
    assert_eq!(
        d.history
            .iter()
            .map(|h| (h.from, h.to, h.why.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Some(1), 2, "timescale lapsed"),
            (Some(2), 3, "timescale lapsed"),
            (Some(3), 4, "timescale lapsed")
        ]
    );
    // Stored at stage 4: evaluating again moves nothing.
    let again = eval(&p, &d, "2026-03-20T10:00:00Z");
    assert!(again.stage_changes.is_empty());
    assert_eq!(
        again.next_check,
        Some(t("2026-03-25T09:00:00Z")),
        "the stage-4 reminder"
    );
}

#[test]
fn a_ladder_that_lapsed_while_cpwatch_was_down_comes_out_right_in_one_pass() {
    let p = policy(P);
    let o = eval(&p, &opened_monday(), "2026-03-25T10:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            (1, 2, "2026-03-05T17:00:00Z".into(), "timescale lapsed"),
            (2, 3, "2026-03-12T17:00:00Z".into(), "timescale lapsed"),
            (3, 4, "2026-03-19T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
    assert_eq!(o.state.stage, 4);
    assert_eq!(o.state.stage_started_at, t("2026-03-19T17:00:00Z"));
    // Every stage's people are told (at least once), and the chair is reminded.
    for stage in 2..=4 {
        assert!(
            find(&o, &format!("{P}:{stage}"), "entered").is_some(),
            "stage {stage}"
        );
    }
    assert!(find(&o, &format!("{P}:4"), "reminder").is_some());
}

#[test]
fn after_the_last_stage_the_chair_and_manager_are_told_weekly() {
    let p = policy(P);
    let d = opened_monday();
    let o = eval(&p, &d, "2026-03-26T17:00:00Z");
    let w = find(&o, &format!("{P}:4"), "weekly-0").expect("told when the last stage lapses");
    assert_eq!(emails(&w.to), ["p-chair@example.org", "p-pm@example.org"]);
    assert_eq!(w.kind, Kind::Overdue);
    // The next notice is a week later at close of business, 17:00 BST = 16:00 UTC.
    assert_eq!(o.next_check, Some(t("2026-04-02T16:00:00Z")));
    let o = eval(&p, &d, "2026-04-02T16:00:00Z");
    assert!(find(&o, &format!("{P}:4"), "weekly-1").is_some());
    assert!(
        find(&o, &format!("{P}:4"), "weekly-0").is_none(),
        "only the latest notice"
    );
    let o = eval(&p, &d, "2026-04-20T12:00:00Z");
    assert!(
        find(&o, &format!("{P}:4"), "weekly-3").is_some(),
        "{:?}",
        steps(&o)
    );
    assert_eq!(o.state.resolved_at, None);
    // A resolution stops it.
    let mut resolved = d.clone();
    resolved
        .events
        .push(event(Resolved, "2026-04-21T12:00:00Z", Some(4)));
    let o = eval(&p, &resolved, "2026-04-28T12:00:00Z");
    assert!(o
        .notifications
        .iter()
        .all(|n| !n.step.starts_with("weekly")));
    let out = find(&o, &format!("{P}:4"), "outcome").expect("the outcome is mailed");
    assert_eq!(out.kind, Kind::EscalationOutcome);
    assert!(emails(&out.to).contains(&"p-hv1@example.org".to_owned()));
    assert!(emails(&out.to).contains(&"p-chair@example.org".to_owned()));
}

#[test]
fn immediate_risk_starts_at_stage_two_tells_managers_and_leads_at_once_and_runs_same_day() {
    let p = policy(P);
    let mut d = dispute(P, "2026-03-07T02:00:00Z", None); // a Saturday, 2 a.m.
    d.immediate_risk = true;
    let o = eval(&p, &d, "2026-03-07T02:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-03-07T02:00:00Z".into(), "immediate risk")]
    );
    let n = find(&o, &format!("{P}:2"), "entered").unwrap();
    assert!(n.urgent);
    assert_eq!(
        n.send_after,
        t("2026-03-07T02:00:00Z"),
        "at once, at any hour"
    );
    let mut to = emails(&n.to);
    to.sort();
    assert_eq!(
        to,
        [
            "p-hlm@example.org",
            "p-hsl@example.org",
            "p-sl1@example.org",
            "p-tm1@example.org"
        ]
    );
    // Same working day from a Saturday: close of Monday.
    assert_eq!(o.state.stage_deadline, t("2026-03-09T17:00:00Z"));

    let o = eval(&p, &d, "2026-03-12T09:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            (1, 2, "2026-03-07T02:00:00Z".into(), "immediate risk"),
            (2, 3, "2026-03-09T17:00:00Z".into(), "timescale lapsed"),
            (3, 4, "2026-03-10T17:00:00Z".into(), "timescale lapsed"),
        ]
    );
    assert_eq!(o.state.stage_deadline, t("2026-03-11T17:00:00Z"));
    let s3 = find(&o, &format!("{P}:3"), "entered").unwrap();
    assert!(s3.urgent && s3.send_after == t("2026-03-09T17:00:00Z"));
    assert!(find(&o, &format!("{P}:4"), "weekly-0").is_some());
}

#[test]
fn outcome_confirmed_in_writing_within_two_working_days_at_stages_two_and_three() {
    let p = policy(P);
    let mut d = opened_monday();
    // Stage 2 from Thursday 5 March 17:00; resolved on Tuesday 10 March at noon.
    d.events
        .push(event(Resolved, "2026-03-10T12:00:00Z", Some(2)));
    let o = eval(&p, &d, "2026-03-10T12:00:00Z");
    assert_eq!(o.state.stage, 2);
    let out = find(&o, &format!("{P}:2"), "outcome").unwrap();
    assert_eq!(out.kind, Kind::EscalationOutcome);
    assert_eq!(
        emails(&out.to),
        [
            "p-hv1@example.org",
            "p-sw1@example.org",
            "p-hlm@example.org",
            "p-tm1@example.org"
        ]
    );
    let c = find(&o, &format!("{P}:2"), "confirm-outcome").unwrap();
    assert_eq!(
        emails(&c.to),
        ["p-tm1@example.org"],
        "the receiving line manager"
    );
    assert_eq!(c.due, t("2026-03-12T17:00:00Z"));
    assert_eq!(o.next_check, Some(t("2026-03-12T17:00:00Z")));

    let late = eval(&p, &d, "2026-03-12T17:00:00Z");
    let od = find(&late, &format!("{P}:2"), "confirm-outcome-overdue").unwrap();
    assert_eq!(od.kind, Kind::Overdue);
    assert_eq!(emails(&od.to), ["p-tm1@example.org"]);
    assert_eq!(emails(&od.cc), ["p-hv1@example.org"]);

    d.events
        .push(event(OutcomeConfirmed, "2026-03-11T10:00:00Z", None));
    let done = eval(&p, &d, "2026-03-12T17:00:00Z");
    assert!(find(&done, &format!("{P}:2"), "confirm-outcome-overdue").is_none());
    assert!(find(&done, &format!("{P}:2"), "confirm-outcome").is_none());
    assert_eq!(done.next_check, None);

    // At stage 3 the senior manager of the receiving agency confirms.
    let mut d3 = opened_monday();
    d3.events
        .push(event(Resolved, "2026-03-16T12:00:00Z", Some(3)));
    let o = eval(&p, &d3, "2026-03-16T12:00:00Z");
    let c = find(&o, &format!("{P}:3"), "confirm-outcome").unwrap();
    assert_eq!(emails(&c.to), ["p-sm1@example.org"]);
    // Stage 4 has no confirmation rule.
    let mut d4 = opened_monday();
    d4.events
        .push(event(Resolved, "2026-03-23T12:00:00Z", Some(4)));
    let o = eval(&p, &d4, "2026-03-23T12:00:00Z");
    assert!(find(&o, &format!("{P}:4"), "confirm-outcome").is_none());
    assert!(find(&o, &format!("{P}:4"), "outcome").is_some());
}

#[test]
fn manual_escalation_before_the_deadline_and_straight_to_the_chair() {
    let p = policy(P);
    let mut d = opened_monday();
    d.events
        .push(event(Escalated, "2026-03-03T11:00:00Z", Some(2)));
    let o = eval(&p, &d, "2026-03-03T11:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-03-03T11:00:00Z".into(), "escalated by hand")]
    );
    // Five working days from the escalation.
    assert_eq!(o.state.stage_deadline, t("2026-03-10T17:00:00Z"));
    assert!(find(&o, &format!("{P}:2"), "entered").is_some());

    // Significant policy issues: straight to stage 4 (Knowsley allows it).
    d.events
        .push(event(Escalated, "2026-03-04T11:00:00Z", Some(4)));
    let o = eval(&p, &d, "2026-03-04T11:00:00Z");
    assert_eq!(
        changes(&o),
        vec![
            (1, 2, "2026-03-03T11:00:00Z".into(), "escalated by hand"),
            (2, 4, "2026-03-04T11:00:00Z".into(), "escalated by hand")
        ]
    );
    assert_eq!(o.state.stage_deadline, t("2026-03-11T17:00:00Z"));
}

#[test]
fn raising_more_than_two_working_days_after_the_disagreement_is_noted() {
    let p = policy(P);
    let d = dispute(P, "2026-03-06T10:00:00Z", Some("2026-03-02T09:00:00Z"));
    let o = eval(&p, &d, "2026-03-06T10:00:00Z");
    let late = o
        .records
        .iter()
        .find(|r| r.kind == "late_raising")
        .expect("noted");
    assert_eq!(late.detail["raise_by"], "2026-03-04T17:00:00Z");
    let on_time = eval(&p, &opened_monday(), "2026-03-06T10:00:00Z");
    assert!(on_time.records.iter().all(|r| r.kind != "late_raising"));
}

#[test]
fn missing_people_become_one_data_quality_notice_each() {
    let p = policy(P);
    let mut dir = directory();
    dir.partnership_roles.remove("partnership_manager");
    let o = eval_with(&p, &opened_monday(), &dir, "2026-03-13T10:00:00Z");
    let dq: Vec<_> = o
        .notifications
        .iter()
        .filter(|n| n.kind == Kind::DataQuality)
        .collect();
    assert_eq!(dq.len(), 1, "{:?}", steps(&o));
    assert_eq!(dq[0].step, "no-partnership_manager");
    assert_eq!(emails(&dq[0].to), ["admin@example.org"]);
    // The stage-3 notice still reaches everyone else.
    assert_eq!(
        emails(&find(&o, &format!("{P}:3"), "entered").unwrap().to),
        ["p-hsm@example.org", "p-sm1@example.org"]
    );
}
