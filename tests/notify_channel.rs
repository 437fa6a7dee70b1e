//! GOV.UK Notify as the mail channel, against a local HTTP server standing in for Notify: it
//! checks each request's token (HS256 signature with the test key, `iss` = the service id, `iat`
//! within 30 s) and body, and plays back Notify's documented error responses. What cpwatch did
//! with each delivery is read back from PostgreSQL.

mod common;
mod fault_support;

use common::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const SERVICE: &str = "26785a09-ab16-4eb0-8407-a37497a57506";
const SECRET: &str = "3d844edf-8d35-48ac-975b-e847b4f122b0";
const DEFAULT_TEMPLATE: &str = "f33517ff-2a88-4f6e-b855-c550268ce08a";
const OVERDUE_TEMPLATE: &str = "0bd2e2a4-3f36-4e3b-9a5e-6d6f3b2b8a01";

/// One request as the fake Notify saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    /// Why the token was bad, if it was.
    token_problem: Option<String>,
    body: serde_json::Value,
}

/// A fake GOV.UK Notify: answers by recipient (status and body), else 201.
struct FakeNotify {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<BTreeMap<String, (u16, String)>>>,
    everyone: Arc<Mutex<Option<(u16, String)>>>,
    /// Wait this long before answering (a Notify that takes the request and goes quiet).
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

fn check_token(auth: Option<String>) -> Option<String> {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        iat: i64,
    }
    let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) else {
        return Some(format!("no bearer token: {auth:?}"));
    };
    let mut v = Validation::new(Algorithm::HS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let claims = match decode::<Claims>(token, &DecodingKey::from_secret(SECRET.as_bytes()), &v) {
        Ok(d) => d.claims,
        Err(e) => return Some(format!("signature or form: {e}")),
    };
    let now = chrono::Utc::now().timestamp();
    if claims.iss != SERVICE {
        return Some(format!("iss {}", claims.iss));
    }
    if (now - claims.iat).abs() > 30 {
        return Some(format!(
            "iat {} is {} s from now",
            claims.iat,
            now - claims.iat
        ));
    }
    None
}

impl FakeNotify {
    fn start() -> FakeNotify {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(BTreeMap::<String, (u16, String)>::new()));
        let everyone = Arc::new(Mutex::new(None::<(u16, String)>));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, a, e, delay) = (
            seen.clone(),
            answers.clone(),
            everyone.clone(),
            delay_ms.clone(),
        );
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let auth = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.to_string());
                let mut text = String::new();
                let _ = req.as_reader().read_to_string(&mut text);
                let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let token_problem = check_token(auth);
                let to = body["email_address"].as_str().unwrap_or("").to_owned();
                let (status, reply) = if let Some(p) = &token_problem {
                    (
                        403,
                        error_body(403, "AuthError", &format!("Invalid token: {p}")),
                    )
                } else if let Some(r) = e.lock().unwrap().clone() {
                    r
                } else if let Some(r) = a.lock().unwrap().get(&to).cloned() {
                    r
                } else {
                    (201, serde_json::json!({"id": "740e5834-3a29-46b4-9a6f-16142fde0e5e", "reference": body["reference"]}).to_string())
                };
                s.lock().unwrap().push(Seen {
                    path: req.url().to_owned(),
                    token_problem,
                    body,
                });
                let wait = delay.load(std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(wait));
                let _ =
                    req.respond(tiny_http::Response::from_string(reply).with_status_code(status));
            }
        });
        FakeNotify {
            port,
            seen,
            answers,
            everyone,
            delay_ms,
        }
    }
    fn answer(&self, to: &str, status: u16, error: &str, message: &str) {
        self.answers
            .lock()
            .unwrap()
            .insert(to.into(), (status, error_body(status, error, message)));
    }
    fn answer_everyone(&self, answer: Option<(u16, &str, &str)>) {
        *self.everyone.lock().unwrap() = answer.map(|(s, e, m)| (s, error_body(s, e, m)));
    }
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn error_body(status: u16, error: &str, message: &str) -> String {
    serde_json::json!({"status_code": status, "errors": [{"error": error, "message": message}]})
        .to_string()
}

/// cpwatch set to send through the fake Notify, with a key file holding `key`.
fn notify_cpwatch(db: &TestDb, notify: &FakeNotify, dir: &std::path::Path, key: &str) -> Cpwatch {
    let key_file = dir.join("notify-api-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    Cpwatch::new(db, None)
        .with("CPWATCH_MAIL__CHANNEL", "notify")
        .with(
            "CPWATCH_NOTIFY__BASE_URL",
            &format!("http://127.0.0.1:{}", notify.port),
        )
        .with("CPWATCH_NOTIFY__API_KEY_FILE", key_file.to_str().unwrap())
        .with("CPWATCH_NOTIFY__TEMPLATE_ID", DEFAULT_TEMPLATE)
        .with("CPWATCH_NOTIFY__TEMPLATES__OVERDUE", OVERDUE_TEMPLATE)
        .with("CPWATCH_NOTIFY__TIMEOUT_SECONDS", "5")
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
}

fn live_key() -> String {
    format!("cpwatch-live-{SERVICE}-{SECRET}")
}

fn overdue_case() -> String {
    case_file(serde_json::json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ]))
}

fn exec(db: &TestDb, sql: &str) {
    use diesel::RunQueryDsl;
    diesel::sql_query(sql).execute(&mut db.conn()).unwrap();
}

fn status_of(db: &TestDb, recipient: &str) -> Vec<(String, i64)> {
    #[derive(diesel::QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Int8)]
        n: i64,
    }
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "SELECT status, count(*) AS n FROM outbox WHERE recipient = $1 GROUP BY status ORDER BY status",
    )
    .bind::<diesel::sql_types::Text, _>(recipient)
    .load::<R>(&mut db.conn())
    .unwrap()
    .into_iter()
    .map(|r| (r.status, r.n))
    .collect()
}

#[test]
fn each_message_goes_to_notify_signed_with_its_template_personalisation_and_reference() {
    let db = TestDb::new();
    let notify = FakeNotify::start();
    let dir = tempfile::tempdir().unwrap();
    let cp = notify_cpwatch(&db, &notify, dir.path(), &live_key());
    let checked = cp.ok(&["check"]);
    assert!(
        checked.contains(&format!(
            "mail: through GOV.UK Notify at http://127.0.0.1:{} (service {SERVICE}; 1 kind(s)",
            notify.port
        )),
        "{checked}"
    );
    assert!(!checked.contains(SECRET));
    cp.setup(&overdue_case());
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let queued = db.count("SELECT count(*) AS n FROM outbox WHERE status = 'pending'");
    assert!(queued >= 2, "{queued}");
    let out = cp.ok(&["deliver", "--once"]);
    assert!(out.contains(&format!("sent {queued},")), "{out}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status <> 'sent'"),
        0
    );

    let seen = notify.seen();
    assert_eq!(seen.len() as i64, queued);
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        dedupe_key: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        kind: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        recipient: String,
    }
    use diesel::RunQueryDsl;
    let rows: Vec<Row> = diesel::sql_query("SELECT dedupe_key, kind, recipient FROM outbox")
        .load(&mut db.conn())
        .unwrap();
    for s in &seen {
        assert_eq!(s.path, "/v2/notifications/email");
        assert_eq!(s.token_problem, None, "the token checks out");
        let reference = s.body["reference"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r.dedupe_key == reference)
            .unwrap_or_else(|| panic!("reference {reference} is a delivery's dedupe key"));
        assert_eq!(s.body["email_address"], row.recipient.as_str());
        let template = if row.kind == "overdue" {
            OVERDUE_TEMPLATE
        } else {
            DEFAULT_TEMPLATE
        };
        assert_eq!(s.body["template_id"], template, "{}", row.kind);
        let p = &s.body["personalisation"];
        assert_eq!(p["kind"], row.kind.as_str());
        let subject = p["subject"].as_str().unwrap();
        assert!(
            !subject.is_empty() && !subject.contains("Worker"),
            "{subject}"
        );
        assert!(p["body"].as_str().unwrap().contains("KN-0001"), "{p}");
        assert!(s.body.get("email_reply_to_id").is_none());
    }
    assert!(seen
        .iter()
        .any(|s| s.body["template_id"] == OVERDUE_TEMPLATE));
    // A second round sends nothing again.
    cp.ok(&["deliver", "--once"]);
    assert_eq!(notify.seen().len() as i64, queued);
    let health = cp.run(&["health"]);
    let text = String::from_utf8_lossy(&health.stdout);
    assert!(text.contains("GOV.UK Notify 127.0.0.1:"), "{text}");
}

#[test]
fn notify_errors_fail_retry_or_hold_mail_as_for_a_relay() {
    let db = TestDb::new();
    let notify = FakeNotify::start();
    let dir = tempfile::tempdir().unwrap();
    let cp = notify_cpwatch(&db, &notify, dir.path(), &live_key())
        .with("CPWATCH_DELIVERY__MAX_ATTEMPTS", "3");
    cp.setup(&overdue_case());
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    // A 400 naming the address: that recipient fails, and the team manager is told.
    notify.answer(
        "chair1@ksc.example.org",
        400,
        "ValidationError",
        "email_address Not a valid email address",
    );
    // A 500: tried again later.
    notify.answer(
        "sm1@ksc.example.org",
        500,
        "Exception",
        "Internal server error",
    );
    let out = cp.ok(&["deliver", "--once"]);
    assert!(out.contains("rejected 1,"), "{out}");
    assert_eq!(
        status_of(&db, "chair1@ksc.example.org"),
        [("failed".into(), 1)]
    );
    let sm1 = status_of(&db, "sm1@ksc.example.org");
    assert_eq!(sm1.len(), 1, "{sm1:?}");
    assert_eq!(sm1[0].0, "pending");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE recipient = 'sm1@ksc.example.org' \
                  AND attempts = 1 AND next_attempt_at > now() AND last_error LIKE '%500 Exception: Internal server error%'"),
        sm1[0].1
    );
    let dq = db.count(
        "SELECT count(*) AS n FROM outbox WHERE kind = 'data_quality' AND recipient = 'tm1@ksc.example.org' \
         AND dedupe_key LIKE '%/data-quality/undeliverable/chair1@ksc.example.org/%'",
    );
    assert_eq!(dq, 1, "the team manager is told of the refused address");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'failed' AND last_error LIKE '%email_address Not a valid email address%'"),
        1
    );

    // Another 400 (not about the address): the message fails; the admin address is told, as the
    // team manager is the one it was for.
    notify.answer(
        "tm1@ksc.example.org",
        400,
        "BadRequestError",
        "Missing personalisation: body",
    );
    exec(
        &db,
        "UPDATE deliveries SET status = 'pending', sent_at = NULL WHERE id = \
               (SELECT min(id) FROM deliveries WHERE recipient = 'tm1@ksc.example.org')",
    );
    let out = cp.ok(&["deliver", "--once"]);
    assert!(out.contains("rejected 1,"), "{out}");
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE status = 'failed' AND recipient = 'tm1@ksc.example.org' \
                  AND last_error LIKE '%400 BadRequestError: Missing personalisation: body%'"),
        1
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM outbox WHERE kind = 'data_quality' AND recipient = 'admin@lscp.example.org' \
                  AND payload->>'action' LIKE '%the message itself, not the address%'"),
        1
    );
    notify.answers.lock().unwrap().remove("tm1@ksc.example.org");

    // 403: our key or clock. Nothing is marked failed, nothing uses an attempt, health is red.
    notify.answer_everyone(Some((403, "AuthError", "Invalid token: API key not found")));
    exec(
        &db,
        "UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending'",
    );
    let before = db.count(
        "SELECT coalesce(sum(attempts), 0)::int8 AS n FROM deliveries WHERE status = 'pending'",
    );
    let pending = db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'");
    let out = cp.run(&["deliver", "--once"]);
    assert!(!out.status.success(), "mail waits: the command says so");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("API key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'"),
        pending
    );
    assert_eq!(
        db.count(
            "SELECT coalesce(sum(attempts), 0)::int8 AS n FROM deliveries WHERE status = 'pending'"
        ),
        before
    );
    let health = cp.run(&["health", "--max-dead", "100"]);
    let text = String::from_utf8_lossy(&health.stdout);
    assert_ne!(health.status.code(), Some(0), "{text}");
    assert!(
        text.contains("FAIL relay") && text.contains("notify.api_key_file"),
        "{text}"
    );
    assert!(!text.contains(SECRET) && !String::from_utf8_lossy(&out.stderr).contains(SECRET));

    // 429: the service's limit. Mail waits the same way.
    notify.answer_everyone(Some((
        429,
        "RateLimitError",
        "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
    )));
    exec(
        &db,
        "UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending'",
    );
    let out = cp.run(&["deliver", "--once"]);
    assert!(!out.status.success());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'"),
        pending
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM deliveries WHERE last_error LIKE '%429 RateLimitError%'"
        ),
        1
    );

    // Notify accepts again: everything waiting goes, and health turns green.
    notify.answer_everyone(None);
    notify.answers.lock().unwrap().clear();
    exec(
        &db,
        "UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending'",
    );
    cp.ok(&["deliver", "--once"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending'"),
        0
    );
    let text =
        String::from_utf8_lossy(&cp.run(&["health", "--max-dead", "100"]).stdout).into_owned();
    assert!(text.contains("ok   relay"), "{text}");
}

#[test]
fn a_wrong_key_is_refused_by_notify_and_a_malformed_one_by_check() {
    let db = TestDb::new();
    let notify = FakeNotify::start();
    let dir = tempfile::tempdir().unwrap();
    // A well-formed key whose secret is not the service's: the fake Notify's signature check fails.
    let wrong = format!(
        "cpwatch-live-{SERVICE}-{}",
        "00000000-8d35-48ac-975b-e847b4f122b0"
    );
    let cp = notify_cpwatch(&db, &notify, dir.path(), &wrong);
    cp.setup(&overdue_case());
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let out = cp.run(&["deliver", "--once"]);
    assert!(!out.status.success());
    let seen = notify.seen();
    assert_eq!(seen.len(), 1, "one try, then mail waits");
    assert!(
        seen[0]
            .token_problem
            .as_deref()
            .unwrap()
            .contains("signature"),
        "{seen:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status <> 'pending'"),
        0
    );

    // `check` names each problem of [notify], never the key itself.
    let bad = notify_cpwatch(&db, &notify, dir.path(), "my-key-0123456789")
        .with("CPWATCH_NOTIFY__TEMPLATES__OVERDUE", "not-a-uuid");
    let out = bad.run(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("notify.api_key_file") && err.contains("is not a Notify API key"),
        "{err}"
    );
    assert!(err.contains("notify.templates.overdue"), "{err}");
    assert!(!err.contains("0123456789"), "{err}");
    let none = Cpwatch::new(&db, None)
        .with("CPWATCH_MAIL__CHANNEL", "notify")
        .with(
            "CPWATCH_NOTIFY__API_KEY_FILE",
            dir.path().join("missing").to_str().unwrap(),
        );
    let err = String::from_utf8_lossy(&none.run(&["check"]).stderr).into_owned();
    assert!(
        err.contains("notify.api_key_file") && err.contains("missing"),
        "{err}"
    );
    assert!(err.contains("no Notify template for reminder"), "{err}");
}

#[test]
fn the_daemon_delivers_through_notify() {
    let db = TestDb::new();
    let notify = FakeNotify::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("notify-api-key");
    std::fs::write(&key_file, live_key()).unwrap();
    // A relative api_key_file is found in systemd's credentials directory.
    let cp = fault_support::daemon(&db.url, 1)
        .with("CPWATCH_MAIL__CHANNEL", "notify")
        .with(
            "CPWATCH_NOTIFY__BASE_URL",
            &format!("http://127.0.0.1:{}/", notify.port),
        )
        .with("CPWATCH_NOTIFY__API_KEY_FILE", "notify-api-key")
        .with("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())
        .with("CPWATCH_NOTIFY__TEMPLATE_ID", DEFAULT_TEMPLATE)
        .with("CPWATCH_NOTIFY__TIMEOUT_SECONDS", "2");
    cp.setup(&overdue_case());
    let mut d = fault_support::Running(cp.command(&["run"]).spawn().unwrap());
    let done = || {
        db.count("SELECT count(*) AS n FROM outbox") > 0
            && db.count("SELECT count(*) AS n FROM outbox WHERE status <> 'sent'") == 0
    };
    assert!(
        fault_support::wait_until(60, done),
        "everything sent through Notify"
    );
    assert!(fault_support::stop(&mut d.0, 20).success());
    let sent = db.count("SELECT count(*) AS n FROM outbox");
    let seen = notify.seen();
    assert_eq!(seen.len() as i64, sent, "each once");
    assert!(seen
        .iter()
        .all(|s| s.token_problem.is_none() && s.path == "/v2/notifications/email"));
}

#[test]
fn notify_unreachable_holds_mail_and_notify_silent_after_the_request_is_sent_once_unconfirmed() {
    let db = TestDb::new();
    let notify = FakeNotify::start();
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: no connection, nothing sent, mail waits.
    let closed = free_port();
    let cp = notify_cpwatch(&db, &notify, dir.path(), &live_key())
        .with(
            "CPWATCH_NOTIFY__BASE_URL",
            &format!("http://127.0.0.1:{closed}"),
        )
        .with("CPWATCH_NOTIFY__TIMEOUT_SECONDS", "1");
    cp.setup(&overdue_case());
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    let queued = db.count("SELECT count(*) AS n FROM deliveries");
    let out = cp.run(&["deliver", "--once"]);
    assert!(!out.status.success());
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'pending' AND attempts = 0"),
        queued
    );
    let text = String::from_utf8_lossy(&cp.run(&["health"]).stdout).into_owned();
    assert!(
        text.contains("FAIL relay") && text.contains("cannot reach GOV.UK Notify"),
        "{text}"
    );

    // Notify takes the request and does not answer within the timeout: recorded sent,
    // unconfirmed, and not sent again.
    notify
        .delay_ms
        .store(3000, std::sync::atomic::Ordering::SeqCst);
    let cp = notify_cpwatch(&db, &notify, dir.path(), &live_key())
        .with("CPWATCH_NOTIFY__TIMEOUT_SECONDS", "1");
    exec(&db, "UPDATE deliveries SET next_attempt_at = now()");
    let out = cp.run(&["deliver", "--once"]);
    assert!(
        !out.status.success(),
        "the operator is told: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM deliveries WHERE status = 'sent' AND unconfirmed \
                  AND last_error LIKE 'unconfirmed: GOV.UK Notify%did not answer%'"
        ),
        1
    );
    notify
        .delay_ms
        .store(0, std::sync::atomic::Ordering::SeqCst);
    // Let the fake finish the request it is sitting on.
    std::thread::sleep(std::time::Duration::from_secs(3));
    exec(
        &db,
        "UPDATE deliveries SET next_attempt_at = now() WHERE status = 'pending'",
    );
    cp.ok(&["deliver", "--once"]);
    assert_eq!(
        db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'sent'"),
        queued
    );
    assert_eq!(
        notify.seen().len() as i64,
        queued,
        "the unconfirmed one was not sent again"
    );
    let text = String::from_utf8_lossy(&cp.run(&["health"]).stdout).into_owned();
    assert!(
        text.contains("1 message(s) in the last 24 h sent without the relay's confirmation"),
        "{text}"
    );
}
