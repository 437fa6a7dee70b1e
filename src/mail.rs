//! Turning a notice into a message for one recipient, and the channels that send it (an SMTP
//! relay, driven phase by phase by `smtp`, or a folder of `.eml` files for the demo).

use crate::evaluate::{Kind, Notice};
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
use minijinja::{context, Environment};
use secrecy::{ExposeSecret, SecretString};

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
    #[error("template: {0}")]
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
}

impl MailError {
    /// What the failure means for the delivery: see `smtp::Verdict`.
    pub fn verdict(&self) -> Verdict {
        match self {
            MailError::Smtp(f) => f.verdict(),
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
            _ => "check the [smtp] settings",
        }
    }
}

/// How mail is worded.
pub struct Renderer {
    env: Environment<'static>,
    pub include_names: bool,
}

/// A rendered message, before it is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Renderer {
    pub fn new(include_names: bool) -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html.j2") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        // The templates are compiled in; a syntax error in them is caught by the tests.
        for (name, text) in [
            ("subject.j2", include_str!("../templates/subject.j2")),
            ("body.txt.j2", include_str!("../templates/body.txt.j2")),
            ("body.html.j2", include_str!("../templates/body.html.j2")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "built-in mail template does not compile");
            }
        }
        Renderer { env, include_names }
    }

    /// Word a notification for one recipient, at `now` (for "late by"), with times in `tz`.
    pub fn render(
        &self,
        n: &Notice,
        recipient: &str,
        copied: bool,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Result<Rendered, MailError> {
        let me = n
            .recipients()
            .find(|(r, _)| r.email.as_str() == recipient)
            .map(|(r, _)| r);
        let role = me.map_or("recipient".to_owned(), |r| r.role.replace('_', " "));
        let others: Vec<String> = n
            .recipients()
            .filter(|(r, _)| r.email.as_str() != recipient)
            .map(|(r, _)| match (&r.name, self.include_names) {
                (Some(name), true) => format!("{name} ({})", r.role.replace('_', " ")),
                _ => format!("the {}", r.role.replace('_', " ")),
            })
            .collect();
        let late = now - n.due;
        let lateness = (late.num_minutes() > 0
            && matches!(
                n.kind,
                Kind::Overdue | Kind::OverdueEscalation | Kind::CauseForConcern
            ))
        .then(|| human_duration(late));
        let opening = opening(n);
        let ctx = context! {
            kind => n.kind.as_str(),
            kind_label => kind_label(n.kind),
            title => n.title,
            case => n.case.as_ref().map(|c| c.to_string()),
            dispute => n.dispute.as_ref().map(|d| d.to_string()),
            rule => n.rule,
            standard => n.standard,
            standard_number => n.standard.as_deref().map(|s| s.trim_start_matches('S').to_owned()),
            action => n.action,
            due_local => n.due.with_timezone(&tz).format("%A %-d %B %Y, %H:%M %Z").to_string(),
            lateness => lateness,
            others => others,
            role => role,
            copied => copied,
            key => n.key.as_str(),
            opening => opening,
            letter => n.letter,
        };
        let subject = self
            .env
            .get_template("subject.j2")?
            .render(&ctx)?
            .trim()
            .to_owned();
        let text = self.env.get_template("body.txt.j2")?.render(&ctx)?;
        let html = self.env.get_template("body.html.j2")?.render(&ctx)?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Reminder => "Reminder",
        Kind::Due => "Due today",
        Kind::Overdue => "Overdue",
        Kind::OverdueEscalation => "Overdue, escalated to you",
        Kind::CauseForConcern => "Cause for concern",
        Kind::EscalationStage => "Professional disagreement",
        Kind::EscalationOutcome => "Disagreement outcome",
        Kind::DataQuality => "Case data to check",
        Kind::GoLiveSummary => "Already overdue when cpwatch started",
    }
}

fn opening(n: &Notice) -> String {
    match n.kind {
        Kind::Reminder => "This timescale is coming due and is not yet recorded as done.".into(),
        Kind::Due => "This timescale is due today and is not yet recorded as done.".into(),
        Kind::Overdue => "This timescale has been missed: it is not recorded as done.".into(),
        Kind::OverdueEscalation if n.letter == Some(crate::policy::Letter::ChairChallenge) => {
            "The conference chair challenges this: a timescale of the child's plan has been missed and is still not \
             recorded as done. Please make sure it is put right and tell the chair what has happened."
                .into()
        }
        Kind::OverdueEscalation => {
            "This timescale has been missed and is still not recorded as done. It is escalated to you as the next manager.".into()
        }
        Kind::DataQuality => "cpwatch could not fully evaluate this case because of its recorded data.".into(),
        _ => "cpwatch has a notice for you about this case.".into(),
    }
}

fn human_duration(d: chrono::Duration) -> String {
    let days = d.num_days();
    let hours = d.num_hours() - days * 24;
    match (days, hours) {
        (0, h) => format!("{h} hour{}", if h == 1 { "" } else { "s" }),
        (d, 0) => format!("{d} day{}", if d == 1 { "" } else { "s" }),
        (d, h) => format!(
            "{d} day{} {h} hour{}",
            if d == 1 { "" } else { "s" },
            if h == 1 { "" } else { "s" }
        ),
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
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(rendered.subject.clone())
        .date(std::time::SystemTime::from(date))
        .message_id(Some(message_id.to_owned()))
        .header(AutoSubmitted)
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

/// Where messages go: an SMTP relay, or a folder of `.eml` files (the demo).
pub enum Channel {
    Smtp(Relay),
    /// Each message as a file named by `eml_file_name`.
    Files(std::path::PathBuf),
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
        }
    }

    /// The longest one message may take to send (`smtp.timeout_seconds`).
    pub fn exchange_timeout(&self) -> std::time::Duration {
        match self {
            Channel::Smtp(r) => r.timeout,
            Channel::Files(_) => std::time::Duration::ZERO,
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
        }
        Ok(())
    }
}
