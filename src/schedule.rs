//! The evaluation pass's wake-up: a cron expression in `schedule.timezone`'s local time, kept right
//! across clock changes. tokio-cron-scheduler works out a zone's later ticks with the UTC offset in
//! force when the job was created, so a daily "07:30" job would run at 08:30 BST after the spring
//! change. An hourly UTC job watches the offset and rebuilds the local job when it changes. (The
//! default hourly expression is unaffected either way: whole hours are whole hours in any offset.)

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use uuid::Uuid;

/// The zone's offset from UTC at `t`, in seconds.
pub fn utc_offset(tz: Tz, t: DateTime<Utc>) -> i32 {
    tz.offset_from_utc_datetime(&t.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Whether `run` will accept `expr` as its schedule: the same parser (tokio-cron-scheduler's),
/// so `cpwatch check` refuses exactly what `cpwatch run` would.
pub fn check(expr: &str, tz: Tz) -> Result<(), String> {
    let (tick, _) = mpsc::channel(1);
    local_job(expr, tz, tick).map(drop).map_err(|_| {
        format!(
            "{expr:?} is not a schedule cpwatch can run (sec min hour day month weekday, \
             e.g. \"0 0 * * * *\" for every hour on the hour)"
        )
    })
}

fn local_job(expr: &str, tz: Tz, tick: mpsc::Sender<()>) -> Result<Job, JobSchedulerError> {
    Job::new_async_tz(expr, tz, move |_, _| {
        let tick = tick.clone();
        Box::pin(async move {
            // A full queue means a pass is already pending: dropping this wake-up is right.
            let _ = tick.try_send(());
        })
    })
}

/// Add the local-time job that sends on `tick`, and the watcher that keeps it right.
pub async fn install(
    sched: &JobScheduler,
    expr: &str,
    tz: Tz,
    tick: mpsc::Sender<()>,
) -> Result<(), JobSchedulerError> {
    let id = sched.add(local_job(expr, tz, tick.clone())?).await?;
    let current: Arc<Mutex<(Uuid, i32)>> = Arc::new(Mutex::new((id, utc_offset(tz, Utc::now()))));
    let expr = expr.to_owned();
    let watcher = Job::new_async("30 0 * * * *", move |_, sched| {
        let (current, expr, tick) = (current.clone(), expr.clone(), tick.clone());
        Box::pin(async move {
            let mut cur = current.lock().await;
            let offset = utc_offset(tz, Utc::now());
            if offset == cur.1 {
                return;
            }
            if let Err(e) = sched.remove(&cur.0).await {
                tracing::warn!(error = ?e, "could not remove the evaluation job after a clock change");
            }
            match local_job(&expr, tz, tick) {
                Ok(job) => match sched.add(job).await {
                    Ok(id) => {
                        tracing::info!(
                            from = cur.1,
                            to = offset,
                            "clocks changed: evaluation schedule rebuilt"
                        );
                        *cur = (id, offset);
                    }
                    Err(e) => {
                        tracing::error!(error = ?e, "could not re-add the evaluation job after a clock change")
                    }
                },
                Err(e) => {
                    tracing::error!(error = ?e, "could not rebuild the evaluation job after a clock change")
                }
            }
        })
    })?;
    sched.add(watcher).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_uses_runs_parser() {
        let london = chrono_tz::Europe::London;
        assert!(check("0 0 * * * *", london).is_ok());
        assert!(check("*/2 * * * * *", london).is_ok());
        assert!(check("0 0 99 * * bogus", london).is_err());
        assert!(check("0 0 9 * * Mon-Fri", london).is_ok());
    }

    #[test]
    fn london_offset_changes_at_01_00_utc_on_both_2026_change_days() {
        let london = chrono_tz::Europe::London;
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(utc_offset(london, at("2026-03-29T00:59:59Z")), 0);
        assert_eq!(utc_offset(london, at("2026-03-29T01:00:00Z")), 3600);
        assert_eq!(utc_offset(london, at("2026-10-25T00:59:59Z")), 3600);
        assert_eq!(utc_offset(london, at("2026-10-25T01:00:00Z")), 0);
    }
}
