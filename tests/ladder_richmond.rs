//! Richmond & Kingston six-step protocol (seed 003): cumulative deadlines from the disputed
//! decision and from the raising, and step 2 passed over when line manager == safeguarding lead.

mod ladder_support;

use cpwatch::domain::DisputeEventKind::Resolved;
use cpwatch::domain::PersonId;
use cpwatch::evaluate::Kind;
use ladder_support::*;

const P: &str = "richmond-kingston-6-step";

fn opened() -> cpwatch::domain::Dispute {
    // Decision on Monday 2 March 2026 09:00, dispute raised 11:00 the same day.
    dispute(P, "2026-03-02T11:00:00Z", Some("2026-03-02T09:00:00Z"))
}

#[test]
fn resolved_at_step_one_sends_no_escalation_mail() {
    let p = policy(P);
    let mut d = opened();
    d.events
        .push(event(Resolved, "2026-03-03T08:00:00Z", Some(1)));
    let o = eval(&p, &d, "2026-03-10T12:00:00Z");
    assert!(o.notifications.is_empty(), "{:?}", steps(&o));
    assert!(o.stage_changes.is_empty());
    assert_eq!(o.state.resolved_stage, Some(1));
}

#[test]
fn six_steps_within_ten_working_days() {
    let p = policy(P);
    let mut d = opened();
    // (now, from, to, deadline of the new step, its people)
    let table: [(&str, u32, u32, &str, Vec<&str>); 5] = [
        // Step 1: 2 working days from the decision → Wed 4 March.
        (
            "2026-03-04T17:00:00Z",
            1,
            2,
            "2026-03-05T17:00:00Z",
            vec!["p-hlm@example.org", "p-hsl@example.org"],
        ),
        // Step 3: 5 working days from the decision → Mon 9 March.
        (
            "2026-03-05T17:00:00Z",
            2,
            3,
            "2026-03-09T17:00:00Z",
            vec!["p-hsl@example.org", "p-sw1@example.org"],
        ),
        // Step 4 shares step 3's deadline, so it is entered at its deadline: one working day more.
        (
            "2026-03-09T17:00:00Z",
            3,
            4,
            "2026-03-10T17:00:00Z",
            vec!["p-sm1@example.org"],
        ),
        // Step 5: 8 working days from the raising → Thu 12 March.
        (
            "2026-03-10T17:00:00Z",
            4,
            5,
            "2026-03-12T17:00:00Z",
            vec!["p-qa@example.org", "p-chair@example.org"],
        ),
        // Step 6: 10 working days from the raising → Mon 16 March.
        (
            "2026-03-12T17:00:00Z",
            5,
            6,
            "2026-03-16T17:00:00Z",
            vec!["p-chair@example.org"],
        ),
    ];
    for (now, from, to, deadline, people) in table {
        let o = eval(&p, &d, now);
        assert_eq!(
            changes(&o),
            vec![(from, to, now.to_owned(), "timescale lapsed")]
        );
        assert_eq!(o.state.stage_deadline, t(deadline), "step {to}");
        let n = find(&o, &format!("{P}:{to}"), "entered").unwrap();
        assert_eq!(emails(&n.to), people, "step {to}");
        store(&mut d, &o);
    }
    assert_eq!(d.history.len(), 5);
    let o = eval(&p, &d, "2026-03-16T17:00:00Z");
    let w = find(&o, &format!("{P}:6"), "weekly-0").unwrap();
    assert_eq!(emails(&w.to), ["p-chair@example.org", "p-pm@example.org"]);
    assert_eq!(o.next_check, Some(t("2026-03-23T17:00:00Z")));
}

#[test]
fn step_two_is_passed_over_when_the_line_manager_is_the_safeguarding_lead() {
    let p = policy(P);
    let mut dir = directory();
    dir.people
        .get_mut(&PersonId::parse("p-hv1").unwrap())
        .unwrap()
        .manager = Some(PersonId::parse("p-hsl").unwrap());
    let d = opened();
    let o = eval_with(&p, &d, &dir, "2026-03-04T17:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 3, "2026-03-04T17:00:00Z".into(), "timescale lapsed")]
    );
    assert_eq!(o.stage_changes[0].skipped, vec![2]);
    assert!(
        find(&o, &format!("{P}:2"), "entered").is_none(),
        "nobody is mailed as step 2"
    );
    let n = find(&o, &format!("{P}:3"), "entered").unwrap();
    // The safeguarding lead is also the referrer's line manager (the cc): one message, both roles.
    assert_eq!(emails(&n.to), ["p-hsl@example.org", "p-sw1@example.org"]);
    assert!(n.cc.is_empty(), "{:?}", n.cc);
    assert_eq!(
        n.to[0].role,
        "raiser.agency.safeguarding_lead+raiser.line_manager"
    );
    assert_eq!(o.state.stage_deadline, t("2026-03-09T17:00:00Z"));
    assert!(o
        .records
        .iter()
        .any(|r| r.kind == "stage_skipped" && r.stage == 2));
}

#[test]
fn immediate_risk_as_knowsley() {
    let p = policy(P);
    let mut d = opened();
    d.immediate_risk = true;
    let o = eval(&p, &d, "2026-03-02T11:00:00Z");
    assert_eq!(
        changes(&o),
        vec![(1, 2, "2026-03-02T11:00:00Z".into(), "immediate risk")]
    );
    let n = find(&o, &format!("{P}:2"), "entered").unwrap();
    assert!(n.urgent);
    assert_eq!(n.kind, Kind::EscalationStage);
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
    assert_eq!(o.state.stage_deadline, t("2026-03-02T17:00:00Z"));
    // Cumulative deadlines give way to same-working-day ones.
    let o = eval(&p, &d, "2026-03-03T17:00:00Z");
    assert_eq!(o.state.stage, 4);
    assert_eq!(o.state.stage_deadline, t("2026-03-04T17:00:00Z"));
}
