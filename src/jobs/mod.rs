//! The daemon's jobs, each a small struct with one `run`: the evaluation pass, delivery,
//! and the timeliness count behind `cpwatch report`. They read like short stories of calls into
//! the core and the store.

pub mod case_source;
pub mod census;
pub mod delivery;
pub mod digest;
pub mod evaluation;
pub mod in_order;
pub mod team_channel;
pub mod timeliness;

use crate::calendar::{BankHolidays, Calendar, Tz};
use crate::domain::Email;
use crate::policy::Catalogue;
use crate::settings::Settings;
use diesel::pg::PgConnection;
use std::collections::BTreeMap;

/// Everything a pass needs that comes from configuration: policies and calendars per partnership.
pub struct Runtime {
    pub catalogue: Catalogue,
    pub partnerships: BTreeMap<String, PartnershipRuntime>,
    pub admin_email: Option<Email>,
    pub message_id_domain: String,
    /// The deployment's own zone (`schedule.timezone`), for mail about a partnership that is no
    /// longer configured.
    pub default_tz: Tz,
    /// Where the database is (`database.url`): a big pass reads ahead on a second connection.
    pub database_url: secrecy::SecretString,
}

pub struct PartnershipRuntime {
    pub standards_policy: String,
    pub calendar: Calendar,
    /// The configured go-live instant (`partnerships.NAME.go_live`, or `--go-live`); when None
    /// the one `cpwatch import --go-live` stored applies, if any.
    pub go_live: Option<chrono::DateTime<chrono::Utc>>,
    /// Who receives the morning digest here, and when (None: digests are off here).
    pub digest: Option<crate::digest::OptIn>,
}

impl Runtime {
    /// The runtime for `settings`, with calendars built on `holidays`.
    pub fn new(settings: &Settings, holidays: &BankHolidays) -> Runtime {
        let partnerships = settings
            .partnerships
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    PartnershipRuntime {
                        standards_policy: p.standards_policy.clone(),
                        calendar: settings.calendar_for(p, holidays),
                        go_live: p.go_live,
                        digest: digest::opt_in(&settings.digest, p),
                    },
                )
            })
            .collect();
        Runtime {
            catalogue: settings.catalogue.clone(),
            partnerships,
            admin_email: settings.mail.admin_address.clone(),
            message_id_domain: settings.mail.message_id_domain.clone(),
            default_tz: settings.schedule.timezone,
            database_url: settings.database.url.clone(),
        }
    }

    /// The runtime with calendars built on the stored bank-holiday feed (else the built-in
    /// snapshot, with a warning if the stored copy cannot be read).
    pub fn load(settings: &Settings, conn: &mut PgConnection) -> Runtime {
        let holidays = match crate::store::holidays::load_feed(conn) {
            Ok(Some(h)) => h,
            Ok(None) => BankHolidays::snapshot(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read stored bank holidays; using the built-in snapshot");
                BankHolidays::snapshot()
            }
        };
        Runtime::new(settings, &holidays)
    }

    /// The zone a partnership's mail shows times in.
    pub fn tz_of(&self, partnership: &str) -> Tz {
        self.partnerships
            .get(partnership)
            .map_or(self.default_tz, |p| p.calendar.tz())
    }
}
