//! `cpwatch demo`, the README's first command: a private PostgreSQL, the sample partnership going
//! live over months of history, a simulated month, and the mail written as .eml files named after
//! the summary table's columns, each dated at the simulated instant it was sent.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::London;
use std::collections::BTreeMap;
use std::path::Path;

struct Demo {
    stdout: String,
    /// File name → the message.
    mail: BTreeMap<String, String>,
}

fn demo(days: u32) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("outbox");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args([
            "demo",
            "--out",
            out_dir.to_str().unwrap(),
            "--days",
            &days.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mail = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    Demo { stdout, mail }
}

/// The summary table's rows: (time, about, kind, rule, to, file).
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with("sent (local time)"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // "Mon 2 Mar 09:00" is four words; "cc x@y" two.
            let time = words[..4].join(" ");
            let to_end = words.len() - 1;
            let to = words[7..to_end].join(" ");
            vec![
                time,
                words[4].to_owned(),
                words[5].to_owned(),
                words[6].to_owned(),
                to,
                words[to_end].to_owned(),
            ]
        })
        .collect()
}

fn header(mail: &str, name: &str) -> String {
    let head = mail.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if let Some(v) = line.strip_prefix(&format!("{name}: ")) {
            let mut v = v.to_owned();
            while lines.peek().is_some_and(|l| l.starts_with(' ')) {
                v.push_str(lines.next().unwrap());
            }
            return v;
        }
    }
    panic!("no {name} in {mail}")
}

/// The local instant a file's name begins with (`2026-03-12_0900_...`).
fn named_time(file: &str) -> DateTime<Utc> {
    let local = NaiveDateTime::parse_from_str(&file[..15], "%Y-%m-%d_%H%M").unwrap();
    London
        .from_local_datetime(&local)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn count(rows: &[Vec<String>], about: &str, kind: &str) -> usize {
    rows.iter()
        .filter(|r| r[1] == about && r[2] == kind)
        .count()
}

#[test]
fn demo_simulates_a_month_and_writes_the_mail() {
    let d = demo(30);
    let stdout = &d.stdout;
    assert_eq!(d.mail.len(), 97, "{stdout}");
    assert!(stdout.contains("97 message(s) written"), "{stdout}");
    let rows = rows(stdout);
    assert_eq!(rows.len(), 97);
    // Each .eml file is a row of the table, named by its time, case or dispute and kind, and
    // dated at the simulated instant it was sent.
    for r in &rows {
        let file = &r[5];
        let mail = d
            .mail
            .get(file)
            .unwrap_or_else(|| panic!("{file} not written"));
        assert!(file.contains(&format!("_{}_{}_", r[1], r[2])), "{r:?}");
        let date = DateTime::parse_from_rfc2822(&header(mail, "Date")).unwrap();
        assert_eq!(date.with_timezone(&Utc), named_time(file), "{file}");
        let local = named_time(file).with_timezone(&London);
        assert_eq!(local.format("%a %-d %b %H:%M").to_string(), r[0], "{file}");
    }
    // What was sent, case by case and dispute by dispute.
    let per_about: BTreeMap<&str, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r[1].as_str()).or_default() += 1;
        m
    });
    let expected: BTreeMap<&str, usize> = [
        ("D-K1", 21),
        ("D-L1", 9),
        ("D-P1", 12),
        ("D-R1", 13),
        ("KN-0001", 5),
        ("KN-0002", 8),
        ("KN-0003", 2),
        ("KN-0004", 1),
        ("KN-0005", 17),
        ("KN-0006", 7),
        ("knowsley", 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_about, expected, "{stdout}");

    // Going live: one summary to each team manager with lapsed work, on the first morning.
    let summaries: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == "go_live_summary").collect();
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|r| r[0] == "Mon 2 Mar 09:00"));
    let tm3 = &d.mail[&summaries
        .iter()
        .find(|r| r[4] == "tm3@ksc.example.org")
        .unwrap()[5]];
    assert!(
        header(tm3, "Subject")
            .starts_with("Already overdue when cpwatch started: 3 timescales on 2 of your"),
        "{tm3}"
    );
    assert!(
        tm3.contains("Case KN-0005:") && tm3.contains("Case KN-0006:"),
        "{tm3}"
    );
    // No individual notice about a deadline that lapsed before then (KN-0005's conference was
    // due on 23 February): its first mail is the reminder for the meeting of 16 March.
    assert!(!rows
        .iter()
        .any(|r| r[1] == "KN-0005" && r[3] == "icpc-within-15wd"));

    // KN-0002: the conference never held, escalated to the service manager on Monday 30 March.
    let row = rows
        .iter()
        .find(|r| {
            r[0] == "Mon 30 Mar 09:00"
                && r[2] == "overdue_escalation"
                && r[4] == "service.manager@ksc.example.org"
        })
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(row[1], "KN-0002");
    let escalation = &d.mail[&row[5]];
    assert!(
        escalation.contains("Subject: KN-0002 escalated to you:"),
        "{escalation}"
    );
    // KN-0005: the school's report never came: the chair's letter to the head teacher, who is
    // the school's safeguarding lead and senior manager, once, the chair copied.
    assert_eq!(count(&rows, "KN-0005", "cause_for_concern"), 2);
    assert!(rows
        .iter()
        .any(|r| r[2] == "cause_for_concern" && r[4] == "head@millbrook.example.org"));
    assert!(rows
        .iter()
        .any(|r| r[2] == "cause_for_concern" && r[4] == "cc chair@ksc.example.org"));
    // KN-0006: the child not seen: the chair's challenge to the team and service managers.
    let challenge: Vec<&str> = rows
        .iter()
        .filter(|r| r[1] == "KN-0006" && r[2] == "overdue_escalation")
        .map(|r| r[4].as_str())
        .collect();
    assert_eq!(
        challenge,
        [
            "tm3@ksc.example.org",
            "service.manager@ksc.example.org",
            "cc chair@ksc.example.org"
        ]
    );
    // KN-0004's team manager has no address: the data-quality notice goes to the admin address.
    assert!(rows.iter().any(|r| r[1] == "KN-0004"
        && r[2] == "data_quality"
        && r[4] == "cp-admin@lscp.example.org"));

    // The four ladders.
    assert!(
        stdout.contains("3→4 Thu 19 Mar 17:00 (timescale lapsed); open at stage 4 at the end"),
        "D-K1 lapses to the top: {stdout}"
    );
    assert_eq!(
        count(&rows, "D-K1", "overdue"),
        2,
        "the weekly notice after the last stage"
    );
    assert!(
        stdout.contains("resolved at stage 2 Thu 5 Mar 14:00"),
        "D-L1 resolved early: {stdout}"
    );
    assert_eq!(count(&rows, "D-L1", "escalation_outcome"), 4);
    let at_once: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r[1] == "D-P1" && r[0] == "Fri 6 Mar 20:00")
        .collect();
    assert_eq!(
        at_once.len(),
        4,
        "immediate risk: told at once, on a Friday evening"
    );
    assert!(at_once
        .iter()
        .any(|r| r[4] == "contact.referral@ksc.example.org"));
    assert!(
        stdout.contains("stages 1→3 Wed 11 Mar 17:00 (timescale lapsed)"),
        "D-R1's step 2 is one person, so it is passed over: {stdout}"
    );
    assert!(!rows.iter().any(|r| r[3] == "richmond-kingston-6-step:2"));
}

#[test]
fn the_closing_summary_stays_true_for_a_short_run() {
    let d = demo(3);
    let rows = rows(&d.stdout);
    assert_eq!(d.mail.len(), rows.len());
    assert_eq!(rows.len(), 7, "{}", d.stdout);
    let end = "2026-03-05T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
    assert!(rows.iter().all(|r| named_time(&r[5]) < end));
    let story = d.stdout.split("What the sample's history").nth(1).unwrap();
    assert!(
        story.contains("from Mon 2 Mar to Thu 5 Mar 2026"),
        "{story}"
    );
    // Nothing is claimed that did not happen in three days.
    let line_after = |about: &str| -> String {
        let mut lines = story
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(about));
        lines.next();
        lines.next().unwrap_or_default().trim().to_owned()
    };
    assert_eq!(line_after("KN-0002"), "in these days: nothing was sent");
    assert_eq!(line_after("D-P1"), "not raised yet in these days");
    assert_eq!(line_after("D-R1"), "not raised yet in these days");
    assert_eq!(
        line_after("D-L1"),
        "in these days: stages 1→2 Tue 3 Mar 17:00 (timescale lapsed); open at stage 2 at the end"
    );
    assert!(!story.contains("open at stage 4"));
    assert!(Path::new(env!("CARGO_BIN_EXE_cpwatch")).exists());
}
