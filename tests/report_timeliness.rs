//! `cpwatch report`: timeliness per case rule, over the year-long case history
//! (tests/fixtures/year-long-case.md says what happened when).

mod common;

use common::*;
use std::collections::BTreeMap;

/// rule → (occurrences, on_time, late, overdue, pending, cancelled, on_time_percent, median_days_late)
/// from the `timeliness` table (one header row, then partnership,policy,rule,standard,...).
fn timeliness(csv: &str) -> BTreeMap<String, Vec<String>> {
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("partnership,policy,rule,standard,occurrences"));
    lines
        .map(|l| {
            let f: Vec<String> = l.split(',').map(str::to_owned).collect();
            (f[2].clone(), f[4..].to_vec())
        })
        .collect()
}

#[test]
fn report_counts_each_rule_on_time_late_overdue_and_cancelled() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    cp.ok(&["migrate"]);
    let file = std::fs::read_to_string("tests/fixtures/year-long-case.json").unwrap();
    assert!(cp.import_text(&file).status.success());

    let csv = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "timeliness",
        "--at",
        "2027-02-01T00:00:00Z",
    ]);
    let t = timeliness(&csv);
    // 35 rules, and the three seed-000 duties issue 12 added.
    assert_eq!(t.len(), 38, "every rule has a row: {csv}");
    let row = |rule: &str| {
        t.get(rule)
            .unwrap_or_else(|| panic!("{rule} in {csv}"))
            .join(",")
    };
    // Minutes circulated on Friday 9 January, deadline Wednesday 7th 17:00: late by 1.79 days.
    assert_eq!(row("strategy-minutes-circulated"), "1,0,1,0,0,0,0.0,1.79");
    assert_eq!(row("strategy-decisions-recorded"), "1,1,0,0,0,0,100.0,");
    // Health's report on time; the school's never came.
    assert_eq!(row("icpc-agency-report"), "2,1,0,1,0,0,50.0,");
    assert_eq!(row("icpc-reports-shared-with-family"), "2,1,0,1,0,0,50.0,");
    // Twelve visiting clocks: ten met, the April one met 13 days 22 hours late, the last made moot by the plan ending.
    assert_eq!(row("child-seen-every-4-weeks"), "12,10,1,0,0,1,90.9,13.92");
    // Ten core groups: nine followed in time, the last made moot by the plan ending.
    assert_eq!(row("core-group-every-4-weeks"), "10,9,0,0,0,1,100.0,");
    // Ended with the plan before 12 months: the triggers never started.
    assert_eq!(row("plan-12-month-audit"), "0,0,0,0,0,0,,");
    // No child in need alert: the CIN plan ran beyond 3 months.
    assert_eq!(row("cin-after-plan-3-months"), "1,1,0,0,0,0,100.0,");
    assert_eq!(row("referral-actioned"), "1,1,0,0,0,0,100.0,");

    // A range of deadlines: June 2026 only.
    let june = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "timeliness",
        "--at",
        "2027-02-01T00:00:00Z",
        "--from",
        "2026-06-01T00:00:00Z",
        "--to",
        "2026-07-01T00:00:00Z",
    ]);
    let t = timeliness(&june);
    assert_eq!(
        t["child-seen-every-4-weeks"].join(","),
        "1,1,0,0,0,0,100.0,"
    );
    assert_eq!(
        t["core-group-every-4-weeks"].join(","),
        "1,1,0,0,0,0,100.0,"
    );
    assert_eq!(t["strategy-minutes-circulated"].join(","), "0,0,0,0,0,0,,");

    // As at a moment in May, the April visit's clock is simply overdue.
    let may = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "timeliness",
        "--at",
        "2026-05-20T12:00:00Z",
    ]);
    assert_eq!(
        timeliness(&may)["child-seen-every-4-weeks"][3],
        "1",
        "{may}"
    );

    let text = cp.ok(&["report", "--at", "2027-02-01T00:00:00Z"]);
    assert!(text.starts_with("Timeliness per rule"), "{text}");
    assert!(text.contains("knowsley (knowsley-cp-2019)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("child-seen-every-4-weeks")
                && l.contains("91")
                && l.contains("13.9 d")),
        "{text}"
    );
}
