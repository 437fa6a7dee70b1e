//! The log writers: plain text without colour codes when standard error is not a terminal
//! (always tested), JSON lines with `--log-format json`, and journald where a journal runs.

mod common;

use common::*;
use serde_json::{json, Value};

/// A database with mail queued and no relay: `deliver --once` logs an error line.
fn queued_mail_and_no_relay() -> (TestDb, Cpwatch) {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None)
        .with("CPWATCH_DELIVERY__WORKING_HOURS_ONLY", "false")
        .with("RUST_LOG", "info");
    cp.ok(&["migrate"]);
    let file = case_file(json!([
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true}
    ]));
    assert!(cp.import_text(&file).status.success());
    cp.ok(&["evaluate", "--at", "2026-04-01T12:00:00Z"]);
    (db, cp)
}

#[test]
fn plain_text_without_colour_codes_when_stderr_is_a_pipe() {
    let (_db, cp) = queued_mail_and_no_relay();
    // systemd's variable for another stream (stderr here is a pipe): still text.
    let out = cp
        .command(&["deliver", "--once", "--at", "2026-04-01T12:00:00Z"])
        .env("JOURNAL_STREAM", "1:2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mail waits"), "{err}");
    assert!(err.contains("ERROR"), "{err}");
    assert!(!err.contains("\x1b["), "ANSI codes in {err:?}");
    let out = cp.run(&["--log-format", "text", "deliver", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mail waits") && !err.contains("\x1b["),
        "{err:?}"
    );
}

#[test]
fn json_lines_for_log_shippers() {
    let (_db, cp) = queued_mail_and_no_relay();
    let out = cp.run(&["--log-format", "json", "deliver", "--once"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let line = lines
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("mail waits"))
        })
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(line["level"], "ERROR");
    // In the message's span: its outbox id and its case, not its recipient.
    assert!(line["span"]["outbox_id"].as_i64().is_some(), "{line}");
    assert_eq!(line["span"]["case"], "KN-0001", "{line}");
    assert!(!line.to_string().contains("@ksc.example.org"), "{line}");
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("connect"),
        "{line}"
    );
    // No line names a person (the case file's names) or a child.
    assert!(
        !err.contains("A Worker") && !err.contains("T Manager"),
        "{err}"
    );
}

#[test]
fn journald_gets_priorities_and_fields_where_a_journal_runs() {
    // A journal runs where its socket takes a datagram (an empty one, which it discards).
    let socket = "/run/systemd/journal/socket";
    let listening = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.send_to(b"", socket))
        .is_ok();
    if !listening {
        println!("skipped: no systemd journal listening on this machine ({socket})");
        return;
    }
    let (_db, cp) = queued_mail_and_no_relay();
    let child = cp
        .command(&["--log-format", "journald", "deliver", "--once"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let journal = std::process::Command::new("journalctl")
        .args(["-o", "json", "--no-pager", &format!("_PID={pid}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&journal.stdout);
    let entry: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["MESSAGE"]
                .as_str()
                .is_some_and(|m| m.contains("mail waits"))
        })
        .unwrap_or_else(|| panic!("no entry for pid {pid}: {text}"));
    assert_eq!(entry["PRIORITY"], "3", "{entry}");
    assert!(entry["CPWATCH_ERROR"].as_str().is_some(), "{entry}");
}
