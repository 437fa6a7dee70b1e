//! End to end through the real binary, PostgreSQL and an SMTP server: a case becomes an email.

mod common;

use common::*;
use serde_json::json;

#[test]
fn icpc_rule_reminds_then_overdue_then_escalates() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(json!([])));

    // Before the reminder (3 working days before the deadline, Wed 18 March 09:00).
    assert!(cp.dry_run("2026-03-18T08:59:00Z").is_empty());

    let at_reminder = cp.dry_run("2026-03-18T09:00:00Z");
    assert_eq!(at_reminder.len(), 1, "{at_reminder:?}");
    let n = &at_reminder[0];
    assert_eq!(n["kind"], "reminder");
    assert_eq!(n["rule"], "icpc-within-15wd");
    assert_eq!(n["case"], "KN-0001");
    assert_eq!(n["dispute"], serde_json::Value::Null);
    assert_eq!(n["due"], "2026-03-23T17:00:00Z");
    assert_eq!(n["to"], json!(["tm1@ksc.example.org"]));
    assert_eq!(n["cc"], json!([]));

    // On the day: reminder window still open, and the "due today" notice.
    let on_the_day = cp.dry_run("2026-03-23T10:00:00Z");
    assert_eq!(
        kinds(&on_the_day),
        vec![
            ("due".into(), "due".into()),
            ("reminder".into(), "reminder-1".into())
        ]
    );

    // After the deadline: overdue only (reminders are not sent once they are pointless).
    let late = cp.dry_run("2026-03-23T17:00:00Z");
    assert_eq!(kinds(&late), vec![("overdue".into(), "overdue".into())]);

    // Two working days later: escalated to the senior manager and the conference chair.
    let escalated = cp.dry_run("2026-03-25T17:00:00Z");
    assert_eq!(
        kinds(&escalated),
        vec![
            ("overdue".into(), "overdue".into()),
            ("overdue_escalation".into(), "escalation-1".into())
        ]
    );
    let esc = escalated
        .iter()
        .find(|n| n["kind"] == "overdue_escalation")
        .unwrap();
    assert_eq!(
        esc["to"],
        json!(["sm1@ksc.example.org", "chair1@ksc.example.org"])
    );
    assert_eq!(esc["cc"], json!(["tm1@ksc.example.org"]));
    assert_eq!(esc["due"], "2026-03-23T17:00:00Z");
}

#[test]
fn icpc_held_or_no_icpc_needed_stops_the_rule() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(
        json!([{"kind": "icpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "plan"}]),
    ));
    // Before the conference was held, the reminder is due; after, nothing from this rule (the
    // conference's own rules, decisions circulated and the like, start instead).
    assert_eq!(cp.dry_run("2026-03-19T10:00:00Z").len(), 1);
    let after = cp.dry_run("2026-03-26T10:00:00Z");
    assert!(!after.is_empty(), "the conference's own timescales run");
    assert!(
        after.iter().all(|n| n["rule"] != "icpc-within-15wd"),
        "{after:?}"
    );

    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(
        json!([{"kind": "s47_completed", "at": "2026-03-10T10:00:00Z", "icpc_required": false}]),
    ));
    let after = cp.dry_run("2026-03-26T10:00:00Z");
    assert!(
        after.iter().all(|n| n["rule"] != "icpc-within-15wd"),
        "{after:?}"
    );
    // (The enquiry's own sign-off rule runs instead.)
    assert!(
        after.iter().any(|n| n["rule"] == "s47-outcome-signed-off"),
        "{after:?}"
    );

    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(
        json!([{"kind": "case_closed", "at": "2026-03-12T10:00:00Z"}]),
    ));
    assert!(cp.dry_run("2026-03-26T10:00:00Z").is_empty());
}

#[test]
fn evaluate_writes_the_outbox_once_and_delivery_sends_real_mail() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.setup(&s47_case(json!([])));

    let first = cp.ok(&["evaluate", "--at", "2026-03-25T17:00:00Z"]);
    // The overdue notice to the team manager; the escalation to the senior manager and the chair,
    // copied to the team manager: four messages.
    assert!(first.contains("4 new message(s) queued"), "{first}");
    // The same instant again: nothing new.
    let again = cp.ok(&["evaluate", "--at", "2026-03-25T17:00:00Z", "--full"]);
    assert!(again.contains("0 new message(s) queued"), "{again}");
    assert_eq!(db.count("SELECT count(*) AS n FROM outbox"), 4);

    let delivered = cp.ok(&["deliver", "--once"]);
    assert!(delivered.contains("sent 4"), "{delivered}");
    let mail = smtp.wait_for(4, 10);
    assert_eq!(mail.len(), 4);
    let mut to: Vec<_> = mail.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "chair1@ksc.example.org",
            "sm1@ksc.example.org",
            "tm1@ksc.example.org",
            "tm1@ksc.example.org"
        ]
    );
    let copied = mail
        .iter()
        .find(|m| {
            m.to == ["tm1@ksc.example.org"]
                && m.header("Subject")
                    .unwrap()
                    .starts_with("KN-0001 escalated")
        })
        .expect("the team manager is copied on the escalation");
    assert!(
        copied
            .text()
            .contains("You are copied for information as the team manager"),
        "{}",
        copied.text()
    );

    // The overdue notice and the escalation about one deadline are one conversation in the
    // team manager's mail: each its own Message-ID, both replying to the thread's root.
    let tm: Vec<_> = mail
        .iter()
        .filter(|m| m.to == ["tm1@ksc.example.org"])
        .collect();
    assert_eq!(tm.len(), 2);
    let root = tm[0].header("In-Reply-To").expect("In-Reply-To");
    assert!(root.ends_with("@cpwatch.invalid>"), "{root}");
    assert_eq!(tm[1].header("In-Reply-To").as_deref(), Some(root.as_str()));
    assert_eq!(tm[0].header("References").as_deref(), Some(root.as_str()));
    assert_ne!(tm[0].header("Message-ID"), tm[1].header("Message-ID"));
    let chair = mail
        .iter()
        .find(|m| m.to == ["chair1@ksc.example.org"])
        .unwrap();
    assert_ne!(
        chair.header("In-Reply-To"),
        Some(root),
        "each reader's own thread"
    );
    let subject = chair.header("Subject").unwrap();
    assert!(
        subject.starts_with("KN-0001 escalated to you:"),
        "{subject}"
    );
    assert!(subject.contains("KN-0001"), "{subject}");
    assert!(
        !subject.contains("Worker"),
        "no names in subjects: {subject}"
    );
    assert_eq!(
        chair.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(chair
        .header("Message-ID")
        .unwrap()
        .ends_with("@cpwatch.invalid>"));
    assert_eq!(chair.from, "cpwatch@lscp.example.org");
    let body = chair.text();
    assert!(
        body.contains("Rule:      icpc-within-15wd (standard 10)"),
        "{body}"
    );
    assert!(
        body.contains("Deadline:  Monday 23 March 2026, 17:00 GMT"),
        "{body}"
    );
    assert!(
        body.contains("Also told: the senior manager and the team manager"),
        "{body}"
    );
    assert!(
        !body.contains("T Manager"),
        "names are off by default: {body}"
    );
    assert!(
        chair.data.contains("Content-Type: text/html"),
        "an HTML part too"
    );

    // Everything was sent; nothing is sent twice.
    let second = cp.ok(&["deliver", "--once"]);
    assert!(second.contains("sent 0"), "{second}");
    assert_eq!(smtp.received().len(), 4);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'sent' AND sent_at IS NOT NULL"),
        4
    );
}

#[test]
fn next_check_makes_an_idle_pass_touch_nothing() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.setup(&s47_case(json!([])));
    let out = cp.ok(&["evaluate", "--at", "2026-03-05T12:00:00Z"]);
    assert!(out.contains("1 case(s) evaluated"), "{out}");
    // The next thing that can happen is the reminder on 18 March at 09:00 UTC.
    assert_eq!(
        db.count("SELECT extract(epoch FROM next_check_at)::bigint AS n FROM cases"),
        chrono::DateTime::parse_from_rfc3339("2026-03-18T09:00:00Z")
            .unwrap()
            .timestamp()
    );
    let idle = cp.ok(&["evaluate", "--at", "2026-03-10T12:00:00Z"]);
    assert!(idle.contains("0 case(s) evaluated"), "{idle}");
    let due = cp.ok(&["evaluate", "--at", "2026-03-18T09:00:00Z"]);
    assert!(
        due.contains("1 case(s) evaluated") && due.contains("1 new message(s) queued"),
        "{due}"
    );
    // A new event brings the case back at once.
    let file =
        s47_case(json!([{"kind": "icpc_held", "at": "2026-03-19T10:00:00Z", "outcome": "plan"}]));
    assert!(cp.import_text(&file).status.success());
    let after = cp.ok(&["evaluate", "--at", "2026-03-19T12:00:00Z"]);
    assert!(
        after.contains("1 case(s) evaluated") && after.contains("0 notification(s)"),
        "{after}"
    );
}

#[test]
fn import_is_idempotent() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let file = s47_case(
        json!([{"kind": "icpc_scheduled", "at": "2026-03-20T10:00:00Z", "meeting": "icpc-1", "invited_agencies": ["health"]}]),
    );
    let first = cp.import_text(&file);
    assert!(String::from_utf8_lossy(&first.stdout).contains("1 cases (4 new events)"));
    let second = cp.import_text(&file);
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("1 cases (0 new events)"),
        "{:?}",
        second
    );
    assert_eq!(db.count("SELECT count(*) AS n FROM case_events"), 4);
    assert_eq!(db.count("SELECT count(*) AS n FROM people"), 8);
}

#[test]
fn bad_case_files_are_rejected_whole_with_the_place_named() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);

    let err = cp.rejected(&s47_case(
        json!([{"kind": "icpc_hold", "at": "2026-03-20T10:00:00Z"}]),
    ));
    assert!(
        err.contains(
            "case KN-0001, event 3 (icpc_hold), field kind: \"icpc_hold\" is not an event kind"
        ),
        "{err}"
    );

    let err = cp.rejected(&s47_case(
        json!([{"kind": "icpc_held", "at": "20/03/2026", "outcome": "plan"}]),
    ));
    assert!(err.contains("case KN-0001, event 3 (icpc_held), field at: \"20/03/2026\" is not an RFC 3339 date-time"), "{err}");

    let err = cp.rejected(
        &s47_case(
            json!([{"kind": "medical_examination", "at": "2026-03-03T10:00:00Z", "examining_doctor": "p-nobody"}]),
        ),
    );
    assert!(err.contains("case KN-0001, event 3 (medical_examination), field examining_doctor: unknown person \"p-nobody\""), "{err}");

    let err = cp.rejected(&s47_case(
        json!([{"kind": "icpc_held", "at": "2026-03-20T10:00:00Z"}]),
    ));
    assert!(
        err.contains("case KN-0001, event 3 (icpc_held), field outcome: is required"),
        "{err}"
    );

    let mut file: serde_json::Value = serde_json::from_str(&s47_case(json!([]))).unwrap();
    file["disputes"] = json!([{
        "id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
        "respondent": "p-sw1", "opened_at": "2026-03-03T09:00:00Z",
        "events": [{"kind": "resolved", "at": "2026-03-02T12:00:00Z", "stage": 1, "outcome": "agreed"}]
    }]);
    let err = cp.rejected(&file.to_string());
    assert!(err.contains("dispute D-1, event 0 (resolved), field at: 2026-03-02T12:00:00+00:00 is before the dispute was opened"), "{err}");

    // A good case beside a bad one: nothing at all was written.
    let mut file: serde_json::Value = serde_json::from_str(&s47_case(json!([]))).unwrap();
    file["cases"]
        .as_array_mut()
        .unwrap()
        .push(json!({"ref": "KN-0002", "roles": {"team_manager": "p-ghost"}, "events": []}));
    let err = cp.rejected(&file.to_string());
    assert!(
        err.contains("case KN-0002, field roles.team_manager: unknown person \"p-ghost\""),
        "{err}"
    );
    assert!(err.contains("nothing was imported"), "{err}");
    for table in ["partnerships", "people", "cases", "case_events", "disputes"] {
        assert_eq!(
            db.count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table} must be empty"
        );
    }

    let err = cp.rejected("{ not json");
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn a_person_without_email_raises_one_data_quality_notice() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let mut file: serde_json::Value = serde_json::from_str(&s47_case(json!([]))).unwrap();
    file["people"][1].as_object_mut().unwrap().remove("email"); // the team manager
    cp.setup(&file.to_string());
    let notes = cp.dry_run("2026-03-18T09:00:00Z");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["kind"], "data_quality");
    // The team manager cannot be reached, so the admin address is told.
    assert_eq!(notes[0]["to"], json!(["admin@lscp.example.org"]));
    assert_eq!(notes[0]["step"], "no-email-p-tm1");
}

#[test]
fn evaluate_refuses_a_schema_that_is_behind() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let out = cp.run(&["evaluate", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `cpwatch migrate`"), "{err}");
}

#[test]
fn check_reports_every_config_problem_with_its_key() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None)
        .with("CPWATCH_SMTP__SECURITY", "ssl")
        .with("CPWATCH_CALENDAR__CLOSE", "5pm")
        .with("CPWATCH_PARTNERSHIPS__KNOWSLEY__DIVISION", "wales");
    let out = cp.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("smtp.security: \"ssl\" is not one of starttls, tls, plain"),
        "{err}"
    );
    assert!(
        err.contains("calendar.close: \"5pm\" is not a time of day (HH:MM)"),
        "{err}"
    );
    assert!(
        err.contains("partnerships.knowsley.division: \"wales\" is not one of"),
        "{err}"
    );

    let good = Cpwatch::new(&db, None).ok(&["check"]);
    assert!(good.contains("knowsley-cp-2019"), "{good}");

    // A policy directory with a broken policy: file, rule and field are named.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("local.toml"),
        "id = \"local\"\ntitle = \"t\"\nkind = \"standards\"\n[[rules]]\nid = \"r1\"\nstandard = \"S1\"\ntitle = \"t\"\naction = \"a\"\n\
         anchor = { event = \"strategy_discussion_hld\" }\ndeadline = \"15 working dayz\"\nresponsible = [\"team_boss\"]\n",
    )
    .unwrap();
    let out = Cpwatch::new(&db, None)
        .with("CPWATCH_POLICIES__DIR", dir.path().to_str().unwrap())
        .run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "local.toml: rule r1: anchor[0].event: \"strategy_discussion_hld\" is not an event kind"
        ),
        "{err}"
    );
    assert!(err.contains("local.toml: rule r1: deadline:"), "{err}");
    assert!(
        err.contains("local.toml: rule r1: responsible[0]: \"team_boss\" is not a role"),
        "{err}"
    );
}

#[test]
fn secrets_come_from_files_and_are_never_printed() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let out = Cpwatch::new(&db, None)
        .with("CPWATCH_SMTP__PASSWORD_FILE", missing.to_str().unwrap())
        .run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.password_file:"));

    let out = Cpwatch::new(&db, None)
        .with("CPWATCH_SMTP__PASSWORD", "hunter2-secret")
        .with("CPWATCH_SMTP__SECURITY", "nonsense")
        .with("RUST_LOG", "trace")
        .run(&["check"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2-secret"), "{all}");
}

#[test]
fn a_queued_reminder_is_withdrawn_when_the_work_is_done_before_it_is_sent() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let cp = Cpwatch::new(&db, Some(&smtp));
    cp.setup(&s47_case(json!([])));
    // Wednesday 18 March 08:00: the reminder is due at 09:00, so a pass at 09:00 queues it...
    let queued = cp.ok(&["evaluate", "--at", "2026-03-18T09:00:00Z"]);
    assert!(
        queued.contains("1 new message(s) queued, 0 queued message(s) withdrawn"),
        "{queued}"
    );
    // ...and before it is sent, the conference is held and recorded.
    let file =
        s47_case(json!([{"kind": "icpc_held", "at": "2026-03-18T09:30:00Z", "outcome": "plan"}]));
    assert!(cp.import_text(&file).status.success());
    let after = cp.ok(&["evaluate", "--at", "2026-03-18T10:00:00Z"]);
    assert!(after.contains("1 queued message(s) withdrawn"), "{after}");
    let delivered = cp.ok(&["deliver", "--once", "--at", "2026-03-18T10:00:00Z"]);
    assert!(delivered.contains("sent 0"), "{delivered}");
    assert!(smtp.received().is_empty());
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM outbox WHERE status = 'cancelled' AND kind = 'reminder'"
        ),
        1
    );
    // Nothing is deleted: the row stays, with why.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE last_error LIKE 'no longer due when evaluated at 2026-03-18T10:00:00Z'"),
        1
    );
}
