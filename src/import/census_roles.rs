//! Who holds each role on the cases of a census extract, which names no workers: a small CSV a
//! council exports from its case system's allocations, one row per child and role,
//!
//! ```text
//! child,role,person
//! *,team_manager,p-tm1
//! *,conference_chair,p-ch1
//! DfEX0000001,social_worker,p-sw1
//! ```
//!
//! `child` is the census `LAchildID`, or `*` for every child of the extract (a default that a
//! child's own row for the same role replaces); `person` is a person id cpwatch holds (the
//! case system's own worker id). A case nobody manages gets a data-quality notice.

use crate::domain::{PersonId, CASE_ROLES};
use crate::records::Known;
use std::collections::HashMap;

/// The role holders of a census import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    default: Vec<(String, PersonId)>,
    by_child: HashMap<String, Vec<(String, PersonId)>>,
}

impl RoleMap {
    /// Read the CSV (`child,role,person`); every problem with its line, or the map. People must
    /// be ones the partnership already holds.
    pub fn parse(file: &str, text: &str, known: &Known) -> Result<RoleMap, Vec<String>> {
        let mut map = RoleMap::default();
        let mut problems = Vec::new();
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        match reader.headers() {
            Ok(h) if h.iter().collect::<Vec<_>>() == ["child", "role", "person"] => {}
            Ok(h) => problems.push(format!(
                "{file}, line 1: the header is {:?}; it must be child,role,person",
                h.iter().collect::<Vec<_>>().join(",")
            )),
            Err(e) => problems.push(format!("{file}: not CSV: {e}")),
        }
        for row in reader.records() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    problems.push(format!("{file}: {e}"));
                    continue;
                }
            };
            let line = row.position().map_or(0, |p| p.line());
            let (child, role, person) = (&row[0], &row[1], &row[2]);
            let here = format!("{file}, line {line}");
            if !CASE_ROLES.contains(&role) {
                problems.push(format!(
                    "{here}: {role:?} is not a case role (one of: {})",
                    CASE_ROLES.join(", ")
                ));
                continue;
            }
            let person = match PersonId::parse(person) {
                Ok(p) if known.people.contains(p.as_str()) => p,
                Ok(p) => {
                    problems.push(format!(
                        "{here}: unknown person {:?} (import the partnership's people first)",
                        p.as_str()
                    ));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("{here}: {e}"));
                    continue;
                }
            };
            let list = if child == "*" {
                &mut map.default
            } else {
                map.by_child.entry(child.to_owned()).or_default()
            };
            let multi = role == "core_group_member";
            if !multi && list.iter().any(|(r, _)| r == role) {
                problems.push(format!("{here}: a second {role} for {child}"));
                continue;
            }
            list.push((role.to_owned(), person));
        }
        if problems.is_empty() {
            Ok(map)
        } else {
            Err(problems)
        }
    }

    /// The roles of one child's cases: its own rows, then the defaults for roles it has none of.
    pub fn for_child(&self, child: &str) -> Vec<(String, PersonId)> {
        let own = self.by_child.get(child).cloned().unwrap_or_default();
        let mut out = own.clone();
        for (role, person) in &self.default {
            if !own.iter().any(|(r, _)| r == role) {
                out.push((role.clone(), person.clone()));
            }
        }
        out
    }
}
