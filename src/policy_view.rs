//! `cpwatch policy show` and `cpwatch policy diff`: a policy as a table a partnership can read
//! (rule, timescale in words, who acts, who is told next, source, national or local), and where
//! two policies differ. Pure: it reads the loaded catalogue and returns text.

use crate::calendar::Timescale;
use crate::policy::ladder::{DeadlineFrom, LadderPolicy, LadderRole, Stage};
use crate::policy::{Catalogue, EventMatch, Letter, OverdueStep, Pick, RoleRef, Rule, Scope};
use crate::policy::{StandardsPolicy, NATIONAL_BASELINE};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, ContentArrangement, Table};
use std::collections::BTreeSet;

/// A policy of either kind, as the catalogue holds it.
#[derive(Clone, Copy)]
pub enum Policy<'a> {
    Standards(&'a StandardsPolicy),
    Ladder(&'a LadderPolicy),
}

impl<'a> Policy<'a> {
    pub fn find(catalogue: &'a Catalogue, id: &str) -> Option<Policy<'a>> {
        catalogue
            .standards
            .get(id)
            .map(Policy::Standards)
            .or_else(|| catalogue.ladders.get(id).map(Policy::Ladder))
    }

    fn id(&self) -> &str {
        match self {
            Policy::Standards(p) => &p.id,
            Policy::Ladder(p) => &p.id,
        }
    }

    fn title(&self) -> &str {
        match self {
            Policy::Standards(p) => &p.title,
            Policy::Ladder(p) => &p.title,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Policy::Standards(_) => "standards",
            Policy::Ladder(_) => "escalation ladder",
        }
    }

    /// One row per rule (standards) or stage (ladders), in the file's order.
    pub fn rows(&self) -> Vec<Row> {
        match self {
            Policy::Standards(p) => p.rules.iter().map(rule_row).collect(),
            Policy::Ladder(p) => p.stages.iter().map(|s| stage_row(p, s)).collect(),
        }
    }
}

/// Every policy id the catalogue holds, sorted (for "no such policy" messages).
pub fn known_ids(catalogue: &Catalogue) -> Vec<String> {
    let mut ids: Vec<String> = catalogue
        .standards
        .keys()
        .chain(catalogue.ladders.keys())
        .cloned()
        .collect();
    ids.sort();
    ids
}

/// One rule or stage in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The rule id, or `stage N`.
    pub id: String,
    pub title: String,
    pub timescale: String,
    pub who_acts: String,
    pub told_next: String,
    pub source: String,
    pub scope: Scope,
    /// What starts the clock and what meets it (event kinds), for pairing rules across policies.
    anchor_key: Vec<String>,
    done_key: Vec<String>,
}

/// A table laid out for `width` columns.
fn table(width: u16, header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width)
        .set_header(header.iter().map(|h| Cell::new(*h)));
    t
}

/// `cpwatch policy show ID`.
pub fn show(policy: Policy, width: u16) -> String {
    let rows = policy.rows();
    let national = rows.iter().filter(|r| r.scope == Scope::National).count();
    let unit = match policy {
        Policy::Standards(_) => "rules",
        Policy::Ladder(_) => "stages",
    };
    let mut t = table(
        width,
        &[
            "rule",
            "timescale",
            "who acts",
            "who is told next",
            "source",
            "national/local",
        ],
    );
    for r in &rows {
        t.add_row(vec![
            format!("{}\n{}", r.id, r.title),
            r.timescale.clone(),
            r.who_acts.clone(),
            r.told_next.clone(),
            r.source.clone(),
            r.scope.as_str().to_owned(),
        ]);
    }
    let baseline = if policy.id() == NATIONAL_BASELINE {
        " (the national baseline: partnerships with no standards_policy get it)"
    } else {
        ""
    };
    format!(
        "{} — {}\n{} policy{baseline}: {} {unit}, {national} national, {} local\n{t}\n",
        policy.id(),
        policy.title(),
        policy.kind(),
        rows.len(),
        rows.len() - national,
    )
}

/// `cpwatch policy diff A B`: rules paired by id, then (for the rest) by what starts and what
/// meets their clocks; for each pair the fields that differ; then what only one has.
pub fn diff(a: Policy, b: Policy, width: u16) -> Result<String, String> {
    if a.kind() != b.kind() {
        return Err(format!(
            "{} is a {} policy and {} a {} policy: compare policies of one kind",
            a.id(),
            a.kind(),
            b.id(),
            b.kind()
        ));
    }
    let (rows_a, rows_b) = (a.rows(), b.rows());
    let pairs = pair(&rows_a, &rows_b);
    let mut t = table(width, &["rule", "differs in", a.id(), b.id()]);
    let (mut same, mut differ) = (0, 0);
    for (ra, rb) in &pairs {
        let changes = changes(ra, rb);
        if changes.is_empty() {
            same += 1;
            continue;
        }
        differ += 1;
        let name = if ra.id == rb.id {
            ra.id.clone()
        } else {
            format!("{} / {}", ra.id, rb.id)
        };
        for (i, (field, va, vb)) in changes.into_iter().enumerate() {
            let first = if i == 0 { name.clone() } else { String::new() };
            t.add_row(vec![first, field.to_owned(), va, vb]);
        }
    }
    let paired_a: BTreeSet<&str> = pairs.iter().map(|p| p.0.id.as_str()).collect();
    let paired_b: BTreeSet<&str> = pairs.iter().map(|p| p.1.id.as_str()).collect();
    let only = |rows: &[Row], paired: &BTreeSet<&str>| -> Vec<Row> {
        rows.iter()
            .filter(|r| !paired.contains(r.id.as_str()))
            .cloned()
            .collect()
    };
    let (only_a, only_b) = (only(&rows_a, &paired_a), only(&rows_b, &paired_b));
    let mut out = format!(
        "{} and {}: {} in both ({same} the same, {differ} different), {} only in {}, {} only in {}\n",
        a.id(),
        b.id(),
        pairs.len(),
        only_a.len(),
        a.id(),
        only_b.len(),
        b.id()
    );
    if differ > 0 {
        out.push_str(&format!("\nIn both, differing:\n{t}\n"));
    }
    for (who, list) in [(a.id(), &only_a), (b.id(), &only_b)] {
        if list.is_empty() {
            continue;
        }
        let mut t = table(width, &["rule", "timescale", "who acts", "national/local"]);
        for r in list {
            t.add_row(vec![
                format!("{}\n{}", r.id, r.title),
                r.timescale.clone(),
                r.who_acts.clone(),
                r.scope.as_str().to_owned(),
            ]);
        }
        out.push_str(&format!("\nOnly in {who}:\n{t}\n"));
    }
    Ok(out)
}

/// Pairs of rows that describe the same timescale: same id first, then same anchor and done-by
/// events (each row used once).
fn pair<'r>(a: &'r [Row], b: &'r [Row]) -> Vec<(&'r Row, &'r Row)> {
    let mut used_b = vec![false; b.len()];
    let mut used_a = vec![false; a.len()];
    let mut out = Vec::new();
    for (i, ra) in a.iter().enumerate() {
        if let Some(j) = b.iter().position(|rb| rb.id == ra.id) {
            used_a[i] = true;
            used_b[j] = true;
            out.push((ra, &b[j]));
        }
    }
    for (i, ra) in a.iter().enumerate() {
        if used_a[i] || ra.anchor_key.is_empty() {
            continue;
        }
        let found = b.iter().enumerate().position(|(j, rb)| {
            !used_b[j] && rb.anchor_key == ra.anchor_key && rb.done_key == ra.done_key
        });
        if let Some(j) = found {
            used_b[j] = true;
            out.push((ra, &b[j]));
        }
    }
    out
}

fn changes(a: &Row, b: &Row) -> Vec<(&'static str, String, String)> {
    let fields: [(&'static str, &String, &String); 3] = [
        ("timescale", &a.timescale, &b.timescale),
        ("who acts", &a.who_acts, &b.who_acts),
        ("who is told next", &a.told_next, &b.told_next),
    ];
    let mut out: Vec<(&'static str, String, String)> = fields
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(f, x, y)| (f, x.clone(), y.clone()))
        .collect();
    if a.scope != b.scope {
        out.push((
            "national/local",
            a.scope.as_str().into(),
            b.scope.as_str().into(),
        ));
    }
    out
}

// ---- Standards rules in words ----

fn rule_row(r: &Rule) -> Row {
    let mut who = roles_words(&r.responsible);
    if !r.cc.is_empty() {
        who.push_str(&format!(" (copied: {})", roles_words(&r.cc)));
    }
    Row {
        id: r.id.clone(),
        title: r.title.clone(),
        timescale: rule_timescale(r),
        who_acts: who,
        told_next: steps_words(&r.overdue_steps),
        source: r
            .source
            .clone()
            .unwrap_or_else(|| format!("standard {}", r.standard)),
        scope: r.scope,
        anchor_key: r.anchors.iter().map(|m| m.event.as_str().into()).collect(),
        done_key: r.done_by.iter().map(|m| m.event.as_str().into()).collect(),
    }
}

/// "15 working days after the first strategy discussion held (s47 initiated); met by icpc held;
/// cancelled by ...".
fn rule_timescale(r: &Rule) -> String {
    let anchors: Vec<String> = r.anchors.iter().map(event_words).collect();
    let which = match r.pick {
        Pick::First => "the first ",
        Pick::Last => "the latest ",
        Pick::Each => "each ",
    };
    let anchor = format!("{which}{}", anchors.join(" or "));
    let mut s = match (&r.guard, r.deadline) {
        (Some(g), _) => format!(
            "no {} within {} of {anchor}",
            event_words(&g.forbidden),
            g.within
        ),
        (None, d) if counts_back(d) => format!("{d} the meeting ({anchor})"),
        (None, d) => format!("{d} after {anchor}"),
    };
    if r.case_interval {
        s.push_str(" (or the case's visiting interval)");
    }
    if let Some(t) = r.starts_after {
        s.push_str(&format!(
            ", once {t} have passed and the rule still applies"
        ));
    }
    if r.per_invited_agency {
        s.push_str(", per invited agency");
    }
    if !r.done_by.is_empty() {
        let done: Vec<String> = r.done_by.iter().map(event_words).collect();
        s.push_str(&format!("; met by {}", done.join(" or ")));
    }
    if !r.cancelled_by.is_empty() {
        let cancel: Vec<String> = r.cancelled_by.iter().map(event_words).collect();
        s.push_str(&format!("; cancelled by {}", cancel.join(" or ")));
    }
    s
}

fn counts_back(t: Timescale) -> bool {
    matches!(
        t,
        Timescale::WorkingDaysBefore(_) | Timescale::HoursBefore(_) | Timescale::DaysBefore(_)
    )
}

/// `strategy_discussion_held` with `s47_initiated = true` → "strategy discussion held (s47 initiated)".
fn event_words(m: &EventMatch) -> String {
    let mut conditions: Vec<String> = m
        .when
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::Bool(true) => words(k),
            serde_json::Value::Bool(false) => format!("{}: no", words(k)),
            serde_json::Value::String(s) => format!("{} {}", words(k), words(s)),
            other => format!("{} {other}", words(k)),
        })
        .collect();
    conditions.extend(m.unless.iter().map(|(k, v)| match v {
        serde_json::Value::Bool(false) => words(k),
        other => format!("{} not {other}", words(k)),
    }));
    let kind = words(m.event.as_str());
    if conditions.is_empty() {
        kind
    } else {
        format!("{kind} ({})", conditions.join(", "))
    }
}

fn words(s: &str) -> String {
    s.replace(['_', '.'], " ")
}

fn role_words(r: &RoleRef) -> String {
    match r {
        RoleRef::FirstOf(options) => options
            .iter()
            .map(role_words)
            .collect::<Vec<_>>()
            .join(", else "),
        RoleRef::Agency(a) => format!("their agency's {}", words(a)),
        RoleRef::EventPerson(p) => format!("the event's {}", words(p)),
        RoleRef::Invitee => "the invited agency's invitee".into(),
        RoleRef::InviteeManager => "the invitee's manager".into(),
        RoleRef::SqaUnitManager => "SQA unit manager (the chair's manager)".into(),
        RoleRef::MashTeamManager => "MASH team manager".into(),
        other => words(&other.to_string()),
    }
}

fn roles_words(list: &[RoleRef]) -> String {
    list.iter()
        .map(role_words)
        .collect::<Vec<_>>()
        .join(" and ")
}

fn after_words(t: Timescale) -> String {
    match t {
        Timescale::Hours(0) | Timescale::WorkingDays(0) | Timescale::Days(0) => "at once".into(),
        t => format!("after {t}"),
    }
}

/// "line manager after 2 working days; then senior manager after 3 working days".
fn steps_words(steps: &[OverdueStep]) -> String {
    if steps.is_empty() {
        return "nobody further".into();
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let who = roles_words(&s.to);
            let what = match s.letter {
                Letter::Escalation => who,
                Letter::CauseForConcern => {
                    format!("cause-for-concern letter from the chair to {who}")
                }
                Letter::ChairChallenge => format!("the chair's challenge to {who}"),
            };
            let then = if i == 0 { "" } else { "then " };
            format!("{then}{what} {}", after_words(s.after))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// ---- Ladder stages in words ----

fn stage_row(p: &LadderPolicy, s: &Stage) -> Row {
    let from = match s.from {
        DeadlineFrom::StageStart => "of the stage's start".to_owned(),
        DeadlineFrom::Opened => "of the dispute being raised".to_owned(),
        DeadlineFrom::Disagreement => "of the disagreement".to_owned(),
        DeadlineFrom::StartOfStage(n) => format!("of stage {n}'s start"),
    };
    let mut timescale = format!("{} {from}", stage_deadline(s.deadline));
    if s.deadline_is_default {
        timescale.push_str(" (configured default: the policy gives no figure)");
    }
    let mut who = ladder_words(&s.to);
    if !s.cc.is_empty() {
        who.push_str(&format!(" (copied: {})", ladder_words(&s.cc)));
    }
    let told_next = match p.stage(s.number + 1) {
        Some(next) => format!(
            "stage {}: {} when the deadline lapses",
            next.number,
            ladder_words(&next.to)
        ),
        None => format!(
            "{}, every {}, until resolved",
            ladder_words(&p.after_last_stage.to),
            p.after_last_stage.every
        ),
    };
    Row {
        id: format!("stage {}", s.number),
        title: s.name.clone(),
        timescale,
        who_acts: who,
        told_next,
        source: p.source.clone(),
        scope: s.scope,
        anchor_key: Vec::new(),
        done_key: Vec::new(),
    }
}

fn stage_deadline(t: Timescale) -> String {
    match t {
        Timescale::SameWorkingDay => "the same working day".into(),
        t => format!("within {t}"),
    }
}

fn ladder_role_words(r: &LadderRole) -> String {
    match r {
        LadderRole::FirstOf(options) => options
            .iter()
            .map(ladder_role_words)
            .collect::<Vec<_>>()
            .join(", else "),
        LadderRole::Other(r) => role_words(r),
        other => words(&other.to_string()),
    }
}

fn ladder_words(list: &[LadderRole]) -> String {
    list.iter()
        .map(ladder_role_words)
        .collect::<Vec<_>>()
        .join(" and ")
}
