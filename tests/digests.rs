//! Morning digests end to end (real PostgreSQL, real SMTP server): a digest recipient's
//! reminders and due-today notices go in one message at the digest time, grouped by case;
//! overdue mail is never held; a crash between making a digest and sending it, or two delivery
//! processes at once, send it once with nothing lost; everyone else is mailed as before.

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;

/// Three open cases, each with an initial conference on Monday 2 March 2026 (a plan): the
/// family debrief is due by Thursday 5 March 17:00 (reminder Wednesday at close, "due today"
/// Thursday morning, overdue Friday). Social worker sw1 holds KN-0001 and KN-0002; sw2 holds
/// KN-0003.
fn cases() -> String {
    let mut f: serde_json::Value = serde_json::from_str(&case_file(json!([]))).unwrap();
    f["people"].as_array_mut().unwrap().push(json!(
        {"id": "p-sw2", "name": "B Worker", "email": "sw2@ksc.example.org", "agency": "ksc", "manager": "p-tm1"}
    ));
    let icpc = json!([{"kind": "icpc_held", "at": "2026-03-02T10:00:00Z", "outcome": "plan"}]);
    let roles = |sw: &str| json!({"social_worker": sw, "team_manager": "p-tm1", "conference_chair": "p-ch1", "senior_manager": "p-sm1"});
    f["cases"] = json!([
        {"ref": "KN-0002", "roles": roles("p-sw1"), "events": icpc},
        {"ref": "KN-0001", "roles": roles("p-sw1"), "events": icpc},
        {"ref": "KN-0003", "roles": roles("p-sw2"), "events": icpc},
    ]);
    f.to_string()
}

struct Setup {
    db: TestDb,
    smtp: SmtpServer,
    cp: Cpwatch,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// `digest` is the `[digest]` table of the configuration file.
    fn new(digest: &str) -> Setup {
        let db = TestDb::new();
        let smtp = SmtpServer::start();
        // Every delivery here is at a given instant (`--at`), and working hours are part of
        // what a digest is about: the deployment's default, on.
        let cp =
            Cpwatch::new(&db, Some(&smtp)).with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "true");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("cpwatch.toml");
        std::fs::write(&config, format!("[digest]\n{digest}\n")).unwrap();
        let s = Setup {
            db,
            smtp,
            cp,
            config,
            _dir: dir,
        };
        s.ok(&["migrate"]);
        let file = s._dir.path().join("cases.json");
        std::fs::write(&file, cases()).unwrap();
        s.ok(&["import", file.to_str().unwrap()]);
        s
    }
    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        all
    }
    fn ok(&self, args: &[&str]) -> String {
        self.cp.ok(&self.args(args))
    }
    fn evaluate(&self, at: &str) {
        self.ok(&["evaluate", "--at", at]);
    }
    fn deliver(&self, at: &str) -> String {
        self.ok(&["deliver", "--once", "--at", at])
    }
    fn to(&self, who: &str) -> Vec<Received> {
        self.smtp
            .received()
            .into_iter()
            .filter(|m| m.to == [who])
            .collect()
    }
}

const SW1: &str = "sw1@ksc.example.org";
const SW2: &str = "sw2@ksc.example.org";
const WED_CLOSE: &str = "2026-03-04T17:00:00Z";
const THU_MORNING: &str = "2026-03-05T09:00:00Z";
const FRI_MORNING: &str = "2026-03-06T09:00:00Z";

fn subjects(mail: &[Received]) -> Vec<String> {
    mail.iter().map(|m| m.header("Subject").unwrap()).collect()
}

/// The one digest sw1 receives on Thursday morning: two cases, each a reminder and a "due
/// today", in case order.
fn assert_thursday_digest(m: &Received) {
    let subject = m.header("Subject").unwrap();
    assert_eq!(subject, "cpwatch digest Thu 5 Mar: 4 items on 2 cases");
    let body = m.text();
    let one = body.find("Case KN-0001").expect(&body);
    let two = body.find("Case KN-0002").expect(&body);
    assert!(one < two, "grouped by case, in case order:\n{body}");
    for part in [&body[one..two], &body[two..]] {
        assert_eq!(part.matches("Reminder: ").count(), 1, "{body}");
        assert_eq!(part.matches("Due today: ").count(), 1, "{body}");
        assert!(part.contains("Rule:       family-debrief"), "{body}");
        assert!(
            part.contains("Deadline:   Thursday 5 March 2026, 17:00 GMT"),
            "{body}"
        );
    }
    assert!(!body.contains("A Worker") && !subject.contains("Worker"));
}

#[test]
fn a_digest_recipient_gets_one_message_grouped_by_case_others_as_before_overdue_at_once() {
    let s = Setup::new("enabled = true\npeople = [\"SW1@ksc.example.org\"]");
    s.evaluate(WED_CLOSE);
    assert_eq!(
        s.db.count(
            "SELECT count(*) AS n FROM deliveries WHERE recipient = 'sw1@ksc.example.org' \
             AND digest_at = '2026-03-05T09:00:00Z'"
        ),
        2,
        "Wednesday's two reminders wait for Thursday's digest"
    );
    s.deliver("2026-03-05T08:59:00Z");
    assert!(s.smtp.received().is_empty(), "nothing before 09:00");
    s.evaluate(THU_MORNING);
    s.deliver(THU_MORNING);
    let sw1 = s.to(SW1);
    assert_eq!(sw1.len(), 1, "one digest: {:?}", subjects(&sw1));
    assert_thursday_digest(&sw1[0]);
    let sw2 = s.to(SW2);
    assert_eq!(
        subjects(&sw2),
        [
            "KN-0003 reminder: Child and family debriefed within 3..., due Thu 5 Mar",
            "KN-0003 due today: Child and family debriefed within 3 working days of the..."
        ],
        "not a digest recipient: one message each, as before"
    );
    assert_eq!(
        s.db.count(
            "SELECT count(*) AS n FROM deliveries d JOIN notices g ON g.id = d.digest_id \
             WHERE d.status = 'digested' AND g.kind = 'digest' AND d.recipient = 'sw1@ksc.example.org'"
        ),
        4,
        "the notices it carries are marked as sent by it"
    );
    s.deliver(THU_MORNING);
    s.deliver("2026-03-05T12:00:00Z");
    assert_eq!((s.to(SW1).len(), s.to(SW2).len()), (1, 2), "nothing more");
    assert!(
        s.smtp.message_id_counts().values().all(|&n| n == 1),
        "nothing sent twice"
    );

    // Friday: the overdue notices are not held for a digest, and no digest is made.
    s.evaluate(FRI_MORNING);
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM deliveries WHERE digest_at IS NOT NULL AND status = 'pending'"),
        0
    );
    s.deliver(FRI_MORNING);
    let friday: Vec<String> = subjects(&s.to(SW1)).into_iter().skip(1).collect();
    assert_eq!(friday.len(), 2, "{friday:?}");
    assert!(
        friday.iter().all(|x| x.contains(" overdue: ")),
        "{friday:?}"
    );
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM notices WHERE kind = 'digest'"),
        1
    );
}

#[test]
fn a_digest_by_role_and_a_held_reminder_gone_stale_is_cancelled_not_sent() {
    let s = Setup::new("enabled = true\nroles = [\"social-worker\"]");
    s.evaluate(WED_CLOSE);
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM deliveries WHERE digest_at IS NOT NULL"),
        3,
        "both social workers opted in by role"
    );
    // cpwatch was down from Wednesday evening until Friday morning: the reminders' deadline
    // (Thursday 17:00) passed while they waited.
    s.deliver(FRI_MORNING);
    assert_eq!(
        s.db.count(
            "SELECT count(*) AS n FROM deliveries WHERE status = 'cancelled' \
             AND last_error LIKE 'stale:%'"
        ),
        3
    );
    assert!(s.to(SW1).is_empty() && s.to(SW2).is_empty());
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM notices WHERE kind = 'digest'"),
        0
    );
}

#[test]
fn a_crash_between_making_the_digest_and_sending_it_sends_it_once_with_every_item() {
    let s = Setup::new("enabled = true\npeople = [\"sw1@ksc.example.org\"]");
    s.evaluate(WED_CLOSE);
    s.evaluate(THU_MORNING);
    let crashed =
        s.cp.command(&s.args(&["deliver", "--once", "--at", THU_MORNING]))
            .env(cpwatch::jobs::digest::FAULT_ABORT_AFTER_DIGEST, "1")
            .output()
            .unwrap();
    assert!(!crashed.status.success(), "the fault point aborts");
    assert!(s.to(SW1).is_empty(), "made, not sent");
    assert_eq!(
        s.db.count(
            "SELECT count(*) AS n FROM deliveries d JOIN notices n ON n.id = d.notice_id \
             WHERE n.kind = 'digest' AND d.status = 'pending'"
        ),
        1,
        "the digest waits in the outbox"
    );
    s.deliver(THU_MORNING);
    s.deliver(THU_MORNING);
    let sw1 = s.to(SW1);
    assert_eq!(sw1.len(), 1, "{:?}", subjects(&sw1));
    assert_thursday_digest(&sw1[0]);
    assert!(s.smtp.message_id_counts().values().all(|&n| n == 1));
}

#[test]
fn two_delivery_processes_at_the_digest_time_make_and_send_one_digest() {
    let s = Setup::new("enabled = true\npeople = [\"sw1@ksc.example.org\"]");
    s.evaluate(WED_CLOSE);
    s.evaluate(THU_MORNING);
    let args = s.args(&["deliver", "--once", "--at", THU_MORNING]);
    let children: Vec<_> = (0..2)
        .map(|_| s.cp.command(&args).spawn().unwrap())
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let sw1 = s.to(SW1);
    assert_eq!(sw1.len(), 1, "{:?}", subjects(&sw1));
    assert_thursday_digest(&sw1[0]);
    assert_eq!(s.to(SW2).len(), 2);
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM notices WHERE kind = 'digest'"),
        1
    );
    assert!(s.smtp.message_id_counts().values().all(|&n| n == 1));
}

#[test]
fn check_names_a_bad_digest_time_and_address() {
    let s = Setup::new("enabled = true\npeople = [\"sw1@ksc.example.org\"]");
    std::fs::write(
        &s.config,
        "[digest]\nenabled = true\ntime = \"8am\"\npeople = [\"not an address\"]\n",
    )
    .unwrap();
    let out = s.cp.run(&s.args(&["check"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("digest.time: \"8am\" is not a time of day (HH:MM)"),
        "{err}"
    );
    assert!(
        err.contains("digest.people: \"not an address\" is not an e-mail address"),
        "{err}"
    );
}

#[test]
fn a_digest_before_opening_carries_the_reminders_waits_for_opening_and_due_today_goes_alone() {
    let s = Setup::new("enabled = true\ntime = \"08:00\"\npeople = [\"sw1@ksc.example.org\"]");
    s.evaluate(WED_CLOSE);
    s.evaluate("2026-03-05T08:00:00Z");
    s.deliver("2026-03-05T08:00:00Z");
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM notices WHERE kind = 'digest'"),
        1,
        "made at 08:00"
    );
    assert!(s.to(SW1).is_empty(), "non-urgent mail waits for opening");
    s.evaluate(THU_MORNING);
    s.deliver(THU_MORNING);
    let sw1 = subjects(&s.to(SW1));
    assert_eq!(sw1.len(), 3, "{sw1:?}");
    assert_eq!(sw1[0], "cpwatch digest Thu 5 Mar: 2 items on 2 cases");
    assert!(
        sw1[1..].iter().all(|x| x.contains(" due today: ")),
        "decided at opening, after the digest: on their own ({sw1:?})"
    );
}

#[test]
fn a_partnership_own_digest_template_is_used_when_the_digest_is_sent() {
    let mut s = Setup::new("enabled = true\npeople = [\"sw1@ksc.example.org\"]");
    let templates = s._dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("digest.subject.j2"),
        "Knowsley digest {{ date_short }}: {{ count }} for you",
    )
    .unwrap();
    std::fs::write(
        templates.join("digest.txt.j2"),
        "{% for c in cases %}{{ c.case }}: {{ c.items|length }} item(s)\n{% endfor %}Ref {{ key }}\n",
    )
    .unwrap();
    s.cp = Cpwatch::new(&s.db, Some(&s.smtp))
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "true")
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEMPLATES",
            templates.to_str().unwrap(),
        );
    let check = s.cp.run(&s.args(&["check"]));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    s.evaluate(WED_CLOSE);
    s.deliver(WED_CLOSE);
    s.evaluate(THU_MORNING);
    s.deliver(THU_MORNING);
    let sw1 = s.to(SW1);
    assert_eq!(subjects(&sw1), ["Knowsley digest Thu 5 Mar: 4 for you"]);
    let body = sw1[0].text();
    assert!(
        body.contains("KN-0001: 2 item(s)\nKN-0002: 2 item(s)\n")
            || body.contains("KN-0001: 2 item(s)\r\nKN-0002: 2 item(s)"),
        "{body}"
    );
    assert!(!body.contains("Overdue notices, escalations"), "{body}");
    // `cpwatch outbox show` shows the digest as it was sent.
    let id = s.db.count(
        "SELECT d.id AS n FROM deliveries d JOIN notices g ON g.id = d.notice_id WHERE g.kind = 'digest'",
    );
    let shown = s.ok(&["outbox", "show", &id.to_string()]);
    assert!(
        shown.contains("Subject: Knowsley digest Thu 5 Mar: 4 for you"),
        "{shown}"
    );
    assert!(shown.contains("KN-0002: 2 item(s)"), "{shown}");
    // Not a digest: worded with the built-in templates the partnership did not replace.
    assert!(
        subjects(&s.to(SW2))
            .iter()
            .all(|x| x.starts_with("KN-0003 ")),
        "{:?}",
        subjects(&s.to(SW2))
    );
}
