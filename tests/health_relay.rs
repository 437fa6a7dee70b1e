//! `cpwatch health`'s login to the relay: a wrong password is red with the relay's answer and
//! what to fix (never the password); the right one is green; nothing is sent either way.

mod common;
mod fault_support;
mod relay_support;

use fault_support::*;
use relay_support::Relay;

#[test]
fn health_logs_in_to_the_relay_and_says_when_our_credentials_are_refused() {
    let db = common::TestDb::new();
    let relay = Relay::start();
    relay.require_login("cpwatch", "right-horse-battery");
    let wrong = daemon(&db.url, relay.port)
        .with("CPWATCH_SMTP__USERNAME", "cpwatch")
        .with("CPWATCH_SMTP__PASSWORD", "wrong-horse-battery");
    wrong.ok(&["migrate"]);
    let out = wrong.run(&["health"]);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("FAIL relay-login"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("535") && line.contains("smtp.username"),
        "{line}"
    );
    assert!(!text.contains("wrong-horse-battery"), "{text}");
    assert_eq!(relay.refused_logins(), 1);

    let right = daemon(&db.url, relay.port)
        .with("CPWATCH_SMTP__USERNAME", "cpwatch")
        .with("CPWATCH_SMTP__PASSWORD", "right-horse-battery");
    let out = right.run(&["health", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let login = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "relay-login")
        .unwrap()
        .clone();
    assert_eq!(login["ok"], true, "{doc}");
    assert!(login["detail"]
        .as_str()
        .unwrap()
        .contains("accepted our login"));
    assert_eq!(relay.refused_logins(), 1);
    assert!(relay.accepted().is_empty(), "a probe sends nothing");
}
