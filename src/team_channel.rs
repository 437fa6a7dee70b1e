//! A partnership's team channel: a Microsoft Teams (Workflows) or Slack incoming webhook that
//! gets a daily summary of overdue timescales and an alert when an immediate-risk notice is
//! queued. What goes there names nobody and no case: counts per rule, a ladder's stage, times.
//! The webhook URL is a secret (whoever holds it can post to the channel): it is never logged
//! nor written into a message.
//!
//! This module holds the settings, the wording (pure) and one POST; `jobs::team_channel` decides
//! when, `store::team_posts` keeps each post exactly once.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Which service's incoming webhook the URL is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"text": ...}`.
    Slack,
    /// A Teams workflow ("Post to a channel when a webhook request is received"): a message with
    /// one Adaptive Card.
    Teams,
}

/// `partnerships.NAME.team_channel` as written.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTeamChannel {
    #[serde(default)]
    pub webhook_url: Option<SecretString>,
    /// A file holding the URL (a systemd credential; relative: in `$CREDENTIALS_DIRECTORY`).
    #[serde(default)]
    pub webhook_url_file: Option<String>,
    /// "teams" or "slack".
    pub format: String,
    /// The local time of the daily summary, on working days (HH:MM; default 09:00).
    #[serde(default)]
    pub summary_at: Option<String>,
    /// Post the daily summary (default true).
    #[serde(default)]
    pub summary: Option<bool>,
    /// Post immediate-risk alerts (default true).
    #[serde(default)]
    pub alerts: Option<bool>,
}

/// A partnership's team channel, checked.
#[derive(Clone)]
pub struct TeamChannel {
    url: Arc<SecretString>,
    pub format: Format,
    pub summary_at: NaiveTime,
    pub summary: bool,
    pub alerts: bool,
}

impl std::fmt::Debug for TeamChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TeamChannel {{ url: [hidden], format: {:?}, summary_at: {}, summary: {}, alerts: {} }}",
            self.format, self.summary_at, self.summary, self.alerts
        )
    }
}

impl TeamChannel {
    /// A channel posting to `url` (tests, and `parse`).
    pub fn new(url: &str, format: Format, summary_at: NaiveTime) -> TeamChannel {
        TeamChannel {
            url: Arc::new(SecretString::from(url.to_owned())),
            format,
            summary_at,
            summary: true,
            alerts: true,
        }
    }
}

/// Check one partnership's `team_channel` (`key` is its name in messages); the URL is never
/// quoted.
pub fn parse(key: &str, raw: RawTeamChannel, p: &mut Vec<String>) -> Option<TeamChannel> {
    let format = match raw.format.as_str() {
        "teams" => Some(Format::Teams),
        "slack" => Some(Format::Slack),
        other => {
            p.push(format!(
                "{key}.format: {other:?} is not one of teams, slack"
            ));
            None
        }
    };
    let summary_at = match raw.summary_at.as_deref() {
        None => Some(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default()),
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M")
            .map_err(|_| {
                p.push(format!(
                    "{key}.summary_at: {t:?} is not a time of day (HH:MM)"
                ))
            })
            .ok(),
    };
    let url = match (raw.webhook_url, raw.webhook_url_file) {
        (Some(_), Some(_)) => {
            p.push(format!(
                "{key}: set either webhook_url or webhook_url_file, not both"
            ));
            None
        }
        (None, None) => {
            p.push(format!(
                "{key}: webhook_url_file (or webhook_url) is required"
            ));
            None
        }
        (Some(url), None) => Some(url.expose_secret().trim().to_owned()),
        (None, Some(file)) => {
            let path = crate::notify::credential_path(&file);
            std::fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .map_err(|e| p.push(format!("{key}.webhook_url_file: {}: {e}", path.display())))
                .ok()
        }
    };
    let url = url.filter(|u| match reqwest::Url::parse(u) {
        Ok(parsed) if parsed.scheme() == "https" || parsed.scheme() == "http" => true,
        _ => {
            p.push(format!(
                "{key}: the webhook URL is not an http(s) URL (not shown: it is a secret)"
            ));
            false
        }
    });
    Some(TeamChannel {
        url: Arc::new(SecretString::from(url?)),
        format: format?,
        summary_at: summary_at?,
        summary: raw.summary.unwrap_or(true),
        alerts: raw.alerts.unwrap_or(true),
    })
}

/// One line of the daily summary: a rule and how many of its timescales are overdue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverdueLine {
    pub standard: String,
    pub title: String,
    pub overdue: usize,
    /// The longest overdue, in whole days.
    pub longest_days: i64,
}

/// The daily summary's text: counts per rule, no names, no case references.
pub fn summary_text(partnership: &str, day: NaiveDate, lines: &[OverdueLine]) -> String {
    let total: usize = lines.iter().map(|l| l.overdue).sum();
    let date = day.format("%A %-d %B %Y");
    if total == 0 {
        return format!(
            "cpwatch, {partnership}, {date}: no child-protection timescale is overdue."
        );
    }
    let mut text = format!(
        "cpwatch, {partnership}, {date}: {total} child-protection timescale{} overdue.",
        if total == 1 { " is" } else { "s are" }
    );
    for l in lines.iter().filter(|l| l.overdue > 0) {
        let standard = if l.standard.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.standard)
        };
        text.push_str(&format!(
            "\n- {}{standard}: {} overdue, the longest by {} day{}",
            l.title,
            l.overdue,
            l.longest_days,
            if l.longest_days == 1 { "" } else { "s" }
        ));
    }
    text.push_str(
        "\nThe people responsible have each been told by email. Details in cpwatch \
         (`cpwatch report`, `cpwatch case`).",
    );
    text
}

/// A disagreement notice's stage as stored in its facts (`evaluate::DisputeFacts`): each part
/// absent from a notice queued without them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stage<'a> {
    pub policy_title: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub stage_name: Option<&'a str>,
}

/// The notice an alert is about, in words. A disagreement notice of payload version 4 stores
/// its title as the code `dispute-stage`: "{policy title}, stage {n}: {stage name}" from its
/// facts, as the mail says it (`_dispute_title.j2`). A notice queued before keeps its title in
/// words, used as stored.
pub fn alert_title(stored: &str, s: &Stage) -> String {
    if stored != crate::evaluate::DisputeFacts::TITLE {
        return stored.to_owned();
    }
    match (s.policy_title, s.stage, s.stage_name) {
        (Some(policy), Some(n), Some(name)) => format!("{policy}, stage {n}: {name}"),
        (Some(policy), Some(n), None) => format!("{policy}, stage {n}"),
        _ => "a stage of the partnership's escalation policy".to_owned(),
    }
}

/// What an immediate-risk alert says: the ladder's stage and when it is due, in local time.
pub fn alert_text(partnership: &str, title: &str, due: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "cpwatch, {partnership}: IMMEDIATE RISK. A professional disagreement about a child \
         considered at immediate risk of significant harm needs action today: {title}. Due by \
         {}. The people concerned have been told by email.",
        due.with_timezone(&tz).format("%A %-d %B %Y, %H:%M %Z")
    )
}

/// The JSON a webhook of this format takes for `text`.
pub fn payload(format: Format, text: &str) -> serde_json::Value {
    match format {
        Format::Slack => serde_json::json!({ "text": text }),
        Format::Teams => {
            let blocks: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::json!({"type": "TextBlock", "text": l, "wrap": true}))
                .collect();
            serde_json::json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": blocks,
                    }
                }]
            })
        }
    }
}

/// Why a post did not go.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("the team channel's webhook could not be reached: {0}")]
    Unreachable(String),
    #[error("the team channel's webhook answered {status}: {body}")]
    Refused { status: u16, body: String },
}

impl PostError {
    /// A 4xx other than 408 and 429 will not get better by trying again (a revoked URL, a
    /// removed channel, a payload the service refuses); the rest is retried.
    pub fn permanent(&self) -> bool {
        matches!(self, PostError::Refused { status, .. }
            if (400..500).contains(status) && *status != 408 && *status != 429)
    }
}

/// Post `text` to the channel; Ok on any 2xx (Slack answers 200 `ok`, a Teams workflow 202).
pub async fn post(
    http: &reqwest::Client,
    channel: &TeamChannel,
    text: &str,
) -> Result<(), PostError> {
    let response = http
        .post(channel.url.expose_secret())
        .timeout(Duration::from_secs(30))
        .json(&payload(channel.format, text))
        .send()
        .await
        // The error's URL would be the secret one.
        .map_err(|e| PostError::Unreachable(crate::notify::chain(&e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    Err(PostError::Refused {
        status: status.as_u16(),
        body: body.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_counts_without_names_or_references() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        let t = summary_text(
            "knowsley",
            day,
            &[OverdueLine {
                standard: "S1".into(),
                title: "Initial conference within 15 working days".into(),
                overdue: 2,
                longest_days: 1,
            }],
        );
        assert!(t.starts_with("cpwatch, knowsley, Thursday 12 March 2026: 2 child-protection timescales are overdue."), "{t}");
        assert!(t.contains("- Initial conference within 15 working days (S1): 2 overdue, the longest by 1 day\n"), "{t}");
        assert!(summary_text("k", day, &[]).contains("no child-protection timescale is overdue"));
    }

    #[test]
    fn an_alert_words_a_disagreement_title_from_its_facts_or_keeps_the_stored_one() {
        let stage = Stage {
            policy_title: Some("Knowsley escalation policy (2019)"),
            stage: Some("2"),
            stage_name: Some("Line manager to line manager"),
        };
        assert_eq!(
            alert_title("dispute-stage", &stage),
            "Knowsley escalation policy (2019), stage 2: Line manager to line manager"
        );
        // Queued before titles were codes: the title as it was worded then.
        let old = "Knowsley escalation policy (2019), stage 2: Line manager to line manager";
        assert_eq!(alert_title(old, &Stage::default()), old);
        assert_eq!(alert_title(old, &stage), old);
        let missing = alert_title("dispute-stage", &Stage::default());
        assert!(!missing.contains("dispute-stage"), "{missing}");
    }

    #[test]
    fn teams_gets_an_adaptive_card_and_slack_text() {
        let v = payload(Format::Teams, "a\nb");
        assert_eq!(
            v["attachments"][0]["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(v["attachments"][0]["content"]["body"][1]["text"], "b");
        assert_eq!(
            payload(Format::Slack, "a\nb"),
            serde_json::json!({"text": "a\nb"})
        );
    }

    #[test]
    fn the_url_is_never_shown() {
        let mut p = Vec::new();
        let raw = RawTeamChannel {
            webhook_url: Some(SecretString::from("ftp://secret-token@x".to_owned())),
            webhook_url_file: None,
            format: "teams".into(),
            summary_at: Some("25:00".into()),
            summary: None,
            alerts: None,
        };
        assert!(parse("partnerships.k.team_channel", raw, &mut p).is_none());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(!p.join(" ").contains("secret-token"));
        let ok = TeamChannel::new(
            "https://hooks.example/secret-token",
            Format::Slack,
            NaiveTime::MIN,
        );
        assert!(!format!("{ok:?}").contains("secret-token"));
    }
}
