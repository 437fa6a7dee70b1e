//! A partnership's team channel (a Slack or Teams incoming webhook), against a local HTTP server
//! standing in for the webhook: the daily overdue summary at its time on working days, an alert
//! when an immediate-risk notice is queued, each posted once, with no names and no case
//! references; 5xx retried, 4xx refused for good. What cpwatch did is read back from PostgreSQL.

mod common;
mod fault_support;

use common::*;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// A fake incoming webhook: records each POST, answers with the queued statuses, then 200 "ok".
struct FakeWebhook {
    port: u16,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
}

impl FakeWebhook {
    fn start() -> FakeWebhook {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let (s, a) = (seen.clone(), answers.clone());
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let json_type = req.headers().iter().any(|h| {
                    h.field.equiv("Content-Type")
                        && h.value.as_str().starts_with("application/json")
                });
                let mut text = String::new();
                let _ = req.as_reader().read_to_string(&mut text);
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                assert!(json_type, "a JSON POST");
                s.lock().unwrap().push((req.url().to_owned(), body));
                let status = a.lock().unwrap().pop_front().unwrap_or(200);
                let reply = if status == 200 { "ok" } else { "no_service" };
                let _ =
                    req.respond(tiny_http::Response::from_string(reply).with_status_code(status));
            }
        });
        FakeWebhook {
            port,
            seen,
            answers,
        }
    }
    fn seen(&self) -> Vec<(String, Value)> {
        self.seen.lock().unwrap().clone()
    }
    fn answer(&self, statuses: &[u16]) {
        self.answers.lock().unwrap().extend(statuses);
    }
}

/// cpwatch with knowsley's team channel posting to the fake webhook (the URL in a file).
fn with_team_channel(
    cp: Cpwatch,
    hook: &FakeWebhook,
    dir: &std::path::Path,
    format: &str,
) -> Cpwatch {
    let file = dir.join("team-webhook");
    std::fs::write(
        &file,
        format!("http://127.0.0.1:{}/hooks/T0SECRET/B0SECRET\n", hook.port),
    )
    .unwrap();
    cp.with(
        "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__FORMAT",
        format,
    )
    .with(
        "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__WEBHOOK_URL_FILE",
        file.to_str().unwrap(),
    )
    .with(
        "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__SUMMARY_AT",
        "09:00",
    )
    .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
    .with("CPWATCH_DELIVERY__RETRY_BASE_SECONDS", "1")
    .with("CPWATCH_DELIVERY__MAX_ATTEMPTS", "3")
}

fn exec_sql(db: &TestDb, sql: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(&mut db.conn()).unwrap();
}

/// No person's name, email address or case or dispute reference in anything posted.
fn assert_anonymous(text: &str) {
    let people = [
        "A Worker",
        "T Manager",
        "S Manager",
        "C Chair",
        "L Lead",
        "Person p-",
        "p-tm1",
        "p-hv1",
    ];
    for word in ["KN-0001", "D-9", "@", "example.org"].iter().chain(&people) {
        assert!(!text.contains(word), "{word:?} in {text}");
    }
}

#[test]
fn the_daily_summary_goes_once_at_its_time_on_working_days_without_names() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let hook = FakeWebhook::start();
    let dir = tempfile::tempdir().unwrap();
    let cp = with_team_channel(Cpwatch::new(&db, Some(&smtp)), &hook, dir.path(), "slack");
    cp.setup(&case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ])));
    cp.ok(&["evaluate", "--at", "2026-04-01T07:00:00Z"]);
    let checked = cp.ok(&["check"]);
    assert!(
        checked.contains("partnership knowsley: team channel (Slack): overdue summary at 09:00 on working days, immediate-risk alerts on"),
        "{checked}"
    );
    assert!(!checked.contains("SECRET"), "{checked}");
    // Wednesday 1 April, 08:00 in London: before summary_at.
    cp.ok(&["deliver", "--once", "--at", "2026-04-01T07:00:00Z"]);
    assert_eq!(db.count("SELECT count(*) AS n FROM team_posts"), 0);
    assert!(hook.seen().is_empty());
    // 10:00: the summary goes; a second round posts nothing more.
    let out = cp.ok(&["deliver", "--once", "--at", "2026-04-01T09:00:00Z"]);
    assert!(
        out.contains("team channels: queued 1 summaries and 0 alerts; posted 1,"),
        "{out}"
    );
    cp.ok(&["deliver", "--once", "--at", "2026-04-01T15:00:00Z"]);
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "/hooks/T0SECRET/B0SECRET");
    let text = seen[0].1["text"].as_str().expect("Slack's {\"text\": ...}");
    assert!(
        text.starts_with("cpwatch, knowsley, Wednesday 1 April 2026: "),
        "{text}"
    );
    println!("{text}");
    assert!(text.contains("overdue"), "{text}");
    // The same count the evaluator gives: every overdue timescale is in it.
    let total: usize = text
        .lines()
        .filter(|l| l.starts_with("- "))
        .filter_map(|l| {
            l.rsplit("): ")
                .next()?
                .split(' ')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(total >= 1, "{text}");
    assert!(
        text.contains(&format!("{total} child-protection timescale")),
        "{text}"
    );
    assert_anonymous(text);
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM team_posts WHERE kind = 'summary' AND status = 'sent' \
                  AND key = 'knowsley/team/summary/2026-04-01'"
        ),
        1
    );
    // Saturday 4 April: no summary.
    cp.ok(&["deliver", "--once", "--at", "2026-04-04T12:00:00Z"]);
    assert_eq!(hook.seen().len(), 1);
    // The URL is a secret: not in the log of a refused post, nor in the database.
    hook.answer(&[403]);
    // (Monday 6 April 2026 is Easter Monday: the next summary is Tuesday's.)
    let out = cp.run(&["deliver", "--once", "--at", "2026-04-07T12:00:00Z"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("refused 1"), "{all}");
    assert!(!all.contains("SECRET"), "{all}");
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM team_posts WHERE status = 'failed' AND attempts = 1 \
                  AND last_error LIKE '%answered 403%' AND last_error NOT LIKE '%SECRET%'"
        ),
        1,
        "a 4xx is refused for good"
    );
    // The operator sees it in `cpwatch health`, without the URL.
    let out = cp.run(&["health", "--no-relay-login"]);
    let health = String::from_utf8_lossy(&out.stdout);
    assert!(
        health.contains("FAIL team-channel") && health.contains("1 team-channel post(s) refused"),
        "{health}"
    );
    assert!(!health.contains("SECRET"), "{health}");
    assert_eq!(out.status.code(), Some(1), "{health}");
}

/// A dispute flagged immediate risk (knowsley's ladder starts it at stage 2).
fn risk_file() -> String {
    let person = |id: &str, agency: &str, manager: Option<&str>| {
        let mut p = json!({"id": id, "name": format!("Person {id}"), "email": format!("{id}@example.org"), "agency": agency});
        if let Some(m) = manager {
            p["manager"] = json!(m);
        }
        p
    };
    json!({
        "partnership": "knowsley",
        "agencies": [
            {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl", "senior_manager": "p-hsm", "lscp_representative": "p-hrep"}},
            {"id": "ksc", "name": "Children's Social Care", "roles": {"safeguarding_lead": "p-sl1", "lscp_representative": "p-krep"}},
            {"id": "lscp", "name": "The partnership"}
        ],
        "people": [
            person("p-hv1", "health", Some("p-hlm")), person("p-hlm", "health", Some("p-hsm")),
            person("p-hsl", "health", None), person("p-hsm", "health", None), person("p-hrep", "health", None),
            person("p-sw1", "ksc", Some("p-tm1")), person("p-tm1", "ksc", Some("p-sm1")),
            person("p-sm1", "ksc", None), person("p-sl1", "ksc", None), person("p-krep", "ksc", None),
            person("p-chair", "lscp", None), person("p-pm", "lscp", None), person("p-bm", "lscp", None)
        ],
        "partnership_roles": {"partnership_chair": "p-chair", "partnership_manager": "p-pm", "business_manager": "p-bm"},
        "cases": [{"ref": "KN-0001", "roles": {"social_worker": "p-sw1", "team_manager": "p-tm1"}, "events": []}],
        "disputes": [{
            "id": "D-9", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
            "respondent": "p-sw1", "opened_at": "2026-03-07T02:00:00Z", "disagreement_at": null,
            "immediate_risk": true, "subject": "threshold decision", "events": []
        }]
    })
    .to_string()
}

/// A partnership whose team channel (`format`: teams or slack) takes alerts only, and a pass that
/// queued its immediate-risk notices (`urgent` of them, at least one).
struct Alerting {
    db: TestDb,
    _smtp: SmtpServer,
    hook: FakeWebhook,
    _dir: tempfile::TempDir,
    cp: Cpwatch,
    urgent: i64,
}

fn alerting(format: &str) -> Alerting {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let hook = FakeWebhook::start();
    let dir = tempfile::tempdir().unwrap();
    let cp = with_team_channel(Cpwatch::new(&db, Some(&smtp)), &hook, dir.path(), format).with(
        "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__SUMMARY",
        "false",
    );
    cp.setup(&risk_file());
    cp.ok(&["evaluate", "--at", "2026-03-07T02:00:00Z"]);
    let urgent = db.count("SELECT count(*) AS n FROM notices WHERE urgent");
    assert!(urgent >= 1, "the ladder queued an immediate-risk notice");
    Alerting {
        db,
        _smtp: smtp,
        hook,
        _dir: dir,
        cp,
        urgent,
    }
}

#[test]
fn an_immediate_risk_notice_is_alerted_once_to_teams_and_retried_after_a_5xx() {
    // (`_smtp` and `_dir` are bound so that they live to the end of the test.)
    let Alerting {
        db,
        _smtp,
        hook,
        _dir,
        cp,
        urgent,
    } = alerting("teams");
    // The webhook fails once with a 500: the alert waits and is tried again.
    hook.answer(&[500]);
    let out = cp.ok(&["deliver", "--once", "--at", "2026-03-07T02:05:00Z"]);
    assert!(
        out.contains(&format!("queued 0 summaries and {urgent} alerts;")),
        "{out}"
    );
    assert!(out.contains("to retry 1"), "{out}");
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM team_posts WHERE status = 'pending' AND attempts = 1 \
                  AND next_attempt_at > now() AND last_error LIKE '%answered 500%'"
        ),
        1
    );
    exec_sql(
        &db,
        "UPDATE team_posts SET next_attempt_at = now() WHERE status = 'pending'",
    );
    cp.ok(&["deliver", "--once", "--at", "2026-03-07T02:10:00Z"]);
    cp.ok(&["deliver", "--once", "--at", "2026-03-07T02:15:00Z"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM team_posts WHERE kind = 'alert' AND status = 'sent'"),
        urgent
    );
    let seen = hook.seen();
    assert_eq!(
        seen.len() as i64,
        urgent + 1,
        "one failed try, then each alert once"
    );
    let card = &seen.last().unwrap().1;
    assert_eq!(card["type"], "message");
    let attachment = &card["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["content"]["type"], "AdaptiveCard");
    let text = attachment["content"]["body"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("cpwatch, knowsley: IMMEDIATE RISK."),
        "{text}"
    );
    // The notice stores its title as a code; the alert words it from the stored facts.
    assert!(
        text.contains(
            "needs action today: Knowsley Safeguarding Children Partnership escalation policy \
             (2019), stage 2: Line manager to line manager. Due by"
        ),
        "{text}"
    );
    assert!(!text.contains("dispute-stage"), "{text}");
    assert!(
        text.contains("Due by Monday 9 March 2026, 17:00 GMT"),
        "{text}"
    );
    assert_anonymous(text);
    // No summary was asked for.
    assert_eq!(
        db.count("SELECT count(*) AS n FROM team_posts WHERE kind = 'summary'"),
        0
    );
}

/// A notice queued before payload version 4 has its title in words: the alert keeps it.
#[test]
fn an_immediate_risk_notice_of_payload_version_3_is_alerted_with_its_stored_title() {
    // (`_smtp` and `_dir` are bound so that they live to the end of the test.)
    let Alerting {
        db,
        _smtp,
        hook,
        _dir,
        cp,
        urgent,
    } = alerting("slack");
    // As a version 3 cpwatch wrote it: the title in words (here words of its own, so that the
    // alert can only have them from the stored title), the same story.
    exec_sql(
        &db,
        "UPDATE notices SET payload = jsonb_set(jsonb_set(payload, '{title}', \
             '\"The old policy, stage 2: as it was worded\"'), '{v}', '3') WHERE urgent",
    );
    cp.ok(&["deliver", "--once", "--at", "2026-03-07T02:05:00Z"]);
    let seen = hook.seen();
    assert_eq!(seen.len() as i64, urgent, "each once");
    for (_, body) in &seen {
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("needs action today: The old policy, stage 2: as it was worded. Due by"),
            "{text}"
        );
        assert_anonymous(text);
    }
}

#[test]
fn the_daemon_alerts_the_team_channel_when_an_immediate_risk_notice_is_queued() {
    let db = TestDb::new();
    let smtp = SmtpServer::start();
    let hook = FakeWebhook::start();
    let dir = tempfile::tempdir().unwrap();
    let cp = with_team_channel(
        fault_support::daemon(&db.url, smtp.port),
        &hook,
        dir.path(),
        "slack",
    )
    .with(
        "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__SUMMARY",
        "false",
    );
    cp.setup(&risk_file());
    let mut d = fault_support::Running(cp.command(&["run"]).spawn().unwrap());
    let alerted = || {
        let urgent = db.count("SELECT count(*) AS n FROM notices WHERE urgent");
        urgent > 0
            && db.count(
                "SELECT count(*) AS n FROM team_posts WHERE kind = 'alert' AND status = 'sent'",
            ) == urgent
    };
    assert!(
        fault_support::wait_until(60, alerted),
        "every immediate-risk notice alerted"
    );
    assert!(fault_support::stop(&mut d.0, 20).success());
    let seen = hook.seen();
    let urgent = db.count("SELECT count(*) AS n FROM notices WHERE urgent");
    assert_eq!(seen.len() as i64, urgent, "each once");
    for (_, body) in &seen {
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("IMMEDIATE RISK"), "{text}");
        assert_anonymous(text);
    }
}

#[test]
fn check_names_each_problem_of_a_team_channel_without_the_url() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let cp = Cpwatch::new(&db, None)
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__FORMAT",
            "discord",
        )
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__WEBHOOK_URL",
            "ftp://T0SECRET",
        )
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__SUMMARY_AT",
            "9am",
        );
    let out = cp.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "partnerships.knowsley.team_channel.format: \"discord\" is not one of teams, slack"
        ),
        "{err}"
    );
    assert!(
        err.contains("partnerships.knowsley.team_channel.summary_at"),
        "{err}"
    );
    assert!(
        err.contains("partnerships.knowsley.team_channel: the webhook URL is not an http(s) URL"),
        "{err}"
    );
    assert!(!err.contains("T0SECRET"), "{err}");
    let missing = Cpwatch::new(&db, None)
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__FORMAT",
            "teams",
        )
        .with(
            "CPWATCH_PARTNERSHIPS__KNOWSLEY__TEAM_CHANNEL__WEBHOOK_URL_FILE",
            dir.path().join("nope").to_str().unwrap(),
        );
    let err = String::from_utf8_lossy(&missing.run(&["check"]).stderr).into_owned();
    assert!(
        err.contains("partnerships.knowsley.team_channel.webhook_url_file:")
            && err.contains("nope"),
        "{err}"
    );
}
