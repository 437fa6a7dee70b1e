//! The 90-day measurement of issue 13: messages per person per working day with digests off
//! and on, over a realistic caseload (25 cases per team manager, several teams). Ignored by
//! default (it simulates 2 × 90 days hour by hour); run it with
//!
//! ```sh
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo test --test digest_volume -- --ignored --nocapture
//! ```
//!
//! `CPWATCH_VOLUME_TEAMS` (default 4) and `CPWATCH_VOLUME_DAYS` (default 90) change the size.
//! Each run gets its own database; the caseload is generated from a fixed seed, so both runs
//! (and every run) see the same cases. It prints, per kind of person, how many people, the
//! mean messages per person per working day and the most any one person got on one day; then,
//! for one typical working day (the median-volume working day of the middle third of the run),
//! the subject lines one reader of each kind received that day with digests off and on (the
//! reader of that kind with most messages that day; for one with none, their next day with
//! mail too), read back from the messages as written.
//!
//! The caseload: per team one team manager and five social workers with five cases each; two
//! conference chairs and one senior manager for the partnership. 70% of the cases are on a plan
//! when the simulation starts (initial conference 3 weeks to 6 months earlier), 30% start during
//! it (strategy discussion, conference, plan). While on a plan: the child is seen every 10-26
//! days, core groups meet every 3½-4 weeks with minutes three days later, reviews at 3 months
//! then every 6 months; one step in ten is done late (so reminders, due-today, overdue and
//! escalation mail all occur). The partnership goes live at the start (nothing older is mailed
//! but the go-live summaries).

mod common;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc, Weekday};
use common::*;
use cpwatch::jobs::delivery::Delivery;
use cpwatch::jobs::evaluation::{EvaluationPass, Mode};
use cpwatch::jobs::Runtime;
use cpwatch::mail::{Channel, Renderer};
use cpwatch::settings::Settings;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Monday 2 March 2026, 00:00 UTC (GMT).
fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// A small deterministic generator (xorshift64*): the same caseload every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In [lo, hi].
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Day `d` (from the start) at `hour`:00 UTC, moved to the next Monday if it is a weekend.
fn on(d: i64, hour: u32) -> DateTime<Utc> {
    let mut t = start() + Duration::days(d) + Duration::hours(i64::from(hour));
    while matches!(t.weekday(), Weekday::Sat | Weekday::Sun) {
        t += Duration::days(1);
    }
    t
}

fn ev(kind: &str, at: DateTime<Utc>, extra: Value) -> Value {
    let mut e = json!({"kind": kind, "at": at.to_rfc3339()});
    if let Value::Object(m) = extra {
        e.as_object_mut().unwrap().extend(m);
    }
    e
}

/// Late by a few days one time in ten.
fn slip(rng: &mut Rng, late_by: (i64, i64)) -> i64 {
    if rng.chance(10) {
        rng.between(late_by.0, late_by.1)
    } else {
        0
    }
}

/// A case's events from its strategy discussion (two weeks before its initial conference on
/// day `icpc`) to the end of the simulation.
fn plan_events(rng: &mut Rng, icpc: i64, days: i64, case: usize) -> Vec<Value> {
    let d0 = icpc - 14;
    let mut out = vec![
        ev(
            "strategy_discussion_held",
            on(d0, 10),
            json!({"s47_initiated": true}),
        ),
        ev("strategy_decisions_recorded", on(d0, 16), json!({})),
        ev("strategy_minutes_circulated", on(d0 + 1, 12), json!({})),
        ev("icpc_held", on(icpc, 10), json!({"outcome": "plan"})),
    ];
    for (kind, after) in [
        ("decisions_circulated", 0),
        ("outline_plan_recorded", 0),
        ("family_debriefed", 2),
        ("minutes_circulated", 10),
        ("minutes_sent_to_family", 10),
        ("single_assessment_updated", 15),
        ("plan_audit_done", 15),
    ] {
        let d = icpc + after + slip(rng, (3, 8));
        out.push(ev(kind, on(d, 15), json!({})));
    }
    let mut seen = icpc;
    while seen < days {
        seen += rng.between(10, 26) + slip(rng, (5, 9));
        out.push(ev("child_seen", on(seen, 14), json!({})));
    }
    let mut core = icpc + 7;
    while core < days {
        out.push(ev("core_group_held", on(core, 11), json!({})));
        let minutes = core + 3 + slip(rng, (4, 8));
        out.push(ev(
            "core_group_minutes_circulated",
            on(minutes, 16),
            json!({}),
        ));
        core += rng.between(24, 28) + slip(rng, (2, 6));
    }
    let mut review = icpc + 85;
    let mut n = 0;
    while review < days + 40 {
        let meeting = format!("rcpc-{case}-{n}");
        let at = on(review, 10);
        out.push(json!({"kind": "rcpc_scheduled", "at": at.to_rfc3339(),
                        "recorded_at": (at - Duration::days(28)).to_rfc3339(), "meeting": meeting}));
        let report = review - 6 - slip(rng, (-3, -1));
        out.push(ev(
            "report_received",
            on(report, 12),
            json!({"meeting": meeting, "agency": "ksc"}),
        ));
        out.push(ev(
            "rcpc_held",
            at,
            json!({"outcome": "continue", "meeting": meeting}),
        ));
        review += 180;
        n += 1;
    }
    out
}

/// A case that starts during the simulation: strategy discussion on day `d0`, conference
/// two weeks later.
fn new_case_events(rng: &mut Rng, d0: i64, days: i64, case: usize) -> Vec<Value> {
    let meeting = format!("icpc-{case}");
    let icpc = d0 + 14;
    let at = on(icpc, 10);
    let mut out = vec![
        json!({"kind": "icpc_scheduled", "at": at.to_rfc3339(),
               "recorded_at": on(d0 + 2, 10).to_rfc3339(), "meeting": meeting}),
        ev(
            "single_assessment_sent",
            on(icpc - 5 + slip(rng, (3, 4)), 12),
            json!({"meeting": meeting}),
        ),
        ev(
            "single_assessment_shared",
            on(icpc - 2, 12),
            json!({"meeting": meeting}),
        ),
        ev(
            "chair_met_family",
            on(icpc - 1, 12),
            json!({"meeting": meeting}),
        ),
    ];
    out.extend(plan_events(rng, icpc, days, case));
    out
}

/// The case file, and each person's e-mail address with the kind of person they are.
fn caseload(teams: usize, days: i64) -> (String, BTreeMap<String, &'static str>) {
    let mut rng = Rng(0x5EED_CAFE_F00D);
    let mut people = vec![
        json!({"id": "sm", "name": "S M", "email": "sm@ksc.example.org", "agency": "ksc"}),
        json!({"id": "sqa", "name": "Q M", "email": "sqa@ksc.example.org", "agency": "ksc"}),
    ];
    let mut kinds = BTreeMap::from([
        ("sm@ksc.example.org".to_owned(), "senior manager"),
        ("sqa@ksc.example.org".to_owned(), "safeguarding lead"),
    ]);
    for c in 0..2 {
        let email = format!("chair{c}@ksc.example.org");
        people.push(json!({"id": format!("ch{c}"), "name": "C", "email": email, "agency": "ksc", "manager": "sqa"}));
        kinds.insert(email, "conference chair");
    }
    let mut cases = Vec::new();
    for t in 0..teams {
        let tm = format!("tm{t}");
        people.push(json!({"id": tm, "name": "T", "email": format!("{tm}@ksc.example.org"), "agency": "ksc", "manager": "sm"}));
        kinds.insert(format!("{tm}@ksc.example.org"), "team manager");
        for w in 0..5 {
            let sw = format!("sw{t}-{w}");
            people.push(json!({"id": sw, "name": "W", "email": format!("{sw}@ksc.example.org"), "agency": "ksc", "manager": tm}));
            kinds.insert(format!("{sw}@ksc.example.org"), "social worker");
            for k in 0..5 {
                let n = cases.len();
                let events = if rng.chance(30) {
                    let d0 = rng.between(0, (days - 25).max(0));
                    new_case_events(&mut rng, d0, days, n)
                } else {
                    let icpc = -rng.between(21, 180);
                    plan_events(&mut rng, icpc, days, n)
                };
                let roles = json!({"social_worker": sw, "team_manager": tm, "senior_manager": "sm",
                                   "conference_chair": format!("ch{}", (t + k) % 2)});
                cases.push(
                    json!({"ref": format!("KN-{:04}", n + 1), "roles": roles, "events": events}),
                );
            }
        }
    }
    let file = json!({
        "partnership": "knowsley",
        "agencies": [{"id": "ksc", "name": "Knowsley Children's Social Care", "roles": {"safeguarding_lead": "sqa"}}],
        "people": people,
        "partnership_roles": {},
        "cases": cases,
    });
    (file.to_string(), kinds)
}

type PerDay = HashMap<(String, chrono::NaiveDate), usize>;

/// The messages one person received on one local day: (local time, subject), in sending order.
type Subjects = HashMap<(String, chrono::NaiveDate), Vec<(String, String)>>;

/// One run: messages per (recipient, local day), per kind, and each message's subject.
struct Run {
    per_day: PerDay,
    per_kind: BTreeMap<String, usize>,
    subjects: Subjects,
}

/// A header's value, unfolded, with RFC 2047 `=?utf-8?b?...?=` words decoded.
fn header(mail: &str, name: &str) -> Option<String> {
    let head = mail.split("\r\n\r\n").next()?;
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        if line.to_ascii_lowercase().starts_with(&prefix) {
            let mut words = vec![line[prefix.len()..].trim().to_owned()];
            while let Some(more) = lines.next_if(|l| l.starts_with(' ') || l.starts_with('\t')) {
                words.push(more.trim().to_owned());
            }
            return Some(decode_words(&words.join(" ")));
        }
    }
    None
}

/// Decode encoded words (adjacent ones join without the space between them).
fn decode_words(value: &str) -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    let mut last_encoded = false;
    for (i, word) in value.split(' ').enumerate() {
        let lower = word.to_ascii_lowercase();
        let encoded = lower.starts_with("=?utf-8?b?") && lower.ends_with("?=");
        if i > 0 && !(encoded && last_encoded) {
            bytes.push(b' ');
        }
        match encoded {
            true => {
                let b64 = &word[10..word.len() - 2];
                let decoded = base64::engine::general_purpose::STANDARD.decode(b64);
                bytes.extend(decoded.unwrap_or_else(|_| word.as_bytes().to_vec()));
            }
            false => bytes.extend(word.as_bytes()),
        }
        last_encoded = encoded;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The messages written to `dir` since the last look (`seen`): (recipient, local time, subject).
fn new_messages(
    dir: &std::path::Path,
    seen: &mut HashSet<String>,
) -> Vec<(String, String, String)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !seen.contains(n))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let mail = std::fs::read_to_string(dir.join(&name)).unwrap();
        let to = header(&mail, "To").unwrap_or_default();
        let subject = header(&mail, "Subject").unwrap_or_default();
        let time = format!("{}:{}", &name[11..13], &name[13..15]);
        out.push((to, time, subject));
        seen.insert(name);
    }
    out
}

/// Messages sent per (recipient, local day) and per kind, simulating `days` days hour by hour.
fn simulate(digests: bool, teams: usize, days: i64) -> Run {
    let db = TestDb::new();
    let mut conn = db.conn();
    cpwatch::store::migrate(&mut conn).unwrap();
    let (file, _) = caseload(teams, days);
    cpwatch::import::import(&mut conn, "volume", &file, &["knowsley".to_owned()]).unwrap();
    cpwatch::store::go_live::set(&mut conn, "knowsley", start()).unwrap();
    let mut settings = Settings::defaults_with_database(&db.url).unwrap();
    settings.digest.enabled = digests;
    settings.digest.roles = [
        "social_worker",
        "team_manager",
        "conference_chair",
        "senior_manager",
    ]
    .map(String::from)
    .to_vec();
    let runtime = Runtime::load(&settings, &mut conn);
    let tz = runtime.tz_of("knowsley");
    let out = tempfile::tempdir().unwrap();
    let channel = Channel::files(out.path());
    let renderer = Renderer::new(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut per_day = PerDay::new();
    let mut per_kind = BTreeMap::new();
    let mut subjects = Subjects::new();
    rt.block_on(async {
        let delivery = Delivery {
            runtime: &runtime,
            channel: &channel,
            renderer: &renderer,
            from: &settings.smtp.from,
            batch_size: 500,
            lease_seconds: 60,
            max_attempts: 3,
            working_hours_only: true,
            control: Default::default(),
        };
        let mut seen = HashSet::new();
        let mut files = HashSet::new();
        for hour in 0..days * 24 {
            let now = start() + Duration::hours(hour);
            let pass = EvaluationPass {
                runtime: &runtime,
                now,
                mode: Mode::Write,
                full: false,
                batch_size: 500,
            };
            tokio::task::block_in_place(|| pass.run(&mut conn, &mut |_| {})).unwrap();
            while delivery.run_once(&mut conn, now).await.unwrap().handled() > 0 {}
            for line in cpwatch::store::deliveries::sent(&mut conn).unwrap() {
                if seen.insert(line.id) {
                    let day = now.with_timezone(&tz).date_naive();
                    *per_day.entry((line.recipient, day)).or_default() += 1;
                    *per_kind.entry(line.kind).or_default() += 1;
                }
            }
            let day = now.with_timezone(&tz).date_naive();
            for (to, time, subject) in new_messages(out.path(), &mut files) {
                subjects.entry((to, day)).or_default().push((time, subject));
            }
        }
    });
    let digested = db.count("SELECT count(*) AS n FROM deliveries WHERE status = 'digested'");
    per_kind.insert("(carried in digests)".into(), digested as usize);
    Run {
        per_day,
        per_kind,
        subjects,
    }
}

const KINDS: [&str; 5] = [
    "social worker",
    "team manager",
    "conference chair",
    "senior manager",
    "safeguarding lead",
];

/// The typical working day: of the middle third of the run's working days, the one with the
/// median number of messages (digests off; the earlier of two equal).
fn typical_day(per_day: &PerDay, working: &[chrono::NaiveDate]) -> chrono::NaiveDate {
    let third = working.len() / 3;
    let middle = &working[third..working.len() - third];
    let mut by_volume: Vec<(usize, chrono::NaiveDate)> = middle
        .iter()
        .map(|d| {
            let n = per_day
                .iter()
                .filter(|((_, day), _)| day == d)
                .map(|(_, n)| n)
                .sum();
            (n, *d)
        })
        .collect();
    by_volume.sort();
    by_volume[(by_volume.len() - 1) / 2].1
}

/// For one reader of each kind (the one of that kind with most messages on `day`, digests
/// off), the subjects they received that day with digests off and on.
fn print_typical_day(
    off: &Run,
    on: &Run,
    kinds: &BTreeMap<String, &'static str>,
    day: chrono::NaiveDate,
) -> usize {
    let total = |r: &Run| {
        r.per_day
            .iter()
            .filter(|((_, d), _)| *d == day)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    println!(
        "typical working day (median volume of the middle third): {} ({} messages off, {} on)",
        day.format("%A %-d %B %Y"),
        total(off),
        total(on)
    );
    let mut shown = 0;
    for kind in KINDS {
        let count = |e: &String| off.subjects.get(&(e.clone(), day)).map_or(0, Vec::len);
        let Some(reader) = kinds
            .iter()
            .filter(|(_, k)| **k == kind)
            .map(|(e, _)| e)
            .max_by_key(|e| (count(e), std::cmp::Reverse((*e).clone())))
        else {
            continue;
        };
        // A reader with nothing that day: their next day with mail (digests off) as well.
        let next = (count(reader) == 0)
            .then(|| {
                let mut later: Vec<_> = off
                    .subjects
                    .keys()
                    .filter(|(e, d)| e == reader && *d > day)
                    .map(|(_, d)| *d)
                    .collect();
                later.sort();
                later.first().copied()
            })
            .flatten();
        for shown_day in std::iter::once(day).chain(next) {
            shown += print_reader_day(off, on, kind, reader, shown_day);
        }
    }
    shown
}

/// The subjects `reader` received on `day`, digests off and on; how many were printed.
fn print_reader_day(
    off: &Run,
    on: &Run,
    kind: &str,
    reader: &str,
    day: chrono::NaiveDate,
) -> usize {
    let mut shown = 0;
    for (label, run) in [("off", off), ("on", on)] {
        let got = run
            .subjects
            .get(&(reader.to_owned(), day))
            .cloned()
            .unwrap_or_default();
        println!(
            "  {kind} {reader}, {}, digests {label}: {} message(s)",
            day.format("%a %-d %b"),
            got.len()
        );
        for (time, subject) in &got {
            println!("    {time}  {subject}");
            shown += 1;
        }
    }
    shown
}

#[test]
#[ignore = "a 2 × 90-day simulation; run with --ignored --nocapture"]
fn messages_per_person_per_working_day_with_digests_off_and_on() {
    let teams: usize = std::env::var("CPWATCH_VOLUME_TEAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let days: i64 = std::env::var("CPWATCH_VOLUME_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(90);
    let (file, kinds) = caseload(teams, days);
    if let Ok(path) = std::env::var("CPWATCH_VOLUME_DUMP") {
        std::fs::write(path, &file).unwrap();
    }
    let settings = Settings::defaults_with_database("postgres://localhost/x").unwrap();
    let cal = settings.calendar_for(
        &settings.partnerships["knowsley"],
        &cpwatch::calendar::BankHolidays::snapshot(),
    );
    let first = start().date_naive();
    let working: Vec<chrono::NaiveDate> = (0..days)
        .map(|d| first + Duration::days(d))
        .filter(|d| cal.is_working_day(*d))
        .collect();
    let t = std::time::Instant::now();
    let off_run = simulate(false, teams, days);
    let on_run = simulate(true, teams, days);
    let (off, off_kinds) = (&off_run.per_day, &off_run.per_kind);
    let (on, on_kinds) = (&on_run.per_day, &on_run.per_kind);
    println!(
        "{teams} teams x 25 cases ({} cases), {days} days from {first} ({} working days), simulated in {:.0} s",
        teams * 25,
        working.len(),
        t.elapsed().as_secs_f64()
    );
    println!(
        "{:<18} {:>6} | {:>9} {:>9} | {:>9} {:>9}",
        "person", "people", "off mean", "off max", "on mean", "on max"
    );
    let mut totals = (0usize, 0usize);
    for kind in KINDS {
        let who: Vec<&String> = kinds
            .iter()
            .filter(|(_, k)| **k == kind)
            .map(|(e, _)| e)
            .collect();
        let figures = |m: &HashMap<(String, chrono::NaiveDate), usize>| {
            let cell =
                |e: &String, d: &chrono::NaiveDate| m.get(&(e.clone(), *d)).copied().unwrap_or(0);
            let total: usize = who
                .iter()
                .flat_map(|e| working.iter().map(|d| cell(e, d)))
                .sum();
            let max = who
                .iter()
                .flat_map(|e| working.iter().map(|d| cell(e, d)))
                .max()
                .unwrap_or(0);
            (
                total,
                total as f64 / (who.len() * working.len()).max(1) as f64,
                max,
            )
        };
        let (t_off, mean_off, max_off) = figures(off);
        let (t_on, mean_on, max_on) = figures(on);
        totals.0 += t_off;
        totals.1 += t_on;
        println!(
            "{kind:<18} {:>6} | {mean_off:>9.2} {max_off:>9} | {mean_on:>9.2} {max_on:>9}",
            who.len()
        );
    }
    let weekend = |m: &HashMap<(String, chrono::NaiveDate), usize>| {
        m.iter()
            .filter(|((_, d), _)| !cal.is_working_day(*d))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    println!(
        "messages on working days: {} off, {} on; on other days (urgent only): {} off, {} on",
        totals.0,
        totals.1,
        weekend(off),
        weekend(on)
    );
    let all: std::collections::BTreeSet<&String> =
        off_kinds.keys().chain(on_kinds.keys()).collect();
    for kind in all {
        let n = |m: &BTreeMap<String, usize>| m.get(kind).copied().unwrap_or(0);
        println!("  {kind:<22} {:>6} off {:>6} on", n(off_kinds), n(on_kinds));
    }
    let day = typical_day(off, &working);
    let shown = print_typical_day(&off_run, &on_run, &kinds, day);
    let sent_off: usize = off.values().sum();
    let subjects_off: usize = off_run.subjects.values().map(Vec::len).sum();
    assert_eq!(
        subjects_off, sent_off,
        "every message sent was written, with its subject"
    );
    assert!(shown > 0, "the typical day has mail for the readers shown");
    assert!(totals.0 > 0, "the caseload produces mail");
    assert!(totals.1 < totals.0, "digests mean fewer messages");
}
