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
    /// Extra policy files beside the built-in ones (`policies.dir`).
    pub policy_dir: Option<PathBuf>,
    /// Every policy, loaded once from the shipped files and `policy_dir`.
    pub catalogue: Catalogue,
    pub partnerships: BTreeMap<String, Partnership>,
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
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct Mail {
    pub include_names: bool,
    /// Where data-quality notices go when a case has no reachable team manager.
    pub admin_address: Option<Email>,
    pub message_id_domain: String,
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

#[derive(Debug, Clone)]
pub struct Partnership {
    pub standards_policy: String,
    /// The ladder its disputes follow by default (a dispute may name another).
    pub escalation_policy: Option<String>,
    pub division: String,
    pub timezone: Tz,
    pub closure_days: Vec<NaiveDate>,
    /// When the partnership went live with cpwatch: deadlines that lapsed before it are not
    /// mailed one by one but summarised once per team manager (`go_live`, RFC 3339).
    pub go_live: Option<chrono::DateTime<chrono::Utc>>,
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
    #[serde(default)]
    policies: RawPolicies,
    #[serde(default)]
    partnerships: BTreeMap<String, RawPartnership>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: SecretString,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    include_names: bool,
    #[serde(default)]
    admin_address: Option<String>,
    message_id_domain: String,
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    #[serde(default)]
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartnership {
    standards_policy: String,
    #[serde(default)]
    escalation_policy: Option<String>,
    #[serde(default = "default_division")]
    division: String,
    #[serde(default = "default_timezone")]
    timezone: String,
    #[serde(default)]
    closure_days: Vec<String>,
    #[serde(default)]
    go_live: Option<String>,
}

fn default_division() -> String {
    "england-and-wales".into()
}
fn default_timezone() -> String {
    "Europe/London".into()
}

impl Settings {
    /// Load defaults, then `path` (required if given) or the system file (if present), then the environment.
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        builder = match path {
            Some(p) => builder.add_source(
                File::from(p.to_path_buf())
                    .format(FileFormat::Toml)
                    .required(true),
            ),
            None => builder.add_source(File::new(SYSTEM_PATH, FileFormat::Toml).required(false)),
        };
        builder = builder.add_source(
            Environment::with_prefix("CPWATCH")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
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
        let raw: Raw = cfg
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        Self::parse(raw)
    }

    /// Parse every raw value into its type, collecting every problem with its key.
    fn parse(raw: Raw) -> Result<Settings, ConfigError> {
        let mut p = Problems::default();
        let database = parse_database(raw.database, &mut p);
        let smtp = parse_smtp(raw.smtp, &mut p);
        let mail = parse_mail(raw.mail, &mut p);
        check_delivery(&raw.delivery, smtp.as_ref(), &mut p);
        let schedule = parse_schedule(raw.schedule, &mut p);
        let calendar = parse_calendar(raw.calendar, &mut p);
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
        match (database, smtp, mail, schedule, calendar, catalogue) {
            (
                Some(database),
                Some(smtp),
                Some(mail),
                Some(schedule),
                Some(calendar),
                Some(catalogue),
            ) if p.0.is_empty() => Ok(Settings {
                database,
                smtp,
                mail,
                delivery: raw.delivery,
                schedule,
                calendar,
                policy_dir,
                catalogue,
                partnerships,
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
    if !raw.url.expose_secret().starts_with("postgres") {
        p.push("database.url: must be a postgres:// or postgresql:// URL");
    }
    if raw.batch_size == 0 {
        p.push("database.batch_size: must be at least 1");
    }
    Some(Database {
        url: raw.url,
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
    Some(Smtp {
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
    Some(Mail {
        include_names: raw.include_names,
        admin_address,
        message_id_domain: raw.message_id_domain,
    })
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
}

fn parse_schedule(raw: RawSchedule, p: &mut Problems) -> Option<Schedule> {
    let timezone = parse_tz("schedule.timezone", &raw.timezone, p);
    if let Err(e) = cron_fields_ok(&raw.evaluate_cron) {
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

fn parse_partnerships(
    raw: BTreeMap<String, RawPartnership>,
    catalogue: Option<&Catalogue>,
    p: &mut Problems,
) -> BTreeMap<String, Partnership> {
    if raw.is_empty() {
        p.push("partnerships: configure at least one partnership");
    }
    let mut out = BTreeMap::new();
    for (name, part) in raw {
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
        let mut closure_days = Vec::new();
        for d in &part.closure_days {
            match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(day) => closure_days.push(day),
                Err(_) => p.push(format!(
                    "partnerships.{name}.closure_days: {d:?} is not a YYYY-MM-DD date"
                )),
            }
        }
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
        if let Some(timezone) = timezone {
            let parsed = Partnership {
                standards_policy: part.standards_policy,
                escalation_policy: part.escalation_policy,
                division: part.division,
                timezone,
                closure_days,
                go_live,
            };
            out.insert(name, parsed);
        }
    }
    out
}

fn check_policies(name: &str, part: &RawPartnership, cat: &Catalogue, p: &mut Problems) {
    if !cat.standards.contains_key(&part.standards_policy) {
        let mut known: Vec<_> = cat.standards.keys().cloned().collect();
        known.sort();
        p.push(format!(
            "partnerships.{name}.standards_policy: no policy {:?} (known: {})",
            part.standards_policy,
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
