//! GOV.UK Notify as a mail channel: one `POST /v2/notifications/email` per message, signed with
//! the short-lived token Notify requires, and what each of its answers means for the delivery
//! (`smtp::Verdict`, the contract delivery already keeps for an SMTP relay).
//!
//! The API key (`{key_name}-{service_id}-{secret}`) is read from a credential file and kept as a
//! secret: only the service id (the token's issuer, not a secret) ever appears in a message.
//! Each kind of notice has a Notify template (set up in Notify's web pages); cpwatch sends the
//! subject and body its own renderer wrote as personalisation, and its dedupe key as Notify's
//! `reference`.

use crate::evaluate::Kind;
use crate::smtp::Verdict;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Notify's public API.
pub const DEFAULT_BASE_URL: &str = "https://api.notifications.service.gov.uk";

/// A Notify API key, split into the service id (the token's issuer) and its secret.
#[derive(Clone)]
pub struct ApiKey {
    pub service_id: String,
    secret: std::sync::Arc<SecretString>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiKey {{ service_id: {}, secret: [hidden] }}",
            self.service_id
        )
    }
}

/// Why an API key cannot be used (never quoting the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is empty")]
    Empty,
    #[error(
        "is not a Notify API key: expected key_name-service_id-secret, the last two each a \
         36-character id (copy the whole key from Notify's API integration page)"
    )]
    Malformed,
}

impl ApiKey {
    /// `{key_name}-{service_id(36)}-{secret(36)}`: the key name may itself hold hyphens.
    pub fn parse(text: &str) -> Result<ApiKey, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let n = text.len();
        if n < 74 || !text.is_ascii() || text.as_bytes()[n - 37] != b'-' {
            return Err(KeyError::Malformed);
        }
        let (service_id, secret) = (&text[n - 73..n - 37], &text[n - 36..]);
        if uuid::Uuid::try_parse(service_id).is_err() || uuid::Uuid::try_parse(secret).is_err() {
            return Err(KeyError::Malformed);
        }
        Ok(ApiKey {
            service_id: service_id.to_owned(),
            secret: std::sync::Arc::new(SecretString::from(secret.to_owned())),
        })
    }

    /// The bearer token for a request issued at `iat` (Unix seconds): HS256 over
    /// `{"iss": service_id, "iat": iat}`. Notify accepts it for 30 seconds either side.
    pub fn token(&self, iat: i64) -> Result<String, jsonwebtoken::errors::Error> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            iat: i64,
        }
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        let key = jsonwebtoken::EncodingKey::from_secret(self.secret.expose_secret().as_bytes());
        jsonwebtoken::encode(
            &header,
            &Claims {
                iss: &self.service_id,
                iat,
            },
            &key,
        )
    }
}

/// `[notify]` as written in the configuration.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// The template of every kind that `templates` does not name.
    #[serde(default)]
    pub template_id: Option<String>,
    /// A template per kind of notice (`overdue = "uuid"`).
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    #[serde(default)]
    pub email_reply_to_id: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// `[notify]`, checked.
#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub base_url: String,
    /// Read from `api_key_file` when the channel is Notify (None otherwise).
    pub key: Option<ApiKey>,
    pub template_id: Option<String>,
    pub templates: BTreeMap<Kind, String>,
    pub email_reply_to_id: Option<String>,
    pub timeout: Duration,
}

impl NotifySettings {
    /// The template a kind of notice is sent with.
    pub fn template_for(&self, kind: Kind) -> Option<&str> {
        self.templates
            .get(&kind)
            .or(self.template_id.as_ref())
            .map(String::as_str)
    }
}

/// A credential file's path: a relative one is looked up in systemd's `$CREDENTIALS_DIRECTORY`
/// when that is set (`LoadCredential=notify-api-key:...` then `api_key_file = "notify-api-key"`).
pub fn credential_path(file: &str) -> PathBuf {
    let path = Path::new(file);
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) if path.is_relative() => Path::new(&dir).join(path),
        _ => path.to_path_buf(),
    }
}

/// Check `[notify]`; with `required` (mail.channel = "notify") the key file and a template for
/// every kind must be there. Problems are pushed with their keys.
pub fn parse_settings(raw: RawNotify, required: bool, p: &mut Vec<String>) -> NotifySettings {
    let base_url = raw
        .base_url
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
        .trim_end_matches('/')
        .to_owned();
    match reqwest::Url::parse(&base_url) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            p.push("notify.base_url: must not hold a user name or password".into())
        }
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => p.push("notify.base_url: must be an http(s) URL".into()),
    }
    let template_id = raw
        .template_id
        .and_then(|v| uuid_or_problem("notify.template_id".into(), v, p));
    let templates = parse_templates(raw.templates, p);
    let email_reply_to_id = raw
        .email_reply_to_id
        .and_then(|v| uuid_or_problem("notify.email_reply_to_id".into(), v, p));
    let timeout = Duration::from_secs(raw.timeout_seconds.unwrap_or(30).max(1));
    let mut s = NotifySettings {
        base_url,
        key: None,
        template_id,
        templates,
        email_reply_to_id,
        timeout,
    };
    if required {
        s.key = read_key(raw.api_key_file.as_deref(), p);
        let missing: Vec<&str> = Kind::ALL
            .iter()
            .filter(|k| s.template_for(**k).is_none())
            .map(|k| k.as_str())
            .collect();
        if !missing.is_empty() {
            p.push(format!(
                "notify.templates: no Notify template for {} (set notify.template_id for all \
                 kinds, or notify.templates.KIND for each)",
                missing.join(", ")
            ));
        }
    }
    s
}

/// `notify.templates`: a template id per kind of notice.
fn parse_templates(raw: BTreeMap<String, String>, p: &mut Vec<String>) -> BTreeMap<Kind, String> {
    let mut templates = BTreeMap::new();
    for (kind, id) in raw {
        let key = format!("notify.templates.{kind}");
        match Kind::parse(&kind) {
            Some(k) => {
                if let Some(id) = uuid_or_problem(key, id, p) {
                    templates.insert(k, id);
                }
            }
            None => {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                p.push(format!(
                    "{key}: no kind of notice {kind:?} (the kinds are {})",
                    known.join(", ")
                ))
            }
        }
    }
    templates
}

fn uuid_or_problem(key: String, v: String, p: &mut Vec<String>) -> Option<String> {
    let ok = uuid::Uuid::try_parse(v.trim()).is_ok();
    if !ok {
        p.push(format!("{key}: {v:?} is not a Notify id (a UUID)"));
    }
    ok.then(|| v.trim().to_owned())
}

fn read_key(file: Option<&str>, p: &mut Vec<String>) -> Option<ApiKey> {
    let Some(file) = file.filter(|f| !f.trim().is_empty()) else {
        p.push("notify.api_key_file: mail.channel is \"notify\" but no API key file is set".into());
        return None;
    };
    let path = credential_path(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            p.push(format!("notify.api_key_file: {}: {e}", path.display()));
            return None;
        }
    };
    ApiKey::parse(&text)
        .map_err(|e| p.push(format!("notify.api_key_file: {}: {e}", path.display())))
        .ok()
}

/// One of Notify's error entries: `{"error": "ValidationError", "message": "..."}`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiError {
    pub error: String,
    pub message: String,
}

/// What went wrong with one request to Notify.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No connection: nothing was sent.
    #[error("GOV.UK Notify ({host}) could not be reached: {detail}")]
    Unreachable { host: String, detail: String },
    /// The request went out and no answer came: Notify may have taken it.
    #[error("GOV.UK Notify ({host}) did not answer the request: {detail}")]
    NoAnswer { host: String, detail: String },
    /// Notify answered with an error status.
    #[error("GOV.UK Notify ({host}) refused it: {status} {}", describe(.errors))]
    Refused {
        host: String,
        status: u16,
        errors: Vec<ApiError>,
    },
    /// The token could not be made (not expected with a parsed key).
    #[error("signing the GOV.UK Notify token: {0}")]
    Token(String),
}

fn describe(errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return "(no error message)".into();
    }
    errors
        .iter()
        .map(|e| format!("{}: {}", e.error, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Failure {
    fn says(&self, what: &str) -> bool {
        match self {
            Failure::Refused { errors, .. } => errors
                .iter()
                .any(|e| e.message.to_ascii_lowercase().contains(what)),
            _ => false,
        }
    }

    /// What the failure means for the delivery, as for an SMTP relay:
    /// - no connection, 401/403 (our key or clock), 429 (the service's rate or daily limit),
    ///   502/503/504, a trial-mode or team-only key: the channel's fault, mail waits;
    /// - no answer after the request went out: maybe sent, not sent again;
    /// - 400 about the email address: that recipient fails; other 4xx: the message fails;
    /// - 500 and other 5xx: a temporary failure of this message, retried with backoff.
    pub fn verdict(&self) -> Verdict {
        let status = match self {
            Failure::Unreachable { .. } | Failure::Token(_) => return Verdict::RelayFault,
            Failure::NoAnswer { .. } => return Verdict::Unconfirmed,
            Failure::Refused { status, .. } => *status,
        };
        match status {
            401 | 403 | 429 | 502..=504 => Verdict::RelayFault,
            400 if self.says("team-only api key") || self.says("trial mode") => Verdict::RelayFault,
            400 if self.says("email_address") || self.says("email address") => {
                Verdict::Recipient { permanent: true }
            }
            400..=499 => Verdict::Message { permanent: true },
            _ => Verdict::Message { permanent: false },
        }
    }

    /// What an operator should do about it.
    pub fn advice(&self) -> &'static str {
        let status = match self {
            Failure::Refused { status, .. } => *status,
            Failure::Unreachable { .. } => {
                return "cpwatch cannot reach GOV.UK Notify: check notify.base_url, the network \
                        and any proxy between this machine and Notify"
            }
            Failure::NoAnswer { .. } => {
                return "GOV.UK Notify did not answer in time: look for the message by its \
                        reference on Notify's dashboard; raise notify.timeout_seconds if this recurs"
            }
            Failure::Token(_) => return "check notify.api_key_file",
        };
        match status {
            401 | 403 => {
                "GOV.UK Notify refused cpwatch's API key: check that notify.api_key_file holds a \
                 current key of this service, and that this machine's clock is right (Notify \
                 allows 30 seconds)"
            }
            429 => {
                "GOV.UK Notify's rate limit or daily limit for this service was reached: mail \
                 waits and goes when Notify accepts it again; ask Notify to raise the limit if \
                 this recurs"
            }
            400 if self.says("team-only") || self.says("trial mode") => {
                "the Notify service is in trial mode or the API key is team-only: only the \
                 team's own addresses can be sent to; use a live key of a live service"
            }
            502..=504 => "GOV.UK Notify is unavailable for now: mail waits",
            _ => "check the [notify] settings and the templates in Notify",
        }
    }
}

/// The Notify channel: a client, the key and the templates.
pub struct Client {
    settings: NotifySettings,
    key: ApiKey,
    http: reqwest::Client,
    host: String,
}

/// What one email asks Notify to send.
pub struct Email<'a> {
    pub to: &'a str,
    pub kind: Kind,
    pub subject: &'a str,
    pub body: &'a str,
    /// cpwatch's dedupe key of the delivery (`{notice key}/{recipient}`).
    pub reference: &'a str,
}

impl Client {
    /// The client for `settings`, whose key was read when they were checked.
    pub fn new(settings: &NotifySettings) -> Result<Client, String> {
        let key = settings
            .key
            .clone()
            .ok_or("notify.api_key_file: no API key was read")?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("setting up the HTTP client: {}", e.without_url()))?;
        let host = reqwest::Url::parse(&settings.base_url)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            })
            .unwrap_or_else(|| "notify".into());
        Ok(Client {
            settings: settings.clone(),
            key,
            http,
            host,
        })
    }

    /// The name `cpwatch health` shows for this channel.
    pub fn name(&self) -> String {
        format!("GOV.UK Notify {}", self.host)
    }

    /// The longest one request may take (`notify.timeout_seconds`).
    pub fn timeout(&self) -> std::time::Duration {
        self.settings.timeout
    }

    /// The JSON body of one email.
    pub fn body(&self, m: &Email<'_>) -> serde_json::Value {
        let mut body = serde_json::json!({
            "email_address": m.to,
            "template_id": self.settings.template_for(m.kind).unwrap_or_default(),
            "personalisation": {
                "subject": m.subject,
                "body": m.body,
                "kind": m.kind.as_str(),
            },
            "reference": m.reference,
        });
        if let Some(id) = &self.settings.email_reply_to_id {
            body["email_reply_to_id"] = serde_json::Value::String(id.clone());
        }
        body
    }

    /// Send one email; Ok when Notify accepted it (201).
    pub async fn send(&self, m: &Email<'_>) -> Result<(), Failure> {
        let token = self
            .key
            .token(chrono::Utc::now().timestamp())
            .map_err(|e| Failure::Token(e.to_string()))?;
        let url = format!("{}/v2/notifications/email", self.settings.base_url);
        let host = self.host.clone();
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&self.body(m))
            .send()
            .await
            .map_err(|e| {
                let unsent = e.is_connect() || e.is_builder();
                let detail = chain(&e.without_url());
                if unsent {
                    Failure::Unreachable {
                        host: host.clone(),
                        detail,
                    }
                } else {
                    Failure::NoAnswer {
                        host: host.clone(),
                        detail,
                    }
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(Failure::Refused {
            host,
            status: status.as_u16(),
            errors: errors_of(&text),
        })
    }
}

/// An error and its causes ("error sending request: operation timed out").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Notify's `{"status_code": N, "errors": [...]}`; anything else as one entry of its own text
/// (cut short: a proxy's error page is not worth a whole log line).
fn errors_of(text: &str) -> Vec<ApiError> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<ApiError>,
    }
    match serde_json::from_str::<Body>(text) {
        Ok(b) if !b.errors.is_empty() => b.errors,
        _ => {
            let short: String = text.chars().take(200).collect();
            vec![ApiError {
                error: "Response".into(),
                message: short.trim().to_owned(),
            }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "cpwatch-test-26785a09-ab16-4eb0-8407-a37497a57506-3d844edf-8d35-48ac-975b-e847b4f122b0";

    #[test]
    fn the_key_splits_into_service_and_secret_from_the_end() {
        let k = ApiKey::parse(&format!("{KEY}\n")).unwrap();
        assert_eq!(k.service_id, "26785a09-ab16-4eb0-8407-a37497a57506");
        assert_eq!(
            k.secret.expose_secret(),
            "3d844edf-8d35-48ac-975b-e847b4f122b0"
        );
        assert!(!format!("{k:?}").contains("3d844edf"));
        assert_eq!(ApiKey::parse("  ").unwrap_err(), KeyError::Empty);
        assert_eq!(ApiKey::parse("not-a-key").unwrap_err(), KeyError::Malformed);
        assert_eq!(
            ApiKey::parse(&KEY.replace("-3d844edf", "x3d844edf")).unwrap_err(),
            KeyError::Malformed
        );
    }

    fn refused(status: u16, error: &str, message: &str) -> Failure {
        Failure::Refused {
            host: "h".into(),
            status,
            errors: vec![ApiError {
                error: error.into(),
                message: message.into(),
            }],
        }
    }

    #[test]
    fn notify_answers_map_onto_the_relay_contract() {
        let v = |s, e, m| refused(s, e, m).verdict();
        assert_eq!(
            v(
                400,
                "ValidationError",
                "email_address Not a valid email address"
            ),
            Verdict::Recipient { permanent: true }
        );
        assert_eq!(
            v(400, "BadRequestError", "Template not found"),
            Verdict::Message { permanent: true }
        );
        assert_eq!(
            v(
                400,
                "BadRequestError",
                "Can't send to this recipient using a team-only API key"
            ),
            Verdict::RelayFault
        );
        assert_eq!(
            v(403, "AuthError", "Invalid token: API key not found"),
            Verdict::RelayFault
        );
        assert_eq!(
            v(429, "RateLimitError", "Exceeded rate limit"),
            Verdict::RelayFault
        );
        assert_eq!(
            v(500, "Exception", "Internal server error"),
            Verdict::Message { permanent: false }
        );
        assert_eq!(v(503, "x", "y"), Verdict::RelayFault);
    }
}
