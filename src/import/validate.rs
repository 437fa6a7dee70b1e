//! The pure validator: a parsed case file, checked against the configured partnerships, the
//! escalation ladders and the ids the database already holds ([`Known`]), becomes an
//! [`ImportBatch`] or the list of every problem, each prefixed with its place
//! ("case KN-0001, event 3 (icpc_held), field outcome: is required"). No database, no I/O.
//! References may point forwards within the file. Also the table of kind-specific event fields.

use super::json::{self, Document, Lenient};
use super::{limits, Ladders};
use crate::domain::{
    AgencyId, CaseRef, DisputeEventKind, DisputeRef, Email, EventKind, InvalidValue, PartnershipId,
    Person, PersonId, AGENCY_ROLES, CASE_ROLES, PARTNERSHIP_ROLES,
};
use crate::records::{
    AgencyRecord, CaseEventRecord, CaseRecord, DisputeEventRecord, DisputeRecord, ImportBatch,
    Known, Provenance,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt::Display;

/// The partnership a file is for, so that what the database knows of it can be looked up.
/// The problems, when the file names none that could be.
pub fn partnership(doc: &Document) -> Result<PartnershipId, Vec<String>> {
    let none = Known::default();
    let mut c = Checker::new(&none);
    c.file(doc)
        .and_then(|file| c.partnership(file))
        .ok_or(c.problems)
}

/// Check a whole file against the configured partnerships, the ladders disputes may name and
/// the ids the database already holds for the file's partnership; every problem, or the records.
pub fn validate(
    doc: &Document,
    partnerships: &[String],
    ladders: &Ladders,
    known: &Known,
) -> Result<ImportBatch, Vec<String>> {
    let mut c = Checker::new(known);
    let Some(file) = c.file(doc) else {
        return Err(c.problems);
    };
    let Some(partnership) = c.partnership(file) else {
        return Err(c.problems);
    };
    if !partnerships.iter().any(|x| x == partnership.as_str()) {
        let msg = format!(
            "{:?} is not a configured partnership (configured: {})",
            partnership.as_str(),
            partnerships.join(", ")
        );
        c.err("the file, field partnership", msg);
    }
    c.declare(file);
    let batch = ImportBatch {
        partnership,
        provenance: Provenance::case_file(""),
        agencies: c.agencies(file),
        people: c.people(file),
        partnership_roles: c.roles(
            &file.partnership_roles,
            "the file",
            "partnership_roles",
            PARTNERSHIP_ROLES,
            &[],
        ),
        cases: c.cases(file),
        disputes: c.disputes(file, ladders),
    };
    if c.problems.is_empty() {
        Ok(batch)
    } else {
        Err(c.problems)
    }
}

/// Collects problems, each prefixed with where it is; resolves references against the ids
/// known from the database and those this file declares.
struct Checker<'a> {
    problems: Vec<String>,
    known: &'a Known,
    declared: Known,
}

impl<'a> Checker<'a> {
    fn new(known: &'a Known) -> Self {
        Checker {
            problems: Vec::new(),
            known,
            declared: Known::default(),
        }
    }

    fn err(&mut self, at: &str, msg: impl Display) {
        self.problems.push(format!("{at}: {msg}"));
    }

    fn object<'v, T>(&mut self, v: &'v Lenient<T>, at: &str) -> Option<&'v T> {
        let o = v.good();
        if o.is_none() {
            self.err(at, "must be a JSON object");
        }
        o
    }

    fn text(
        &mut self,
        v: &Lenient<String>,
        at: &str,
        field: &str,
        required: bool,
    ) -> Option<String> {
        match v {
            Lenient::Good(s) => Some(s.clone()),
            Lenient::Absent | Lenient::Null => {
                if required {
                    self.err(&format!("{at}, field {field}"), "is required");
                }
                None
            }
            Lenient::Wrong(_) => {
                self.err(&format!("{at}, field {field}"), "must be a string");
                None
            }
        }
    }

    /// A text field shown as one line in mail (a name, a subject), within `max` characters.
    fn line(
        &mut self,
        v: &Lenient<String>,
        at: &str,
        field: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let s = self.text(v, at, field, required)?;
        match limits::one_line(&s, max) {
            Ok(()) => Some(s),
            Err(why) => {
                self.err(&format!("{at}, field {field}"), why);
                None
            }
        }
    }

    fn flag(&mut self, v: &Lenient<bool>, at: &str, field: &str) -> Option<bool> {
        match v {
            Lenient::Good(b) => Some(*b),
            Lenient::Absent | Lenient::Null => None,
            Lenient::Wrong(_) => {
                self.err(&format!("{at}, field {field}"), "must be true or false");
                None
            }
        }
    }

    fn instant(
        &mut self,
        v: &Lenient<String>,
        at: &str,
        field: &str,
        required: bool,
    ) -> Option<DateTime<Utc>> {
        let s = self.text(v, at, field, required)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => {
                let t = t.with_timezone(&Utc);
                match limits::instant(t) {
                    Ok(()) => Some(t),
                    Err(why) => {
                        self.err(&format!("{at}, field {field}"), format!("{s:?} {why}"));
                        None
                    }
                }
            }
            Err(e) => {
                self.err(
                    &format!("{at}, field {field}"),
                    format!("{s:?} is not an RFC 3339 date-time ({e})"),
                );
                None
            }
        }
    }

    /// An id of the object at `at`, parsed; a bad one is a problem of the object.
    fn id<T>(
        &mut self,
        v: &Lenient<String>,
        at: &str,
        field: &str,
        parse: fn(&str) -> Result<T, InvalidValue>,
    ) -> Option<T> {
        let s = self.text(v, at, field, true)?;
        parse(&s).map_err(|e| self.err(at, e)).ok()
    }

    fn person(
        &mut self,
        v: &Lenient<String>,
        at: &str,
        field: &str,
        required: bool,
    ) -> Option<PersonId> {
        let s = self.text(v, at, field, required)?;
        self.person_ref(&s, &format!("{at}, field {field}"))
    }

    fn agency(&mut self, v: &Lenient<String>, at: &str, field: &str) -> Option<AgencyId> {
        let s = self.text(v, at, field, false)?;
        self.agency_ref(&s, &format!("{at}, field {field}"))
    }

    fn person_ref(&mut self, s: &str, at: &str) -> Option<PersonId> {
        match PersonId::parse(s) {
            Ok(p) if self.known.people.contains(s) || self.declared.people.contains(s) => Some(p),
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
            Ok(a) if self.known.agencies.contains(s) || self.declared.agencies.contains(s) => {
                Some(a)
            }
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

    fn knows_case(&self, s: &str) -> bool {
        self.known.cases.contains(s) || self.declared.cases.contains(s)
    }

    fn unknown_fields<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k String>,
        allowed: &[&str],
        at: &str,
    ) {
        for k in keys {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &format!("{at}, field {k}"),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                );
            }
        }
    }

    fn list<'v, T>(&mut self, v: &'v Lenient<Vec<T>>, at: &str, field: &str) -> &'v [T] {
        match v {
            Lenient::Good(items) => items,
            Lenient::Absent | Lenient::Null => &[],
            Lenient::Wrong(_) => {
                self.err(&format!("{at}, field {field}"), "must be an array");
                &[]
            }
        }
    }

    /// A `{"role": "person"}` map; a role may hold a list of people where `multi` allows it.
    fn roles(
        &mut self,
        v: &Lenient<json::Roles>,
        at: &str,
        field: &str,
        allowed: &[&str],
        multi: &[&str],
    ) -> Vec<(String, PersonId)> {
        let mut out = Vec::new();
        let map = match v {
            Lenient::Absent => return out,
            Lenient::Good(map) => map,
            Lenient::Null | Lenient::Wrong(_) => {
                self.err(
                    &format!("{at}, field {field}"),
                    "must be an object of role → person",
                );
                return out;
            }
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
                    if let Err(why) = limits::members(list.len()) {
                        self.err(&here, why);
                        continue;
                    }
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

/// "agency ksc", or "agency #2" when the item has no id to name it by.
fn place<T>(what: &str, item: &Lenient<T>, id: fn(&T) -> &Lenient<String>, i: usize) -> String {
    match item.good().map(id) {
        Some(Lenient::Good(s)) => format!("{what} {s}"),
        _ => format!("{what} #{i}"),
    }
}

/// "case KN-0001, event 3 (icpc_held)", or "case KN-0001, event 3" when it has no kind.
fn event_place<T>(
    at: &str,
    j: usize,
    item: &Lenient<T>,
    kind: fn(&T) -> &Lenient<String>,
) -> String {
    match item.good().map(kind) {
        Some(Lenient::Good(k)) => format!("{at}, event {j} ({k})"),
        _ => format!("{at}, event {j}"),
    }
}

// The file, its agencies and its people.
impl Checker<'_> {
    fn file<'d>(&mut self, doc: &'d Document) -> Option<&'d json::CaseFile> {
        self.object(doc, "the file")
    }

    fn partnership(&mut self, file: &json::CaseFile) -> Option<PartnershipId> {
        self.unknown_fields(
            file.unknown.keys(),
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
        let p = self.text(&file.partnership, "the file", "partnership", true)?;
        PartnershipId::parse(&p)
            .map_err(|e| self.err("the file, field partnership", e))
            .ok()
    }

    /// The ids the file declares, first, so that references may point forwards.
    fn declare(&mut self, file: &json::CaseFile) {
        for (i, a) in self
            .list(&file.agencies, "the file", "agencies")
            .iter()
            .enumerate()
        {
            match a.good().and_then(|a| a.id.good()) {
                Some(id) => {
                    self.declared.agencies.insert(id.clone());
                }
                None => self.err(&format!("agencies[{i}], field id"), "is required"),
            }
        }
        for (i, p) in self
            .list(&file.people, "the file", "people")
            .iter()
            .enumerate()
        {
            match p.good().and_then(|p| p.id.good()) {
                Some(id) => {
                    self.declared.people.insert(id.clone());
                }
                None => self.err(&format!("people[{i}], field id"), "is required"),
            }
        }
    }

    fn agencies(&mut self, file: &json::CaseFile) -> Vec<AgencyRecord> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in self
            .list(&file.agencies, "the file", "agencies")
            .iter()
            .enumerate()
        {
            let at = place("agency", item, |a| &a.id, i);
            let Some(a) = self.object(item, &at) else {
                continue;
            };
            self.unknown_fields(a.unknown.keys(), &["id", "name", "roles"], &at);
            let id = self.id(&a.id, &at, "id", AgencyId::parse);
            let name = self
                .line(&a.name, &at, "name", true, limits::MAX_NAME_CHARS)
                .unwrap_or_default();
            let roles = self.roles(&a.roles, &at, "roles", AGENCY_ROLES, &[]);
            if let Some(id) = id {
                if !seen.insert(id.clone()) {
                    self.err(&at, "appears twice in agencies");
                }
                out.push(AgencyRecord { id, name, roles });
            }
        }
        out
    }

    fn people(&mut self, file: &json::CaseFile) -> Vec<Person> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in self
            .list(&file.people, "the file", "people")
            .iter()
            .enumerate()
        {
            let at = place("person", item, |p| &p.id, i);
            let Some(p) = self.object(item, &at) else {
                continue;
            };
            let fields = ["id", "name", "email", "agency", "manager"];
            self.unknown_fields(p.unknown.keys(), &fields, &at);
            let id = self.id(&p.id, &at, "id", PersonId::parse);
            let name = self
                .line(&p.name, &at, "name", true, limits::MAX_NAME_CHARS)
                .unwrap_or_default();
            let email = self.text(&p.email, &at, "email", false).and_then(|e| {
                Email::parse(&e)
                    .map_err(|e| self.err(&format!("{at}, field email"), e.message))
                    .ok()
            });
            let agency = self.agency(&p.agency, &at, "agency");
            let manager = self.person(&p.manager, &at, "manager", false);
            let Some(id) = id else { continue };
            if !seen.insert(id.clone()) {
                self.err(&at, "appears twice in people");
            }
            if manager.as_ref() == Some(&id) {
                self.err(
                    &format!("{at}, field manager"),
                    "a person cannot be their own manager",
                );
            }
            out.push(Person {
                id,
                name,
                email,
                agency,
                manager,
            });
        }
        out
    }
}

// Cases and their events.
impl Checker<'_> {
    fn cases(&mut self, file: &json::CaseFile) -> Vec<CaseRecord> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in self
            .list(&file.cases, "the file", "cases")
            .iter()
            .enumerate()
        {
            let at = place("case", item, |c| &c.reference, i);
            let Some(case) = self.case(item, &at) else {
                continue;
            };
            if !seen.insert(case.reference.clone()) {
                self.err(&at, "appears twice in cases");
            }
            self.declared.cases.insert(case.reference.to_string());
            out.push(case);
        }
        out
    }

    fn case(&mut self, item: &Lenient<json::Case>, at: &str) -> Option<CaseRecord> {
        let c = self.object(item, at)?;
        let fields = ["ref", "unborn", "visit_interval_days", "roles", "events"];
        self.unknown_fields(c.unknown.keys(), &fields, at);
        let reference = self.id(&c.reference, at, "ref", CaseRef::parse);
        let unborn = self.flag(&c.unborn, at, "unborn").unwrap_or(false);
        let visit_interval_days = match &c.visit_interval_days {
            Lenient::Absent | Lenient::Null => None,
            Lenient::Good(n @ 1..=366) => u32::try_from(*n).ok(),
            Lenient::Good(_) | Lenient::Wrong(_) => {
                self.err(
                    &format!("{at}, field visit_interval_days"),
                    "must be a whole number of days from 1 to 366",
                );
                None
            }
        };
        let roles = self.roles(&c.roles, at, "roles", CASE_ROLES, &["core_group_member"]);
        let (mut events, mut retracted) = (Vec::new(), Vec::new());
        let mut ids = HashSet::new();
        let list = self.list(&c.events, at, "events");
        if let Err(why) = limits::events(list.len()) {
            self.err(at, why);
        } else {
            for (j, e) in list.iter().enumerate() {
                let eat = event_place(at, j, e, |e| &e.kind);
                let parsed = self.case_event(e, &eat);
                let id = match &parsed {
                    Some(Sent::Event(e)) => e.id.clone(),
                    Some(Sent::Retraction(id)) => Some(id.clone()),
                    None => None,
                };
                if id.is_some_and(|id| !ids.insert(id)) {
                    self.err(&eat, "its id appears twice in this case's events");
                }
                match parsed {
                    Some(Sent::Event(e)) => events.push(e),
                    Some(Sent::Retraction(id)) => retracted.push(id),
                    None => {}
                }
            }
        }
        Some(CaseRecord {
            reference: reference?,
            unborn,
            visit_interval_days,
            roles,
            events,
            retracted,
        })
    }

    /// The sender's id of an event (`id`), and whether the event is a retraction of that id
    /// (`"retracted": true`).
    fn event_id(
        &mut self,
        id: Option<&Value>,
        retracted: Option<&Value>,
        at: &str,
    ) -> (Option<String>, bool) {
        let id = match id {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match limits::one_line(s, limits::MAX_ID_CHARS) {
                Ok(()) if !s.trim().is_empty() => Some(s.clone()),
                Ok(()) => {
                    self.err(&format!("{at}, field id"), "must not be empty");
                    None
                }
                Err(why) => {
                    self.err(&format!("{at}, field id"), why);
                    None
                }
            },
            Some(_) => {
                self.err(&format!("{at}, field id"), "must be a string");
                None
            }
        };
        let retracted = match retracted {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(_) => {
                self.err(&format!("{at}, field retracted"), "must be true or false");
                false
            }
        };
        if retracted && id.is_none() {
            self.err(
                &format!("{at}, field id"),
                "is required to retract an event",
            );
        }
        (id, retracted)
    }

    fn case_event(
        &mut self,
        item: &Lenient<json::CaseEvent>,
        at: &str,
    ) -> Option<Sent<CaseEventRecord>> {
        let e = self.object(item, at)?;
        let (id, retracted) = self.event_id(e.fields.get("id"), e.fields.get("retracted"), at);
        if retracted {
            let allowed = ["kind", "at", "recorded_at", "id", "retracted"];
            self.unknown_fields(e.fields.keys(), &allowed, at);
            return id.map(Sent::Retraction);
        }
        let kind = self.text(&e.kind, at, "kind", true);
        let when = self.instant(&e.at, at, "at", true);
        let recorded_at = self.instant(&e.recorded_at, at, "recorded_at", false);
        let kind_s = kind?;
        let Some(kind) = EventKind::parse(&kind_s) else {
            self.err(
                &format!("{at}, field kind"),
                format!("{kind_s:?} is not an event kind"),
            );
            return None;
        };
        let spec = event_fields(kind);
        let mut allowed: Vec<&str> = vec!["kind", "at", "recorded_at", "id", "retracted"];
        allowed.extend(spec.iter().map(|s| s.0));
        self.unknown_fields(e.fields.keys(), &allowed, at);
        let data = self.event_data(&e.fields, spec, at);
        Some(Sent::Event(CaseEventRecord {
            id,
            kind,
            at: when?,
            recorded_at,
            data,
        }))
    }

    /// The kind-specific fields `spec` names, checked; what the event stores of them.
    fn event_data(
        &mut self,
        fields: &Map<String, Value>,
        spec: &[(&str, FieldType, bool)],
        at: &str,
    ) -> Map<String, Value> {
        let mut data = Map::new();
        for (name, ty, required) in spec {
            let here = format!("{at}, field {name}");
            match fields.get(*name) {
                None | Some(Value::Null) => {
                    if *required {
                        self.err(&here, "is required");
                    }
                }
                Some(v) => {
                    if self.event_field(v, *ty, &here) {
                        data.insert((*name).to_owned(), v.clone());
                    }
                }
            }
        }
        data
    }

    /// Whether `v` has the JSON type `ty` wants (references in it are checked, but do not count).
    fn event_field(&mut self, v: &Value, ty: FieldType, here: &str) -> bool {
        use FieldType::*;
        match (v, ty) {
            (Value::Bool(_), Bool) => {}
            (Value::String(s), Text) => {
                if let Err(why) = limits::one_line(s, limits::MAX_ID_CHARS) {
                    self.err(here, why);
                    return false;
                }
            }
            (Value::Array(list), Agencies) if limits::members(list.len()).is_err() => {
                self.err(here, limits::members(list.len()).unwrap_err());
                return false;
            }
            (Value::Object(map), Invitees) if limits::members(map.len()).is_err() => {
                self.err(here, limits::members(map.len()).unwrap_err());
                return false;
            }
            (Value::String(s), Person) => {
                self.person_ref(s, here);
            }
            (Value::String(s), Agency) => {
                self.agency_ref(s, here);
            }
            (Value::Array(list), Agencies) => {
                for a in list {
                    match a.as_str() {
                        Some(s) => {
                            self.agency_ref(s, here);
                        }
                        None => self.err(here, "must list agency ids"),
                    }
                }
            }
            (Value::Object(map), Invitees) => {
                for (agency, person) in map {
                    self.agency_ref(agency, here);
                    let at = format!("{here}.{agency}");
                    match person.as_str() {
                        Some(p) => {
                            self.person_ref(p, &at);
                        }
                        None => self.err(&at, "must be a person id"),
                    }
                }
            }
            (Value::String(s), OneOf(values)) if values.contains(&s.as_str()) => {}
            (_, OneOf(values)) => {
                self.err(here, format!("must be one of {}", values.join(", ")));
                return false;
            }
            (_, Bool) => {
                self.err(here, "must be true or false");
                return false;
            }
            (_, Agencies) => {
                self.err(here, "must be an array of agency ids");
                return false;
            }
            (_, Invitees) => {
                self.err(here, "must be an object of agency → person");
                return false;
            }
            (_, Text | Person | Agency) => {
                self.err(here, "must be a string");
                return false;
            }
        }
        true
    }
}

// Disputes and their events.
impl Checker<'_> {
    fn disputes(&mut self, file: &json::CaseFile, ladders: &Ladders) -> Vec<DisputeRecord> {
        let mut out: Vec<DisputeRecord> = Vec::new();
        let mut seen = HashSet::new();
        for (i, item) in self
            .list(&file.disputes, "the file", "disputes")
            .iter()
            .enumerate()
        {
            let at = place("dispute", item, |d| &d.id, i);
            if let Some(d) = self.dispute(item, &at, ladders) {
                if !seen.insert(d.reference.clone()) {
                    self.err(&at, "appears twice in disputes");
                }
                out.push(d);
            }
        }
        out
    }

    fn dispute(
        &mut self,
        item: &Lenient<json::Dispute>,
        at: &str,
        ladders: &Ladders,
    ) -> Option<DisputeRecord> {
        let d = self.object(item, at)?;
        let fields = [
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
        ];
        self.unknown_fields(d.unknown.keys(), &fields, at);
        let reference = self.id(&d.id, at, "id", DisputeRef::parse);
        let case = self.case_ref(&d.case, at);
        let (policy, stages) = self.policy(&d.policy, at, ladders);
        let raised_by = self.person(&d.raised_by, at, "raised_by", true);
        let respondent_person = self.person(&d.respondent, at, "respondent", false);
        let respondent_agency = self.agency(&d.respondent_agency, at, "respondent_agency");
        if respondent_person.is_none()
            && respondent_agency.is_none()
            && matches!(d.respondent, Lenient::Absent)
        {
            self.err(
                at,
                "names no respondent (field respondent or respondent_agency)",
            );
        }
        let opened_at = self.instant(&d.opened_at, at, "opened_at", true);
        let disagreement_at = self.instant(&d.disagreement_at, at, "disagreement_at", false);
        let immediate_risk = self
            .flag(&d.immediate_risk, at, "immediate_risk")
            .unwrap_or(false);
        let protective = self
            .text(&d.protective_timescale, at, "protective_timescale", false)
            .and_then(|p| self.protective_timescale(&p, at));
        let subject = self
            .line(&d.subject, at, "subject", false, limits::MAX_TEXT_CHARS)
            .unwrap_or_default();
        let (events, retracted) = self.dispute_events(&d.events, at, stages, opened_at);
        Some(DisputeRecord {
            reference: reference?,
            case,
            policy,
            raised_by: raised_by?,
            respondent_person,
            respondent_agency,
            subject,
            immediate_risk,
            opened_at: opened_at?,
            disagreement_at,
            protective,
            events,
            retracted,
        })
    }

    /// A dispute's protective timescale: a phrase counting forwards from a stage's start.
    fn protective_timescale(&mut self, phrase: &str, at: &str) -> Option<String> {
        use crate::calendar::Timescale;
        let here = format!("{at}, field protective_timescale");
        match phrase.parse::<Timescale>() {
            Ok(
                Timescale::WorkingDaysBefore(_)
                | Timescale::HoursBefore(_)
                | Timescale::DaysBefore(_),
            ) => {
                self.err(
                    &here,
                    format!("{phrase:?} counts back; give a timescale from each stage's start, such as \"1 working day\" or \"4 hours\""),
                );
                None
            }
            Ok(t) => Some(t.to_string()),
            Err(e) => {
                self.err(&here, e);
                None
            }
        }
    }

    /// A dispute's events and retractions.
    fn dispute_events(
        &mut self,
        v: &Lenient<Vec<Lenient<json::DisputeEvent>>>,
        at: &str,
        stages: u32,
        opened_at: Option<DateTime<Utc>>,
    ) -> (Vec<DisputeEventRecord>, Vec<String>) {
        let (mut events, mut retracted) = (Vec::new(), Vec::new());
        let mut ids = HashSet::new();
        let list = self.list(v, at, "events");
        if let Err(why) = limits::events(list.len()) {
            self.err(at, why);
            return (events, retracted);
        }
        for (j, e) in list.iter().enumerate() {
            let eat = event_place(at, j, e, |e| &e.kind);
            let parsed = self.dispute_event(e, &eat, stages, opened_at);
            let id = match &parsed {
                Some(Sent::Event(e)) => e.id.clone(),
                Some(Sent::Retraction(id)) => Some(id.clone()),
                None => None,
            };
            if id.is_some_and(|id| !ids.insert(id)) {
                self.err(&eat, "its id appears twice in this dispute's events");
            }
            match parsed {
                Some(Sent::Event(e)) => events.push(e),
                Some(Sent::Retraction(id)) => retracted.push(id),
                None => {}
            }
        }
        (events, retracted)
    }

    /// The case a dispute is about: in this file (before it) or already stored.
    fn case_ref(&mut self, v: &Lenient<String>, at: &str) -> Option<CaseRef> {
        let s = self.text(v, at, "case", false)?;
        if self.knows_case(&s) {
            CaseRef::parse(&s).ok()
        } else {
            self.err(&format!("{at}, field case"), format!("unknown case {s:?}"));
            None
        }
    }

    /// The ladder's id (empty when not given) and its number of stages (10 when unknown).
    fn policy(&mut self, v: &Lenient<String>, at: &str, ladders: &Ladders) -> (String, u32) {
        let policy = self.text(v, at, "policy", true).unwrap_or_default();
        let ladder = ladders.get(&policy);
        if !policy.is_empty() && ladder.is_none() {
            let mut known: Vec<&str> = ladders.keys().map(String::as_str).collect();
            known.sort_unstable();
            let msg = format!(
                "unknown escalation policy {policy:?} (known: {})",
                known.join(", ")
            );
            self.err(&format!("{at}, field policy"), msg);
        }
        let stages = ladder.map_or(10, |l| l.last_stage());
        (policy, stages)
    }

    fn dispute_event(
        &mut self,
        item: &Lenient<json::DisputeEvent>,
        at: &str,
        stages: u32,
        opened_at: Option<DateTime<Utc>>,
    ) -> Option<Sent<DisputeEventRecord>> {
        let e = self.object(item, at)?;
        let fields = ["kind", "at", "stage", "outcome", "by", "id", "retracted"];
        self.unknown_fields(e.unknown.keys(), &fields, at);
        let (id, retracted) = self.event_id(e.unknown.get("id"), e.unknown.get("retracted"), at);
        if retracted {
            return id.map(Sent::Retraction);
        }
        let kind = self.text(&e.kind, at, "kind", true);
        let when = self.instant(&e.at, at, "at", true);
        let parsed = kind.as_deref().map(|k| (k, DisputeEventKind::parse(k)));
        if let Some((k, None)) = parsed {
            self.err(
                &format!("{at}, field kind"),
                format!("{k:?} is not a dispute event (escalated, resolved, outcome_confirmed)"),
            );
        }
        let kind = parsed.and_then(|(_, k)| k);
        let stage = self.stage(&e.stage, at, stages);
        if kind == Some(DisputeEventKind::Escalated) && stage.is_none() {
            self.err(
                &format!("{at}, field stage"),
                "is required for an escalation",
            );
        }
        let outcome = self.line(&e.outcome, at, "outcome", false, limits::MAX_TEXT_CHARS);
        let by = self.person(&e.by, at, "by", false);
        if let (Some(t), Some(open)) = (when, opened_at) {
            if t < open {
                self.err(
                    &format!("{at}, field at"),
                    format!(
                        "{} is before the dispute was opened ({})",
                        t.to_rfc3339(),
                        open.to_rfc3339()
                    ),
                );
            }
        }
        Some(Sent::Event(DisputeEventRecord {
            id,
            kind: kind?,
            at: when?,
            stage,
            by,
            outcome,
        }))
    }

    fn stage(&mut self, v: &Lenient<u64>, at: &str, stages: u32) -> Option<u32> {
        match v {
            Lenient::Absent | Lenient::Null => None,
            Lenient::Good(n) if (1..=u64::from(stages)).contains(n) => u32::try_from(*n).ok(),
            Lenient::Good(_) | Lenient::Wrong(_) => {
                self.err(
                    &format!("{at}, field stage"),
                    format!("must be a stage number from 1 to {stages}"),
                );
                None
            }
        }
    }
}

/// An event as sent: the event itself, or the retraction of the sender's id for one.
enum Sent<T> {
    Event(T),
    Retraction(String),
}

/// What a kind-specific event field must hold.
#[derive(Clone, Copy)]
enum FieldType {
    Bool,
    Text,
    Person,
    Agency,
    Agencies,
    /// `{"agency": "person"}`: who each invited agency sends.
    Invitees,
    OneOf(&'static [&'static str]),
}

/// Kind-specific fields a case event may carry: (name, what it is, required).
fn event_fields(kind: EventKind) -> &'static [(&'static str, FieldType, bool)] {
    use EventKind::*;
    use FieldType::*;
    match kind {
        // `enquiry` pairs a section 47 enquiry's start with its own conference (or with the
        // finding that none is needed) when a case has more than one enquiry.
        StrategyDiscussionHeld => &[("s47_initiated", Bool, false), ("enquiry", Text, false)],
        S47Completed => &[("icpc_required", Bool, false), ("enquiry", Text, false)],
        ReferralReceived => &[
            ("referrer", Person, false),
            ("verbal", Bool, false),
            ("professional", Bool, false),
        ],
        MedicalExamination => &[("examining_doctor", Person, true)],
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
            ("enquiry", Text, false),
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
