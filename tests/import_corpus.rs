//! Import, character by character: a corpus of case files, bad in every way the importer knows
//! and good in the ways that matter to the writes, run in order against one database. What each
//! import answered (the whole problem list, or the summary) and the rows it left are compared
//! with a written expectation, tests/fixtures/import-corpus.expected.
//! (`CPWATCH_BLESS=1` rewrites the expectation; read the diff before committing it.)

mod common;

use common::TestDb;
use diesel::prelude::*;
use serde_json::json;

/// A file in the shape every bad case below starts from.
fn base() -> serde_json::Value {
    json!({
        "partnership": "knowsley",
        "agencies": [
            {"id": "ksc", "name": "Children's Social Care", "roles": {"safeguarding_lead": "p-sl1", "senior_manager": "p-sm1"}},
            {"id": "health", "name": "Health", "roles": {"safeguarding_lead": "p-hsl"}}
        ],
        "people": [
            {"id": "p-sw1", "name": "Worker", "email": "sw1@ksc.example.org", "agency": "ksc", "manager": "p-tm1"},
            {"id": "p-tm1", "name": "Manager", "email": "tm1@ksc.example.org", "agency": "ksc", "manager": "p-sm1"},
            {"id": "p-sm1", "name": "Senior", "email": "sm1@ksc.example.org", "agency": "ksc"},
            {"id": "p-sl1", "name": "Lead", "email": "sl1@ksc.example.org", "agency": "ksc"},
            {"id": "p-hsl", "name": "Health lead", "email": "hsl@health.example.org", "agency": "health"},
            {"id": "p-hv1", "name": "Health visitor", "email": "hv1@health.example.org", "agency": "health", "manager": "p-hsl"},
            {"id": "p-chair", "name": "Chair", "email": "chair@lscp.example.org"}
        ],
        "partnership_roles": {"partnership_chair": "p-chair"},
        "cases": [{
            "ref": "KN-0001", "visit_interval_days": 10,
            "roles": {"social_worker": "p-sw1", "team_manager": "p-tm1", "core_group_member": ["p-hv1", "p-sl1"]},
            "events": [
                {"kind": "referral_received", "at": "2026-03-01T09:00:00Z", "referrer": "p-hv1", "verbal": false},
                {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
                {"kind": "icpc_scheduled", "at": "2026-03-20T10:00:00Z", "recorded_at": "2026-03-05T10:00:00Z",
                 "meeting": "m1", "invited_agencies": ["health"], "invitees": {"health": "p-hv1"}},
                {"kind": "report_received", "at": "2026-03-18T10:00:00Z", "meeting": "m1", "agency": "health"},
                {"kind": "icpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "plan", "meeting": "m1"}
            ]
        }],
        "disputes": [{
            "id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1",
            "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "disagreement_at": "2026-03-02T09:00:00Z",
            "immediate_risk": false, "subject": "threshold",
            "events": [
                {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 2, "by": "p-hv1"},
                {"kind": "resolved", "at": "2026-03-04T10:00:00Z", "outcome": "agreed"}
            ]
        }]
    })
}

/// `base()` with `patch` applied: `[path, value]` pairs, a path being keys and indexes.
fn patched(patches: &[(&str, serde_json::Value)]) -> String {
    let mut f = base();
    for (path, value) in patches {
        let mut at = &mut f;
        let parts: Vec<&str> = path.split('/').collect();
        let (last, init) = parts.split_last().unwrap();
        for p in init {
            at = match p.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*p],
            };
        }
        match (last.parse::<usize>(), at) {
            (Ok(i), serde_json::Value::Array(a)) if i >= a.len() => a.push(value.clone()),
            (Ok(i), serde_json::Value::Array(a)) => a[i] = value.clone(),
            (_, serde_json::Value::Object(o)) if value == &json!("<remove>") => {
                o.remove(*last);
            }
            (_, at) => at[*last] = value.clone(),
        }
    }
    f.to_string()
}

fn bad_files() -> Vec<(&'static str, String)> {
    let raw = |s: &str| s.to_owned();
    vec![
        ("syntax: not json", raw("{ not json")),
        ("syntax: empty", raw("")),
        ("syntax: truncated", raw("[1,")),
        ("syntax: trailing", raw(r#"{"partnership": "knowsley"} x"#)),
        (
            "syntax: number too big",
            raw(r#"{"partnership": "knowsley", "x": 1e999}"#),
        ),
        ("root: array", raw("[]")),
        ("root: string", raw(r#""knowsley""#)),
        ("root: null", raw("null")),
        ("root: number", raw("3")),
        ("partnership: missing", raw("{}")),
        ("partnership: null", raw(r#"{"partnership": null}"#)),
        (
            "partnership: number, unknown fields",
            raw(r#"{"zzz": 1, "partnership": 5, "aaa": [2]}"#),
        ),
        (
            "partnership: invalid id",
            raw(r#"{"partnership": "a b", "cases": 7}"#),
        ),
        (
            "partnership: not configured",
            raw(r#"{"partnership": "nowhere", "cases": 7}"#),
        ),
        (
            "containers: wrong types",
            raw(
                r#"{"partnership": "knowsley", "agencies": {}, "people": 3, "cases": "x", "disputes": true, "partnership_roles": []}"#,
            ),
        ),
        (
            "containers: null",
            raw(
                r#"{"partnership": "knowsley", "agencies": null, "people": null, "cases": null, "disputes": null, "partnership_roles": null}"#,
            ),
        ),
        (
            "agencies: every problem",
            patched(&[
                ("agencies/2", json!("not an object")),
                ("agencies/3", json!(null)),
                ("agencies/4", json!({"name": "No id"})),
                ("agencies/5", json!({"id": 5, "name": "Number id"})),
                ("agencies/6", json!({"id": "a b", "name": "Bad id"})),
                (
                    "agencies/7",
                    json!({"id": "school", "roles": {"safeguarding_lead": "p-new", "head": "p-sl1", "senior_manager": ["p-sl1"], "deputy_safeguarding_lead": 3, "lscp_representative": "p-nobody"}, "colour": "red"}),
                ),
                (
                    "agencies/8",
                    json!({"id": "nursery", "name": 7, "roles": "p-sl1"}),
                ),
                (
                    "agencies/9",
                    json!({"id": "pre-school", "name": "Pre", "roles": null}),
                ),
                (
                    "agencies/10",
                    json!({"id": "college", "name": "College", "roles": {"safeguarding_lead": "a b"}}),
                ),
                (
                    "people/7",
                    json!({"id": "p-new", "name": "Forward", "agency": "school"}),
                ),
            ]),
        ),
        (
            "people: every problem",
            patched(&[
                ("people/7", json!("p-str")),
                ("people/8", json!({"name": "No id"})),
                ("people/9", json!({"id": null, "name": "Null id"})),
                ("people/10", json!({"id": ["p-x"], "name": "Array id"})),
                ("people/11", json!({"id": "p/slash", "name": "Slash"})),
                ("people/12", json!({"id": "p-sw1", "name": "Twice"})),
                (
                    "people/13",
                    json!({"id": "p-self", "name": "Self", "manager": "p-self"}),
                ),
                (
                    "people/14",
                    json!({"id": "p-mail", "name": "Mail", "email": "not-an-address"}),
                ),
                (
                    "people/15",
                    json!({"id": "p-mail2", "name": "Mail", "email": 42, "agency": 1, "manager": true}),
                ),
                (
                    "people/16",
                    json!({"id": "p-ag", "name": null, "agency": "nowhere", "manager": "p-gone", "phone": "0151"}),
                ),
                (
                    "people/17",
                    json!({"id": "p-fwd", "name": "Forward", "manager": "p-last", "agency": "a b"}),
                ),
                (
                    "people/18",
                    json!({"id": "p-last", "name": "Last", "email": " last@example.org ", "manager": "a b"}),
                ),
            ]),
        ),
        (
            "partnership roles: every problem",
            patched(&[(
                "partnership_roles",
                json!({"partnership_chair": "p-ghost", "mayor": "p-chair", "strategic_leads": ["p-chair"], "business_manager": null, "qa_subgroup_chair": "p-chair"}),
            )]),
        ),
        (
            "partnership roles: not an object",
            patched(&[("partnership_roles", json!("p-chair"))]),
        ),
        (
            "cases: every problem",
            patched(&[
                ("cases/1", json!(17)),
                ("cases/2", json!({"events": []})),
                ("cases/3", json!({"ref": "KN 3"})),
                ("cases/4", json!({"ref": "KN-0001"})),
                (
                    "cases/5",
                    json!({"ref": "KN-0005", "unborn": "yes", "visit_interval_days": 0, "colour": 1}),
                ),
                (
                    "cases/6",
                    json!({"ref": "KN-0006", "unborn": null, "visit_interval_days": 367}),
                ),
                (
                    "cases/7",
                    json!({"ref": "KN-0007", "visit_interval_days": "7"}),
                ),
                (
                    "cases/8",
                    json!({"ref": "KN-0008", "visit_interval_days": 7.5}),
                ),
                (
                    "cases/9",
                    json!({"ref": "KN-0009", "visit_interval_days": -1, "roles": {"core_group_member": ["p-hv1", 3, "p-ghost"], "social_worker": ["p-sw1"], "legal": 4, "janitor": "p-sw1"}}),
                ),
                (
                    "cases/10",
                    json!({"ref": "KN-0010", "visit_interval_days": null, "roles": [], "events": {}}),
                ),
                ("cases/11", json!({"ref": 11, "events": "none"})),
                (
                    "cases/12",
                    json!({"ref": "KN-0012", "unborn": true, "visit_interval_days": 366, "roles": {"team_manager": "p-tm1"}}),
                ),
            ]),
        ),
        (
            "case events: shape",
            patched(&[
                ("cases/0/events/5", json!("an event")),
                ("cases/0/events/6", json!(null)),
                ("cases/0/events/7", json!({"at": "2026-03-01T09:00:00Z"})),
                (
                    "cases/0/events/8",
                    json!({"kind": 3, "at": "2026-03-01T09:00:00Z"}),
                ),
                (
                    "cases/0/events/9",
                    json!({"kind": "icpc_hold", "at": "20/03/2026", "bogus": 1}),
                ),
                ("cases/0/events/10", json!({"kind": "child_seen"})),
                (
                    "cases/0/events/11",
                    json!({"kind": "child_seen", "at": 5, "recorded_at": "yesterday"}),
                ),
                (
                    "cases/0/events/12",
                    json!({"kind": "child_seen", "at": "2026-03-01", "recorded_at": null, "note": "x", "meeting": "m"}),
                ),
                ("cases/0/events/13", json!({"kind": null, "at": null})),
                (
                    "cases/0/events/14",
                    json!({"kind": "child_seen", "at": "2026-03-01T09:00:00+01:00", "recorded_at": 3}),
                ),
            ]),
        ),
        (
            "case events: kind-specific fields",
            patched(&[
                (
                    "cases/0/events/5",
                    json!({"kind": "referral_received", "at": "2026-03-01T09:00:00Z", "referrer": "p-ghost", "verbal": "yes", "professional": null}),
                ),
                (
                    "cases/0/events/6",
                    json!({"kind": "referral_received", "at": "2026-03-01T09:00:00Z", "referrer": 7, "professional": 1}),
                ),
                (
                    "cases/0/events/7",
                    json!({"kind": "medical_examination", "at": "2026-03-03T10:00:00Z"}),
                ),
                (
                    "cases/0/events/8",
                    json!({"kind": "medical_examination", "at": "2026-03-03T10:00:00Z", "examining_doctor": "a b"}),
                ),
                (
                    "cases/0/events/9",
                    json!({"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": "true"}),
                ),
                (
                    "cases/0/events/10",
                    json!({"kind": "s47_completed", "at": "2026-03-02T10:00:00Z", "icpc_required": 0}),
                ),
                (
                    "cases/0/events/11",
                    json!({"kind": "icpc_scheduled", "at": "2026-03-20T10:00:00Z", "invited_agencies": "health", "invitees": ["p-hv1"]}),
                ),
                (
                    "cases/0/events/12",
                    json!({"kind": "rcpc_scheduled", "at": "2026-03-20T10:00:00Z", "meeting": 5, "invited_agencies": ["health", 3, "nowhere", "a b"], "invitees": {"health": 3, "nowhere": "p-ghost", "ksc": "p-sw1", "a b": "a b"}}),
                ),
                (
                    "cases/0/events/13",
                    json!({"kind": "report_received", "at": "2026-03-18T10:00:00Z", "meeting": "m1", "agency": "nowhere", "shared_with_family": "no"}),
                ),
                (
                    "cases/0/events/14",
                    json!({"kind": "report_received", "at": "2026-03-18T10:00:00Z", "agency": 3}),
                ),
                (
                    "cases/0/events/15",
                    json!({"kind": "icpc_held", "at": "2026-03-20T10:00:00Z"}),
                ),
                (
                    "cases/0/events/16",
                    json!({"kind": "icpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "maybe", "meeting": null}),
                ),
                (
                    "cases/0/events/17",
                    json!({"kind": "rcpc_held", "at": "2026-03-20T10:00:00Z", "outcome": 1, "meeting": ["m"]}),
                ),
                (
                    "cases/0/events/18",
                    json!({"kind": "rcpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "plan"}),
                ),
                (
                    "cases/0/events/19",
                    json!({"kind": "core_group_held", "at": "2026-03-20T10:00:00Z", "meeting": true, "outcome": "plan"}),
                ),
                (
                    "cases/0/events/20",
                    json!({"kind": "single_assessment_sent", "at": "2026-03-20T10:00:00Z", "meeting": "m1"}),
                ),
                (
                    "cases/0/events/21",
                    json!({"kind": "case_closed", "at": "2026-03-20T10:00:00Z", "meeting": "m1"}),
                ),
                (
                    "cases/0/events/22",
                    json!({"kind": "report_received", "at": "2026-03-18T10:00:00Z", "meeting": "m1", "agency": "health", "shared_with_family": true, "invitees": {}}),
                ),
            ]),
        ),
        (
            "disputes: every problem",
            patched(&[
                ("disputes/1", json!([])),
                ("disputes/2", json!({"case": "KN-0001"})),
                (
                    "disputes/3",
                    json!({"id": "D 3", "case": "KN-9999", "policy": "knowsley-escalation-2018", "raised_by": "p-ghost", "respondent": "p-nobody", "opened_at": "March", "disagreement_at": "before", "immediate_risk": "yes", "subject": 4, "colour": "red"}),
                ),
                (
                    "disputes/4",
                    json!({"id": "D-4", "case": 4, "policy": 4, "raised_by": 4, "respondent": 4, "respondent_agency": 4, "opened_at": 4, "disagreement_at": 4, "immediate_risk": 4, "events": 4}),
                ),
                (
                    "disputes/5",
                    json!({"id": "D-5", "policy": "", "raised_by": "p-hv1", "opened_at": "2026-03-02T10:00:00Z"}),
                ),
                (
                    "disputes/6",
                    json!({"id": "D-6", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent": null, "opened_at": "2026-03-02T10:00:00Z"}),
                ),
                (
                    "disputes/7",
                    json!({"id": "D-7", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent_agency": "nowhere", "opened_at": "2026-03-02T10:00:00Z"}),
                ),
                (
                    "disputes/8",
                    json!({"id": "D-8", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent_agency": "health", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "immediate_risk": null, "subject": null, "disagreement_at": null, "events": [
                        "x", null,
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z"},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 5},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 0},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": "2"},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 2.0},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": -1},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": null},
                        {"kind": "reopened", "at": "2026-03-01T10:00:00Z", "stage": 1, "note": "x"},
                        {"kind": 3, "at": 3, "stage": 1, "outcome": 3, "by": 3},
                        {"at": "2026-03-03T10:00:00Z"},
                        {"kind": "resolved"},
                        {"kind": "resolved", "at": "2026-03-02T09:59:59Z", "outcome": "ok", "by": "p-ghost"},
                        {"kind": "outcome_confirmed", "at": "2026-03-05T10:00:00Z", "by": "a b"}
                    ]}),
                ),
                (
                    "disputes/9",
                    json!({"id": "D-9", "policy": "no-such", "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "2026-03-02T10:00:00Z", "events": [
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 10},
                        {"kind": "escalated", "at": "2026-03-03T10:00:00Z", "stage": 11}
                    ]}),
                ),
                (
                    "disputes/10",
                    json!({"id": "D-10", "case": "KN-0002", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent": "p-sw1", "opened_at": "bad", "events": [
                        {"kind": "resolved", "at": "2026-03-01T10:00:00Z"}
                    ]}),
                ),
                ("cases/1", json!({"ref": "KN-0002"})),
            ]),
        ),
        (
            // Issue 11: these were merged silently (the second dispute's immediate risk won).
            "duplicates: agencies and disputes given twice",
            patched(&[
                (
                    "agencies/2",
                    json!({"id": "health", "name": "Health (twice)"}),
                ),
                (
                    "disputes/1",
                    json!({"id": "D-1", "policy": "pan-cheshire-escalation", "raised_by": "p-chair", "respondent": "p-sm1",
                           "opened_at": "2026-03-09T10:00:00Z", "subject": "twice", "immediate_risk": true}),
                ),
            ]),
        ),
        (
            "duplicate keys: the last one counts",
            raw(
                r#"{"partnership": "a b", "partnership": "knowsley", "people": [{"id": "p-1", "id": "a b", "name": "x"}]}"#,
            ),
        ),
    ]
}

/// Files that are accepted, in order: each builds on what the ones before wrote.
fn good_files() -> Vec<(&'static str, String)> {
    vec![
        ("good: the base file", base().to_string()),
        ("good: the base file again", base().to_string()),
        (
            "good: only references to what the database holds",
            json!({
                "partnership": "knowsley",
                "agencies": [{"id": "health", "name": "Health (renamed)", "roles": {"safeguarding_lead": "p-hv1"}}],
                "partnership_roles": {"partnership_chair": "p-sw1", "business_manager": "p-chair"},
                "cases": [
                    {"ref": "KN-0001", "unborn": true, "roles": {"social_worker": "p-tm1"}, "events": [
                        {"kind": "icpc_held", "at": "2026-03-20T10:00:00Z", "outcome": "plan", "meeting": "m1"},
                        {"kind": "child_seen", "at": "2026-03-25T10:00:00Z"}
                    ]},
                    {"ref": "KN-0002", "events": []}
                ],
                "disputes": [
                    {"id": "D-1", "case": "KN-0001", "policy": "knowsley-escalation-2019", "raised_by": "p-hv1", "respondent": "p-sw1",
                     "opened_at": "2026-03-02T10:00:00Z", "immediate_risk": true, "subject": "changed", "events": [
                        {"kind": "resolved", "at": "2026-03-04T10:00:00Z", "outcome": "agreed"}
                    ]},
                    {"id": "D-2", "policy": "pan-cheshire-escalation", "raised_by": "p-chair", "respondent_agency": "ksc",
                     "opened_at": "2026-03-09T10:00:00Z", "events": [
                        {"kind": "outcome_confirmed", "at": "2026-03-10T10:00:00Z", "by": "p-sm1"}
                    ]},
                    {"id": "D-3", "case": "KN-0002", "policy": "richmond-kingston-6-step", "raised_by": "p-sw1", "respondent": "p-hv1",
                     "opened_at": "2026-03-09T10:00:00Z", "events": [{"kind": "escalated", "at": "2026-03-10T10:00:00Z", "stage": 6}]}
                ]
            })
            .to_string(),
        ),
        (
            "bad: references checked against the database",
            json!({
                "partnership": "knowsley",
                "people": [{"id": "p-sw1", "name": "Again", "manager": "p-ghost"}],
                "disputes": [
                    {"id": "D-4", "case": "KN-0002", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent_agency": "ksc", "opened_at": "2026-03-09T10:00:00Z"},
                    {"id": "D-5", "case": "KN-0003", "policy": "pan-cheshire-escalation", "raised_by": "p-hv1", "respondent_agency": "school", "opened_at": "2026-03-09T10:00:00Z"}
                ]
            })
            .to_string(),
        ),
        (
            "bad: another partnership knows nothing of knowsley's ids",
            json!({"partnership": "other", "cases": [{"ref": "KN-0001", "roles": {"social_worker": "p-sw1"}}]}).to_string(),
        ),
        (
            "good: another partnership, its own people",
            json!({"partnership": "other", "people": [{"id": "p-sw1", "name": "Other worker"}], "cases": [{"ref": "KN-0001", "roles": {"social_worker": "p-sw1"}, "events": [{"kind": "child_seen", "at": "2026-03-25T10:00:00Z"}]}]}).to_string(),
        ),
    ]
}

#[derive(QueryableByName)]
struct Text1 {
    #[diesel(sql_type = diesel::sql_types::Text)]
    v: String,
}

/// Every row import writes, one JSON object a line (without the columns that hold `now()`).
fn rows(db: &TestDb) -> String {
    let tables = [
        ("partnerships", "SELECT id FROM partnerships", "id"),
        ("agencies", "SELECT * FROM agencies", "partnership_id, id"),
        ("people", "SELECT * FROM people", "partnership_id, id"),
        ("agency_roles", "SELECT * FROM agency_roles", "partnership_id, agency_id, role"),
        ("partnership_roles", "SELECT * FROM partnership_roles", "partnership_id, role"),
        ("cases", "SELECT id, partnership_id, ref, unborn, visit_interval_days, closed_at, next_check_at FROM cases", "id"),
        ("case_roles", "SELECT * FROM case_roles", "case_id, role, person_id"),
        ("case_events", "SELECT id, case_id, kind, at, recorded_at, data FROM case_events", "id"),
        ("disputes", "SELECT * FROM disputes", "id"),
        ("dispute_events", "SELECT * FROM dispute_events", "id"),
    ];
    let mut out = String::new();
    for (name, select, order) in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY {order}), '') AS v FROM ({select}) t"
        );
        let r: Text1 = diesel::sql_query(&sql)
            .get_result(&mut db.conn())
            .expect(&sql);
        out.push_str(&format!("-- {name}\n{}\n", r.v));
    }
    out
}

#[test]
fn the_corpus_gives_the_written_answers_and_rows() {
    let db = TestDb::new();
    let mut conn = db.conn();
    cpwatch::store::migrate(&mut conn).unwrap();
    let ladders = cpwatch::policy::Catalogue::load(None).unwrap().ladders;
    let partnerships = vec!["knowsley".to_owned(), "other".to_owned()];
    let mut got = String::new();
    for (i, (name, text)) in bad_files().into_iter().chain(good_files()).enumerate() {
        let answer =
            cpwatch::import::import_with(&mut conn, "f.json", &text, &partnerships, &ladders);
        let answer = match answer {
            Ok(summary) => format!("ok: {summary:?}"),
            Err(e) => format!("error: {e}"),
        };
        got.push_str(&format!("== {i}. {name}\n{answer}\n"));
        if name.starts_with("good") {
            got.push_str(&rows(&db));
        }
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/import-corpus.expected"
    );
    if std::env::var_os("CPWATCH_BLESS").is_some() {
        std::fs::write(path, &got).unwrap();
        return;
    }
    let expected =
        std::fs::read_to_string(path).expect("the expectation (CPWATCH_BLESS=1 writes it)");
    if got != expected {
        let first = got
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(expected.lines().count()));
        panic!(
            "import answered differently from tests/fixtures/import-corpus.expected, first at line {}:\n  got:      {:?}\n  expected: {:?}",
            first + 1,
            got.lines().nth(first),
            expected.lines().nth(first)
        );
    }
}
