//! `cpwatch health`: what an operator or a monitoring probe needs to know, one line per check.
//! Exit 0 when every check passes, 1 otherwise.

use crate::store;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

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

#[derive(QueryableByName)]
struct Backlog {
    #[diesel(sql_type = diesel::sql_types::Int8)]
    waiting: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    oldest: Option<DateTime<Utc>>,
}

/// Run every check against the database at `url`.
pub fn checks(url: &str, limits: &Limits, now: DateTime<Utc>) -> Vec<Check> {
    let mut out = Vec::new();
    let mut conn = match store::connect(url) {
        Ok(c) => c,
        Err(e) => {
            out.push(fail("database", format!("unreachable: {e}")));
            return out;
        }
    };
    out.push(pass("database", "reachable".into()));

    out.push(match store::pending_migrations(&mut conn) {
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
    });

    use store::schema::audit_log::dsl as a;
    let last: QueryResult<Option<DateTime<Utc>>> = a::audit_log
        .filter(a::action.eq("evaluation_pass"))
        .select(diesel::dsl::max(a::at))
        .first(&mut conn);
    out.push(match last {
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
    });

    let counts = match store::outbox::status_counts(&mut conn) {
        Ok(c) => c,
        Err(e) => {
            out.push(fail("outbox", e.to_string()));
            return out;
        }
    };
    let count = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
    out.push(pass(
        "outbox",
        format!(
            "queued {}, sent {}, failed {}, dead {}, cancelled {}",
            count("pending"),
            count("sent"),
            count("failed"),
            count("dead"),
            count("cancelled")
        ),
    ));

    let backlog: QueryResult<Backlog> = diesel::sql_query(
        "SELECT count(*) AS waiting, min(send_after) AS oldest FROM outbox \
         WHERE status = 'pending' AND send_after <= $1 - make_interval(mins => $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Integer, _>(
        limits.max_backlog_minutes.clamp(0, i32::MAX as i64) as i32
    )
    .get_result(&mut conn);
    out.push(match backlog {
        Ok(b) if b.waiting == 0 => pass(
            "delivery",
            format!("nothing waiting longer than {} min", limits.max_backlog_minutes),
        ),
        Ok(b) => fail(
            "delivery",
            format!(
                "{} message(s) waiting longer than {} min (oldest due {}): is the mail relay reachable?",
                b.waiting,
                limits.max_backlog_minutes,
                b.oldest.map_or("-".into(), crate::evaluate::rfc3339)
            ),
        ),
        Err(e) => fail("delivery", e.to_string()),
    });

    let dead = count("dead");
    let detail = format!(
        "{dead} dead-lettered message(s) (limit {})",
        limits.max_dead
    );
    out.push(if dead <= limits.max_dead {
        pass("dead-letter", detail)
    } else {
        fail("dead-letter", detail + ": see outbox.last_error")
    });
    out
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
