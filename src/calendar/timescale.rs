//! The timescale phrases of the spec's time table, parsed from policy files.

use std::fmt;
use std::str::FromStr;

/// The timescale phrases of the spec's time table. Serialised as the canonical phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Timescale {
    /// "24 hours" → anchor + N elapsed hours.
    Hours(u32),
    /// "same working day" → close of anchor's date if a working day and anchor before close;
    /// else close of the next working day.
    SameWorkingDay,
    /// "15 working days", "one working week" (= 5) → close of the Nth working day after anchor's
    /// local date.
    WorkingDays(u32),
    /// "3 working days before" → close of the Nth working day before M's date (M's date is day 0).
    WorkingDaysBefore(u32),
    /// "24 hours before" → M − N elapsed hours.
    HoursBefore(u32),
    /// "7 days" → anchor's date + N days, at close.
    Days(u32),
    /// "2 days before" → M's date − N days; if not a working day, the working day before it; at
    /// close.
    DaysBefore(u32),
    /// "4 weeks" → anchor's date + 7N days at close.
    Weeks(u32),
    /// "3 months" → anchor's date + N calendar months (clamped to month end), at close.
    Months(u32),
}

/// A timescale phrase that cpwatch cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimescaleError {
    #[error(
        "unrecognised timescale {phrase:?}: expected a phrase such as \"24 hours\", \
         \"same working day\", \"15 working days\", \"one working week\", \
         \"3 working days before\", \"24 hours before\", \"7 days\", \"2 days before\", \
         \"4 weeks\" or \"3 months\""
    )]
    Unrecognised { phrase: String },
    #[error(
        "timescale {phrase:?}: {number:?} is not a count cpwatch understands \
         (use digits such as \"15\", or a word from \"one\" to \"twenty\")"
    )]
    BadNumber { phrase: String, number: String },
    #[error("timescale {phrase:?}: \"{unit} before\" is not supported; use days or working days")]
    UnsupportedBefore { phrase: String, unit: String },
}

const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

fn parse_count(word: &str) -> Option<u32> {
    if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse().ok();
    }
    if word == "a" || word == "an" {
        return Some(1);
    }
    NUMBER_WORDS
        .iter()
        .position(|w| *w == word)
        .map(|i| i as u32)
}

impl FromStr for Timescale {
    type Err = TimescaleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        let unrecognised = || TimescaleError::Unrecognised {
            phrase: s.to_owned(),
        };
        match words.as_slice() {
            ["same", "working", "day"] | ["same", "day"] | ["on", "the", "day"] => {
                return Ok(Timescale::SameWorkingDay)
            }
            [] | [_] => return Err(unrecognised()),
            _ => {}
        }
        let (count_word, rest) = (words[0], &words[1..]);
        let (rest, before) = match rest.split_last() {
            Some((&"before", init)) => (init, true),
            _ => (rest, false),
        };
        let unit = match rest {
            ["hour" | "hours"] => "hours",
            ["working", "day" | "days"] => "working days",
            ["working", "week" | "weeks"] => "working weeks",
            ["day" | "days"] => "days",
            ["week" | "weeks"] => "weeks",
            ["month" | "months"] => "months",
            _ => return Err(unrecognised()),
        };
        let n = parse_count(count_word).ok_or_else(|| TimescaleError::BadNumber {
            phrase: s.to_owned(),
            number: count_word.to_owned(),
        })?;
        let bad_number = || TimescaleError::BadNumber {
            phrase: s.to_owned(),
            number: count_word.to_owned(),
        };
        Ok(match (unit, before) {
            ("hours", false) => Timescale::Hours(n),
            ("hours", true) => Timescale::HoursBefore(n),
            ("working days", false) => Timescale::WorkingDays(n),
            ("working days", true) => Timescale::WorkingDaysBefore(n),
            ("working weeks", false) => {
                Timescale::WorkingDays(n.checked_mul(5).ok_or_else(bad_number)?)
            }
            ("working weeks", true) => {
                Timescale::WorkingDaysBefore(n.checked_mul(5).ok_or_else(bad_number)?)
            }
            ("days", false) => Timescale::Days(n),
            ("days", true) => Timescale::DaysBefore(n),
            ("weeks", false) => Timescale::Weeks(n),
            ("weeks", true) => Timescale::DaysBefore(n.checked_mul(7).ok_or_else(bad_number)?),
            ("months", false) => Timescale::Months(n),
            (unit, _) => {
                return Err(TimescaleError::UnsupportedBefore {
                    phrase: s.to_owned(),
                    unit: unit.to_owned(),
                })
            }
        })
    }
}

fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

impl fmt::Display for Timescale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match *self {
            Timescale::Hours(n) => plural(n, "hour", "hours"),
            Timescale::SameWorkingDay => "same working day".to_owned(),
            Timescale::WorkingDays(n) => plural(n, "working day", "working days"),
            Timescale::WorkingDaysBefore(n) => {
                plural(n, "working day before", "working days before")
            }
            Timescale::HoursBefore(n) => plural(n, "hour before", "hours before"),
            Timescale::Days(n) => plural(n, "day", "days"),
            Timescale::DaysBefore(n) => plural(n, "day before", "days before"),
            Timescale::Weeks(n) => plural(n, "week", "weeks"),
            Timescale::Months(n) => plural(n, "month", "months"),
        };
        f.write_str(&s)
    }
}

impl TryFrom<String> for Timescale {
    type Error = TimescaleError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Timescale> for String {
    fn from(t: Timescale) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_phrases() {
        assert_eq!("24 hours".parse(), Ok(Timescale::Hours(24)));
        assert_eq!("One Working Week".parse(), Ok(Timescale::WorkingDays(5)));
        assert_eq!("1 working day".parse(), Ok(Timescale::WorkingDays(1)));
        assert_eq!(
            "3 working days before".parse(),
            Ok(Timescale::WorkingDaysBefore(3))
        );
        assert!("3 fortnights".parse::<Timescale>().is_err());
    }
}
