//! Typed settings from layered sources: built-in defaults → file → `CPWATCH_*` environment.
//!
//! One loader reads the layers into raw text (`Raw*`), then parses every value once into the
//! type the program uses (`Tz`, `NaiveTime`, `Mailbox`, `Email`, dates, paths, an enum for SMTP
//! security) and loads the policy catalogue the partnerships name, collecting every problem
//! with its key. Nothing downstream parses a setting again or falls back to a default.
//! Secrets are `SecretString`s, so they cannot be logged by accident.

use crate::calendar::{BankHolidays, Calendar, Tz, DIVISIONS};
use crate::domain::Email;
use crate::policy::Catalogue;
use chrono::{NaiveDate, NaiveTime};
use lettre::message::Mailbox;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The defaults, compiled in: the same text as `config/cpwatch.toml`.
pub const DEFAULTS: &str = include_str!("../config/cpwatch.toml");
/// Read when no `--config` is given, if present.
pub const SYSTEM_PATH: &str = "/etc/cpwatch/cpwatch.toml";

/// Everything cpwatch is configured with, parsed and checked.
#[derive(Debug)]
pub struct Settings {
    pub database: Database,
    pub smtp: Smtp,
    pub mail: Mail,
    pub delivery: Delivery,
    pub schedule: Schedule,
    pub calendar: CalendarSettings,
    /// The daemon's HTTP listener for metrics and health probes.
    pub metrics: MetricsSettings,
    pub digest: DigestSettings,
    /// Extra policy files beside the built-in ones (`policies.dir`).
    pub policy_dir: Option<PathBuf>,
    /// Every policy, loaded once from the shipped files and `policy_dir`.
    pub catalogue: Catalogue,
    pub partnerships: BTreeMap<String, Partnership>,
    /// `[notify]`: GOV.UK Notify, used when `mail.channel = "notify"`.
    pub notify: crate::notify::NotifySettings,
}

#[derive(Debug)]
pub struct Database {
    pub url: SecretString,
    pub auto_migrate: bool,
    pub batch_size: usize,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// Implicit TLS from the first byte (usually port 465).
    Tls,
    /// No encryption: for a relay on the same machine.
    Plain,
}

impl Security {
    fn parse(s: &str) -> Option<Security> {
        match s {
            "starttls" => Some(Security::StartTls),
            "tls" => Some(Security::Tls),
            "plain" => Some(Security::Plain),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// A file holding the password (a systemd credential), read when the channel is built.
    pub password_file: Option<PathBuf>,
    pub from: Mailbox,
    /// The deadline of one whole SMTP exchange, connect to the answer to the end of DATA.
    pub timeout: Duration,
    /// Allow the password to cross the network unencrypted (`security = "plain"` to a relay
    /// that is not on this machine). Off unless a deployment insists.
    pub insecure_cleartext_password: bool,
}

#[derive(Debug)]
pub struct Mail {
    pub include_names: bool,
    /// Where data-quality notices go when a case has no reachable team manager.
    pub admin_address: Option<Email>,
    pub message_id_domain: String,
    /// Where mail goes: the SMTP relay or GOV.UK Notify.
    pub channel: MailChannel,
}

/// `mail.channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailChannel {
    Smtp,
    Notify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub interval_seconds: u64,
    pub batch_size: i64,
    pub lease_seconds: i64,
    pub max_attempts: i32,
    pub working_hours_only: bool,
    /// First retry delay after a temporary failure; doubles each attempt (with jitter).
    pub retry_base_seconds: i64,
    /// The longest retry delay.
    pub retry_max_seconds: i64,
    /// Sent messages are recorded in one statement per this many (and at once after a slow
    /// exchange): a process killed between send and mark sends at most this many again.
    #[serde(default = "default_mark_every")]
    pub mark_every: usize,
}

fn default_mark_every() -> usize {
    20
}

#[derive(Debug)]
pub struct Schedule {
    pub evaluate_cron: String,
    pub timezone: Tz,
}

#[derive(Debug)]
pub struct CalendarSettings {
    pub open: NaiveTime,
    pub close: NaiveTime,
    pub holiday_feed_url: String,
    pub holiday_refresh_hours: u64,
}

/// `[metrics]`: where `cpwatch run` serves `/metrics`, `/healthz` and `/readyz`.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub listen: std::net::SocketAddr,
}

/// `[digest]`: the morning digest, and who receives it where a partnership does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSettings {
    pub enabled: bool,
    pub time: NaiveTime,
    /// E-mail addresses, lower-case.
    pub people: Vec<String>,
    /// Roles, as the mail names them (`social_worker`); `-` read as `_`.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Partnership {
    pub standards_policy: String,
    /// No `standards_policy` was configured: the national baseline is used.
    pub standards_defaulted: bool,
    /// The ladder its disputes follow by default (a dispute may name another).
    pub escalation_policy: Option<String>,
    pub division: String,
    pub timezone: Tz,
    pub closure_days: Vec<NaiveDate>,
    /// The local authority codes (three digits, the census `LEA`) whose extracts are its.
    pub la_codes: Vec<String>,
    /// When the partnership went live with cpwatch: deadlines that lapsed before it are not
    /// mailed one by one but summarised once per team manager (`go_live`, RFC 3339).
    pub go_live: Option<chrono::DateTime<chrono::Utc>>,
    /// The team's channel (a Teams or Slack incoming webhook), if it has one.
    pub team_channel: Option<crate::team_channel::TeamChannel>,
    /// How its mail is signed, where replies go, and its own templates.
    pub mail: PartnershipMail,
    /// Who receives the digest here (`digest_people` / `digest_roles`); None: `[digest]`'s.
    pub digest_people: Option<Vec<String>>,
    pub digest_roles: Option<Vec<String>>,
}

/// A partnership's own mail settings (`partnerships.NAME.signature`, `.contact`, `.templates`).
#[derive(Debug, Clone, Default)]
pub struct PartnershipMail {
    /// The lines that sign a letter ("Conference chair, Safeguarding and Quality Assurance unit").
    pub signature: Option<String>,
    /// Where readers may write back: the `Reply-To` of every message, named in letters.
    pub contact: Option<Email>,
    /// A directory of templates replacing the built-in ones of the same name.
    pub templates: Option<PathBuf>,
}

/// A configuration that cannot be used; lists every problem with its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

// ---- The layers as text, before parsing. ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database: RawDatabase,
    smtp: RawSmtp,
    mail: RawMail,
    delivery: Delivery,
    schedule: RawSchedule,
    calendar: RawCalendar,
    metrics: RawMetrics,
    #[serde(default)]
    digest: RawDigest,
    #[serde(default)]
    policies: RawPolicies,
    #[serde(default)]
    partnerships: BTreeMap<String, RawPartnership>,
    #[serde(default)]
    notify: crate::notify::RawNotify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: SecretString,
    #[serde(default)]
    password_file: Option<String>,
    auto_migrate: bool,
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: u16,
    security: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<SecretString>,
    #[serde(default)]
    password_file: Option<String>,
    from: String,
    timeout_seconds: u64,
    #[serde(default)]
    insecure_cleartext_password: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    include_names: bool,
    #[serde(default)]
    admin_address: Option<String>,
    message_id_domain: String,
    #[serde(default = "default_channel")]
    channel: String,
}

fn default_channel() -> String {
    "smtp".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    evaluate_cron: String,
    timezone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    open: String,
    close: String,
    holiday_feed_url: String,
    holiday_refresh_hours: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enabled: bool,
    listen: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    enabled: bool,
    time: String,
    #[serde(default)]
    people: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
}

impl Default for RawDigest {
    fn default() -> Self {
        RawDigest {
            enabled: false,
            time: "09:00".into(),
            people: vec![],
            roles: vec![],
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartnership {
    /// Left out: the national baseline (`policy::NATIONAL_BASELINE`).
    #[serde(default)]
    standards_policy: Option<String>,
    #[serde(default)]
    escalation_policy: Option<String>,
    #[serde(default = "default_division")]
    division: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    #[serde(default)]
    closure_days: Vec<String>,
    #[serde(default)]
    la_codes: Vec<String>,
    #[serde(default)]
    go_live: Option<String>,
    #[serde(default)]
    team_channel: Option<crate::team_channel::RawTeamChannel>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    contact: Option<String>,
    #[serde(default)]
    templates: Option<String>,
    digest_people: Option<Vec<String>>,
    #[serde(default)]
    digest_roles: Option<Vec<String>>,
}

/// The built-in defaults without their `[partnerships]` (a deployment's file names its own).
fn defaults_without_partnerships() -> Result<String, ConfigError> {
    let bad = |e: &dyn std::fmt::Display| ConfigError(vec![format!("built-in defaults: {e}")]);
    let mut table: toml::Table = toml::from_str(DEFAULTS).map_err(|e| bad(&e))?;
    table.remove("partnerships");
    toml::to_string(&table).map_err(|e| bad(&e))
}

fn default_division() -> String {
    "england-and-wales".into()
}
fn default_timezone() -> String {
    "Europe/London".into()
}

impl Settings {
    /// Load defaults, then `path` (required if given) or the system file (if present), then the
    /// environment. A file that defines partnerships says which exist: the built-in
    /// `[partnerships.knowsley]` is then left out. Environment values stay text until a key's
    /// type says otherwise (so `0123` stays `0123` for a password or a user name).
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let file = match path {
            Some(p) => File::from(p.to_path_buf())
                .format(FileFormat::Toml)
                .required(true),
            None => File::new(SYSTEM_PATH, FileFormat::Toml).required(false),
        };
        let file_alone = Config::builder()
            .add_source(file.clone())
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let defaults = if file_alone
            .get_table("partnerships")
            .is_ok_and(|t| !t.is_empty())
        {
            defaults_without_partnerships()?
        } else {
            DEFAULTS.to_owned()
        };
        let builder = Config::builder()
            .add_source(File::from_str(&defaults, FileFormat::Toml))
            .add_source(file)
            .add_source(
                Environment::with_prefix("CPWATCH")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(false),
            );
        Self::from_config(builder.build())
    }

    /// The built-in defaults alone (the demo, tests, benchmarks), with another database.
    pub fn defaults_with_database(url: &str) -> Result<Settings, ConfigError> {
        use config::{Config, File, FileFormat};
        let cfg = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .set_override("database.url", url)
            .map_err(|e| ConfigError(vec![e.to_string()]))?
            .build();
        Self::from_config(cfg)
    }

    fn from_config(
        cfg: Result<config::Config, config::ConfigError>,
    ) -> Result<Settings, ConfigError> {
        let cfg = cfg.map_err(|e| ConfigError(vec![e.to_string()]))?;
        let tree: config::Value = cfg
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let mut p = Problems::default();
        let tree = layers::sift(tree, &mut p)?;
        let raw: Raw = tree
            .try_deserialize()
            .map_err(|e| ConfigError(p.0.iter().cloned().chain([e.to_string()]).collect()))?;
        Self::parse(raw, p)
    }

    /// Parse every raw value into its type, collecting every problem with its key (after
    /// those `p` already holds).
    fn parse(raw: Raw, mut p: Problems) -> Result<Settings, ConfigError> {
        let database = parse_database(raw.database, &mut p);
        let smtp = parse_smtp(raw.smtp, &mut p);
        let mail = parse_mail(raw.mail, &mut p);
        check_delivery(&raw.delivery, smtp.as_ref(), &mut p);
        let schedule = parse_schedule(raw.schedule, &mut p);
        let calendar = parse_calendar(raw.calendar, &mut p);
        let metrics = parse_metrics(raw.metrics, &mut p);
        let digest = parse_digest(raw.digest, &mut p);
        let policy_dir = match raw.policies.dir {
            Some(d) if d.trim().is_empty() => {
                p.push("policies.dir: empty; leave the key out for the built-in policies only");
                None
            }
            d => d.map(PathBuf::from),
        };
        let catalogue = match Catalogue::load(policy_dir.as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                p.0.extend(e.0.iter().map(|x| format!("policy {x}")));
                None
            }
        };
        let partnerships = parse_partnerships(raw.partnerships, catalogue.as_ref(), &mut p);
        let notify = parse_notify(raw.notify, mail.as_ref(), &raw.delivery, &mut p);
        match (
            database, smtp, mail, schedule, calendar, catalogue, metrics, digest,
        ) {
            (
                Some(database),
                Some(smtp),
                Some(mail),
                Some(schedule),
                Some(calendar),
                Some(catalogue),
                Some(metrics),
                Some(digest),
            ) if p.0.is_empty() => Ok(Settings {
                database,
                smtp,
                mail,
                delivery: raw.delivery,
                schedule,
                calendar,
                metrics,
                digest,
                policy_dir,
                catalogue,
                partnerships,
                notify,
            }),
            _ => Err(ConfigError(p.0)),
        }
    }

    /// The SMTP password, from `password` or `password_file` (trailing newline dropped).
    pub fn smtp_password(&self) -> std::io::Result<Option<SecretString>> {
        if let Some(path) = &self.smtp.password_file {
            let text = std::fs::read_to_string(path)?;
            return Ok(Some(SecretString::from(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )));
        }
        Ok(self
            .smtp
            .password
            .as_ref()
            .map(|pw| SecretString::from(pw.expose_secret().to_owned())))
    }

    /// The working-day calendar of a partnership from a bank-holiday feed.
    pub fn calendar_for(&self, partnership: &Partnership, holidays: &BankHolidays) -> Calendar {
        let mut days = holidays.dates(&partnership.division).unwrap_or_default();
        days.extend(partnership.closure_days.iter().copied());
        Calendar::new(
            partnership.timezone,
            self.calendar.open,
            self.calendar.close,
            days,
        )
    }
}

/// The problems found so far, each with its key.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
}

fn parse_database(raw: RawDatabase, p: &mut Problems) -> Option<Database> {
    // The URL is never repeated in a message: it may hold a password.
    if let Err(e) = crate::dburl::check(raw.url.expose_secret()) {
        p.push(format!("database.url: {e}"));
    }
    if raw.batch_size == 0 {
        p.push("database.batch_size: must be at least 1");
    }
    let url = match non_empty("database.password_file", raw.password_file, p) {
        Some(file) => with_password_file(&raw.url, Path::new(&file), p)?,
        None => raw.url,
    };
    Some(Database {
        url,
        auto_migrate: raw.auto_migrate,
        batch_size: raw.batch_size,
    })
}

fn parse_smtp(raw: RawSmtp, p: &mut Problems) -> Option<Smtp> {
    let security = Security::parse(&raw.security);
    if security.is_none() {
        p.push(format!(
            "smtp.security: {:?} is not one of starttls, tls, plain",
            raw.security
        ));
    }
    if raw.host.trim().is_empty() {
        p.push("smtp.host: must not be empty");
    }
    let from = raw.from.parse::<Mailbox>().ok();
    if from.is_none() {
        p.push(format!(
            "smtp.from: {:?} is not a mailbox (\"Name <address>\" or \"address\")",
            raw.from
        ));
    }
    let username = non_empty("smtp.username", raw.username, p);
    let password = match raw.password {
        Some(pw) if pw.expose_secret().is_empty() => {
            p.push("smtp.password: empty; leave the key out if the relay needs no password");
            None
        }
        pw => pw,
    };
    let password_file = non_empty("smtp.password_file", raw.password_file, p).map(PathBuf::from);
    if let Some(file) = &password_file {
        if password.is_some() {
            p.push("smtp.password_file: set either password or password_file, not both");
        } else if let Err(e) = std::fs::metadata(file) {
            p.push(format!("smtp.password_file: {}: {e}", file.display()));
        }
    }
    let has_password = password.is_some() || password_file.is_some();
    if security == Some(Security::Plain)
        && has_password
        && !raw.insecure_cleartext_password
        && !crate::smtp::is_loopback(&raw.host)
    {
        p.push(format!(
            "smtp.security: \"plain\" would send the password unencrypted to {:?}, which is not \
             this machine: use starttls or tls (or, if you must, set \
             smtp.insecure_cleartext_password = true)",
            raw.host
        ));
    }
    Some(Smtp {
        insecure_cleartext_password: raw.insecure_cleartext_password,
        host: raw.host,
        port: raw.port,
        security: security?,
        username,
        password,
        password_file,
        from: from?,
        timeout: Duration::from_secs(raw.timeout_seconds),
    })
}

/// `url` with the password read from `file` (a systemd credential; trailing newline dropped).
fn with_password_file(url: &SecretString, file: &Path, p: &mut Problems) -> Option<SecretString> {
    let password = match std::fs::read_to_string(file) {
        Ok(text) => SecretString::from(text.trim_end_matches(['\r', '\n']).to_owned()),
        Err(e) => {
            p.push(format!("database.password_file: {}: {e}", file.display()));
            return None;
        }
    };
    if password.expose_secret().is_empty() {
        p.push(format!(
            "database.password_file: {} is empty",
            file.display()
        ));
        return None;
    }
    match crate::dburl::with_password(url.expose_secret(), password.expose_secret()) {
        Ok(u) => Some(SecretString::from(u)),
        Err(e) => {
            p.push(format!("database.url: {e}"));
            None
        }
    }
}

/// An optional text setting; an empty value is a mistake (leave the key out instead).
fn non_empty(key: &str, value: Option<String>, p: &mut Problems) -> Option<String> {
    match value {
        Some(v) if v.trim().is_empty() => {
            p.push(format!("{key}: empty; leave the key out if it is not used"));
            None
        }
        v => v,
    }
}

fn parse_mail(raw: RawMail, p: &mut Problems) -> Option<Mail> {
    let admin_address = match non_empty("mail.admin_address", raw.admin_address, p) {
        Some(a) => match Email::parse(&a) {
            Ok(e) => Some(e),
            Err(_) => {
                p.push(format!("mail.admin_address: {a:?} is not an email address"));
                None
            }
        },
        None => None,
    };
    let channel = match raw.channel.as_str() {
        "smtp" => MailChannel::Smtp,
        "notify" => MailChannel::Notify,
        other => {
            p.push(format!(
                "mail.channel: {other:?} is not one of smtp, notify"
            ));
            MailChannel::Smtp
        }
    };
    Some(Mail {
        include_names: raw.include_names,
        admin_address,
        message_id_domain: raw.message_id_domain,
        channel,
    })
}

/// `[notify]`: with `mail.channel = "notify"` its key file and templates must be there, and a
/// lease must outlast one request.
fn parse_notify(
    raw: crate::notify::RawNotify,
    mail: Option<&Mail>,
    d: &Delivery,
    p: &mut Problems,
) -> crate::notify::NotifySettings {
    let required = mail.is_some_and(|m| m.channel == MailChannel::Notify);
    let n = crate::notify::parse_settings(raw, required, &mut p.0);
    if required && d.lease_seconds <= n.timeout.as_secs() as i64 {
        p.push(format!(
            "delivery.lease_seconds: must be longer than notify.timeout_seconds ({})",
            n.timeout.as_secs()
        ));
    }
    n
}

fn check_delivery(d: &Delivery, smtp: Option<&Smtp>, p: &mut Problems) {
    if d.batch_size < 1 || d.max_attempts < 1 || d.lease_seconds < 1 {
        p.push("delivery: batch_size, max_attempts and lease_seconds must be at least 1");
    }
    if d.retry_base_seconds < 1 || d.retry_max_seconds < d.retry_base_seconds {
        p.push("delivery.retry_base_seconds: must be at least 1 and at most retry_max_seconds");
    }
    // A lease shorter than one SMTP exchange could let a second worker send the same message.
    if let Some(smtp) = smtp {
        if d.lease_seconds <= smtp.timeout.as_secs() as i64 {
            p.push(format!(
                "delivery.lease_seconds: must be longer than smtp.timeout_seconds ({})",
                smtp.timeout.as_secs()
            ));
        }
    }
    if d.interval_seconds == 0 {
        p.push("delivery.interval_seconds: must be at least 1");
    }
    if d.mark_every == 0 {
        p.push("delivery.mark_every: must be at least 1 (1 records each message as it is sent)");
    }
}

fn parse_schedule(raw: RawSchedule, p: &mut Problems) -> Option<Schedule> {
    let timezone = parse_tz("schedule.timezone", &raw.timezone, p);
    if let Err(e) = cron_fields_ok(&raw.evaluate_cron) {
        p.push(format!("schedule.evaluate_cron: {e}"));
    } else if let Err(e) = crate::schedule::check(&raw.evaluate_cron, timezone.unwrap_or(Tz::UTC)) {
        p.push(format!("schedule.evaluate_cron: {e}"));
    }
    Some(Schedule {
        evaluate_cron: raw.evaluate_cron,
        timezone: timezone?,
    })
}

fn parse_calendar(raw: RawCalendar, p: &mut Problems) -> Option<CalendarSettings> {
    let open = parse_time("calendar.open", &raw.open, p);
    let close = parse_time("calendar.close", &raw.close, p);
    if let (Some(o), Some(c)) = (open, close) {
        if o >= c {
            p.push("calendar.open: must be before calendar.close");
        }
    }
    if !raw.holiday_feed_url.starts_with("http://") && !raw.holiday_feed_url.starts_with("https://")
    {
        p.push("calendar.holiday_feed_url: must be an http(s) URL");
    }
    Some(CalendarSettings {
        open: open?,
        close: close?,
        holiday_feed_url: raw.holiday_feed_url,
        holiday_refresh_hours: raw.holiday_refresh_hours,
    })
}

fn parse_metrics(raw: RawMetrics, p: &mut Problems) -> Option<MetricsSettings> {
    match raw.listen.trim().parse::<std::net::SocketAddr>() {
        Ok(listen) => Some(MetricsSettings {
            enabled: raw.enabled,
            listen,
        }),
        Err(_) => {
            p.push(format!(
                "metrics.listen: {:?} is not an IP address and port (e.g. \"127.0.0.1:9464\", \
                 \"[::1]:9464\", or \"0.0.0.0:9464\" for every interface)",
                raw.listen
            ));
            None
        }
    }
}

fn parse_partnerships(
    raw: BTreeMap<String, RawPartnership>,
    catalogue: Option<&Catalogue>,
    p: &mut Problems,
) -> BTreeMap<String, Partnership> {
    if raw.is_empty() {
        p.push("partnerships: configure at least one partnership");
    }
    let mut out = BTreeMap::new();
    for (name, mut part) in raw {
        let standards_defaulted = part.standards_policy.is_none();
        let standards_policy = part
            .standards_policy
            .get_or_insert_with(|| crate::policy::NATIONAL_BASELINE.to_owned())
            .clone();
        if crate::domain::PartnershipId::parse(&name).is_err() {
            p.push(format!("partnerships.{name}: not a valid partnership id"));
        }
        if let Some(cat) = catalogue {
            check_policies(&name, &part, cat, p);
        }
        if !DIVISIONS.contains(&part.division.as_str()) {
            p.push(format!(
                "partnerships.{name}.division: {:?} is not one of {}",
                part.division,
                DIVISIONS.join(", ")
            ));
        }
        let timezone = parse_tz(&format!("partnerships.{name}.timezone"), &part.timezone, p);
        let closure_days = parse_closure_days(&name, &part, p);
        let go_live = part.go_live.as_deref().and_then(|g| {
            chrono::DateTime::parse_from_rfc3339(g)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    p.push(format!(
                        "partnerships.{name}.go_live: {g:?} is not an RFC 3339 instant like 2026-06-01T09:00:00+01:00"
                    ))
                })
                .ok()
        });
        let team_channel = part.team_channel.take().and_then(|raw| {
            crate::team_channel::parse(&format!("partnerships.{name}.team_channel"), raw, &mut p.0)
        });
        let mail = parse_partnership_mail(&name, &part, p);
        if let Some(timezone) = timezone {
            let parsed = Partnership {
                standards_policy,
                standards_defaulted,
                escalation_policy: part.escalation_policy,
                division: part.division,
                timezone,
                closure_days,
                la_codes: part.la_codes,
                go_live,
                team_channel,
                mail,
                digest_people: part
                    .digest_people
                    .map(|v| digest_people(&format!("partnerships.{name}.digest_people"), v, p)),
                digest_roles: part.digest_roles.map(digest_roles),
            };
            out.insert(name, parsed);
        }
    }
    out
}

/// A partnership's closure days (YYYY-MM-DD); its local-authority codes are checked on the way.
fn parse_closure_days(name: &str, part: &RawPartnership, p: &mut Problems) -> Vec<NaiveDate> {
    let mut closure_days = Vec::new();
    for d in &part.closure_days {
        match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
            Ok(day) => closure_days.push(day),
            Err(_) => p.push(format!(
                "partnerships.{name}.closure_days: {d:?} is not a YYYY-MM-DD date"
            )),
        }
    }
    for code in &part.la_codes {
        if code.len() != 3 || !code.chars().all(|c| c.is_ascii_digit()) {
            p.push(format!(
                "partnerships.{name}.la_codes: {code:?} is not a three-digit local authority code"
            ));
        }
    }
    closure_days
}

fn parse_partnership_mail(name: &str, part: &RawPartnership, p: &mut Problems) -> PartnershipMail {
    let contact = part.contact.as_deref().and_then(|c| {
        Email::parse(c)
            .map_err(|_| {
                p.push(format!(
                    "partnerships.{name}.contact: {c:?} is not an email address"
                ))
            })
            .ok()
    });
    let templates = part.templates.as_deref().map(PathBuf::from);
    if let Some(dir) = &templates {
        if !dir.is_dir() {
            p.push(format!(
                "partnerships.{name}.templates: {} is not a directory",
                dir.display()
            ));
        }
    }
    PartnershipMail {
        signature: part.signature.clone().filter(|s| !s.trim().is_empty()),
        contact,
        templates,
    }
}

fn parse_digest(raw: RawDigest, p: &mut Problems) -> Option<DigestSettings> {
    let people = digest_people("digest.people", raw.people, p);
    let time = parse_time("digest.time", &raw.time, p)?;
    Some(DigestSettings {
        enabled: raw.enabled,
        time,
        people,
        roles: digest_roles(raw.roles),
    })
}

/// Addresses, lower-case; one that is not an e-mail address is a problem.
fn digest_people(key: &str, people: Vec<String>, p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for a in people {
        match Email::parse(a.trim()) {
            Ok(e) => out.push(e.as_str().to_ascii_lowercase()),
            Err(_) => p.push(format!("{key}: {a:?} is not an e-mail address")),
        }
    }
    out
}

/// Roles as the mail names them: `social-worker` is `social_worker`.
fn digest_roles(roles: Vec<String>) -> Vec<String> {
    roles
        .into_iter()
        .map(|r| r.trim().to_ascii_lowercase().replace('-', "_"))
        .filter(|r| !r.is_empty())
        .collect()
}

fn check_policies(name: &str, part: &RawPartnership, cat: &Catalogue, p: &mut Problems) {
    let standards = part.standards_policy.as_deref().unwrap_or_default();
    if !cat.standards.contains_key(standards) {
        let mut known: Vec<_> = cat.standards.keys().cloned().collect();
        known.sort();
        p.push(format!(
            "partnerships.{name}.standards_policy: no policy {standards:?} (known: {})",
            known.join(", ")
        ));
    }
    if let Some(ladder) = &part.escalation_policy {
        if !cat.ladders.contains_key(ladder) {
            let mut known: Vec<_> = cat.ladders.keys().cloned().collect();
            known.sort();
            p.push(format!(
                "partnerships.{name}.escalation_policy: no escalation policy {ladder:?} (known: {})",
                known.join(", ")
            ));
        }
    }
}

fn parse_tz(key: &str, s: &str, p: &mut Problems) -> Option<Tz> {
    match s.parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            p.push(format!("{key}: {s:?} is not an IANA time zone"));
            None
        }
    }
}

fn parse_time(key: &str, s: &str, p: &mut Problems) -> Option<NaiveTime> {
    match NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            p.push(format!("{key}: {s:?} is not a time of day (HH:MM)"));
            None
        }
    }
}

fn cron_fields_ok(expr: &str) -> Result<(), String> {
    let n = expr.split_whitespace().count();
    if n == 6 || n == 7 {
        Ok(())
    } else {
        Err(format!(
            "{expr:?} has {n} fields; use sec min hour day month weekday"
        ))
    }
}

/// Each key's own problem, before the typed parse: unknown keys and values of the wrong type,
/// each found by reading that key alone over the built-in defaults with the section's own
/// type, and then dropped, so that every such problem is listed (not only the first) and the
/// rest is still checked.
mod layers {
    use super::*;
    use config::{Map, Value, ValueKind};

    fn table(map: Map<String, Value>) -> Value {
        Value::new(None, ValueKind::Table(map))
    }

    fn sorted(map: Map<String, Value>) -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = map.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The built-in defaults, section by section.
    fn baseline() -> Result<Map<String, Map<String, Value>>, ConfigError> {
        use config::{Config, File, FileFormat};
        let bad = |e: config::ConfigError| ConfigError(vec![format!("built-in defaults: {e}")]);
        let top: Map<String, Value> = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(bad)?;
        top.into_iter()
            .map(|(k, v)| Ok((k, v.into_table().map_err(bad)?)))
            .collect()
    }

    /// The merged layers with every unknown key and mistyped value reported and left out.
    pub(super) fn sift(tree: Value, p: &mut Problems) -> Result<Value, ConfigError> {
        let top = tree
            .into_table()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let base = baseline()?;
        let mut out = Map::new();
        for (name, value) in sorted(top) {
            let kept = match (name.as_str(), base.get(&name)) {
                ("partnerships", _) => partnerships(value, p),
                (section, Some(defaults)) => section_keys(section, value, defaults, p),
                (section, None) => {
                    p.push(format!("{section}: unknown section"));
                    continue;
                }
            };
            out.insert(name, kept);
        }
        Ok(table(out))
    }

    fn section_keys(
        section: &str,
        value: Value,
        defaults: &Map<String, Value>,
        p: &mut Problems,
    ) -> Value {
        let Ok(given) = value.into_table() else {
            p.push(format!("{section}: must be a table of settings"));
            return table(defaults.clone());
        };
        let mut kept = defaults.clone();
        for (key, v) in sorted(given) {
            let mut trial = defaults.clone();
            trial.insert(key.clone(), v.clone());
            match probe(section, trial) {
                Ok(()) => {
                    kept.insert(key, v);
                }
                Err(e) => p.push(format!("{section}.{key}: {e}")),
            }
        }
        table(kept)
    }

    /// Read one section's table as its type.
    fn probe(section: &str, t: Map<String, Value>) -> Result<(), String> {
        let v = table(t);
        let r = match section {
            "database" => v.try_deserialize::<RawDatabase>().map(drop),
            "smtp" => v.try_deserialize::<RawSmtp>().map(drop),
            "mail" => v.try_deserialize::<RawMail>().map(drop),
            "delivery" => v.try_deserialize::<Delivery>().map(drop),
            "schedule" => v.try_deserialize::<RawSchedule>().map(drop),
            "calendar" => v.try_deserialize::<RawCalendar>().map(drop),
            "metrics" => v.try_deserialize::<RawMetrics>().map(drop),
            "digest" => v.try_deserialize::<RawDigest>().map(drop),
            "policies" => v.try_deserialize::<RawPolicies>().map(drop),
            "notify" => v.try_deserialize::<crate::notify::RawNotify>().map(drop),
            _ => Ok(()),
        };
        r.map_err(|e| tidy(&e.to_string()))
    }

    /// serde's wording, in the words of a configuration file.
    fn tidy(e: &str) -> String {
        let e = match e.find(" for key `") {
            Some(i) => &e[..i],
            None => e,
        };
        match e.strip_prefix("unknown field `") {
            Some(rest) => match rest.split_once("`, expected one of ") {
                Some((_, known)) => {
                    format!("unknown key (the keys here are {})", known.replace('`', ""))
                }
                None => "unknown key".into(),
            },
            None => e.to_owned(),
        }
    }

    /// Each partnership's keys, each tried alone (a partnership with no standards policy follows
    /// the national baseline).
    fn partnerships(value: Value, p: &mut Problems) -> Value {
        let Ok(all) = value.into_table() else {
            p.push("partnerships: must hold one table per partnership");
            return table(Map::new());
        };
        let mut out = Map::new();
        for (name, part) in sorted(all) {
            let Ok(given) = part.into_table() else {
                p.push(format!("partnerships.{name}: must be a table of settings"));
                continue;
            };
            let base = Map::new();
            let mut kept = Map::new();
            for (key, v) in sorted(given) {
                let mut trial = base.clone();
                trial.insert(key.clone(), v.clone());
                match table(trial).try_deserialize::<RawPartnership>() {
                    Ok(_) => {
                        kept.insert(key, v);
                    }
                    Err(e) => p.push(format!(
                        "partnerships.{name}.{key}: {}",
                        tidy(&e.to_string())
                    )),
                }
            }
            out.insert(name, table(kept));
        }
        table(out)
    }
}
