//! Resolving the roles a rule names to people with email addresses.

use super::{About, ProblemFacts, Recipient};
use crate::domain::{AgencyId, Case, Directory, Event, PersonId};
use crate::policy::RoleRef;

/// Something about the case's people that stops a notification reaching someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Stable code, part of the data-quality notice's key (one notice per problem).
    pub code: String,
    /// What it is, for the templates to word (`ProblemFacts`).
    pub facts: Box<ProblemFacts>,
    /// When the problem was first met: the earliest instant a notice that needed this person
    /// fell due, or the event that showed it (None until the caller stamps it).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct Resolver<'a> {
    pub case: &'a Case,
    pub directory: &'a Directory,
    pub anchor: Option<&'a Event>,
    /// The agency a per-agency occurrence is about.
    pub agency: Option<&'a AgencyId>,
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
            let role = match role {
                RoleRef::FirstOf(options) => options
                    .iter()
                    .find(|o| self.person_for(o, of).is_some())
                    .unwrap_or(role),
                _ => role,
            };
            match self.person_for(role, of) {
                Some(id) => match self.recipient(&id, &role.to_string()) {
                    Ok(r) => out.push(r),
                    Err(p) => problems.push(p),
                },
                None => problems.push(Problem {
                    code: format!("no-{role}"),
                    facts: Box::new(ProblemFacts::NoRole {
                        about: self.about(),
                        role: role.to_string(),
                    }),
                    since: None,
                }),
            }
        }
        out
    }

    fn person_for(&self, role: &RoleRef, of: Option<&PersonId>) -> Option<PersonId> {
        let d = self.directory;
        match role {
            RoleRef::FirstOf(options) => options.iter().find_map(|o| self.person_for(o, of)),
            RoleRef::Invitee => self.invitee(),
            RoleRef::InviteeManager => {
                let agency = self.agency?;
                self.invitee()
                    .and_then(|i| d.manager_of(&i).cloned())
                    .or_else(|| d.agency_role(agency, "senior_manager").cloned())
                    .or_else(|| d.agency_role(agency, "safeguarding_lead").cloned())
            }
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

    /// The person the occurrence's agency sent to the meeting, else its safeguarding lead.
    fn invitee(&self) -> Option<PersonId> {
        let agency = self.agency?;
        self.anchor
            .and_then(|e| e.data.get("invitees"))
            .and_then(|m| m.get(agency.as_str()))
            .and_then(|v| v.as_str())
            .and_then(|s| PersonId::parse(s).ok())
            .or_else(|| {
                self.directory
                    .agency_role(agency, "safeguarding_lead")
                    .cloned()
            })
    }

    fn recipient(&self, id: &PersonId, role: &str) -> Result<Recipient, Problem> {
        recipient(self.directory, id, role, &self.about())
    }

    fn about(&self) -> About {
        About::Case(self.case.reference.clone())
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

/// One party of a professional disagreement: a person, or only an agency (a respondent agency).
#[derive(Debug, Clone, Copy)]
pub struct Party<'a> {
    pub person: Option<&'a PersonId>,
    pub agency: Option<&'a AgencyId>,
}

/// Resolves the roles a ladder stage names: relative to either party (their line manager, senior
/// manager, their agency's roles), the partnership's roles, and the roles on the dispute's case.
/// Unlike a case rule's `senior_manager`, a party's senior manager is always their own (their
/// agency's named one, else their manager's manager), never the case's.
pub struct DisputeResolver<'a> {
    pub directory: &'a Directory,
    pub raiser: Party<'a>,
    pub respondent: Party<'a>,
    pub case_roles: &'a [(String, PersonId)],
    /// The dispute, for its problems.
    pub about: About,
}

impl DisputeResolver<'_> {
    pub fn party(&self, side: crate::policy::ladder::Side) -> Party<'_> {
        match side {
            crate::policy::ladder::Side::Raiser => self.raiser,
            crate::policy::ladder::Side::Respondent => self.respondent,
        }
    }

    /// Who holds a role, if anyone.
    pub fn person_for(&self, role: &crate::policy::ladder::LadderRole) -> Option<PersonId> {
        use crate::policy::ladder::LadderRole as L;
        let d = self.directory;
        match role {
            L::FirstOf(options) => options.iter().find_map(|o| self.person_for(o)),
            L::Party(side) => self.party(*side).person.cloned(),
            L::OfParty(side, r) => {
                let party = self.party(*side);
                let agency = party
                    .person
                    .and_then(|p| d.person(p))
                    .and_then(|p| p.agency.as_ref())
                    .or(party.agency);
                match r {
                    RoleRef::LineManager => party.person.and_then(|p| d.manager_of(p)).cloned(),
                    RoleRef::SeniorManager => match party.person {
                        Some(p) => d.senior_manager_of(p).cloned(),
                        None => agency
                            .and_then(|a| d.agency_role(a, "senior_manager"))
                            .cloned(),
                    },
                    RoleRef::Agency(name) => agency.and_then(|a| d.agency_role(a, name)).cloned(),
                    _ => None,
                }
            }
            L::Other(RoleRef::Partnership(r)) => d.partnership_roles.get(r).cloned(),
            L::Other(RoleRef::Case(r)) => self
                .case_roles
                .iter()
                .find(|(role, _)| role == r)
                .map(|(_, p)| p.clone()),
            L::Other(_) => None,
        }
    }

    /// Resolve each role to a reachable person; what cannot be resolved becomes a problem.
    pub fn resolve(
        &self,
        roles: &[crate::policy::ladder::LadderRole],
        problems: &mut Vec<Problem>,
    ) -> Vec<Recipient> {
        use crate::policy::ladder::LadderRole as L;
        let mut out = Vec::new();
        for role in roles {
            // Of alternatives, the one someone holds names the person's role.
            let role = match role {
                L::FirstOf(options) => options
                    .iter()
                    .find(|o| self.person_for(o).is_some())
                    .unwrap_or(role),
                _ => role,
            };
            match self.person_for(role) {
                Some(id) => match self.recipient(&id, &role.to_string()) {
                    Ok(r) => out.push(r),
                    Err(p) => problems.push(p),
                },
                None => problems.push(Problem {
                    code: format!("no-{role}"),
                    facts: Box::new(ProblemFacts::NoRole {
                        about: self.about.clone(),
                        role: role.to_string(),
                    }),
                    since: None,
                }),
            }
        }
        out
    }

    fn recipient(&self, id: &PersonId, role: &str) -> Result<Recipient, Problem> {
        recipient(self.directory, id, role, &self.about)
    }
}

/// A person as a recipient, or the problem that stops them being one. `about` (a case or a
/// dispute) says where they were named.
fn recipient(
    directory: &Directory,
    id: &PersonId,
    role: &str,
    about: &About,
) -> Result<Recipient, Problem> {
    let Some(person) = directory.person(id) else {
        return Err(Problem {
            code: format!("unknown-person-{id}"),
            facts: Box::new(ProblemFacts::UnknownPerson {
                person: id.to_string(),
                role: role.to_owned(),
                about: about.clone(),
            }),
            since: None,
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
            facts: Box::new(ProblemFacts::NoEmail {
                person: id.to_string(),
                role: role.to_owned(),
                about: about.clone(),
            }),
            since: None,
        }),
    }
}
