//! Timescale phrases: parsing every variant, canonical display, serde, and error messages.

use cpwatch::calendar::{Timescale, TimescaleError};
use proptest::prelude::*;

#[test]
fn parses_every_variant() {
    let cases = [
        ("24 hours", Timescale::Hours(24)),
        ("1 hour", Timescale::Hours(1)),
        ("an hour", Timescale::Hours(1)),
        ("72 Hours", Timescale::Hours(72)),
        ("same working day", Timescale::SameWorkingDay),
        ("Same Day", Timescale::SameWorkingDay),
        ("on the day", Timescale::SameWorkingDay),
        ("15 working days", Timescale::WorkingDays(15)),
        ("1 working day", Timescale::WorkingDays(1)),
        ("one working day", Timescale::WorkingDays(1)),
        ("two working days", Timescale::WorkingDays(2)),
        ("one working week", Timescale::WorkingDays(5)),
        ("2 working weeks", Timescale::WorkingDays(10)),
        ("3 working days before", Timescale::WorkingDaysBefore(3)),
        ("ten working days before", Timescale::WorkingDaysBefore(10)),
        ("24 hours before", Timescale::HoursBefore(24)),
        ("7 days", Timescale::Days(7)),
        ("28 days", Timescale::Days(28)),
        ("2 days before", Timescale::DaysBefore(2)),
        ("4 weeks", Timescale::Weeks(4)),
        ("a week", Timescale::Weeks(1)),
        ("3 months", Timescale::Months(3)),
        ("one month", Timescale::Months(1)),
        ("  18   MONTHS ", Timescale::Months(18)),
        ("twenty working days", Timescale::WorkingDays(20)),
    ];
    for (phrase, want) in cases {
        assert_eq!(phrase.parse::<Timescale>(), Ok(want), "{phrase:?}");
    }
}

#[test]
fn display_is_canonical() {
    assert_eq!(Timescale::Hours(24).to_string(), "24 hours");
    assert_eq!(Timescale::Hours(1).to_string(), "1 hour");
    assert_eq!(Timescale::SameWorkingDay.to_string(), "same working day");
    assert_eq!(Timescale::WorkingDays(1).to_string(), "1 working day");
    assert_eq!(Timescale::WorkingDays(5).to_string(), "5 working days");
    assert_eq!(
        Timescale::WorkingDaysBefore(3).to_string(),
        "3 working days before"
    );
    assert_eq!(Timescale::HoursBefore(24).to_string(), "24 hours before");
    assert_eq!(Timescale::Days(7).to_string(), "7 days");
    assert_eq!(Timescale::DaysBefore(1).to_string(), "1 day before");
    assert_eq!(Timescale::Weeks(4).to_string(), "4 weeks");
    assert_eq!(Timescale::Months(3).to_string(), "3 months");
}

#[test]
fn errors_name_the_phrase() {
    let e = "3 fortnights".parse::<Timescale>().unwrap_err();
    assert!(matches!(e, TimescaleError::Unrecognised { ref phrase } if phrase == "3 fortnights"));
    let msg = e.to_string();
    assert!(msg.contains("\"3 fortnights\""), "{msg}");
    assert!(msg.contains("working days before"), "{msg}");

    let e = "many working days".parse::<Timescale>().unwrap_err();
    assert_eq!(
        e,
        TimescaleError::BadNumber {
            phrase: "many working days".into(),
            number: "many".into()
        }
    );
    assert!(e.to_string().contains("\"many\""));

    let e = "99999999999 hours".parse::<Timescale>().unwrap_err();
    assert!(matches!(e, TimescaleError::BadNumber { .. }), "{e:?}");
    let e = "1000000000 working weeks".parse::<Timescale>().unwrap_err();
    assert!(matches!(e, TimescaleError::BadNumber { .. }), "{e:?}");

    let e = "3 months before".parse::<Timescale>().unwrap_err();
    assert!(matches!(e, TimescaleError::UnsupportedBefore { ref unit, .. } if unit == "months"));
    assert!(e.to_string().contains("3 months before"));

    for bad in [
        "",
        "   ",
        "hours",
        "24",
        "-3 days",
        "3.5 days",
        "within 24 hours",
        "24 hours after",
        "before",
    ] {
        let e = bad.parse::<Timescale>();
        assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        assert!(e.unwrap_err().to_string().contains(&format!("{bad:?}")));
    }
}

#[test]
fn serde_uses_the_phrase() {
    let json = serde_json::to_string(&Timescale::WorkingDaysBefore(3)).unwrap();
    assert_eq!(json, "\"3 working days before\"");
    let back: Timescale = serde_json::from_str("\"one working week\"").unwrap();
    assert_eq!(back, Timescale::WorkingDays(5));
    let err = serde_json::from_str::<Timescale>("\"3 fortnights\"").unwrap_err();
    assert!(err.to_string().contains("3 fortnights"), "{err}");
    let list: Vec<Timescale> = serde_json::from_str(r#"["24 hours", "same working day"]"#).unwrap();
    assert_eq!(list, vec![Timescale::Hours(24), Timescale::SameWorkingDay]);
}

fn any_timescale() -> impl Strategy<Value = Timescale> {
    prop_oneof![
        any::<u32>().prop_map(Timescale::Hours),
        Just(Timescale::SameWorkingDay),
        any::<u32>().prop_map(Timescale::WorkingDays),
        any::<u32>().prop_map(Timescale::WorkingDaysBefore),
        any::<u32>().prop_map(Timescale::HoursBefore),
        any::<u32>().prop_map(Timescale::Days),
        any::<u32>().prop_map(Timescale::DaysBefore),
        any::<u32>().prop_map(Timescale::Weeks),
        any::<u32>().prop_map(Timescale::Months),
    ]
}

proptest! {
    #[test]
    fn display_round_trips(ts in any_timescale()) {
        let s = ts.to_string();
        prop_assert_eq!(s.parse::<Timescale>(), Ok(ts));
        prop_assert_eq!(s.to_uppercase().parse::<Timescale>(), Ok(ts));
        let json = serde_json::to_string(&ts).unwrap();
        prop_assert_eq!(serde_json::from_str::<Timescale>(&json).unwrap(), ts);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = s.parse::<Timescale>();
    }
}
