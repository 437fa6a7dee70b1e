//! Test harness: a real PostgreSQL database per test and a real SMTP server on loopback.
//! With DATABASE_URL set, each test gets its own database on that server; without it, each test
//! starts a private PostgreSQL from the installed binaries (`cpwatch::pgserver`; as root it runs as
//! an unprivileged system user, no sudo needed).
#![allow(dead_code)]

use diesel::prelude::*;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TestDb {
    pub url: String,
    admin: Option<(String, String)>,
    _temp: Option<cpwatch::pgserver::PrivateServer>,
}

impl TestDb {
    pub fn new() -> TestDb {
        match std::env::var("DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!(
                    "cpwatch_t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .subsec_nanos()
                );
                let mut conn = PgConnection::establish(&admin).expect("connect to DATABASE_URL");
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .expect("create test database");
                let base = admin.split('?').next().unwrap();
                let (server, _) = base
                    .rsplit_once('/')
                    .expect("DATABASE_URL has a database name");
                TestDb {
                    url: format!("{server}/{name}"),
                    admin: Some((admin.clone(), name)),
                    _temp: None,
                }
            }
            _ => {
                let db = cpwatch::pgserver::PrivateServer::start()
                    .unwrap_or_else(|e| panic!("DATABASE_URL is unset and {e}"));
                TestDb {
                    url: db.url(),
                    admin: None,
                    _temp: Some(db),
                }
            }
        }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }

    /// Run one SQL statement returning a single bigint.
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::Int8)]
            n: i64,
        }
        let r: N = diesel::sql_query(sql)
            .get_result(&mut self.conn())
            .expect(sql);
        r.n
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.admin {
            if let Ok(mut conn) = PgConnection::establish(admin) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn);
            }
        }
    }
}

/// A message the SMTP server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                while lines
                    .peek()
                    .is_some_and(|l| l.starts_with(' ') || l.starts_with('\t'))
                {
                    value.push(' ');
                    value.push_str(lines.next().unwrap().trim());
                }
                return Some(value);
            }
        }
        None
    }
    /// The text/plain part, with quoted-printable soft breaks undone.
    pub fn text(&self) -> String {
        let body = self.data.replace("=\r\n", "");
        let start = body
            .find("Content-Type: text/plain")
            .expect("a text/plain part");
        let rest = &body[start..];
        let rest = &rest[rest.find("\r\n\r\n").unwrap() + 4..];
        let end = rest.find("\r\n--").unwrap_or(rest.len());
        rest[..end].replace("=3D", "=").replace("=E2=80=99", "’")
    }
}

/// How the test SMTP server misbehaves, changed while it runs.
#[derive(Default)]
struct Behaviour {
    /// Refuse service to every session (`421` to EHLO): the relay is there but down.
    down: bool,
    /// Reply to RCPT TO for these addresses with this code (`550` permanent, `451` temporary).
    reject: std::collections::HashMap<String, u16>,
    /// Wait this long before accepting each message's data (a slow relay).
    delay_ms: u64,
}

#[derive(Clone)]
struct Sink {
    store: Arc<Mutex<Vec<Received>>>,
    current: Option<Received>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl mailin_embedded::Handler for Sink {
    fn helo(&mut self, _ip: std::net::IpAddr, _domain: &str) -> mailin_embedded::Response {
        if self.behaviour.lock().unwrap().down {
            return mailin_embedded::response::NO_SERVICE;
        }
        mailin_embedded::response::OK
    }
    fn rcpt(&mut self, to: &str) -> mailin_embedded::Response {
        let to = to.trim_matches(['<', '>']).to_ascii_lowercase();
        match self.behaviour.lock().unwrap().reject.get(&to) {
            Some(&code) => {
                mailin_embedded::Response::custom(code, format!("{to}: refused by test"))
            }
            None => mailin_embedded::response::OK,
        }
    }
    fn data_start(
        &mut self,
        _domain: &str,
        from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.current = Some(Received {
            from: from.to_owned(),
            to: to.to_vec(),
            data: String::new(),
        });
        mailin_embedded::response::OK
    }
    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(c) = &mut self.current {
            c.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }
    fn data_end(&mut self) -> mailin_embedded::Response {
        let delay = self.behaviour.lock().unwrap().delay_ms;
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        if let Some(c) = self.current.take() {
            self.store.lock().unwrap().push(c);
        }
        mailin_embedded::response::OK
    }
}

/// A real SMTP server (mailin-embedded) on a free loopback port, collecting what it receives.
pub struct SmtpServer {
    pub port: u16,
    store: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

/// A loopback port nothing listens on (yet): connections to it are refused.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::serve(TcpListener::bind("127.0.0.1:0").unwrap())
    }
    /// Start listening on a given port (e.g. one from `free_port`, after a period of refusals).
    pub fn start_on(port: u16) -> SmtpServer {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => return Self::serve(l),
                Err(e) if std::time::Instant::now() > until => panic!("bind {port}: {e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }
    fn serve(listener: TcpListener) -> SmtpServer {
        let port = listener.local_addr().unwrap().port();
        let store = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let sink = Sink {
            store: store.clone(),
            current: None,
            behaviour: behaviour.clone(),
        };
        std::thread::spawn(move || {
            let mut server = mailin_embedded::Server::new(sink);
            server.with_name("test.smtp").with_tcp_listener(listener);
            let _ = server.serve();
        });
        SmtpServer {
            port,
            store,
            behaviour,
        }
    }
    /// Refuse service (`421`) to every new session while `down`.
    pub fn set_down(&self, down: bool) {
        self.behaviour.lock().unwrap().down = down;
    }
    /// Reply `code` to RCPT TO for `address` (550: permanent, 451: temporary).
    pub fn reject(&self, address: &str, code: u16) {
        self.behaviour
            .lock()
            .unwrap()
            .reject
            .insert(address.to_ascii_lowercase(), code);
    }
    /// Accept each message's data only after `ms` milliseconds.
    pub fn set_delay_ms(&self, ms: u64) {
        self.behaviour.lock().unwrap().delay_ms = ms;
    }
    /// How many times each Message-ID arrived.
    pub fn message_id_counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for m in self.received() {
            *counts
                .entry(m.header("Message-ID").unwrap_or_default())
                .or_insert(0) += 1;
        }
        counts
    }
    pub fn received(&self) -> Vec<Received> {
        self.store.lock().unwrap().clone()
    }
    /// Wait up to `secs` for at least `n` messages.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let got = self.received();
            if got.len() >= n || std::time::Instant::now() > until {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The cpwatch binary, configured for a test database and SMTP server through the environment.
pub struct Cpwatch {
    pub env: Vec<(String, String)>,
}

impl Cpwatch {
    pub fn new(db: &TestDb, smtp: Option<&SmtpServer>) -> Cpwatch {
        let mut env = vec![
            ("CPWATCH_DATABASE__URL".to_owned(), db.url.clone()),
            ("CPWATCH_SMTP__HOST".into(), "127.0.0.1".into()),
            ("CPWATCH_SMTP__SECURITY".into(), "plain".into()),
            (
                "CPWATCH_SMTP__FROM".into(),
                "cpwatch <cpwatch@lscp.example.org>".into(),
            ),
            (
                "CPWATCH_MAIL__ADMIN_ADDRESS".into(),
                "admin@lscp.example.org".into(),
            ),
            ("RUST_LOG".into(), "warn".into()),
            // Daemons of parallel tests must not contend for the default metrics port.
            ("CPWATCH_METRICS__LISTEN".into(), "127.0.0.1:0".into()),
            // `deliver` and `run` send on the real clock: with the default, every non-urgent
            // message would wait after 17:00 and at weekends, so a test's outcome would depend
            // on when it runs. tests/delivery_hours.rs switches it on and sets the instant.
            (
                "CPWATCH_DELIVERY__WORKING_HOURS_ONLY".into(),
                "false".into(),
            ),
        ];
        env.push((
            "CPWATCH_SMTP__PORT".into(),
            smtp.map_or(1, |s| s.port).to_string(),
        ));
        Cpwatch { env }
    }
    pub fn with(mut self, key: &str, value: &str) -> Cpwatch {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpwatch"));
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("CPWATCH_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run cpwatch")
    }
    /// Run and insist on exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "cpwatch {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    /// `evaluate --dry-run --format json` at an instant, parsed.
    pub fn dry_run(&self, at: &str) -> Vec<serde_json::Value> {
        self.ok(&["evaluate", "--at", at, "--dry-run", "--format", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
    /// Everything due at an instant, queued already or not (`evaluate --dry-run --list-due`).
    pub fn due(&self, at: &str) -> Vec<serde_json::Value> {
        let args = [
            "evaluate",
            "--at",
            at,
            "--dry-run",
            "--list-due",
            "--format",
            "json",
        ];
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
    /// Migrate and import a case file given as JSON text.
    pub fn setup(&self, case_file: &str) {
        self.ok(&["migrate"]);
        self.import_text(case_file);
    }
    /// Import a file that must be rejected as bad input (exit 2); returns the message.
    pub fn rejected(&self, case_file: &str) -> String {
        let out = self.import_text(case_file);
        assert_eq!(
            out.status.code(),
            Some(2),
            "stdout {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
    pub fn import_text(&self, case_file: &str) -> Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("case-file.json");
        std::fs::write(&path, case_file).unwrap();
        self.run(&["import", path.to_str().unwrap()])
    }
}

/// A strategy discussion on Monday 2 March 2026 that initiated a section 47 enquiry.
/// 15 working days later is Monday 23 March 2026 (no bank holidays between): close 17:00 GMT.
pub fn s47_case(extra: serde_json::Value) -> String {
    // The strategy discussion's decisions and minutes are recorded on time, so only the ICPC rule is open.
    let mut events = vec![
        serde_json::json!({"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}),
        serde_json::json!({"kind": "strategy_decisions_recorded", "at": "2026-03-02T12:00:00Z"}),
        serde_json::json!({"kind": "strategy_minutes_circulated", "at": "2026-03-02T12:00:00Z"}),
    ];
    if let serde_json::Value::Array(more) = extra {
        events.extend(more);
    }
    case_file(serde_json::Value::Array(events))
}

/// The people and agencies most tests share, and one case with the given events.
pub fn case_file(events: serde_json::Value) -> String {
    serde_json::json!({
        "partnership": "knowsley",
        "agencies": [
            {"id": "ksc", "name": "Knowsley Children's Social Care", "roles": {"safeguarding_lead": "p-sl1"}},
            {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl"}}
        ],
        "people": [
            {"id": "p-sw1", "name": "A Worker", "email": "sw1@ksc.example.org", "agency": "ksc", "manager": "p-tm1"},
            {"id": "p-tm1", "name": "T Manager", "email": "tm1@ksc.example.org", "agency": "ksc", "manager": "p-sm1"},
            {"id": "p-sm1", "name": "S Manager", "email": "sm1@ksc.example.org", "agency": "ksc"},
            {"id": "p-ch1", "name": "C Chair", "email": "chair1@ksc.example.org", "agency": "ksc", "manager": "p-sqa"},
            {"id": "p-sqa", "name": "Q Manager", "email": "sqa@ksc.example.org", "agency": "ksc"},
            {"id": "p-sl1", "name": "L Lead", "email": "sl1@ksc.example.org", "agency": "ksc"},
            {"id": "p-hsl", "name": "H Lead", "email": "hsl@health.example.org", "agency": "health"},
            {"id": "p-hv1", "name": "H Visitor", "email": "hv1@health.example.org", "agency": "health", "manager": "p-hsl"}
        ],
        "partnership_roles": {},
        "cases": [{
            "ref": "KN-0001",
            "roles": {"social_worker": "p-sw1", "team_manager": "p-tm1", "conference_chair": "p-ch1", "senior_manager": "p-sm1"},
            "events": events
        }]
    })
    .to_string()
}

pub fn kinds(notes: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = notes
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["step"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}
