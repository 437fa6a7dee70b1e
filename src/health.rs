//! `cpwatch health`: what an operator or a monitoring probe needs to know, one line per check.
//! Exit 0 when every check passes, 1 otherwise.

use crate::store::{self, deliveries::Status};
use chrono::{DateTime, Utc};
use diesel::pg::PgConnection;

/// When a check fails.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The last evaluation pass (any replica) must be at most this old.
    pub max_pass_age_minutes: i64,
    /// Mail that should have gone out this long ago and has not (the relay down, delivery stuck).
    pub max_backlog_minutes: i64,
    /// Dead-lettered messages tolerated (each is a notice nobody received).
    pub max_dead: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {:<12} {}", self.name, self.detail)
    }
}

/// The probe found a problem (exit code 1).
#[derive(Debug, thiserror::Error)]
#[error("unhealthy: {}", .0.join(", "))]
pub struct Unhealthy(pub Vec<&'static str>);

/// Run every check against the database at `url`.
pub fn checks(url: &str, limits: &Limits, now: DateTime<Utc>) -> Vec<Check> {
    let mut conn = match store::connect(url) {
        Ok(c) => c,
        Err(e) => return vec![fail("database", format!("unreachable: {e}"))],
    };
    let mut out = vec![
        pass("database", "reachable".into()),
        schema(&mut conn),
        evaluation(&mut conn, limits, now),
    ];
    let counts = match store::deliveries::status_counts(&mut conn) {
        Ok(c) => c,
        Err(e) => {
            out.push(fail("outbox", e.to_string()));
            return out;
        }
    };
    let count = |s: Status| counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
    out.push(pass(
        "outbox",
        format!(
            "queued {}, sent {}, failed {}, dead {}, cancelled {}",
            count(Status::Pending),
            count(Status::Sent),
            count(Status::Failed),
            count(Status::Dead),
            count(Status::Cancelled)
        ),
    ));
    out.push(backlog(&mut conn, limits, now));
    out.push(relay(&mut conn, now));
    out.push(dead_letters(count(Status::Dead), limits));
    out
}

/// The mail relay as delivery last found it: failing (with why and what to fix) or working.
fn relay(conn: &mut PgConnection, now: DateTime<Utc>) -> Check {
    let unconfirmed = store::relay::unconfirmed_since(conn, now - chrono::Duration::days(1))
        .map_or(String::new(), |n| {
            if n > 0 {
                format!(
                    "; {n} message(s) in the last 24 h sent without the relay's confirmation \
                     (outbox.last_error)"
                )
            } else {
                String::new()
            }
        });
    match store::relay::current(conn) {
        Ok(None) => pass("relay", format!("no message tried yet{unconfirmed}")),
        Ok(Some(r)) => match r.failing_since {
            Some(since) => fail(
                "relay",
                format!(
                    "mail waits since {}: {}; {}{unconfirmed}",
                    crate::evaluate::rfc3339(since),
                    r.last_failure.as_deref().unwrap_or("failed"),
                    r.advice.as_deref().unwrap_or("check the [smtp] settings")
                ),
            ),
            None => pass(
                "relay",
                format!(
                    "{} accepted mail at {}{unconfirmed}",
                    r.relay,
                    r.last_success_at
                        .map_or("-".into(), crate::evaluate::rfc3339)
                ),
            ),
        },
        Err(e) => fail("relay", e.to_string()),
    }
}

fn schema(conn: &mut PgConnection) -> Check {
    match store::pending_migrations(conn) {
        Ok(p) if p.is_empty() => pass("schema", "current".into()),
        Ok(p) => fail(
            "schema",
            format!(
                "{} migration(s) pending ({}): run `cpwatch migrate`",
                p.len(),
                p.join(", ")
            ),
        ),
        Err(e) => fail("schema", e.to_string()),
    }
}

fn evaluation(conn: &mut PgConnection, limits: &Limits, now: DateTime<Utc>) -> Check {
    match store::last_pass_at(conn) {
        Ok(Some(at)) => {
            let age = (now - at).num_minutes();
            let detail = format!(
                "last pass {} ({age} min ago; limit {})",
                crate::evaluate::rfc3339(at),
                limits.max_pass_age_minutes
            );
            if age <= limits.max_pass_age_minutes {
                pass("evaluation", detail)
            } else {
                fail("evaluation", detail)
            }
        }
        Ok(None) => fail("evaluation", "no evaluation pass recorded yet".into()),
        Err(e) => fail("evaluation", e.to_string()),
    }
}

fn backlog(conn: &mut PgConnection, limits: &Limits, now: DateTime<Utc>) -> Check {
    match store::deliveries::backlog(conn, now, limits.max_backlog_minutes) {
        Ok((0, _)) => pass(
            "delivery",
            format!("nothing waiting longer than {} min", limits.max_backlog_minutes),
        ),
        Ok((waiting, oldest)) => fail(
            "delivery",
            format!(
                "{waiting} message(s) waiting longer than {} min (oldest due {}): is the mail relay reachable?",
                limits.max_backlog_minutes,
                oldest.map_or("-".into(), crate::evaluate::rfc3339)
            ),
        ),
        Err(e) => fail("delivery", e.to_string()),
    }
}

fn dead_letters(dead: i64, limits: &Limits) -> Check {
    let detail = format!(
        "{dead} dead-lettered message(s) (limit {})",
        limits.max_dead
    );
    if dead <= limits.max_dead {
        pass("dead-letter", detail)
    } else {
        fail("dead-letter", detail + ": see outbox.last_error")
    }
}

fn pass(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: true,
        detail,
    }
}

fn fail(name: &'static str, detail: String) -> Check {
    Check {
        name,
        ok: false,
        detail,
    }
}
