//! The case-rule half of `cpwatch report`: stream every case, ask the evaluator how each
//! occurrence of each rule stands at `now`, and count them per partnership and rule.

use super::Runtime;
use crate::evaluate::{timeliness, Context};
use crate::report::{RuleFigures, TimelinessTally};
use crate::store::cases::{self, Selection};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;

/// Occurrences whose deadline falls in [from, to) (cancelled ones by their anchor's time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Range {
    fn contains(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|x| t < x)
    }
}

pub fn collect(
    conn: &mut PgConnection,
    runtime: &Runtime,
    now: DateTime<Utc>,
    range: Range,
    batch_size: usize,
) -> anyhow::Result<Vec<RuleFigures>> {
    let mut figures = Vec::new();
    for partnership in cases::partnerships(conn)? {
        let Some(rt) = runtime.partnerships.get(&partnership) else {
            continue;
        };
        let Some(policy) = runtime.catalogue.standards.get(&rt.standards_policy) else {
            anyhow::bail!(
                "partnership {partnership}: standards policy {} is not loaded",
                rt.standards_policy
            );
        };
        let directory = cases::load_directory(conn, &partnership, runtime.admin_email.clone())?;
        let ctx = Context {
            calendar: &rt.calendar,
            directory: &directory,
            now,
        };
        let mut tally = TimelinessTally::new(&partnership, policy);
        let mut after = 0;
        loop {
            let (batch, _) =
                cases::load_batch(conn, &partnership, Selection::All, after, batch_size)?;
            let Some(last) = batch.last() else { break };
            after = last.0;
            for (_, case) in &batch {
                for fact in timeliness(policy, case, &ctx) {
                    if range.contains(fact.deadline) {
                        tally.add(&fact);
                    }
                }
            }
            if batch.len() < batch_size {
                break;
            }
        }
        figures.extend(tally.finish());
    }
    Ok(figures)
}
