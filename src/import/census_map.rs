//! A census child's episodes as cpwatch cases and events: the mapping README's "The CIN census
//! extract" table describes. One case per `CINdetails` episode (`{LAchildID}-{referral date}`),
//! each event with a stable id (its element's place, `Section47[2]/DateOfInitialCPC`) so a later
//! extract moves, adds and removes exactly what changed. A census date means the start of that
//! day in the partnership's zone (see README for why). Only what the rules need is kept: no
//! birth date unless the child was born during the episode (the unborn rules), nothing of the
//! child's characteristics. Pure: the calendar and the role mapping are given.

use super::census::{ChildLeaves, Leaf};
use super::census_roles::RoleMap;
use super::limits;
use crate::calendar::Calendar;
use crate::domain::{CaseRef, EventKind};
use crate::records::{CaseEventRecord, CaseRecord};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde_json::{json, Map, Value};

/// What one child came to: its cases, and where the census's own initial-conference target
/// disagrees with cpwatch's 15 working days (one line each, for the summary).
#[derive(Debug, Default)]
pub struct MappedChild {
    pub id: String,
    pub cases: Vec<CaseRecord>,
    pub target_disagreements: Vec<String>,
    /// Cases whose team manager nobody holds (no mapping row, no default).
    pub unmanaged: usize,
}

/// The elements that hold personal data: a problem with one never repeats its value.
const PERSONAL: &[&str] = &["PersonBirthDate", "ExpectedPersonBirthDate"];

struct Mapper<'a> {
    child: String,
    cal: &'a Calendar,
    problems: &'a mut Vec<String>,
}

impl Mapper<'_> {
    fn problem(&mut self, leaf: &Leaf, what: &str) {
        self.problems.push(format!(
            "line {}, Child {}, {}: {what}",
            leaf.line,
            self.child,
            leaf.place()
        ));
    }

    fn date(&mut self, leaf: &Leaf) -> Option<NaiveDate> {
        let personal = PERSONAL.contains(&leaf.name());
        match NaiveDate::parse_from_str(&leaf.text, "%Y-%m-%d") {
            Ok(d) => match limits::date(d) {
                Ok(()) => Some(d),
                Err(_) if personal => {
                    self.problem(
                        leaf,
                        "is outside the dates cpwatch accepts (value not shown)",
                    );
                    None
                }
                Err(why) => {
                    self.problem(leaf, &why);
                    None
                }
            },
            Err(_) if personal => {
                self.problem(leaf, "is not a date (YYYY-MM-DD; value not shown)");
                None
            }
            Err(_) => {
                let text = leaf.text.clone();
                self.problem(leaf, &format!("{text:?} is not a date (YYYY-MM-DD)"));
                None
            }
        }
    }

    fn flag(&mut self, leaf: &Leaf) -> Option<bool> {
        match leaf.text.as_str() {
            "true" | "TRUE" | "1" => Some(true),
            "false" | "FALSE" | "0" => Some(false),
            other => {
                let msg = format!("{other:?} is not true, false, 1 or 0");
                self.problem(leaf, &msg);
                None
            }
        }
    }

    /// The start of a census date in the partnership's zone.
    fn instant(&self, d: NaiveDate) -> DateTime<Utc> {
        self.cal.at_local(d, NaiveTime::MIN)
    }
}

/// One leaf of a group: the element `name` directly under the group's path.
fn find<'l>(leaves: &[&'l Leaf], depth: usize, name: &str) -> Option<&'l Leaf> {
    leaves
        .iter()
        .copied()
        .find(|l| l.path.len() == depth + 1 && l.name() == name)
}

/// The groups `name[i]` at `depth` of these leaves, each with its leaves, in order.
fn groups<'l>(leaves: &[&'l Leaf], depth: usize, name: &str) -> Vec<(usize, Vec<&'l Leaf>)> {
    let mut out: Vec<(usize, Vec<&'l Leaf>)> = Vec::new();
    for l in leaves {
        let Some((n, i)) = l.path.get(depth) else {
            continue;
        };
        if n != name || l.path.len() <= depth + 1 {
            continue;
        }
        match out.iter_mut().find(|(j, _)| j == i) {
            Some((_, g)) => g.push(l),
            None => out.push((*i, vec![l])),
        }
    }
    out
}

/// Map one child; problems are added to `problems` (then the child's cases are not to be
/// written).
pub fn map_child(
    child: &ChildLeaves,
    cal: &Calendar,
    roles: &RoleMap,
    problems: &mut Vec<String>,
) -> MappedChild {
    let all: Vec<&Leaf> = child.leaves.iter().collect();
    let before = problems.len();
    let ids = groups(&all, 0, "ChildIdentifiers");
    let idents: Vec<&Leaf> = ids.first().map(|(_, g)| g.clone()).unwrap_or_default();
    let Some(id_leaf) = find(&idents, 1, "LAchildID") else {
        problems.push(format!(
            "line {}, Child #{}: ChildIdentifiers/LAchildID is required",
            child.line, child.line
        ));
        return MappedChild::default();
    };
    let id = id_leaf.text.clone();
    let mut m = Mapper {
        child: id.clone(),
        cal,
        problems,
    };
    if CaseRef::parse(&format!("{id}-2000-01-01")).is_err() || id.len() > 88 {
        let msg =
            format!("{id:?} cannot name a case (1-88 printable characters, no spaces or '/')");
        m.problem(id_leaf, &msg);
        return MappedChild::default();
    }
    let born = find(&idents, 1, "PersonBirthDate").and_then(|l| m.date(l));
    let expected = find(&idents, 1, "ExpectedPersonBirthDate").and_then(|l| m.date(l));
    let mut out = MappedChild {
        id: id.clone(),
        ..Default::default()
    };
    let child_roles = roles.for_child(&id);
    for (_, episode) in groups(&all, 0, "CINdetails") {
        let Some(case) = m.episode(&id, &episode, born, expected.is_some(), &mut out) else {
            continue;
        };
        if out.cases.iter().any(|c| c.reference == case.reference) {
            let first = episode.first().map_or(0, |l| l.line);
            m.problems.push(format!(
                "line {first}, Child {id}: two CINdetails episodes have the same CINreferralDate ({})",
                case.reference.as_str().trim_start_matches(&format!("{id}-"))
            ));
            continue;
        }
        if !child_roles.iter().any(|(r, _)| r == "team_manager") {
            out.unmanaged += 1;
        }
        out.cases.push(CaseRecord {
            roles: child_roles.clone(),
            ..case
        });
    }
    if out.cases.is_empty() && m.problems.len() == before {
        m.problem(
            id_leaf,
            "the child has no CINdetails episode with a CINreferralDate",
        );
    }
    out
}

/// Events being built for one episode: (id, kind, date, data).
type Draft = Vec<(String, EventKind, NaiveDate, Map<String, Value>)>;

fn data(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Mapper<'_> {
    fn episode(
        &mut self,
        child: &str,
        leaves: &[&Leaf],
        born: Option<NaiveDate>,
        expected: bool,
        out: &mut MappedChild,
    ) -> Option<CaseRecord> {
        let Some(referral_leaf) = find(leaves, 1, "CINreferralDate") else {
            self.missing(child, leaves, "CINreferralDate");
            return None;
        };
        let referral = self.date(referral_leaf)?;
        let mut ev: Draft = vec![(
            "CINreferralDate".into(),
            EventKind::ReferralReceived,
            referral,
            Map::new(),
        )];
        if let Some(l) = find(leaves, 1, "ReferralNFA") {
            if self.flag(l) == Some(true) {
                ev.push((
                    "ReferralNFA".into(),
                    EventKind::ReferralNfa,
                    referral,
                    Map::new(),
                ));
            }
        }
        if let Some(d) = find(leaves, 1, "CINclosureDate").and_then(|l| self.date(l)) {
            ev.push((
                "CINclosureDate".into(),
                EventKind::CaseClosed,
                d,
                Map::new(),
            ));
        }
        self.assessments(leaves, &mut ev);
        self.cin_plans(leaves, &mut ev);
        self.enquiries(leaves, out, child, &mut ev);
        let episode_icpc = find(leaves, 1, "DateOfInitialCPC").and_then(|l| self.date(l));
        if let Some(d) = episode_icpc {
            let known = ev.iter().any(|e| e.1 == EventKind::IcpcHeld && e.2 == d);
            if !known {
                ev.push((
                    "DateOfInitialCPC".into(),
                    EventKind::IcpcHeld,
                    d,
                    data(json!({"outcome": "no_plan"})),
                ));
            }
        }
        self.plans(leaves, &mut ev);
        // Born during the episode: the unborn rules need the birth; otherwise it is not kept.
        let unborn = match born {
            Some(b) => b > referral,
            None => expected,
        };
        if let Some(b) = born.filter(|b| *b > referral) {
            ev.push(("PersonBirthDate".into(), EventKind::Birth, b, Map::new()));
        }
        let reference = CaseRef::parse(&format!("{child}-{referral}")).ok()?;
        let events = self.records(ev);
        Some(CaseRecord {
            reference,
            unborn,
            visit_interval_days: None,
            roles: Vec::new(),
            events,
            retracted: Vec::new(),
        })
    }

    fn missing(&mut self, child: &str, leaves: &[&Leaf], what: &str) {
        let line = leaves.first().map_or(0, |l| l.line);
        let place = leaves.first().map_or("CINdetails".into(), |l| {
            format!("{}[{}]", l.path[0].0, l.path[0].1)
        });
        self.problems.push(format!(
            "line {line}, Child {child}, {place}/{what}: is required"
        ));
    }

    fn records(&self, ev: Draft) -> Vec<CaseEventRecord> {
        ev.into_iter()
            .map(|(id, kind, d, data)| CaseEventRecord {
                id: Some(id),
                kind,
                at: self.instant(d),
                recorded_at: None,
                data,
            })
            .collect()
    }

    fn assessments(&mut self, leaves: &[&Leaf], ev: &mut Draft) {
        for (i, g) in groups(leaves, 1, "Assessments") {
            let at = format!("Assessments[{i}]");
            if let Some(d) = find(&g, 2, "AssessmentActualStartDate").and_then(|l| self.date(l)) {
                ev.push((
                    format!("{at}/AssessmentActualStartDate"),
                    EventKind::AssessmentStarted,
                    d,
                    Map::new(),
                ));
            }
            if let Some(d) = find(&g, 2, "AssessmentAuthorisationDate").and_then(|l| self.date(l)) {
                ev.push((
                    format!("{at}/AssessmentAuthorisationDate"),
                    EventKind::AssessmentCompleted,
                    d,
                    Map::new(),
                ));
            }
        }
    }

    fn cin_plans(&mut self, leaves: &[&Leaf], ev: &mut Draft) {
        for (i, g) in groups(leaves, 1, "CINPlanDates") {
            let at = format!("CINPlanDates[{i}]");
            if let Some(d) = find(&g, 2, "CINPlanStartDate").and_then(|l| self.date(l)) {
                ev.push((
                    format!("{at}/CINPlanStartDate"),
                    EventKind::CinPlanStarted,
                    d,
                    Map::new(),
                ));
            }
            if let Some(d) = find(&g, 2, "CINPlanEndDate").and_then(|l| self.date(l)) {
                ev.push((
                    format!("{at}/CINPlanEndDate"),
                    EventKind::CinPlanEnded,
                    d,
                    Map::new(),
                ));
            }
        }
    }

    /// Each section 47 enquiry: its start (the strategy discussion that began it), its initial
    /// conference, or the finding that none was needed, paired by `enquiry`.
    fn enquiries(&mut self, leaves: &[&Leaf], out: &mut MappedChild, child: &str, ev: &mut Draft) {
        for (i, g) in groups(leaves, 1, "Section47") {
            let enquiry = format!("Section47[{i}]");
            let Some(start_leaf) = find(&g, 2, "S47ActualStartDate") else {
                let line = g.first().map_or(0, |l| l.line);
                self.problems.push(format!(
                    "line {line}, Child {child}, {}[{}]/{enquiry}/S47ActualStartDate: is required",
                    g[0].path[0].0, g[0].path[0].1
                ));
                continue;
            };
            let Some(start) = self.date(start_leaf) else {
                continue;
            };
            let mut d = json!({"s47_initiated": true, "enquiry": enquiry});
            if let Some(target) = find(&g, 2, "InitialCPCtarget").and_then(|l| self.date(l)) {
                d["census_icpc_target"] = json!(target.to_string());
                let ours = crate::evaluate::icpc_deadline(self.cal, self.instant(start));
                if ours != target {
                    out.target_disagreements.push(format!(
                        "Child {child}, {}: the census's InitialCPCtarget is {target}, cpwatch's 15 working days from {start} end on {ours}",
                        start_leaf.place().trim_end_matches("/S47ActualStartDate")
                    ));
                }
            }
            ev.push((
                format!("{enquiry}/S47ActualStartDate"),
                EventKind::StrategyDiscussionHeld,
                start,
                data(d),
            ));
            if let Some(held) = find(&g, 2, "DateOfInitialCPC").and_then(|l| self.date(l)) {
                let d = json!({"outcome": "no_plan", "enquiry": enquiry});
                ev.push((
                    format!("{enquiry}/DateOfInitialCPC"),
                    EventKind::IcpcHeld,
                    held,
                    data(d),
                ));
            }
            if let Some(l) = find(&g, 2, "ICPCnotRequired") {
                if self.flag(l) == Some(true) {
                    let d = json!({"icpc_required": false, "enquiry": enquiry});
                    ev.push((
                        format!("{enquiry}/ICPCnotRequired"),
                        EventKind::S47Completed,
                        start,
                        data(d),
                    ));
                }
            }
        }
    }

    /// Each child protection plan: its start (a conference that decided on a plan: the one held
    /// that day, else one at the plan's start), its reviews and its end.
    fn plans(&mut self, leaves: &[&Leaf], ev: &mut Draft) {
        for (i, g) in groups(leaves, 1, "ChildProtectionPlans") {
            let at = format!("ChildProtectionPlans[{i}]");
            let Some(start) = find(&g, 2, "CPPstartDate").and_then(|l| self.date(l)) else {
                continue;
            };
            let mut found = false;
            for e in ev
                .iter_mut()
                .filter(|e| e.1 == EventKind::IcpcHeld && e.2 == start)
            {
                e.3.insert("outcome".into(), json!("plan"));
                found = true;
            }
            if !found {
                ev.push((
                    format!("{at}/CPPstartDate"),
                    EventKind::IcpcHeld,
                    start,
                    data(json!({"outcome": "plan"})),
                ));
            }
            let end = find(&g, 2, "CPPendDate").and_then(|l| self.date(l));
            for l in g.iter().filter(|l| l.name() == "CPPreviewDate") {
                let Some(d) = self.date(l) else { continue };
                let outcome = if Some(d) == end { "end" } else { "continue" };
                let n = l.path.last().map_or(1, |p| p.1);
                ev.push((
                    format!("{at}/Reviews/CPPreviewDate[{n}]"),
                    EventKind::RcpcHeld,
                    d,
                    data(json!({"outcome": outcome})),
                ));
            }
            if let Some(d) = end {
                ev.push((
                    format!("{at}/CPPendDate"),
                    EventKind::CpPlanEnded,
                    d,
                    Map::new(),
                ));
            }
        }
    }
}
