//! Who a rule names: a case role, a person derived from the responsible person, an agency role,
//! a partnership role, or a person named on the anchor event.

use crate::domain::{AGENCY_ROLES, CASE_ROLES, PARTNERSHIP_ROLES};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleRef {
    /// A role on the case (`team_manager`, `conference_chair`, ...).
    Case(String),
    /// The responsible person's line manager.
    LineManager,
    /// The case's `senior_manager`, else the responsible person's senior manager.
    SeniorManager,
    /// The conference chair's line manager.
    SqaUnitManager,
    /// The case's `mash_team_manager`, else its `team_manager`.
    MashTeamManager,
    /// A role in the responsible person's agency (`agency.safeguarding_lead`).
    Agency(String),
    /// A partnership role (`partnership_chair`, ...).
    Partnership(String),
    /// A person named on the anchor event (`event.referrer`, `event.examining_doctor`).
    EventPerson(String),
}

const EVENT_PEOPLE: &[&str] = &["referrer", "examining_doctor"];

impl RoleRef {
    pub fn parse(s: &str) -> Result<RoleRef, String> {
        Ok(match s {
            "line_manager" => RoleRef::LineManager,
            "senior_manager" => RoleRef::SeniorManager,
            "sqa_unit_manager" => RoleRef::SqaUnitManager,
            "mash_team_manager" => RoleRef::MashTeamManager,
            _ => {
                if let Some(r) = s.strip_prefix("agency.") {
                    if !AGENCY_ROLES.contains(&r) {
                        return Err(format!(
                            "{r:?} is not an agency role ({})",
                            AGENCY_ROLES.join(", ")
                        ));
                    }
                    RoleRef::Agency(r.into())
                } else if let Some(r) = s.strip_prefix("event.") {
                    if !EVENT_PEOPLE.contains(&r) {
                        return Err(format!(
                            "{r:?} is not a person on an event ({})",
                            EVENT_PEOPLE.join(", ")
                        ));
                    }
                    RoleRef::EventPerson(r.into())
                } else if CASE_ROLES.contains(&s) {
                    RoleRef::Case(s.into())
                } else if PARTNERSHIP_ROLES.contains(&s) {
                    RoleRef::Partnership(s.into())
                } else {
                    return Err(format!(
                        "{s:?} is not a role: use a case role ({}), line_manager, senior_manager, sqa_unit_manager, \
                         mash_team_manager, agency.<role>, event.<person> or a partnership role ({})",
                        CASE_ROLES.join(", "),
                        PARTNERSHIP_ROLES.join(", ")
                    ));
                }
            }
        })
    }
}

impl fmt::Display for RoleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleRef::Case(r) | RoleRef::Partnership(r) => f.write_str(r),
            RoleRef::LineManager => f.write_str("line_manager"),
            RoleRef::SeniorManager => f.write_str("senior_manager"),
            RoleRef::SqaUnitManager => f.write_str("sqa_unit_manager"),
            RoleRef::MashTeamManager => f.write_str("mash_team_manager"),
            RoleRef::Agency(r) => write!(f, "agency.{r}"),
            RoleRef::EventPerson(r) => write!(f, "event.{r}"),
        }
    }
}
