//! The bank-holiday feed adapter: fetch the GOV.UK bank-holidays JSON with reqwest and
//! validate it (storing it is `store::holidays`).
//!
//! The daemon does: [`refresh`] → on `Ok`, `store::holidays::store_feed` (in `spawn_blocking`)
//! → rebuild its calendars; on `Err`, warn and keep the last good copy. Nothing here ever
//! replaces good data with bad: [`refresh`] returns a fully validated feed or an error.

use crate::calendar::{BankHolidays, FeedError};
use std::time::Duration;

/// The GOV.UK feed.
pub const DEFAULT_URL: &str = "https://www.gov.uk/bank-holidays.json";
/// A generous limit for one fetch (the real feed answers in well under a second).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The real feed is about 20 KB; anything beyond this is not the feed.
pub const MAX_FEED_BYTES: usize = 4 * 1024 * 1024;

fn fetch_error(url: &str, timeout: Duration, e: reqwest::Error) -> FeedError {
    if e.is_timeout() {
        FeedError::Timeout {
            url: url.to_owned(),
            after: timeout,
        }
    } else {
        FeedError::Fetch {
            url: url.to_owned(),
            source: Box::new(e),
        }
    }
}

/// Fetches the feed from `url` and validates it. The whole exchange (connect, headers, body) is
/// bounded by `timeout`. Never panics; any failure is a [`FeedError`].
pub async fn refresh(url: &str, timeout: Duration) -> Result<BankHolidays, FeedError> {
    match tokio::time::timeout(timeout, fetch_and_parse(url, timeout)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(FeedError::Timeout {
            url: url.to_owned(),
            after: timeout,
        }),
    }
}

async fn fetch_and_parse(url: &str, timeout: Duration) -> Result<BankHolidays, FeedError> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("cpwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fetch_error(url, timeout, e))?;
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fetch_error(url, timeout, e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(FeedError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let too_large = || FeedError::TooLarge {
        url: url.to_owned(),
        limit: MAX_FEED_BYTES,
    };
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FEED_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fetch_error(url, timeout, e))?
    {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| FeedError::NotUtf8)?;
    BankHolidays::parse_feed(&text)
}
