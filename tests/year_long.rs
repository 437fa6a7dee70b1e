//! A year in the life of one case, from referral to closure, run the way the daemon runs it:
//! hourly passes (jumping straight to the next hour at which the case's next check falls, which
//! is what an idle hourly pass amounts to) against a real PostgreSQL. The mail it produces is
//! compared line by line with a written expectation, tests/fixtures/year-long-case.expected.
//! (`CPWATCH_BLESS=1` rewrites the expectation; read the diff before committing it.)

mod common;

use chrono::{DateTime, Duration, DurationRound, Utc};
use common::TestDb;
use cpwatch::jobs::evaluation::{EvaluationPass, Mode};
use cpwatch::settings::Settings;
use diesel::prelude::*;

#[derive(QueryableByName)]
struct Next {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    at: Option<DateTime<Utc>>,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = diesel::sql_types::Text)]
    line: String,
}

#[test]
fn a_year_long_case_produces_exactly_the_expected_mail() {
    let db = TestDb::new();
    let settings = Settings::defaults_with_database(&db.url).unwrap();
    let mut conn = db.conn();
    cpwatch::store::migrate(&mut conn).unwrap();
    let text = std::fs::read_to_string("tests/fixtures/year-long-case.json").unwrap();
    cpwatch::import::import(
        &mut conn,
        "year-long-case.json",
        &text,
        &["knowsley".to_owned()],
    )
    .unwrap();
    let runtime = cpwatch::jobs::Runtime::load(&settings, &mut conn);

    let mut now: DateTime<Utc> = "2026-01-05T09:00:00Z".parse().unwrap();
    let end: DateTime<Utc> = "2027-03-01T00:00:00Z".parse().unwrap();
    let mut passes = 0;
    while now < end {
        let pass = EvaluationPass {
            runtime: &runtime,
            now,
            mode: Mode::Write,
            full: false,
            batch_size: 100,
        };
        pass.run(&mut conn, &mut |_| {}).unwrap();
        passes += 1;
        let next: Next = diesel::sql_query("SELECT min(next_check_at) AS at FROM cases")
            .get_result(&mut conn)
            .unwrap();
        let Some(next) = next.at else { break };
        // The next hourly tick at or after the case's next check.
        let tick = next.duration_trunc(Duration::hours(1)).unwrap();
        let tick = if tick < next {
            tick + Duration::hours(1)
        } else {
            tick
        };
        now = tick.max(now + Duration::hours(1));
    }
    assert!(passes > 50, "{passes} passes");
    let next: Next = diesel::sql_query("SELECT min(next_check_at) AS at FROM cases")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(next.at, None, "a closed case has nothing left to check");

    let lines: Vec<Line> = diesel::sql_query(
        "SELECT to_char(send_after AT TIME ZONE 'Europe/London', 'Dy YYYY-MM-DD HH24:MI') || '  ' || rpad(kind, 18) || ' ' \
         || rpad(rule, 31) || ' ' || rpad(step, 17) || ' ' || recipient_role || ' ' || recipient AS line \
         FROM outbox ORDER BY send_after, rule, occurrence, step, recipient_role DESC, recipient",
    )
    .load(&mut conn)
    .unwrap();
    let actual: String = lines
        .iter()
        .map(|l| l.line.trim_end().to_owned() + "\n")
        .collect();
    let path = "tests/fixtures/year-long-case.expected";
    if std::env::var("CPWATCH_BLESS").is_ok() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    if actual != expected {
        let diff: Vec<String> = expected
            .lines()
            .filter(|l| !actual.lines().any(|a| a == *l))
            .map(|l| format!("- {l}"))
            .chain(
                actual
                    .lines()
                    .filter(|a| !expected.lines().any(|l| l == *a))
                    .map(|a| format!("+ {a}")),
            )
            .collect();
        panic!("the year's mail differs from {path}:\n{}", diff.join("\n"));
    }
}
