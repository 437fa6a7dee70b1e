//! Turning a notice into a message for one recipient, and the channels that send it (an SMTP
//! relay, driven phase by phase by `smtp`, or a folder of `.eml` files for the demo).

use crate::evaluate::Kind;
pub mod digest;
use crate::settings::{Security, Smtp};
use crate::smtp::{self, Relay, Verdict};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::TlsParameters;
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

pub mod context;
mod render;
pub mod samples;
pub use render::{
    environment, render_parts, template_for, Rendered, Renderer, BUILT_IN, TEMPLATES,
};

/// `Auto-Submitted: auto-generated` (RFC 3834), so auto-responders stay quiet.
#[derive(Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The stored notice cannot be read; `permanent` when no version of cpwatch can read it.
    #[error("{message}")]
    Unreadable { message: String, permanent: bool },
    /// A template that does not render: its name and line, and what is wrong.
    #[error("template {}", render::template_problem(.0.name().unwrap_or("?"), .0))]
    Template(#[from] minijinja::Error),
    #[error("building the message: {0}")]
    Build(String),
    #[error("{0}")]
    Smtp(#[from] smtp::Failure),
    /// The relay's settings cannot be used (a TLS set-up that fails before connecting).
    #[error("setting up the mail relay: {0}")]
    Setup(String),
    #[error("writing the message file: {0}")]
    File(String),
    #[error("{0}")]
    Notify(#[from] crate::notify::Failure),
}

impl MailError {
    /// What the failure means for the delivery: see `smtp::Verdict`.
    pub fn verdict(&self) -> Verdict {
        match self {
            MailError::Smtp(f) => f.verdict(),
            MailError::Notify(f) => f.verdict(),
            MailError::Setup(_) => Verdict::RelayFault,
            // A template fault is ours, not the recipient's: retry, so a fixed build can send it.
            MailError::Template(_) | MailError::File(_) => Verdict::Message { permanent: false },
            MailError::Unreadable { permanent, .. } => Verdict::Message {
                permanent: *permanent,
            },
            // The recipient's address cannot be written into a message.
            MailError::Build(_) => Verdict::Recipient { permanent: true },
        }
    }

    /// What an operator should do when the relay or its configuration failed.
    pub fn advice(&self) -> &'static str {
        match self {
            MailError::Smtp(f) => f.advice(),
            MailError::Notify(f) => f.advice(),
            _ => "check the [smtp] settings",
        }
    }
}

/// Build the full message to `recipient`, dated `date` (the instant it is sent; the demo's
/// simulated clock).
pub fn build_message(
    recipient: &str,
    message_id: &str,
    from: &Mailbox,
    rendered: &Rendered,
    date: DateTime<Utc>,
) -> Result<Message, MailError> {
    let to: Mailbox = recipient
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            MailError::Build(format!("recipient {recipient}: {e}"))
        })?;
    let root = thread_root(&rendered.thread, message_id);
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .date(std::time::SystemTime::from(date))
        .message_id(Some(message_id.to_owned()))
        .in_reply_to(root.clone())
        .references(root)
        .header(AutoSubmitted);
    if let Some(reply_to) = rendered.reply_to.as_deref().and_then(|r| r.parse().ok()) {
        builder = builder.reply_to(reply_to);
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(rendered.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(rendered.html.clone()),
                ),
        )
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Mail templates that do not compile or render, as one error listing each with its file and line.
pub fn template_error(problems: Vec<String>) -> anyhow::Error {
    anyhow::anyhow!("mail templates:\n  {}", problems.join("\n  "))
}

/// The `Message-ID` every message of one thread (`Rendered::thread`: a notice's thread key and
/// its reader) replies to: a hash of it at the domain of this message's own `Message-ID`, so it
/// is derived, never looked up. Mail clients show the messages as one conversation.
pub fn thread_root(thread: &str, message_id: &str) -> String {
    let domain = message_id
        .trim_matches(|c| c == '<' || c == '>')
        .rsplit_once('@')
        .map_or("cpwatch.invalid", |(_, d)| d);
    let digest = Sha256::digest(format!("thread/{thread}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// Where messages go: an SMTP relay, or a folder of `.eml` files (the demo).
pub enum Channel {
    Smtp(Relay),
    /// Each message as a file named by `eml_file_name`.
    Files(std::path::PathBuf),
    /// GOV.UK Notify: the rendered notice, sent with `send_notify` (not a built message).
    Notify(crate::notify::Client),
}

/// What a message's `.eml` file is named after: when it was sent, what it is about, its kind,
/// and its delivery (so no two share a name).
#[derive(Debug, Clone, Copy)]
pub struct FileLabel<'a> {
    pub at: DateTime<Utc>,
    pub tz: Tz,
    /// The case or dispute reference, or the partnership.
    pub about: &'a str,
    pub kind: Kind,
    pub delivery: i64,
}

/// `2026-03-12_0900_KN-0005_cause_for_concern_27.eml`: the local time it was sent, the case or
/// dispute, the kind, the delivery's id; a person finds it by the demo's summary table.
pub fn eml_file_name(l: &FileLabel) -> String {
    let about: String = l
        .about
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}_{about}_{}_{}.eml",
        l.at.with_timezone(&l.tz).format("%Y-%m-%d_%H%M"),
        l.kind.as_str(),
        l.delivery
    )
}

impl Channel {
    /// The relay `[smtp]` names, with its password (from `password` or `password_file`).
    pub fn smtp(cfg: &Smtp, password: Option<SecretString>) -> Result<Self, MailError> {
        let tls =
            || TlsParameters::new(cfg.host.clone()).map_err(|e| MailError::Setup(e.to_string()));
        let security = match cfg.security {
            Security::Tls => smtp::Security::Tls(tls()?),
            Security::StartTls => smtp::Security::StartTls(tls()?),
            Security::Plain => smtp::Security::Plain,
        };
        let credentials = password.map(|pw| {
            Credentials::new(
                cfg.username.clone().unwrap_or_default(),
                pw.expose_secret().to_owned(),
            )
        });
        Ok(Channel::Smtp(Relay {
            host: cfg.host.clone(),
            port: cfg.port,
            security,
            credentials,
            timeout: cfg.timeout,
            cleartext_auth: cfg.insecure_cleartext_password,
            hello: ClientId::default(),
            kept: Default::default(),
        }))
    }

    /// The relay as configured, reading the password file if there is one.
    pub fn configured(settings: &crate::settings::Settings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        if settings.mail.channel == crate::settings::MailChannel::Notify {
            let client = crate::notify::Client::new(&settings.notify).map_err(MailError::Setup)?;
            return Ok(Channel::Notify(client));
        }
        let password = settings.smtp_password().context("smtp.password_file")?;
        Ok(Channel::smtp(&settings.smtp, password)?)
    }

    /// Write each message as a `.eml` file in `dir` (which must exist), named by
    /// `eml_file_name`.
    pub fn files(dir: &std::path::Path) -> Self {
        Channel::Files(dir.to_path_buf())
    }

    /// `host:port` of the relay (None for files).
    pub fn relay_name(&self) -> Option<String> {
        match self {
            Channel::Smtp(r) => Some(r.name()),
            Channel::Files(_) => None,
            Channel::Notify(n) => Some(n.name()),
        }
    }

    /// The longest one message may take to send (`smtp.timeout_seconds`).
    pub fn exchange_timeout(&self) -> std::time::Duration {
        match self {
            Channel::Smtp(r) => r.timeout,
            Channel::Files(_) => std::time::Duration::ZERO,
            Channel::Notify(n) => n.timeout(),
        }
    }

    /// Close the connection kept open for the next message, if any.
    pub async fn close(&self) {
        if let Channel::Smtp(relay) = self {
            relay.close().await;
        }
    }

    /// Send `message`; a file channel names its file after `label`.
    pub async fn send(&self, message: Message, label: &FileLabel<'_>) -> Result<(), MailError> {
        self.send_until(message, label, None).await
    }

    /// Send, giving up before the end of DATA if `stop` turns true (cpwatch is stopping); a
    /// file channel names its file after `label`.
    pub async fn send_until(
        &self,
        message: Message,
        label: &FileLabel<'_>,
        stop: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<(), MailError> {
        match self {
            Channel::Smtp(relay) => {
                relay
                    .send(message.envelope(), &message.formatted(), stop)
                    .await?;
            }
            Channel::Files(dir) => {
                let path = dir.join(eml_file_name(label));
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| MailError::File(format!("{}: {e}", path.display())))?;
            }
            Channel::Notify(_) => {
                return Err(MailError::Setup(
                    "GOV.UK Notify sends a rendered notice, not a built message".into(),
                ))
            }
        }
        Ok(())
    }

    /// GOV.UK Notify, when that is the channel: send the rendered notice to `recipient`, with
    /// `reference` (the delivery's dedupe key). None for the other channels.
    pub async fn send_notify(
        &self,
        recipient: &str,
        kind: Kind,
        rendered: &Rendered,
        reference: &str,
    ) -> Option<Result<(), MailError>> {
        let Channel::Notify(client) = self else {
            return None;
        };
        let email = crate::notify::Email {
            to: recipient,
            kind,
            subject: &rendered.subject,
            body: &rendered.text,
            reference,
        };
        Some(client.send(&email).await.map_err(MailError::from))
    }
}
