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
    /// For a per-agency rule: the person the agency sent to the meeting (the meeting's
    /// `invitees`), else the agency's safeguarding lead.
    Invitee,
    /// For a per-agency rule: the invitee's line manager, else the agency's senior manager,
    /// else its safeguarding lead.
    InviteeManager,
    /// The first of these that someone holds (`team_manager|assistant_team_manager`).
    FirstOf(Vec<RoleRef>),
}

const EVENT_PEOPLE: &[&str] = &["referrer", "examining_doctor"];

impl RoleRef {
    pub fn parse(s: &str) -> Result<RoleRef, String> {
        if s.contains('|') {
            let options = s
                .split('|')
                .map(|p| RoleRef::parse(p.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(RoleRef::FirstOf(options));
        }
        Ok(match s {
            "invitee" => RoleRef::Invitee,
            "invitee_manager" => RoleRef::InviteeManager,
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
                         mash_team_manager, invitee, invitee_manager, agency.<role>, event.<person>, \
                         a|b (the first held) or a partnership role ({})",
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
            RoleRef::Invitee => f.write_str("invitee"),
            RoleRef::InviteeManager => f.write_str("invitee_manager"),
            RoleRef::FirstOf(options) => {
                let names: Vec<String> = options.iter().map(|o| o.to_string()).collect();
                f.write_str(&names.join("|"))
            }
        }
    }
}
