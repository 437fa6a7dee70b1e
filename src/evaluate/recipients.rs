//! Resolving the roles a rule names to people with email addresses.

use super::Recipient;
use crate::domain::{Case, Directory, Event, PersonId};
use crate::policy::RoleRef;

/// Something about the case's people that stops a notification reaching someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable code, part of the data-quality notice's key (one notice per problem).
    pub code: String,
    pub message: String,
}

pub struct Resolver<'a> {
    pub case: &'a Case,
    pub directory: &'a Directory,
    pub anchor: Option<&'a Event>,
}

impl Resolver<'_> {
    /// Resolve roles that do not depend on a responsible person.
    pub fn resolve_all(&self, roles: &[RoleRef], problems: &mut Vec<Problem>) -> Vec<Recipient> {
        self.resolve_relative(roles, None, problems)
    }

    /// Resolve roles; `line_manager`, `senior_manager` and `agency.*` are relative to `of`.
    pub fn resolve_relative(
        &self,
        roles: &[RoleRef],
        of: Option<&PersonId>,
        problems: &mut Vec<Problem>,
    ) -> Vec<Recipient> {
        let mut out = Vec::new();
        for role in roles {
            match self.person_for(role, of) {
                Some(id) => match self.recipient(&id, &role.to_string()) {
                    Ok(r) => out.push(r),
                    Err(p) => problems.push(p),
                },
                None => problems.push(Problem {
                    code: format!("no-{role}"),
                    message: format!(
                        "Case {} has nobody in the role {role}, so a notification could not be addressed. \
                         Record who holds it.",
                        self.case.reference
                    ),
                }),
            }
        }
        out
    }

    fn person_for(&self, role: &RoleRef, of: Option<&PersonId>) -> Option<PersonId> {
        let d = self.directory;
        match role {
            RoleRef::Case(r) => self.case.role(r).cloned(),
            RoleRef::LineManager => of.and_then(|p| d.manager_of(p)).cloned(),
            RoleRef::SeniorManager => self
                .case
                .role("senior_manager")
                .or_else(|| of.and_then(|p| d.senior_manager_of(p)))
                .cloned(),
            RoleRef::SqaUnitManager => self
                .case
                .role("conference_chair")
                .and_then(|c| d.manager_of(c))
                .cloned(),
            RoleRef::MashTeamManager => self
                .case
                .role("mash_team_manager")
                .or_else(|| self.case.role("team_manager"))
                .cloned(),
            RoleRef::Agency(r) => of
                .and_then(|p| d.person(p))
                .and_then(|p| p.agency.as_ref())
                .and_then(|a| d.agency_role(a, r))
                .cloned(),
            RoleRef::Partnership(r) => d.partnership_roles.get(r).cloned(),
            RoleRef::EventPerson(field) => self
                .anchor
                .and_then(|e| e.text(field))
                .and_then(|s| PersonId::parse(s).ok()),
        }
    }

    fn recipient(&self, id: &PersonId, role: &str) -> Result<Recipient, Problem> {
        let Some(person) = self.directory.person(id) else {
            return Err(Problem {
                code: format!("unknown-person-{id}"),
                message: format!(
                    "Case {} names person {id} as {role}, who is not known.",
                    self.case.reference
                ),
            });
        };
        match &person.email {
            Some(email) => Ok(Recipient {
                email: email.clone(),
                person: Some(id.clone()),
                name: Some(person.name.clone()),
                role: role.to_owned(),
            }),
            None => Err(Problem {
                code: format!("no-email-{id}"),
                message: format!(
                    "Person {id} ({role} on case {}) has no email address, so cpwatch cannot reach them.",
                    self.case.reference
                ),
            }),
        }
    }

    /// The case's team manager if reachable, else the configured admin address.
    pub fn data_quality_recipient(&self) -> Option<Recipient> {
        let tm = self
            .case
            .role("team_manager")
            .and_then(|id| self.recipient(id, "team_manager").ok());
        tm.or_else(|| {
            self.directory.admin_email.clone().map(|email| Recipient {
                email,
                person: None,
                name: None,
                role: "admin".into(),
            })
        })
    }
}
