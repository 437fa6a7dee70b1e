//! What any import accepts, whatever its format: the sizes and counts cpwatch documents, text
//! that can be shown in a mail as one line, and dates in the range the working-day calendar
//! covers. Each check says what is wrong in words an operator can act on; the caller adds the
//! place. Pure: no I/O.

use chrono::{DateTime, NaiveDate, Timelike, Utc};

/// The largest JSON case file read (larger extracts: the census format streams, or write rows
/// directly).
pub const MAX_CASE_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Characters in a person's or agency's name.
pub const MAX_NAME_CHARS: usize = 200;
/// Characters in a dispute's subject or outcome.
pub const MAX_TEXT_CHARS: usize = 500;
/// Characters in a meeting, enquiry or event id.
pub const MAX_ID_CHARS: usize = 100;
/// Events in one case or one dispute.
pub const MAX_EVENTS: usize = 50_000;
/// Members of one list (invited agencies, invitees, core group members).
pub const MAX_MEMBERS: usize = 500;
/// The first and last dates cpwatch accepts (the working-day calendar's range).
pub const FIRST_DATE: (i32, u32, u32) = (1990, 1, 1);
pub const LAST_DATE: (i32, u32, u32) = (2100, 12, 31);

/// Bidirectional formatting characters: shown in a mail, they can make text read otherwise
/// than it is.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text shown in mail as one line (a name, a subject, a meeting id): no NUL byte, no line
/// break or other control character, no bidirectional override, at most `max` characters.
pub fn one_line(s: &str, max: usize) -> Result<(), String> {
    if s.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let n = s.chars().count();
    if n > max {
        return Err(format!("is {n} characters long; the limit is {max}"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        let what = match c {
            '\r' | '\n' => "a line break",
            c if is_bidi_control(c) => "a bidirectional-text control character",
            _ => "a control character",
        };
        return Err(format!(
            "contains {what} (U+{:04X}); it must be one line of plain text",
            c as u32
        ));
    }
    Ok(())
}

/// A list of `n` members where at most [`MAX_MEMBERS`] are allowed.
pub fn members(n: usize) -> Result<(), String> {
    if n > MAX_MEMBERS {
        Err(format!("lists {n} members; the limit is {MAX_MEMBERS}"))
    } else {
        Ok(())
    }
}

/// `n` events in one case or dispute where at most [`MAX_EVENTS`] are allowed.
pub fn events(n: usize) -> Result<(), String> {
    if n > MAX_EVENTS {
        Err(format!(
            "has {n} events; the limit is {MAX_EVENTS} per case or dispute"
        ))
    } else {
        Ok(())
    }
}

fn first_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(FIRST_DATE.0, FIRST_DATE.1, FIRST_DATE.2).unwrap_or_default()
}
fn last_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(LAST_DATE.0, LAST_DATE.1, LAST_DATE.2).unwrap_or_default()
}

/// A date in the range cpwatch's calendar covers.
pub fn date(d: NaiveDate) -> Result<(), String> {
    if d < first_date() || d > last_date() {
        Err(format!(
            "{d} is outside the dates cpwatch accepts ({} to {})",
            first_date(),
            last_date()
        ))
    } else {
        Ok(())
    }
}

/// An instant in that range, and not a leap second.
pub fn instant(t: DateTime<Utc>) -> Result<(), String> {
    if t.nanosecond() >= 1_000_000_000 {
        return Err("is a leap second (:60), which cpwatch does not accept".into());
    }
    date(t.date_naive())
}
