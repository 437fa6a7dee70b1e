//! `cpwatch import --format cin-census`: a census extract written by hand in the DfE schema
//! (tests/fixtures/cin-census-2025.xml, seven fictional children whose histories meet and miss
//! each census-derived rule), imported, evaluated, re-imported from a later extract
//! (cin-census-2025-later.xml) and imported twice; bad extracts, an unknown authority, the role
//! mapping, and a database dump that holds none of the children's personal characteristics.
//!
//! The children (evaluated at Monday 2 June 2025, 09:00):
//! - A DfEX0000001: conference in time, plan, first review in time — nothing due.
//! - B DfEX0000002: enquiry from 1 April, no conference (15 working days end 24 April after
//!   Easter; the census's own target says 22 April) — overdue, and a calendar disagreement.
//!   The later extract records the conference (late), so the overdue notices are withdrawn.
//! - C DfEX0000003: two enquiries in one episode (the first needed no conference, the second's
//!   was late), then a second episode whose conference is coming due — a reminder. The later
//!   extract moves that enquiry's start by a day.
//! - D DfEX0000004: plan from 20 January, no review — the 3-month review is overdue. The later
//!   extract adds it.
//! - E DfEX0000005: plan ended 10 March, child in need plan closed 15 April (within 3 months) —
//!   the S14 alert. The later extract no longer has that end date.
//! - F DfEX0000006: unborn on a plan, born 5 March, reviewed 18 March — nothing due.
//! - G DfEX0000007: a referral with no further action, closed — nothing due.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const EXTRACT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cin-census-2025.xml"
);
const LATER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cin-census-2025-later.xml"
);
const AT: &str = "2025-06-02T09:00:00Z";

const ROLES: &str = "child,role,person\n\
                     *,team_manager,p-tm1\n\
                     *,conference_chair,p-ch1\n\
                     *,senior_manager,p-sm1\n\
                     *,social_worker,p-sw1\n\
                     DfEX0000002,social_worker,p-sw2\n";

/// The partnership's people, imported from a case file with no cases.
fn people() -> String {
    json!({
        "partnership": "knowsley",
        "agencies": [{"id": "ksc", "name": "Knowsley Children's Social Care"}],
        "people": [
            {"id": "p-sw1", "name": "A Worker", "email": "sw1@ksc.example.org", "agency": "ksc", "manager": "p-tm1"},
            {"id": "p-sw2", "name": "B Worker", "email": "sw2@ksc.example.org", "agency": "ksc", "manager": "p-tm1"},
            {"id": "p-tm1", "name": "T Manager", "email": "tm1@ksc.example.org", "agency": "ksc", "manager": "p-sm1"},
            {"id": "p-sm1", "name": "S Manager", "email": "sm1@ksc.example.org", "agency": "ksc"},
            {"id": "p-ch1", "name": "C Chair", "email": "chair1@ksc.example.org", "agency": "ksc", "manager": "p-sqa"},
            {"id": "p-sqa", "name": "Q Manager", "email": "sqa@ksc.example.org", "agency": "ksc"}
        ]
    })
    .to_string()
}

struct Setup {
    db: TestDb,
    cp: Cpwatch,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let db = TestDb::new();
        let cp = Cpwatch::new(&db, None);
        cp.setup(&people());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("roles.csv"), ROLES).unwrap();
        Setup { db, cp, dir }
    }
    fn roles(&self) -> String {
        self.dir.path().join("roles.csv").display().to_string()
    }
    fn import(&self, file: &str, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["import", "--format", "cin-census", file];
        args.extend_from_slice(extra);
        self.cp.run(&args)
    }
    fn import_ok(&self, file: &str) -> String {
        let out = self.import(file, &["--roles", &self.roles()]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn write_xml(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// (case, rule, step) of every notice, sorted.
fn notices(list: &[Value]) -> BTreeSet<(String, String, String)> {
    list.iter()
        .map(|n| {
            (
                n["case"].as_str().unwrap_or("-").to_owned(),
                n["rule"].as_str().unwrap().to_owned(),
                n["step"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn has(set: &BTreeSet<(String, String, String)>, case: &str, rule: &str, step: &str) -> bool {
    set.iter()
        .any(|(c, r, s)| c == case && r == rule && s.starts_with(step))
}

#[test]
fn a_census_extract_is_imported_evaluated_and_reimported() {
    let s = Setup::new();
    let out = s.import_ok(EXTRACT);
    assert!(
        out.contains("into knowsley (local authority 340): 7 children, 8 cases"),
        "{out}"
    );
    assert!(
        out.contains("Child DfEX0000002, CINdetails[1]/Section47[1]: the census's InitialCPCtarget is 2025-04-22, cpwatch's 15 working days from 2025-04-01 end on 2025-04-24"),
        "{out}"
    );

    let got = notices(&s.cp.dry_run(AT));
    let b = "DfEX0000002-2025-03-31";
    assert!(has(&got, b, "icpc-within-15wd", "overdue"), "{got:?}");
    assert!(has(&got, b, "icpc-within-15wd", "escalation-1"), "{got:?}");
    assert!(
        has(&got, b, "data-quality", "census-icpc-target-2025-04-01"),
        "{got:?}"
    );
    // Each enquiry has its own clock: C's second episode is coming due, its first is not.
    assert!(
        has(
            &got,
            "DfEX0000003-2025-05-01",
            "icpc-within-15wd",
            "reminder"
        ),
        "{got:?}"
    );
    assert!(
        has(
            &got,
            "DfEX0000004-2024-12-30",
            "first-review-3-months",
            "overdue"
        ),
        "{got:?}"
    );
    assert!(
        has(
            &got,
            "DfEX0000005-2024-09-09",
            "cin-after-plan-3-months",
            ""
        ),
        "{got:?}"
    );
    for quiet in [
        "DfEX0000001",
        "DfEX0000003-2025-01-31",
        "DfEX0000006",
        "DfEX0000007",
    ] {
        assert!(
            !got.iter().any(|(c, _, _)| c.starts_with(quiet)),
            "{quiet} should have nothing due: {got:?}"
        );
    }
    // A census strategy discussion or conference starts only the rules the census can also
    // see completed: nothing about minutes, core groups or visits.
    let census_rules = [
        "icpc-within-15wd",
        "first-review-3-months",
        "review-every-6-months",
        "cin-after-plan-3-months",
        "unborn-review-28-days",
        "data-quality",
    ];
    for (c, r, _) in &got {
        assert!(
            census_rules.contains(&r.as_str()),
            "{c}: {r} from census data"
        );
    }

    // Queue them; a case system also writes an event of its own on B's case.
    s.cp.ok(&["evaluate", "--at", AT]);
    let queued_b = s.db.count(&format!(
        "SELECT count(*) AS n FROM outbox WHERE case_ref = '{b}' AND rule = 'icpc-within-15wd' AND status = 'pending'"
    ));
    assert!(queued_b >= 2, "{queued_b}");
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!(
            "INSERT INTO case_events (case_id, kind, at, source, source_id) \
             SELECT id, 'child_seen', '2025-05-20T10:00:00Z', 'direct', 'visit-77' FROM cases WHERE ref = '{b}'"
        )),
        &mut s.db.conn(),
    )
    .unwrap();

    // The later extract: B's conference recorded, D's review added, C's enquiry moved a day,
    // E's child in need plan end gone.
    let out = s.import_ok(LATER);
    assert!(
        out.contains("census events: 2 added, 1 moved or changed, 1 removed"),
        "{out}"
    );
    let out = s.cp.ok(&["evaluate", "--at", "2025-06-02T09:05:00Z"]);
    assert!(!out.contains(" 0 queued message(s) withdrawn"), "{out}");
    assert_eq!(
        s.db.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE case_ref = '{b}' AND rule = 'icpc-within-15wd' AND status = 'pending'"
        )),
        0,
        "the conference is recorded: its overdue notices are withdrawn"
    );
    // Everything due after that pass, queued already or not (a dry run now shows only what is new).
    let got = notices(&s.cp.due("2025-06-02T09:05:00Z"));
    assert!(!has(&got, b, "icpc-within-15wd", ""), "{got:?}");
    assert!(
        !has(&got, "DfEX0000004-2024-12-30", "first-review-3-months", ""),
        "{got:?}"
    );
    assert!(
        !has(
            &got,
            "DfEX0000005-2024-09-09",
            "cin-after-plan-3-months",
            ""
        ),
        "{got:?}"
    );
    assert!(
        has(
            &got,
            "DfEX0000003-2025-05-01",
            "icpc-within-15wd",
            "reminder"
        ),
        "{got:?}"
    );
    // The case system's own event is untouched; the move is one event, not two.
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM case_events WHERE source = 'direct' AND source_id = 'visit-77'"),
        1
    );
    assert_eq!(
        s.db.count(
            "SELECT count(*) AS n FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE c.ref = 'DfEX0000003-2025-05-01' AND e.kind = 'strategy_discussion_held'"
        ),
        1
    );
    // Every change is in the audit log, with its source.
    assert!(
        s.db.count(
            "SELECT count(*) AS n FROM audit_log WHERE action = 'events_changed' AND actor = 'cin-census' \
             AND jsonb_array_length(detail->'corrected') = 1 AND subject = 'knowsley/case/DfEX0000003-2025-05-01'"
        ) == 1
    );

    // The same extract again changes nothing.
    let before = snapshot(&s.db);
    let audits = s.db.count("SELECT count(*) AS n FROM audit_log");
    let out = s.import_ok(LATER);
    assert!(
        out.contains("census events: 0 added, 0 moved or changed, 0 removed"),
        "{out}"
    );
    assert_eq!(snapshot(&s.db), before);
    assert_eq!(s.db.count("SELECT count(*) AS n FROM audit_log"), audits);
}

/// Every case event and case row, as text.
fn snapshot(db: &TestDb) -> String {
    #[derive(diesel::QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let r: T = diesel::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY t.id), '') AS v FROM \
             (SELECT id, case_id, kind, at, data, source, source_id FROM case_events) t",
        ),
        &mut db.conn(),
    )
    .unwrap();
    r.v
}

#[test]
fn a_bad_extract_is_refused_whole_with_line_and_element() {
    let s = Setup::new();
    let text = std::fs::read_to_string(EXTRACT)
        .unwrap()
        .replace(
            "<DateOfInitialCPC>2025-03-31</DateOfInitialCPC>",
            "<DateOfInitialCPC>2025-02-30</DateOfInitialCPC>",
        )
        .replace(
            "<PersonBirthDate>2014-02-11</PersonBirthDate>",
            "<PersonBirthDate>2014-13-11</PersonBirthDate>",
        );
    let line = text.lines().position(|l| l.contains("2025-02-30")).unwrap() + 1;
    let path = s.write_xml("bad.xml", &text);
    let out = s.import(&path, &["--roles", &s.roles()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "line {line}, Child DfEX0000003, CINdetails[1]/Section47[2]/DateOfInitialCPC: \"2025-02-30\" is not a date"
        )),
        "{err}"
    );
    assert!(
        err.contains("Child DfEX0000001, ChildIdentifiers/PersonBirthDate: is not a date"),
        "{err}"
    );
    assert!(
        !err.contains("2014-13-11"),
        "a birth date is never repeated: {err}"
    );
    assert_eq!(
        s.db.count("SELECT count(*) AS n FROM cases"),
        0,
        "nothing written"
    );

    // Not XML, cut short, or endless: refused, nothing written.
    for (name, body) in [
        ("cut.xml", text[..text.len() / 2].to_owned()),
        ("json.xml", people()),
    ] {
        let path = s.write_xml(name, &body);
        let out = s.import(&path, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = s.import("/dev/zero", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(s.db.count("SELECT count(*) AS n FROM cases"), 0);
}

#[test]
fn an_extract_for_another_authority_is_refused_unless_the_partnership_is_named() {
    let s = Setup::new();
    let text = std::fs::read_to_string(EXTRACT)
        .unwrap()
        .replace("<LEA>340</LEA>", "<LEA>999</LEA>");
    let path = s.write_xml("other.xml", &text);
    let out = s.import(&path, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"999\" is not the local authority code of any configured partnership"),
        "{err}"
    );
    assert_eq!(s.db.count("SELECT count(*) AS n FROM cases"), 0);
    let out = s.import(&path, &["--partnership", "knowsley", "--roles", &s.roles()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.db.count("SELECT count(*) AS n FROM cases"), 8);
    // The census options mean nothing to a JSON case file: said, not ignored.
    let out = s.cp.run(&["import", "--partnership", "knowsley", &path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("are for --format cin-census"));
}

#[test]
fn a_case_nobody_manages_gets_a_data_quality_notice() {
    let s = Setup::new();
    let out = s.import(EXTRACT, &[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("8 case(s) have no team manager in the role mapping"),
        "{stdout}"
    );
    let got = s.cp.dry_run(AT);
    let unmanaged: Vec<&Value> = got
        .iter()
        .filter(|n| n["step"] == "census-roles-unknown")
        .collect();
    // Every open case, with or without anything due, to the admin address.
    assert_eq!(unmanaged.len(), 6, "{got:?}");
    assert!(unmanaged
        .iter()
        .all(|n| n["to"] == json!(["admin@lscp.example.org"])));
}

#[test]
fn no_personal_characteristic_is_stored_logged_or_printed() {
    let s = Setup::new();
    let out = s.import(EXTRACT, &["--roles", &s.roles()]);
    assert!(out.status.success());
    let eval = s.cp.run(&["evaluate", "--at", AT]);
    let dump = std::process::Command::new("pg_dump")
        .arg(&s.db.url)
        .output()
        .expect("pg_dump");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("DfEX0000002-2025-03-31"),
        "the dump holds the cases"
    );
    assert!(
        dump.contains("2025-03-05"),
        "the unborn child's birth is kept for its rule"
    );
    let said = [out, eval]
        .iter()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect::<String>();
    for secret in [
        "A123456789012", // UPN
        "B987654321098", // UPN
        "X98765432109B", // former UPN
        "2014-02-11",    // birth dates of children born before their episode
        "2016-07-19",
        "2015-06-01",
        "2025-03-01", // an expected birth date
        "2099-01-01", // a death date
        "WBRI",       // ethnicity
        "HAND",       // disabilities
        "HEAR",
        "GenderCurrent",
        "Ethnicity",
    ] {
        assert!(!dump.contains(secret), "{secret} is in the database dump");
        assert!(!said.contains(secret), "{secret} was printed or logged");
    }
}
