//! The bank-holiday feed adapter against a local HTTP server (good, malformed, empty, slow, 500 …
//! responses) and against PostgreSQL (store_feed / load_feed).
//!
//! PostgreSQL: set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres); the test
//! creates a uniquely named database, creates the `bank_holidays` table in it, and drops it at the
//! end. Without DATABASE_URL it starts a throwaway server (`cpwatch::pgserver`, which needs
//! PostgreSQL's server binaries; as root it runs them as an unprivileged system user).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use cpwatch::calendar::{BankHolidays, FeedError, DIVISIONS, SNAPSHOT_JSON};
use cpwatch::holiday_refresh::refresh;
use cpwatch::store::holidays::{load_feed, store_feed, stored_fetched_at, StoreError};
use diesel::pg::PgConnection;
use diesel::{Connection, RunQueryDsl};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// A tiny HTTP server on 127.0.0.1.

#[derive(Clone)]
enum Reply {
    /// 200 with this body.
    Ok(Vec<u8>),
    /// This status with a short body.
    Status(u16),
    /// Wait, then 200 with this body.
    Slow(Duration, Vec<u8>),
    /// Headers promising a huge body, then close.
    HugeLength,
    /// Accept and close without a word.
    Hangup,
}

fn read_request(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// Serves `reply` to every request; returns the URL.
fn serve(reply: Reply) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let reply = reply.clone();
            std::thread::spawn(move || {
                read_request(&mut stream);
                match reply {
                    Reply::Ok(body) => respond(&mut stream, 200, &body),
                    Reply::Status(code) => respond(&mut stream, code, b"{\"error\":\"boom\"}"),
                    Reply::Slow(wait, body) => {
                        std::thread::sleep(wait);
                        respond(&mut stream, 200, &body);
                    }
                    Reply::HugeLength => {
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                              Content-Length: 50000000\r\nConnection: close\r\n\r\n{",
                        );
                    }
                    Reply::Hangup => {}
                }
            });
        }
    });
    format!("http://{addr}/bank-holidays.json")
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn small_feed(date: &str) -> String {
    let ev = format!(r#"[{{"title":"Test day","date":"{date}","notes":"","bunting":false}}]"#);
    format!(
        r#"{{"england-and-wales":{{"division":"england-and-wales","events":{ev}}},
            "scotland":{{"division":"scotland","events":{ev}}},
            "northern-ireland":{{"division":"northern-ireland","events":{ev}}}}}"#
    )
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

// ---------------------------------------------------------------------------------------------
// refresh()

#[tokio::test]
async fn good_feed_is_parsed() {
    let url = serve(Reply::Ok(SNAPSHOT_JSON.as_bytes().to_vec()));
    let feed = refresh(&url, TIMEOUT).await.expect("a good feed");
    assert_eq!(feed, BankHolidays::snapshot());
    let ew = feed.dates("england-and-wales").unwrap();
    assert!(ew.contains(&ymd(2022, 9, 19)));
    assert!(ew.contains(&ymd(2023, 5, 8)));
    // 93, and Monday 15 June 2026 (the FIFA World Cup), added by issue 12.
    assert_eq!(feed.events("scotland").len(), 94);
    let coronation = feed
        .events("northern-ireland")
        .iter()
        .find(|e| e.date == ymd(2023, 5, 8))
        .unwrap();
    assert_eq!(
        coronation.title,
        "Bank holiday for the coronation of King Charles III"
    );
    assert!(coronation.bunting);
    assert_eq!(coronation.notes, "");
}

#[tokio::test]
async fn malformed_json_is_an_error() {
    let truncated = &SNAPSHOT_JSON[..SNAPSHOT_JSON.len() / 2];
    let url = serve(Reply::Ok(truncated.as_bytes().to_vec()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::Json(_)), "{err:?}");
}

#[tokio::test]
async fn html_instead_of_json_is_an_error() {
    let url = serve(Reply::Ok(
        b"<html><body>Service unavailable</body></html>".to_vec(),
    ));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::Json(_)), "{err:?}");
}

#[tokio::test]
async fn empty_body_is_an_error() {
    let url = serve(Reply::Ok(Vec::new()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::Json(_)), "{err:?}");
}

#[tokio::test]
async fn empty_object_and_empty_division_are_errors() {
    let url = serve(Reply::Ok(b"{}".to_vec()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::MissingDivision(_)), "{err:?}");

    let no_scotland = small_feed("2030-01-01").replace(
        r#""scotland":{"division":"scotland","events":[{"title":"Test day","date":"2030-01-01","notes":"","bunting":false}]}"#,
        r#""scotland":{"division":"scotland","events":[]}"#,
    );
    assert!(no_scotland.contains(r#""events":[]"#));
    let url = serve(Reply::Ok(no_scotland.into_bytes()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(
        matches!(err, FeedError::EmptyDivision(ref d) if d == "scotland"),
        "{err:?}"
    );
}

#[tokio::test]
async fn insane_dates_are_errors() {
    let url = serve(Reply::Ok(small_feed("2030-13-01").into_bytes()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::BadDate { .. }), "{err:?}");
    let url = serve(Reply::Ok(small_feed("0001-01-01").into_bytes()));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::DateOutOfRange { .. }), "{err:?}");
}

#[tokio::test]
async fn non_utf8_is_an_error() {
    let url = serve(Reply::Ok(vec![0xff, 0xfe, 0x00, 0x7b]));
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::NotUtf8), "{err:?}");
}

#[tokio::test]
async fn server_error_is_an_error() {
    for code in [500, 404, 503] {
        let url = serve(Reply::Status(code));
        let err = refresh(&url, TIMEOUT).await.unwrap_err();
        assert!(
            matches!(err, FeedError::Status { status, .. } if status == code),
            "{err:?}"
        );
        assert!(err.to_string().contains(&code.to_string()));
    }
}

#[tokio::test]
async fn slow_server_times_out() {
    let url = serve(Reply::Slow(
        Duration::from_secs(10),
        SNAPSHOT_JSON.as_bytes().to_vec(),
    ));
    let started = Instant::now();
    let err = refresh(&url, Duration::from_millis(300)).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, FeedError::Timeout { .. }), "{err:?}");
    assert!(
        took < Duration::from_secs(3),
        "timed out only after {took:?}"
    );
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let url = serve(Reply::HugeLength);
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::TooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn hangup_and_refused_connection_are_errors() {
    let url = serve(Reply::Hangup);
    let err = refresh(&url, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::Fetch { .. }), "{err:?}");

    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = refresh(&format!("http://127.0.0.1:{port}/x"), TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, FeedError::Fetch { .. }), "{err:?}");

    let err = refresh("not a url", TIMEOUT).await.unwrap_err();
    assert!(matches!(err, FeedError::Fetch { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// store_feed / load_feed

const TABLE_SQL: &str = "CREATE TABLE bank_holidays (division TEXT NOT NULL, date DATE NOT NULL, \
    title TEXT NOT NULL, notes TEXT NOT NULL DEFAULT '', bunting BOOLEAN NOT NULL DEFAULT false, \
    fetched_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (division, date));";

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..authority_end])
}

/// A uniquely named database, dropped (with the private server, if any) when this is dropped.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
    _server: Option<cpwatch::pgserver::PrivateServer>,
}

impl TestDb {
    fn create() -> TestDb {
        let (admin_url, server) = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let server = cpwatch::pgserver::PrivateServer::start().unwrap_or_else(|e| {
                    panic!(
                        "DATABASE_URL is unset and a private PostgreSQL could not start: {e}. Set \
                         DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres"
                    )
                });
                (server.url(), Some(server))
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("cpwatch_feed_test_{}_{nanos}", std::process::id());
        let mut admin = PgConnection::establish(&admin_url).expect("connect to DATABASE_URL");
        diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .expect("create the test database");
        let url = with_database(&admin_url, &name);
        TestDb {
            admin_url,
            name,
            url,
            _server: server,
        }
    }

    fn connect(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 6, 0, 0).unwrap()
}

#[test]
fn with_database_replaces_only_the_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
}

#[test]
fn store_and_load_feed_in_postgres() {
    let db = TestDb::create();
    let mut conn = db.connect();
    diesel::sql_query(TABLE_SQL).execute(&mut conn).unwrap();

    // Nothing stored yet.
    assert!(load_feed(&mut conn).unwrap().is_none());
    assert_eq!(stored_fetched_at(&mut conn).unwrap(), None);

    // Store the snapshot and read it back exactly.
    let snapshot = BankHolidays::snapshot();
    let written = store_feed(&mut conn, &snapshot, at(2026, 1, 5)).unwrap();
    assert_eq!(written, 83 + 94 + 103);
    assert_eq!(load_feed(&mut conn).unwrap(), Some(snapshot.clone()));
    assert_eq!(stored_fetched_at(&mut conn).unwrap(), Some(at(2026, 1, 5)));

    // A newer feed replaces the rows (not appended to them).
    let newer = BankHolidays::parse_feed(&small_feed("2030-01-01")).unwrap();
    assert_eq!(store_feed(&mut conn, &newer, at(2026, 1, 6)).unwrap(), 3);
    assert_eq!(load_feed(&mut conn).unwrap(), Some(newer.clone()));
    assert_eq!(stored_fetched_at(&mut conn).unwrap(), Some(at(2026, 1, 6)));

    // Store the snapshot again, then make a store fail half-way (after england-and-wales and
    // northern-ireland were replaced, scotland breaks a constraint): nothing changes.
    store_feed(&mut conn, &snapshot, at(2026, 1, 7)).unwrap();
    diesel::sql_query(
        "ALTER TABLE bank_holidays ADD CONSTRAINT no_scottish_2031 \
         CHECK (division <> 'scotland' OR date < '2031-01-01')",
    )
    .execute(&mut conn)
    .unwrap();
    let breaks = BankHolidays::parse_feed(&small_feed("2031-06-02")).unwrap();
    let err = store_feed(&mut conn, &breaks, at(2026, 1, 8)).unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    assert_eq!(load_feed(&mut conn).unwrap(), Some(snapshot.clone()));
    assert_eq!(stored_fetched_at(&mut conn).unwrap(), Some(at(2026, 1, 7)));

    // The daemon's flow: fetch → store only on success. A malformed answer leaves the good copy.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for bad in [
        Reply::Ok(b"{\"england-and-wales\":".to_vec()),
        Reply::Ok(b"{}".to_vec()),
        Reply::Status(500),
    ] {
        let url = serve(bad);
        match rt.block_on(refresh(&url, TIMEOUT)) {
            Ok(feed) => {
                store_feed(&mut conn, &feed, at(2026, 1, 9)).unwrap();
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        assert_eq!(load_feed(&mut conn).unwrap(), Some(snapshot.clone()));
    }

    // Rows that no longer make a whole feed are reported, not half-loaded.
    diesel::sql_query("DELETE FROM bank_holidays WHERE division = 'scotland'")
        .execute(&mut conn)
        .unwrap();
    let err = load_feed(&mut conn).unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(FeedError::MissingDivision(ref d)) if d == "scotland"),
        "{err:?}"
    );
    assert_eq!(DIVISIONS.len(), 3);
    drop(conn);
}
