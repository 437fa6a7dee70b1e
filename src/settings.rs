//! Typed settings from layered sources: built-in defaults → file → `CPWATCH_*` environment.
//! Secrets are `SecretString`s, so they cannot be logged by accident.

use crate::calendar::{BankHolidays, Calendar, Tz, DIVISIONS};
use crate::policy::Catalogue;
use chrono::{NaiveDate, NaiveTime};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The defaults, compiled in: the same text as `config/cpwatch.toml`.
pub const DEFAULTS: &str = include_str!("../config/cpwatch.toml");
/// Read when no `--config` is given, if present.
pub const SYSTEM_PATH: &str = "/etc/cpwatch/cpwatch.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: Database,
    pub smtp: Smtp,
    pub mail: Mail,
    pub delivery: Delivery,
    pub schedule: Schedule,
    pub calendar: CalendarSettings,
    pub policies: Policies,
    #[serde(default)]
    pub partnerships: BTreeMap<String, Partnership>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub url: SecretString,
    pub auto_migrate: bool,
    pub batch_size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: String,
    pub username: String,
    pub password: SecretString,
    pub password_file: String,
    pub from: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    pub include_names: bool,
    pub admin_address: String,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub evaluate_cron: String,
    pub timezone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSettings {
    pub open: String,
    pub close: String,
    pub holiday_feed_url: String,
    pub holiday_refresh_hours: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    pub dir: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Partnership {
    pub standards_policy: String,
    #[serde(default)]
    pub escalation_policy: Option<String>,
    #[serde(default = "default_division")]
    pub division: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub closure_days: Vec<String>,
}

fn default_division() -> String {
    "england-and-wales".into()
}
fn default_timezone() -> String {
    "Europe/London".into()
}

/// A configuration that cannot be used; lists every problem with its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

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
        let cfg = builder
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let settings: Settings = cfg
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone (the demo), with another database.
    pub fn defaults_with_database(url: &str) -> Result<Settings, ConfigError> {
        use config::{Config, File, FileFormat};
        let cfg = Config::builder()
            .add_source(File::from_str(DEFAULTS, FileFormat::Toml))
            .set_override("database.url", url)
            .map_err(|e| ConfigError(vec![e.to_string()]))?
            .build()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        let settings: Settings = cfg
            .try_deserialize()
            .map_err(|e| ConfigError(vec![e.to_string()]))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every problem a running daemon would trip over, each with its key.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if !self.database.url.expose_secret().starts_with("postgres") {
            p.push("database.url: must be a postgres:// or postgresql:// URL".to_owned());
        }
        if self.database.batch_size == 0 {
            p.push("database.batch_size: must be at least 1".into());
        }
        if !["starttls", "tls", "plain"].contains(&self.smtp.security.as_str()) {
            p.push(format!(
                "smtp.security: {:?} is not one of starttls, tls, plain",
                self.smtp.security
            ));
        }
        if self.smtp.host.trim().is_empty() {
            p.push("smtp.host: must not be empty".into());
        }
        if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
            p.push(format!(
                "smtp.from: {:?} is not a mailbox (\"Name <address>\" or \"address\")",
                self.smtp.from
            ));
        }
        if !self.smtp.password_file.is_empty() {
            if !self.smtp.password.expose_secret().is_empty() {
                p.push("smtp.password_file: set either password or password_file, not both".into());
            } else if let Err(e) = std::fs::metadata(&self.smtp.password_file) {
                p.push(format!(
                    "smtp.password_file: {}: {e}",
                    self.smtp.password_file
                ));
            }
        }
        if !self.mail.admin_address.is_empty()
            && crate::domain::Email::parse(&self.mail.admin_address).is_err()
        {
            p.push(format!(
                "mail.admin_address: {:?} is not an email address",
                self.mail.admin_address
            ));
        }
        if self.delivery.batch_size < 1
            || self.delivery.max_attempts < 1
            || self.delivery.lease_seconds < 1
        {
            p.push(
                "delivery: batch_size, max_attempts and lease_seconds must be at least 1".into(),
            );
        }
        if self.delivery.retry_base_seconds < 1
            || self.delivery.retry_max_seconds < self.delivery.retry_base_seconds
        {
            p.push(
                "delivery.retry_base_seconds: must be at least 1 and at most retry_max_seconds"
                    .into(),
            );
        }
        // A lease shorter than one SMTP exchange could let a second worker send the same message.
        if self.delivery.lease_seconds <= self.smtp.timeout_seconds as i64 {
            p.push(format!(
                "delivery.lease_seconds: must be longer than smtp.timeout_seconds ({})",
                self.smtp.timeout_seconds
            ));
        }
        if self.delivery.interval_seconds == 0 {
            p.push("delivery.interval_seconds: must be at least 1".into());
        }
        if self.schedule.timezone.parse::<Tz>().is_err() {
            p.push(format!(
                "schedule.timezone: {:?} is not an IANA time zone",
                self.schedule.timezone
            ));
        }
        if let Err(e) = cron_fields_ok(&self.schedule.evaluate_cron) {
            p.push(format!("schedule.evaluate_cron: {e}"));
        }
        let open = parse_time("calendar.open", &self.calendar.open, &mut p);
        let close = parse_time("calendar.close", &self.calendar.close, &mut p);
        if let (Some(o), Some(c)) = (open, close) {
            if o >= c {
                p.push("calendar.open: must be before calendar.close".into());
            }
        }
        if !self.calendar.holiday_feed_url.starts_with("http://")
            && !self.calendar.holiday_feed_url.starts_with("https://")
        {
            p.push("calendar.holiday_feed_url: must be an http(s) URL".into());
        }
        if self.partnerships.is_empty() {
            p.push("partnerships: configure at least one partnership".into());
        }
        let catalogue = match Catalogue::load(self.policy_dir().as_deref()) {
            Ok(c) => Some(c),
            Err(e) => {
                p.extend(e.0.iter().map(|x| format!("policy {x}")));
                None
            }
        };
        for (name, part) in &self.partnerships {
            if crate::domain::PartnershipId::parse(name).is_err() {
                p.push(format!("partnerships.{name}: not a valid partnership id"));
            }
            if let Some(cat) = &catalogue {
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
                    if !cat.escalation.contains_key(ladder) {
                        let mut known: Vec<_> = cat.escalation.keys().cloned().collect();
                        known.sort();
                        p.push(format!(
                            "partnerships.{name}.escalation_policy: no escalation policy {ladder:?} (known: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
            if !DIVISIONS.contains(&part.division.as_str()) {
                p.push(format!(
                    "partnerships.{name}.division: {:?} is not one of {}",
                    part.division,
                    DIVISIONS.join(", ")
                ));
            }
            if part.timezone.parse::<Tz>().is_err() {
                p.push(format!(
                    "partnerships.{name}.timezone: {:?} is not an IANA time zone",
                    part.timezone
                ));
            }
            for d in &part.closure_days {
                if NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                    p.push(format!(
                        "partnerships.{name}.closure_days: {d:?} is not a YYYY-MM-DD date"
                    ));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(p))
        }
    }

    pub fn policy_dir(&self) -> Option<PathBuf> {
        (!self.policies.dir.is_empty()).then(|| PathBuf::from(&self.policies.dir))
    }

    /// The SMTP password, from `password` or `password_file` (trailing newline dropped).
    pub fn smtp_password(&self) -> std::io::Result<Option<SecretString>> {
        if !self.smtp.password_file.is_empty() {
            let text = std::fs::read_to_string(&self.smtp.password_file)?;
            return Ok(Some(SecretString::from(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )));
        }
        let pw = self.smtp.password.expose_secret();
        Ok((!pw.is_empty()).then(|| SecretString::from(pw.to_owned())))
    }

    pub fn open_time(&self) -> NaiveTime {
        NaiveTime::parse_from_str(&self.calendar.open, "%H:%M").unwrap_or(NaiveTime::MIN)
    }
    pub fn close_time(&self) -> NaiveTime {
        NaiveTime::parse_from_str(&self.calendar.close, "%H:%M").unwrap_or(NaiveTime::MIN)
    }

    /// The working-day calendar of a partnership from a bank-holiday feed (validated at load).
    pub fn calendar_for(&self, partnership: &Partnership, holidays: &BankHolidays) -> Calendar {
        let tz: Tz = partnership
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Europe::London);
        let mut days = holidays.dates(&partnership.division).unwrap_or_default();
        days.extend(
            partnership
                .closure_days
                .iter()
                .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
        );
        Calendar::new(tz, self.open_time(), self.close_time(), days)
    }
}

fn parse_time(key: &str, s: &str, problems: &mut Vec<String>) -> Option<NaiveTime> {
    match NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(t) => Some(t),
        Err(_) => {
            problems.push(format!("{key}: {s:?} is not a time of day (HH:MM)"));
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
