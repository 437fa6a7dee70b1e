//! The compiled-in GOV.UK snapshot: real holiday dates (moved and special days, substitutes) and
//! feed validation.

use chrono::{Datelike, NaiveDate, NaiveTime, Weekday};
use cpwatch::calendar::{BankHolidays, Calendar, FeedError, DIVISIONS};

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn cal(division: &str) -> Calendar {
    Calendar::for_division(
        &BankHolidays::snapshot(),
        division,
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [],
    )
    .unwrap()
}

fn titled(division: &str, date: NaiveDate) -> (String, String) {
    let feed = BankHolidays::snapshot();
    let e = feed
        .events(division)
        .iter()
        .find(|e| e.date == date)
        .unwrap_or_else(|| panic!("{division} has no holiday on {date}"));
    (e.title.clone(), e.notes.clone())
}

#[test]
fn every_snapshot_date_is_a_weekday_in_range_and_each_year_is_complete() {
    let feed = BankHolidays::snapshot();
    assert_eq!(feed.divisions().len(), 3);
    for div in DIVISIONS {
        let events = feed.events(div);
        for e in events {
            assert!(
                !matches!(e.date.weekday(), Weekday::Sat | Weekday::Sun),
                "{div} {} {} falls on a weekend",
                e.date,
                e.title
            );
            assert!((2018..=2027).contains(&e.date.year()));
        }
        for year in 2018..=2027 {
            let n = events.iter().filter(|e| e.date.year() == year).count();
            let base = match div {
                "england-and-wales" => 8,
                "scotland" => 9,
                _ => 10,
            };
            // 2020 moved a day (same count), 2022 added two, 2023 added one; 2026 one in
            // Scotland (the FIFA World Cup, Monday 15 June).
            let extra = match (year, div) {
                (2022, _) => 2,
                (2023, _) => 1,
                (2026, "scotland") => 1,
                _ => 0,
            };
            assert_eq!(n, base + extra, "{div} {year}");
        }
    }
    assert_eq!(feed.last_date(), Some(ymd(2027, 12, 28)));
    assert_eq!(feed.first_date(), Some(ymd(2018, 1, 1)));
}

#[test]
fn england_2020_ve_day_moved_to_friday_8_may() {
    let c = cal("england-and-wales");
    assert!(!c.is_working_day(ymd(2020, 5, 8)));
    assert!(
        c.is_working_day(ymd(2020, 5, 4)),
        "the first Monday of May 2020 was worked"
    );
    assert_eq!(
        titled("england-and-wales", ymd(2020, 5, 8)).0,
        "Early May bank holiday (VE day)"
    );
    // Thursday 7 May + 1 working day = Monday 11 May.
    assert_eq!(c.add_working_days(ymd(2020, 5, 7), 1), ymd(2020, 5, 11));
}

#[test]
fn twenty_twenty_two_jubilee_and_state_funeral() {
    for div in DIVISIONS {
        let c = cal(div);
        assert!(
            !c.is_working_day(ymd(2022, 6, 2)),
            "{div} spring holiday moved to Thu 2 June"
        );
        assert!(
            !c.is_working_day(ymd(2022, 6, 3)),
            "{div} platinum jubilee Fri 3 June"
        );
        assert!(
            c.is_working_day(ymd(2022, 5, 30)),
            "{div} last Monday of May 2022 was worked"
        );
        assert!(!c.is_working_day(ymd(2022, 9, 19)), "{div} state funeral");
        // Wed 1 June + 1 working day = Mon 6 June.
        assert_eq!(c.add_working_days(ymd(2022, 6, 1), 1), ymd(2022, 6, 6));
        // Fri 16 Sept + 1 = Tue 20 Sept.
        assert_eq!(c.add_working_days(ymd(2022, 9, 16), 1), ymd(2022, 9, 20));
    }
    assert_eq!(
        titled("england-and-wales", ymd(2022, 9, 19)).0,
        "Bank Holiday for the State Funeral of Queen Elizabeth II"
    );
}

#[test]
fn twenty_twenty_three_coronation() {
    for div in DIVISIONS {
        let c = cal(div);
        assert!(!c.is_working_day(ymd(2023, 5, 1)), "{div}");
        assert!(!c.is_working_day(ymd(2023, 5, 8)), "{div} coronation");
        // Mon 1 May 2023 to Mon 8 May: only Tue–Fri are working days.
        assert_eq!(c.working_days_between(ymd(2023, 5, 1), ymd(2023, 5, 9)), 4);
    }
}

#[test]
fn christmas_substitutes_in_england() {
    let c = cal("england-and-wales");
    // 2021: Christmas Saturday, Boxing Day Sunday → Mon 27 and Tue 28 Dec.
    assert_eq!(
        titled("england-and-wales", ymd(2021, 12, 27)),
        ("Christmas Day".into(), "Substitute day".into())
    );
    assert_eq!(
        titled("england-and-wales", ymd(2021, 12, 28)),
        ("Boxing Day".into(), "Substitute day".into())
    );
    assert_eq!(c.add_working_days(ymd(2021, 12, 24), 1), ymd(2021, 12, 29));
    // 2022: Christmas Sunday → Boxing Day Mon 26, Christmas substitute Tue 27.
    assert_eq!(
        titled("england-and-wales", ymd(2022, 12, 26)),
        ("Boxing Day".into(), String::new())
    );
    assert_eq!(
        titled("england-and-wales", ymd(2022, 12, 27)),
        ("Christmas Day".into(), "Substitute day".into())
    );
    assert_eq!(c.add_working_days(ymd(2022, 12, 23), 1), ymd(2022, 12, 28));
    // New Year's Day 2022 (Saturday) → Mon 3 Jan; 2023 (Sunday) → Mon 2 Jan.
    assert!(!c.is_working_day(ymd(2022, 1, 3)));
    assert!(!c.is_working_day(ymd(2023, 1, 2)));
    assert!(c.is_working_day(ymd(2023, 1, 3)));
    // From Fri 23 Dec 2022 to Wed 4 Jan 2023: 28, 29, 30 Dec and 3 Jan.
    assert_eq!(
        c.working_days_between(ymd(2022, 12, 24), ymd(2023, 1, 4)),
        4
    );
}

#[test]
fn scotland_new_year_and_st_andrew() {
    let c = cal("scotland");
    // 2022: 1 and 2 Jan on the weekend → Mon 3 and Tue 4 Jan.
    assert!(!c.is_working_day(ymd(2022, 1, 3)));
    assert!(!c.is_working_day(ymd(2022, 1, 4)));
    assert_eq!(
        titled("scotland", ymd(2022, 1, 4)),
        ("2nd January".into(), "Substitute day".into())
    );
    // 2023: 1 Jan Sunday → 2nd January on Mon 2, New Year substitute Tue 3.
    assert_eq!(titled("scotland", ymd(2023, 1, 2)).0, "2nd January");
    assert_eq!(
        titled("scotland", ymd(2023, 1, 3)),
        ("New Year’s Day".into(), "Substitute day".into())
    );
    assert_eq!(c.add_working_days(ymd(2022, 12, 30), 1), ymd(2023, 1, 4));
    // 2021: 2 Jan Saturday → Mon 4 Jan.
    assert!(!c.is_working_day(ymd(2021, 1, 4)));
    // England has none of these.
    let e = cal("england-and-wales");
    assert!(e.is_working_day(ymd(2023, 1, 3)));
    assert!(e.is_working_day(ymd(2021, 1, 4)));
    // St Andrew's Day: 30 Nov 2025 is a Sunday → Mon 1 Dec.
    assert!(!c.is_working_day(ymd(2025, 12, 1)));
    assert!(e.is_working_day(ymd(2025, 12, 1)));
    // Scotland's summer holiday is the first Monday of August, and there is no Easter Monday.
    assert!(!c.is_working_day(ymd(2024, 8, 5)));
    assert!(c.is_working_day(ymd(2024, 8, 26)));
    assert!(c.is_working_day(ymd(2024, 4, 1)));
}

#[test]
fn northern_ireland_st_patrick_and_the_boyne() {
    let c = cal("northern-ireland");
    assert!(!c.is_working_day(ymd(2023, 3, 17)));
    // 17 March 2024 was a Sunday → Mon 18 March.
    assert!(!c.is_working_day(ymd(2024, 3, 18)));
    // 12 July 2025 was a Saturday → Mon 14 July.
    assert!(!c.is_working_day(ymd(2025, 7, 14)));
    assert_eq!(
        titled("northern-ireland", ymd(2025, 7, 14)),
        (
            "Battle of the Boyne (Orangemen’s Day)".into(),
            "Substitute day".into()
        )
    );
    assert!(cal("england-and-wales").is_working_day(ymd(2025, 7, 14)));
}

#[test]
fn local_closure_days_are_honoured() {
    let feed = BankHolidays::snapshot();
    let c = Calendar::for_division(
        &feed,
        "england-and-wales",
        chrono_tz::Europe::London,
        NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
        [
            ymd(2024, 12, 24),
            ymd(2024, 12, 27),
            ymd(2024, 12, 30),
            ymd(2024, 12, 31),
        ],
    )
    .unwrap();
    // Mon 23 Dec 2024 + 1 working day = Thu 2 Jan 2025 with the council's closure.
    assert_eq!(c.add_working_days(ymd(2024, 12, 23), 1), ymd(2025, 1, 2));
    assert_eq!(
        cal("england-and-wales").add_working_days(ymd(2024, 12, 23), 1),
        ymd(2024, 12, 24)
    );
    assert!(Calendar::for_division(
        &feed,
        "wales",
        chrono_tz::Europe::London,
        NaiveTime::MIN,
        NaiveTime::MIN,
        []
    )
    .is_none());
}

fn feed_json(ew: &str, sc: &str, ni: &str) -> String {
    format!(
        r#"{{"england-and-wales":{{"division":"england-and-wales","events":{ew}}},
            "scotland":{{"division":"scotland","events":{sc}}},
            "northern-ireland":{{"division":"northern-ireland","events":{ni}}}}}"#
    )
}

const ONE: &str = r#"[{"title":"New Year’s Day","date":"2030-01-01","notes":"","bunting":true}]"#;

#[test]
fn parse_feed_accepts_a_minimal_feed() {
    let f = BankHolidays::parse_feed(&feed_json(ONE, ONE, ONE)).unwrap();
    assert_eq!(f.dates("scotland"), Some(vec![ymd(2030, 1, 1)]));
    assert!(f.events("scotland")[0].bunting);
    assert_eq!(f.last_date(), Some(ymd(2030, 1, 1)));
}

#[test]
fn parse_feed_rejects_malformed_feeds() {
    type Check = fn(&FeedError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        ("not json".into(), |e| matches!(e, FeedError::Json(_))),
        ("[]".into(), |e| matches!(e, FeedError::Json(_))),
        (
            "{}".into(),
            |e| matches!(e, FeedError::MissingDivision(d) if d == "england-and-wales"),
        ),
        (
            feed_json(ONE, "[]", ONE),
            |e| matches!(e, FeedError::EmptyDivision(d) if d == "scotland"),
        ),
        (r#"{"england-and-wales":{"events":[]}}"#.into(), |e| {
            matches!(
                e,
                FeedError::EmptyDivision(_) | FeedError::MissingDivision(_)
            )
        }),
        (
            feed_json(
                r#"[{"title":"x","date":"2030-02-30","notes":"","bunting":true}]"#,
                ONE,
                ONE,
            ),
            |e| matches!(e, FeedError::BadDate { date, .. } if date == "2030-02-30"),
        ),
        (
            feed_json(
                r#"[{"title":"x","date":"30/01/2030","notes":"","bunting":true}]"#,
                ONE,
                ONE,
            ),
            |e| matches!(e, FeedError::BadDate { .. }),
        ),
        (
            feed_json(
                r#"[{"title":"x","date":"9999-01-01","notes":"","bunting":true}]"#,
                ONE,
                ONE,
            ),
            |e| matches!(e, FeedError::DateOutOfRange { .. }),
        ),
        (
            feed_json(
                &format!("[{},{}]", &ONE[1..ONE.len() - 1], &ONE[1..ONE.len() - 1]),
                ONE,
                ONE,
            ),
            |e| matches!(e, FeedError::DuplicateDate { .. }),
        ),
        (
            feed_json(
                r#"[{"title":"  ","date":"2030-01-01","notes":"","bunting":true}]"#,
                ONE,
                ONE,
            ),
            |e| matches!(e, FeedError::EmptyTitle { .. }),
        ),
        (feed_json(r#"[{"date":"2030-01-01"}]"#, ONE, ONE), |e| {
            matches!(e, FeedError::Json(_))
        }),
        (
            r#"{"england-and-wales":{"division":"scotland","events":[]}}"#.into(),
            |e| matches!(e, FeedError::DivisionMismatch { .. }),
        ),
    ];
    for (json, is_expected) in cases {
        match BankHolidays::parse_feed(&json) {
            Ok(_) => panic!("accepted a malformed feed: {json}"),
            Err(e) => {
                assert!(is_expected(&e), "unexpected error {e:?} for {json}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
