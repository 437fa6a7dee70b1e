//! `cpwatch import FILE`: the case-file JSON → validated records → one transaction.
//! Every problem is reported with where it is (case, event, field); nothing is written unless
//! the whole file is valid. Importing the same file twice changes nothing.

use crate::domain::{
    AgencyId, CaseRef, DisputeRef, Email, EventKind, PartnershipId, PersonId, AGENCY_ROLES,
    CASE_ROLES, PARTNERSHIP_ROLES,
};
use crate::store::schema::{
    agencies, agency_roles, case_events, case_roles, cases, dispute_events, disputes,
    partnership_roles, partnerships, people,
};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The escalation ladders a dispute may name, by id (the loaded catalogue's).
pub type Ladders = HashMap<String, crate::policy::LadderPolicy>;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: not valid JSON: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: the case file was rejected, nothing was imported:\n  {}", problems.join("\n  "))]
    Invalid { file: String, problems: Vec<String> },
    #[error("database error during import (nothing was imported): {0}")]
    Db(#[from] diesel::result::Error),
}

/// What an import wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub partnership: String,
    pub agencies: usize,
    pub people: usize,
    pub cases: usize,
    pub new_events: usize,
    pub disputes: usize,
    pub new_dispute_events: usize,
}

struct Agency {
    id: AgencyId,
    name: String,
    roles: Vec<(String, PersonId)>,
}
struct PersonRec {
    id: PersonId,
    name: String,
    email: Option<Email>,
    agency: Option<AgencyId>,
    manager: Option<PersonId>,
}
struct EventRec {
    kind: String,
    at: DateTime<Utc>,
    recorded_at: Option<DateTime<Utc>>,
    stage: Option<i32>,
    data: Map<String, Value>,
}
struct CaseRec {
    reference: CaseRef,
    unborn: bool,
    visit_interval_days: Option<i32>,
    roles: Vec<(String, PersonId)>,
    events: Vec<EventRec>,
}
struct DisputeRec {
    reference: DisputeRef,
    case: Option<CaseRef>,
    policy: String,
    raised_by: PersonId,
    respondent_person: Option<PersonId>,
    respondent_agency: Option<AgencyId>,
    subject: String,
    immediate_risk: bool,
    opened_at: DateTime<Utc>,
    disagreement_at: Option<DateTime<Utc>>,
    /// The canonical phrase of the dispute's protective timescale.
    protective: Option<String>,
    events: Vec<EventRec>,
}

/// A validated case file.
pub struct CaseFile {
    partnership: PartnershipId,
    agencies: Vec<Agency>,
    people: Vec<PersonRec>,
    partnership_roles: Vec<(String, PersonId)>,
    cases: Vec<CaseRec>,
    disputes: Vec<DisputeRec>,
}

/// Collects problems, each prefixed with where it is.
struct Checker<'a> {
    problems: Vec<String>,
    known_people: HashSet<String>,
    known_agencies: HashSet<String>,
    known_cases: HashSet<String>,
    partnerships: &'a [String],
    ladders: &'a Ladders,
}

impl Checker<'_> {
    fn err(&mut self, at: &str, msg: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {msg}"));
    }
    fn obj<'v>(&mut self, v: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        let o = v.as_object();
        if o.is_none() {
            self.err(at, "must be a JSON object");
        }
        o
    }
    fn string(
        &mut self,
        o: &Map<String, Value>,
        field: &str,
        at: &str,
        required: bool,
    ) -> Option<String> {
        match o.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            None | Some(Value::Null) => {
                if required {
                    self.err(&format!("{at}, field {field}"), "is required");
                }
                None
            }
            Some(_) => {
                self.err(&format!("{at}, field {field}"), "must be a string");
                None
            }
        }
    }
    fn boolean(&mut self, o: &Map<String, Value>, field: &str, at: &str) -> Option<bool> {
        match o.get(field) {
            Some(Value::Bool(b)) => Some(*b),
            None | Some(Value::Null) => None,
            Some(_) => {
                self.err(&format!("{at}, field {field}"), "must be true or false");
                None
            }
        }
    }
    fn instant(
        &mut self,
        o: &Map<String, Value>,
        field: &str,
        at: &str,
        required: bool,
    ) -> Option<DateTime<Utc>> {
        let s = self.string(o, field, at, required)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.err(
                    &format!("{at}, field {field}"),
                    format!("{s:?} is not an RFC 3339 date-time ({e})"),
                );
                None
            }
        }
    }
    fn person(
        &mut self,
        o: &Map<String, Value>,
        field: &str,
        at: &str,
        required: bool,
    ) -> Option<PersonId> {
        let s = self.string(o, field, at, required)?;
        self.person_ref(&s, &format!("{at}, field {field}"))
    }
    fn person_ref(&mut self, s: &str, at: &str) -> Option<PersonId> {
        match PersonId::parse(s) {
            Ok(p) if self.known_people.contains(s) => Some(p),
            Ok(_) => {
                self.err(
                    at,
                    format!(
                        "unknown person {s:?} (not in this file's people nor already imported)"
                    ),
                );
                None
            }
            Err(e) => {
                self.err(at, e);
                None
            }
        }
    }
    fn agency_ref(&mut self, s: &str, at: &str) -> Option<AgencyId> {
        match AgencyId::parse(s) {
            Ok(a) if self.known_agencies.contains(s) => Some(a),
            Ok(_) => {
                self.err(at, format!("unknown agency {s:?}"));
                None
            }
            Err(e) => {
                self.err(at, e);
                None
            }
        }
    }
    fn unknown_fields(&mut self, o: &Map<String, Value>, allowed: &[&str], at: &str) {
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{at}, field {k}"),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                );
            }
        }
    }
    fn array<'v>(&mut self, o: &'v Map<String, Value>, field: &str, at: &str) -> &'v [Value] {
        match o.get(field) {
            Some(Value::Array(a)) => a,
            None | Some(Value::Null) => &[],
            Some(_) => {
                self.err(&format!("{at}, field {field}"), "must be an array");
                &[]
            }
        }
    }
    /// A `{"role": "person"}` map; a role may hold a list of people where `multi` allows it.
    fn roles(
        &mut self,
        o: &Map<String, Value>,
        field: &str,
        at: &str,
        allowed: &[&str],
        multi: &[&str],
    ) -> Vec<(String, PersonId)> {
        let mut out = Vec::new();
        let Some(v) = o.get(field) else { return out };
        let Some(map) = v.as_object() else {
            self.err(
                &format!("{at}, field {field}"),
                "must be an object of role → person",
            );
            return out;
        };
        for (role, who) in map {
            let here = format!("{at}, field {field}.{role}");
            if !allowed.contains(&role.as_str()) {
                self.err(
                    &here,
                    format!("unknown role (expected one of: {})", allowed.join(", ")),
                );
                continue;
            }
            match who {
                Value::String(s) => {
                    if let Some(p) = self.person_ref(s, &here) {
                        out.push((role.clone(), p));
                    }
                }
                Value::Array(list) if multi.contains(&role.as_str()) => {
                    for w in list {
                        match w.as_str() {
                            Some(s) => {
                                if let Some(p) = self.person_ref(s, &here) {
                                    out.push((role.clone(), p));
                                }
                            }
                            None => self.err(&here, "must list person ids"),
                        }
                    }
                }
                _ => self.err(&here, "must be a person id"),
            }
        }
        out
    }
}

/// Kind-specific fields a case event may carry: (name, what it is, required).
fn event_fields(kind: EventKind) -> &'static [(&'static str, Field, bool)] {
    use EventKind::*;
    use Field::*;
    match kind {
        ReferralReceived => &[
            ("referrer", Person, false),
            ("verbal", Bool, false),
            ("professional", Bool, false),
        ],
        MedicalExamination => &[("examining_doctor", Person, true)],
        StrategyDiscussionHeld => &[("s47_initiated", Bool, false)],
        S47Completed => &[("icpc_required", Bool, false)],
        IcpcScheduled | RcpcScheduled => &[
            ("meeting", Text, true),
            ("invited_agencies", Agencies, false),
            ("invitees", Invitees, false),
        ],
        ReportReceived => &[
            ("meeting", Text, true),
            ("agency", Agency, true),
            ("shared_with_family", Bool, false),
        ],
        IcpcHeld => &[
            ("outcome", OneOf(&["plan", "no_plan"]), true),
            ("meeting", Text, false),
        ],
        RcpcHeld => &[
            ("outcome", OneOf(&["continue", "end"]), true),
            ("meeting", Text, false),
        ],
        CoreGroupHeld | SingleAssessmentSent | SingleAssessmentShared | ChairMetFamily => {
            &[("meeting", Text, false)]
        }
        _ => &[],
    }
}

#[derive(Clone, Copy)]
enum Field {
    Bool,
    Text,
    Person,
    Agency,
    Agencies,
    /// `{"agency": "person"}`: who each invited agency sends.
    Invitees,
    OneOf(&'static [&'static str]),
}

fn check_event_fields(
    c: &mut Checker,
    o: &Map<String, Value>,
    spec: &[(&str, Field, bool)],
    at: &str,
) -> Map<String, Value> {
    let mut data = Map::new();
    for (name, field, required) in spec {
        let here = format!("{at}, field {name}");
        match (o.get(*name), field) {
            (None | Some(Value::Null), _) => {
                if *required {
                    c.err(&here, "is required");
                }
                continue;
            }
            (Some(Value::Bool(_)), Field::Bool) => {}
            (Some(Value::String(_)), Field::Text) => {}
            (Some(Value::String(s)), Field::Person) => {
                c.person_ref(s, &here);
            }
            (Some(Value::String(s)), Field::Agency) => {
                c.agency_ref(s, &here);
            }
            (Some(Value::Array(list)), Field::Agencies) => {
                for a in list {
                    match a.as_str() {
                        Some(s) => {
                            c.agency_ref(s, &here);
                        }
                        None => c.err(&here, "must list agency ids"),
                    }
                }
            }
            (Some(Value::Object(map)), Field::Invitees) => {
                for (agency, person) in map {
                    c.agency_ref(agency, &here);
                    match person.as_str() {
                        Some(p) => {
                            c.person_ref(p, &format!("{here}.{agency}"));
                        }
                        None => c.err(&format!("{here}.{agency}"), "must be a person id"),
                    }
                }
            }
            (Some(Value::String(s)), Field::OneOf(values)) if values.contains(&s.as_str()) => {}
            (Some(_), Field::OneOf(values)) => {
                c.err(&here, format!("must be one of {}", values.join(", ")));
                continue;
            }
            (Some(_), Field::Bool) => {
                c.err(&here, "must be true or false");
                continue;
            }
            (Some(_), Field::Agencies) => {
                c.err(&here, "must be an array of agency ids");
                continue;
            }
            (Some(_), Field::Invitees) => {
                c.err(&here, "must be an object of agency → person");
                continue;
            }
            (Some(_), _) => {
                c.err(&here, "must be a string");
                continue;
            }
        }
        if let Some(v) = o.get(*name) {
            data.insert((*name).to_owned(), v.clone());
        }
    }
    data
}

/// Parse and validate a case file against what the database already holds.
pub fn parse(
    file: &str,
    text: &str,
    partnerships_configured: &[String],
    ladders: &Ladders,
    conn: &mut PgConnection,
) -> Result<CaseFile, ImportError> {
    let root: Value = serde_json::from_str(text).map_err(|e| ImportError::Syntax {
        file: file.into(),
        message: e.to_string(),
    })?;
    let invalid = |problems: Vec<String>| ImportError::Invalid {
        file: file.into(),
        problems,
    };
    let mut c = Checker {
        problems: Vec::new(),
        known_people: HashSet::new(),
        known_agencies: HashSet::new(),
        known_cases: HashSet::new(),
        partnerships: partnerships_configured,
        ladders,
    };
    let Some(top) = c.obj(&root, "the file") else {
        return Err(invalid(c.problems));
    };
    c.unknown_fields(
        top,
        &[
            "partnership",
            "agencies",
            "people",
            "partnership_roles",
            "cases",
            "disputes",
        ],
        "the file",
    );
    let partnership = match c
        .string(top, "partnership", "the file", true)
        .map(|p| PartnershipId::parse(&p))
    {
        Some(Ok(p)) => {
            if !c.partnerships.iter().any(|x| x == p.as_str()) {
                let msg = format!(
                    "{:?} is not a configured partnership (configured: {})",
                    p.as_str(),
                    c.partnerships.join(", ")
                );
                c.err("the file, field partnership", msg);
            }
            p
        }
        Some(Err(e)) => {
            c.err("the file, field partnership", e);
            return Err(invalid(c.problems));
        }
        None => return Err(invalid(c.problems)),
    };
    c.known_people
        .extend(crate::store::cases::person_ids(conn, partnership.as_str())?);
    c.known_agencies
        .extend(crate::store::cases::agency_ids(conn, partnership.as_str())?);
    {
        use crate::store::schema::cases::dsl as k;
        let refs: Vec<String> = k::cases
            .filter(k::partnership_id.eq(partnership.as_str()))
            .select(k::reference)
            .load(conn)?;
        c.known_cases.extend(refs);
    }

    // Ids first, so references may point forwards within the file.
    for (i, a) in c.array(top, "agencies", "the file").iter().enumerate() {
        if let Some(id) = a.get("id").and_then(|v| v.as_str()) {
            c.known_agencies.insert(id.to_owned());
        } else {
            c.err(&format!("agencies[{i}], field id"), "is required");
        }
    }
    for (i, p) in c.array(top, "people", "the file").iter().enumerate() {
        if let Some(id) = p.get("id").and_then(|v| v.as_str()) {
            c.known_people.insert(id.to_owned());
        } else {
            c.err(&format!("people[{i}], field id"), "is required");
        }
    }

    let mut agencies_out = Vec::new();
    for (i, a) in c.array(top, "agencies", "the file").iter().enumerate() {
        let at = format!(
            "agency {}",
            a.get("id")
                .and_then(|v| v.as_str())
                .map_or(format!("#{i}"), |s| s.to_owned())
        );
        let Some(o) = c.obj(a, &at) else { continue };
        c.unknown_fields(o, &["id", "name", "roles"], &at);
        let id = c
            .string(o, "id", &at, true)
            .and_then(|s| AgencyId::parse(&s).map_err(|e| c.err(&at, e)).ok());
        let name = c.string(o, "name", &at, true).unwrap_or_default();
        let roles = c.roles(o, "roles", &at, AGENCY_ROLES, &[]);
        if let Some(id) = id {
            agencies_out.push(Agency { id, name, roles });
        }
    }

    let mut people_out = Vec::new();
    let mut seen_people = HashSet::new();
    for (i, p) in c.array(top, "people", "the file").iter().enumerate() {
        let at = format!(
            "person {}",
            p.get("id")
                .and_then(|v| v.as_str())
                .map_or(format!("#{i}"), |s| s.to_owned())
        );
        let Some(o) = c.obj(p, &at) else { continue };
        c.unknown_fields(o, &["id", "name", "email", "agency", "manager"], &at);
        let id = c
            .string(o, "id", &at, true)
            .and_then(|s| PersonId::parse(&s).map_err(|e| c.err(&at, e)).ok());
        let name = c.string(o, "name", &at, true).unwrap_or_default();
        let email = c.string(o, "email", &at, false).and_then(|e| {
            Email::parse(&e)
                .map_err(|e| c.err(&format!("{at}, field email"), e.message))
                .ok()
        });
        let agency = c
            .string(o, "agency", &at, false)
            .and_then(|a| c.agency_ref(&a, &format!("{at}, field agency")));
        let manager = c.person(o, "manager", &at, false);
        if let Some(id) = id {
            if !seen_people.insert(id.clone()) {
                c.err(&at, "appears twice in people");
            }
            if manager.as_ref() == Some(&id) {
                c.err(
                    &format!("{at}, field manager"),
                    "a person cannot be their own manager",
                );
            }
            people_out.push(PersonRec {
                id,
                name,
                email,
                agency,
                manager,
            });
        }
    }

    let partnership_roles_out =
        c.roles(top, "partnership_roles", "the file", PARTNERSHIP_ROLES, &[]);

    let mut cases_out = Vec::new();
    let mut seen_cases = HashSet::new();
    for (i, v) in c.array(top, "cases", "the file").iter().enumerate() {
        let at = format!(
            "case {}",
            v.get("ref")
                .and_then(|v| v.as_str())
                .map_or(format!("#{i}"), |s| s.to_owned())
        );
        let Some(o) = c.obj(v, &at) else { continue };
        c.unknown_fields(
            o,
            &["ref", "unborn", "visit_interval_days", "roles", "events"],
            &at,
        );
        let reference = c
            .string(o, "ref", &at, true)
            .and_then(|s| CaseRef::parse(&s).map_err(|e| c.err(&at, e)).ok());
        let unborn = c.boolean(o, "unborn", &at).unwrap_or(false);
        let visit_interval_days = match o.get("visit_interval_days") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=366).contains(&n) => Some(n as i32),
                _ => {
                    c.err(
                        &format!("{at}, field visit_interval_days"),
                        "must be a whole number of days from 1 to 366",
                    );
                    None
                }
            },
        };
        let roles = c.roles(o, "roles", &at, CASE_ROLES, &["core_group_member"]);
        let mut events = Vec::new();
        for (j, e) in c.array(o, "events", &at).iter().enumerate() {
            let eat = format!(
                "{at}, event {j}{}",
                e.get("kind")
                    .and_then(|k| k.as_str())
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default()
            );
            let Some(eo) = c.obj(e, &eat) else { continue };
            let kind_s = c.string(eo, "kind", &eat, true);
            let at_t = c.instant(eo, "at", &eat, true);
            let recorded_at = c.instant(eo, "recorded_at", &eat, false);
            let Some(kind_s) = kind_s else { continue };
            let Some(kind) = EventKind::parse(&kind_s) else {
                c.err(
                    &format!("{eat}, field kind"),
                    format!("{kind_s:?} is not an event kind"),
                );
                continue;
            };
            let spec = event_fields(kind);
            let mut allowed: Vec<&str> = vec!["kind", "at", "recorded_at"];
            allowed.extend(spec.iter().map(|s| s.0));
            c.unknown_fields(eo, &allowed, &eat);
            let data = check_event_fields(&mut c, eo, spec, &eat);
            if let Some(at_t) = at_t {
                events.push(EventRec {
                    kind: kind_s,
                    at: at_t,
                    recorded_at,
                    stage: None,
                    data,
                });
            }
        }
        if let Some(reference) = reference {
            if !seen_cases.insert(reference.clone()) {
                c.err(&at, "appears twice in cases");
            }
            c.known_cases.insert(reference.to_string());
            cases_out.push(CaseRec {
                reference,
                unborn,
                visit_interval_days,
                roles,
                events,
            });
        }
    }

    let mut disputes_out = Vec::new();
    for (i, v) in c.array(top, "disputes", "the file").iter().enumerate() {
        let at = format!(
            "dispute {}",
            v.get("id")
                .and_then(|v| v.as_str())
                .map_or(format!("#{i}"), |s| s.to_owned())
        );
        let Some(o) = c.obj(v, &at) else { continue };
        c.unknown_fields(
            o,
            &[
                "id",
                "case",
                "policy",
                "raised_by",
                "respondent",
                "respondent_agency",
                "opened_at",
                "disagreement_at",
                "immediate_risk",
                "protective_timescale",
                "subject",
                "events",
            ],
            &at,
        );
        let reference = c
            .string(o, "id", &at, true)
            .and_then(|s| DisputeRef::parse(&s).map_err(|e| c.err(&at, e)).ok());
        let case = c.string(o, "case", &at, false).and_then(|s| {
            if c.known_cases.contains(&s) {
                CaseRef::parse(&s).ok()
            } else {
                c.err(&format!("{at}, field case"), format!("unknown case {s:?}"));
                None
            }
        });
        let policy = c.string(o, "policy", &at, true).unwrap_or_default();
        let ladder = c.ladders.get(&policy);
        if !policy.is_empty() && ladder.is_none() {
            let mut known: Vec<&str> = c.ladders.keys().map(String::as_str).collect();
            known.sort_unstable();
            let msg = format!(
                "unknown escalation policy {policy:?} (known: {})",
                known.join(", ")
            );
            c.err(&format!("{at}, field policy"), msg);
        }
        let stages = ladder.map_or(10, |l| l.last_stage());
        let raised_by = c.person(o, "raised_by", &at, true);
        let respondent_person = c.person(o, "respondent", &at, false);
        let respondent_agency = c
            .string(o, "respondent_agency", &at, false)
            .and_then(|a| c.agency_ref(&a, &format!("{at}, field respondent_agency")));
        if respondent_person.is_none()
            && respondent_agency.is_none()
            && !o.contains_key("respondent")
        {
            c.err(
                &at,
                "names no respondent (field respondent or respondent_agency)",
            );
        }
        let opened_at = c.instant(o, "opened_at", &at, true);
        let disagreement_at = c.instant(o, "disagreement_at", &at, false);
        let immediate_risk = c.boolean(o, "immediate_risk", &at).unwrap_or(false);
        let protective = c
            .string(o, "protective_timescale", &at, false)
            .and_then(|p| protective_timescale(&mut c, &p, &at));
        let subject = c.string(o, "subject", &at, false).unwrap_or_default();
        let mut events = Vec::new();
        for (j, e) in c.array(o, "events", &at).iter().enumerate() {
            let eat = format!(
                "{at}, event {j}{}",
                e.get("kind")
                    .and_then(|k| k.as_str())
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default()
            );
            let Some(eo) = c.obj(e, &eat) else { continue };
            c.unknown_fields(eo, &["kind", "at", "stage", "outcome", "by"], &eat);
            let kind = c.string(eo, "kind", &eat, true);
            let t = c.instant(eo, "at", &eat, true);
            if let Some(k) = &kind {
                if !["escalated", "resolved", "outcome_confirmed"].contains(&k.as_str()) {
                    c.err(
                        &format!("{eat}, field kind"),
                        format!(
                            "{k:?} is not a dispute event (escalated, resolved, outcome_confirmed)"
                        ),
                    );
                }
            }
            let stage = match eo.get("stage") {
                None | Some(Value::Null) => None,
                Some(v) => match v.as_u64() {
                    Some(n) if (1..=u64::from(stages)).contains(&n) => Some(n as i32),
                    _ => {
                        c.err(
                            &format!("{eat}, field stage"),
                            format!("must be a stage number from 1 to {stages}"),
                        );
                        None
                    }
                },
            };
            if kind.as_deref() == Some("escalated") && stage.is_none() {
                c.err(
                    &format!("{eat}, field stage"),
                    "is required for an escalation",
                );
            }
            let mut data = Map::new();
            if let Some(out) = c.string(eo, "outcome", &eat, false) {
                data.insert("outcome".into(), Value::String(out));
            }
            if let Some(by) = c.person(eo, "by", &eat, false) {
                data.insert("by".into(), Value::String(by.to_string()));
            }
            if let (Some(t), Some(open)) = (t, opened_at) {
                if t < open {
                    c.err(
                        &format!("{eat}, field at"),
                        format!(
                            "{} is before the dispute was opened ({})",
                            t.to_rfc3339(),
                            open.to_rfc3339()
                        ),
                    );
                }
            }
            if let (Some(kind), Some(t)) = (kind, t) {
                events.push(EventRec {
                    kind,
                    at: t,
                    recorded_at: None,
                    stage,
                    data,
                });
            }
        }
        if let (Some(reference), Some(raised_by), Some(opened_at)) =
            (reference, raised_by, opened_at)
        {
            disputes_out.push(DisputeRec {
                reference,
                case,
                policy,
                raised_by,
                respondent_person,
                respondent_agency,
                subject,
                immediate_risk,
                opened_at,
                disagreement_at,
                protective,
                events,
            });
        }
    }

    if !c.problems.is_empty() {
        return Err(invalid(c.problems));
    }
    Ok(CaseFile {
        partnership,
        agencies: agencies_out,
        people: people_out,
        partnership_roles: partnership_roles_out,
        cases: cases_out,
        disputes: disputes_out,
    })
}

/// A dispute's protective timescale: a phrase counting forwards from a stage's start.
fn protective_timescale(c: &mut Checker, phrase: &str, at: &str) -> Option<String> {
    use crate::calendar::Timescale;
    let here = format!("{at}, field protective_timescale");
    match phrase.parse::<Timescale>() {
        Ok(
            Timescale::WorkingDaysBefore(_) | Timescale::HoursBefore(_) | Timescale::DaysBefore(_),
        ) => {
            c.err(
                &here,
                format!("{phrase:?} counts back; give a timescale from each stage's start, such as \"1 working day\" or \"4 hours\""),
            );
            None
        }
        Ok(t) => Some(t.to_string()),
        Err(e) => {
            c.err(&here, e);
            None
        }
    }
}

/// Validate and write a case file in one transaction, against the built-in escalation ladders.
pub fn import(
    conn: &mut PgConnection,
    file: &str,
    text: &str,
    partnerships_configured: &[String],
) -> Result<ImportSummary, ImportError> {
    let ladders = crate::policy::Catalogue::load(None)
        .map(|c| c.ladders)
        .unwrap_or_default();
    import_with(conn, file, text, partnerships_configured, &ladders)
}

/// Validate and write a case file in one transaction; disputes may name any of `ladders`.
pub fn import_with(
    conn: &mut PgConnection,
    file: &str,
    text: &str,
    partnerships_configured: &[String],
    ladders: &Ladders,
) -> Result<ImportSummary, ImportError> {
    conn.transaction(|conn| {
        let parsed = parse(file, text, partnerships_configured, ladders, conn)?;
        write(conn, &parsed).map_err(ImportError::from)
    })
}

fn write(conn: &mut PgConnection, f: &CaseFile) -> Result<ImportSummary, diesel::result::Error> {
    let p = f.partnership.as_str();
    let mut summary = ImportSummary {
        partnership: p.to_owned(),
        ..Default::default()
    };
    diesel::insert_into(partnerships::table)
        .values(partnerships::id.eq(p))
        .on_conflict_do_nothing()
        .execute(conn)?;
    for a in &f.agencies {
        diesel::insert_into(agencies::table)
            .values((
                agencies::partnership_id.eq(p),
                agencies::id.eq(a.id.as_str()),
                agencies::name.eq(&a.name),
            ))
            .on_conflict((agencies::partnership_id, agencies::id))
            .do_update()
            .set(agencies::name.eq(&a.name))
            .execute(conn)?;
    }
    summary.agencies = f.agencies.len();
    for person in &f.people {
        let row = (
            people::partnership_id.eq(p),
            people::id.eq(person.id.as_str()),
            people::name.eq(&person.name),
            people::email.eq(person.email.as_ref().map(|e| e.as_str())),
            people::agency_id.eq(person.agency.as_ref().map(|a| a.as_str())),
            people::manager_id.eq(person.manager.as_ref().map(|m| m.as_str())),
        );
        diesel::insert_into(people::table)
            .values(row)
            .on_conflict((people::partnership_id, people::id))
            .do_update()
            .set((
                people::name.eq(&person.name),
                people::email.eq(person.email.as_ref().map(|e| e.as_str())),
                people::agency_id.eq(person.agency.as_ref().map(|a| a.as_str())),
                people::manager_id.eq(person.manager.as_ref().map(|m| m.as_str())),
            ))
            .execute(conn)?;
    }
    summary.people = f.people.len();
    for a in &f.agencies {
        for (role, person) in &a.roles {
            diesel::insert_into(agency_roles::table)
                .values((
                    agency_roles::partnership_id.eq(p),
                    agency_roles::agency_id.eq(a.id.as_str()),
                    agency_roles::role.eq(role),
                    agency_roles::person_id.eq(person.as_str()),
                ))
                .on_conflict((
                    agency_roles::partnership_id,
                    agency_roles::agency_id,
                    agency_roles::role,
                ))
                .do_update()
                .set(agency_roles::person_id.eq(person.as_str()))
                .execute(conn)?;
        }
    }
    for (role, person) in &f.partnership_roles {
        diesel::insert_into(partnership_roles::table)
            .values((
                partnership_roles::partnership_id.eq(p),
                partnership_roles::role.eq(role),
                partnership_roles::person_id.eq(person.as_str()),
            ))
            .on_conflict((partnership_roles::partnership_id, partnership_roles::role))
            .do_update()
            .set(partnership_roles::person_id.eq(person.as_str()))
            .execute(conn)?;
    }
    for case in &f.cases {
        let id: i64 = diesel::insert_into(cases::table)
            .values((
                cases::partnership_id.eq(p),
                cases::reference.eq(case.reference.as_str()),
                cases::unborn.eq(case.unborn),
                cases::visit_interval_days.eq(case.visit_interval_days),
            ))
            .on_conflict((cases::partnership_id, cases::reference))
            .do_update()
            .set((
                cases::unborn.eq(case.unborn),
                cases::visit_interval_days.eq(case.visit_interval_days),
            ))
            .returning(cases::id)
            .get_result(conn)?;
        // The file's roles are the case's roles now.
        diesel::delete(case_roles::table.filter(case_roles::case_id.eq(id))).execute(conn)?;
        let roles: Vec<_> = case
            .roles
            .iter()
            .map(|(r, person)| {
                (
                    case_roles::case_id.eq(id),
                    case_roles::role.eq(r),
                    case_roles::person_id.eq(person.as_str()),
                )
            })
            .collect();
        diesel::insert_into(case_roles::table)
            .values(&roles)
            .on_conflict_do_nothing()
            .execute(conn)?;
        let events: Vec<_> = case
            .events
            .iter()
            .map(|e| {
                (
                    case_events::case_id.eq(id),
                    case_events::kind.eq(&e.kind),
                    case_events::at.eq(e.at),
                    case_events::recorded_at.eq(e.recorded_at),
                    case_events::data.eq(Value::Object(e.data.clone())),
                )
            })
            .collect();
        let new_events = diesel::insert_into(case_events::table)
            .values(&events)
            .on_conflict_do_nothing()
            .execute(conn)?;
        summary.new_events += new_events;
        if new_events > 0 {
            // Something changed: the next pass must look at this case.
            diesel::update(cases::table.find(id))
                .set((
                    cases::next_check_at.eq(crate::store::CHECK_NOW),
                    cases::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)?;
        }
    }
    summary.cases = f.cases.len();
    for d in &f.disputes {
        let case_id: Option<i64> = match &d.case {
            Some(r) => Some(
                cases::table
                    .filter(cases::partnership_id.eq(p))
                    .filter(cases::reference.eq(r.as_str()))
                    .select(cases::id)
                    .first(conn)?,
            ),
            None => None,
        };
        let id: i64 = diesel::insert_into(disputes::table)
            .values((
                disputes::partnership_id.eq(p),
                disputes::reference.eq(d.reference.as_str()),
                disputes::case_id.eq(case_id),
                disputes::policy.eq(&d.policy),
                disputes::raised_by.eq(d.raised_by.as_str()),
                disputes::respondent_person.eq(d.respondent_person.as_ref().map(|x| x.as_str())),
                disputes::respondent_agency.eq(d.respondent_agency.as_ref().map(|x| x.as_str())),
                disputes::subject.eq(&d.subject),
                disputes::immediate_risk.eq(d.immediate_risk),
                disputes::opened_at.eq(d.opened_at),
                disputes::disagreement_at.eq(d.disagreement_at),
                disputes::stage_started_at.eq(d.opened_at),
                disputes::protective_timescale.eq(d.protective.as_deref()),
            ))
            .on_conflict((disputes::partnership_id, disputes::reference))
            .do_update()
            .set((
                disputes::subject.eq(&d.subject),
                disputes::immediate_risk.eq(d.immediate_risk),
                disputes::protective_timescale.eq(d.protective.as_deref()),
            ))
            .returning(disputes::id)
            .get_result(conn)?;
        let events: Vec<_> = d
            .events
            .iter()
            .map(|e| {
                (
                    dispute_events::dispute_id.eq(id),
                    dispute_events::kind.eq(&e.kind),
                    dispute_events::at.eq(e.at),
                    dispute_events::stage.eq(e.stage),
                    dispute_events::data.eq(Value::Object(e.data.clone())),
                )
            })
            .collect();
        let new = diesel::insert_into(dispute_events::table)
            .values(&events)
            .on_conflict_do_nothing()
            .execute(conn)?;
        summary.new_dispute_events += new;
        if new > 0 {
            diesel::update(disputes::table.find(id))
                .set(disputes::next_check_at.eq(crate::store::CHECK_NOW))
                .execute(conn)?;
        }
    }
    summary.disputes = f.disputes.len();
    Ok(summary)
}
