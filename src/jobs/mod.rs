//! The daemon's jobs, each a small struct with one `run`: the evaluation pass, delivery,
//! and the bank-holiday refresh. They read like short stories of calls into the core and the store.

pub mod delivery;
pub mod evaluation;
pub mod timeliness;

use crate::calendar::{BankHolidays, Calendar, Tz};
use crate::domain::Email;
use crate::policy::Catalogue;
use crate::settings::Settings;
use std::collections::BTreeMap;

/// Everything a pass needs that comes from configuration: policies and calendars per partnership.
pub struct Runtime {
    pub catalogue: Catalogue,
    pub partnerships: BTreeMap<String, PartnershipRuntime>,
    pub admin_email: Option<Email>,
    pub message_id_domain: String,
}

pub struct PartnershipRuntime {
    pub standards_policy: String,
    pub calendar: Calendar,
}

impl Runtime {
    pub fn new(settings: &Settings, catalogue: Catalogue, holidays: &BankHolidays) -> Runtime {
        let partnerships = settings
            .partnerships
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    PartnershipRuntime {
                        standards_policy: p.standards_policy.clone(),
                        calendar: settings.calendar_for(p, holidays),
                    },
                )
            })
            .collect();
        Runtime {
            catalogue,
            partnerships,
            admin_email: Email::parse(&settings.mail.admin_address).ok(),
            message_id_domain: settings.mail.message_id_domain.clone(),
        }
    }

    /// The zone a partnership's mail shows times in.
    pub fn tz_of(&self, partnership: &str) -> Tz {
        self.partnerships
            .get(partnership)
            .map_or(chrono_tz::Europe::London, |p| p.calendar.tz())
    }
}
