//! When a child-protection plan was open: from an ICPC that decided on a plan until the plan
//! ended (cp_plan_ended, or a review that ended it).

use crate::domain::{Event, EventKind};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanPeriods {
    /// (start, end); end None = still open.
    pub periods: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

impl PlanPeriods {
    /// `known` is sorted by time.
    pub fn of(known: &[&Event]) -> PlanPeriods {
        let mut periods: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
        for e in known {
            let open = periods.last().is_some_and(|p| p.1.is_none());
            match e.kind {
                EventKind::IcpcHeld if e.text("outcome") == Some("plan") && !open => {
                    periods.push((e.at, None))
                }
                EventKind::CpPlanEnded if open => {
                    if let Some(p) = periods.last_mut() {
                        p.1 = Some(e.at);
                    }
                }
                EventKind::RcpcHeld if open && e.text("outcome") == Some("end") => {
                    if let Some(p) = periods.last_mut() {
                        p.1 = Some(e.at);
                    }
                }
                _ => {}
            }
        }
        PlanPeriods { periods }
    }

    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        self.periods
            .iter()
            .any(|(s, e)| *s <= t && e.is_none_or(|e| t < e))
    }

    pub fn ever_started_before(&self, t: DateTime<Utc>) -> bool {
        self.periods.iter().any(|(s, _)| *s <= t)
    }
}
