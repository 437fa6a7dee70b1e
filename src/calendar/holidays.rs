//! Bank holidays in the GOV.UK bank-holidays JSON format
//! (`https://www.gov.uk/bank-holidays.json`): divisions → events with `title`, `date`, `notes`,
//! `bunting`. Pure: parsing and validation only; fetching lives in `holiday_refresh`.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The three GOV.UK divisions. A feed must carry all of them, each non-empty.
pub const DIVISIONS: [&str; 3] = ["england-and-wales", "scotland", "northern-ireland"];

/// Dates outside this range are rejected as insane (a feed with year 0001 or 9999 is broken).
pub const MIN_YEAR: i32 = 1900;
/// See [`MIN_YEAR`].
pub const MAX_YEAR: i32 = 2200;

/// The compiled-in snapshot of the feed (2018–2027), used when nothing better is available.
pub const SNAPSHOT_JSON: &str = include_str!("bank-holidays.json");

/// Why a bank-holiday feed was rejected. The caller keeps its last good copy on any of these.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The request could not be made or the connection failed.
    #[error("fetching bank holidays from {url} failed: {source}")]
    Fetch {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// No complete answer within the time limit.
    #[error("fetching bank holidays from {url} timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    /// The server answered with a non-success status.
    #[error("fetching bank holidays from {url} returned HTTP {status}")]
    Status { url: String, status: u16 },
    /// The body was larger than the adapter accepts.
    #[error("bank-holiday feed from {url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    /// The body is not UTF-8.
    #[error("bank-holiday feed is not valid UTF-8")]
    NotUtf8,
    /// The body is not JSON of the GOV.UK shape.
    #[error("bank-holiday feed is not valid JSON of the GOV.UK shape: {0}")]
    Json(#[from] serde_json::Error),
    /// A required division is absent.
    #[error("bank-holiday feed has no division {0:?}")]
    MissingDivision(String),
    /// A division has no events.
    #[error("bank-holiday feed division {0:?} has no events")]
    EmptyDivision(String),
    /// The `division` field inside a division disagrees with its key.
    #[error("bank-holiday feed division {key:?} calls itself {inner:?}")]
    DivisionMismatch { key: String, inner: String },
    /// A date is not `YYYY-MM-DD`.
    #[error("bank-holiday feed division {division:?} has an unreadable date {date:?}")]
    BadDate { division: String, date: String },
    /// A date is outside [`MIN_YEAR`]..=[`MAX_YEAR`].
    #[error("bank-holiday feed division {division:?} has an implausible date {date}")]
    DateOutOfRange { division: String, date: NaiveDate },
    /// The same date twice in one division.
    #[error("bank-holiday feed division {division:?} lists {date} twice")]
    DuplicateDate { division: String, date: NaiveDate },
    /// An event has an empty title.
    #[error("bank-holiday feed division {division:?} has an untitled event on {date}")]
    EmptyTitle { division: String, date: NaiveDate },
}

/// One bank holiday of one division.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankHoliday {
    pub title: String,
    pub date: NaiveDate,
    pub notes: String,
    pub bunting: bool,
}

/// A validated feed: every division of [`DIVISIONS`] present and non-empty, events sorted by date,
/// no duplicate dates within a division.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankHolidays {
    divisions: BTreeMap<String, Vec<BankHoliday>>,
}

#[derive(Deserialize, Serialize)]
struct RawDivision {
    #[serde(default)]
    division: Option<String>,
    events: Vec<RawEvent>,
}

#[derive(Deserialize, Serialize)]
struct RawEvent {
    title: String,
    date: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    bunting: bool,
}

impl BankHolidays {
    /// Parses and validates a feed in the GOV.UK format.
    pub fn parse_feed(json: &str) -> Result<BankHolidays, FeedError> {
        let raw: BTreeMap<String, RawDivision> = serde_json::from_str(json)?;
        let mut divisions = BTreeMap::new();
        for (key, div) in raw {
            if let Some(inner) = &div.division {
                if inner != &key {
                    return Err(FeedError::DivisionMismatch {
                        key,
                        inner: inner.clone(),
                    });
                }
            }
            let mut events = Vec::with_capacity(div.events.len());
            for e in div.events {
                let date = NaiveDate::parse_from_str(&e.date, "%Y-%m-%d")
                    .ok()
                    .filter(|_| e.date.len() == 10)
                    .ok_or_else(|| FeedError::BadDate {
                        division: key.clone(),
                        date: e.date.clone(),
                    })?;
                events.push(BankHoliday {
                    title: e.title,
                    date,
                    notes: e.notes,
                    bunting: e.bunting,
                });
            }
            divisions.insert(key, events);
        }
        Self::from_divisions(divisions)
    }

    /// Builds a feed from already-typed events (e.g. rows read back from the database) and
    /// validates it exactly as [`BankHolidays::parse_feed`] does.
    pub fn from_divisions(
        mut divisions: BTreeMap<String, Vec<BankHoliday>>,
    ) -> Result<BankHolidays, FeedError> {
        for name in DIVISIONS {
            match divisions.get(name) {
                None => return Err(FeedError::MissingDivision(name.to_owned())),
                Some(ev) if ev.is_empty() => return Err(FeedError::EmptyDivision(name.to_owned())),
                Some(_) => {}
            }
        }
        for (name, events) in divisions.iter_mut() {
            if events.is_empty() {
                return Err(FeedError::EmptyDivision(name.clone()));
            }
            events.sort_by_key(|e| e.date);
            for w in events.windows(2) {
                if w[0].date == w[1].date {
                    return Err(FeedError::DuplicateDate {
                        division: name.clone(),
                        date: w[0].date,
                    });
                }
            }
            for e in events.iter() {
                if !(MIN_YEAR..=MAX_YEAR).contains(&e.date.year()) {
                    return Err(FeedError::DateOutOfRange {
                        division: name.clone(),
                        date: e.date,
                    });
                }
                if e.title.trim().is_empty() {
                    return Err(FeedError::EmptyTitle {
                        division: name.clone(),
                        date: e.date,
                    });
                }
            }
        }
        Ok(BankHolidays { divisions })
    }

    /// The compiled-in snapshot (the GOV.UK feed for 2018–2027).
    pub fn snapshot() -> BankHolidays {
        BankHolidays::parse_feed(SNAPSHOT_JSON)
            .expect("the compiled-in bank-holidays.json snapshot is valid")
    }

    /// The division's holiday dates, sorted; `None` for an unknown division.
    pub fn dates(&self, division: &str) -> Option<Vec<NaiveDate>> {
        self.divisions
            .get(division)
            .map(|ev| ev.iter().map(|e| e.date).collect())
    }

    /// The divisions present, in name order.
    pub fn divisions(&self) -> Vec<&str> {
        self.divisions.keys().map(String::as_str).collect()
    }

    /// The division's events, sorted by date; empty for an unknown division.
    pub fn events(&self, division: &str) -> &[BankHoliday] {
        self.divisions
            .get(division)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The latest date across divisions (for staleness warnings).
    pub fn last_date(&self) -> Option<NaiveDate> {
        self.divisions
            .values()
            .filter_map(|ev| ev.last().map(|e| e.date))
            .max()
    }

    /// The earliest date across divisions.
    pub fn first_date(&self) -> Option<NaiveDate> {
        self.divisions
            .values()
            .filter_map(|ev| ev.first().map(|e| e.date))
            .min()
    }

    /// Serialises back to the GOV.UK JSON format (round-trips with [`BankHolidays::parse_feed`]).
    pub fn to_feed_json(&self) -> String {
        let raw: BTreeMap<&str, RawDivision> = self
            .divisions
            .iter()
            .map(|(k, ev)| {
                (
                    k.as_str(),
                    RawDivision {
                        division: Some(k.clone()),
                        events: ev
                            .iter()
                            .map(|e| RawEvent {
                                title: e.title.clone(),
                                date: e.date.format("%Y-%m-%d").to_string(),
                                notes: e.notes.clone(),
                                bunting: e.bunting,
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        serde_json::to_string(&raw).expect("serialising plain strings and bools cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_parses_and_has_all_divisions() {
        let s = BankHolidays::snapshot();
        assert_eq!(
            s.divisions(),
            vec!["england-and-wales", "northern-ireland", "scotland"]
        );
        assert_eq!(s.events("england-and-wales").len(), 83);
        assert_eq!(s.last_date(), NaiveDate::from_ymd_opt(2027, 12, 28));
        assert!(s.dates("wales").is_none());
    }

    #[test]
    fn to_feed_json_round_trips() {
        let s = BankHolidays::snapshot();
        let back = BankHolidays::parse_feed(&s.to_feed_json()).unwrap();
        assert_eq!(s, back);
    }
}
