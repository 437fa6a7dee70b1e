//! `cpwatch health` (and the daemon's `/readyz`): what an operator or a monitoring probe needs
//! to know, one line per check. Exit 0 when every check passes, 1 otherwise.
//!
//! The database's checks (`database_checks`) read figures only; the relay's login check
//! (`relay_login`) runs an SMTP exchange up to AUTH and says goodbye, sending nothing.

use crate::settings::Settings;
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
    /// The stored bank-holiday feed may be at most this old (days).
    pub max_holiday_age_days: i64,
    /// Messages refused for good (`failed`) tolerated; None: reported, never failing.
    pub max_failed: Option<i64>,
    /// Data-quality notices in the last 24 hours tolerated; None: reported, never failing.
    pub max_data_quality: Option<i64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pass_age_minutes: 120,
            max_backlog_minutes: 60,
            max_dead: 0,
            max_holiday_age_days: 35,
            max_failed: None,
            max_data_quality: None,
        }
    }
}

/// The bank holidays must be known at least this many days ahead.
const HOLIDAYS_AHEAD_DAYS: i64 = 90;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// Every check: the database's, then the relay's login. For the command line (it runs the
/// SMTP exchange on a runtime of its own).
pub fn checks(settings: &Settings, limits: &Limits, now: DateTime<Utc>) -> Vec<Check> {
    use secrecy::ExposeSecret;
    let mut out = database_checks(settings.database.url.expose_secret(), limits, now);
    let login = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(relay_login(settings)));
    out.push(login.unwrap_or_else(|e| fail("relay-login", e.to_string())));
    out
}

/// The checks as one JSON document: `{"healthy", "checks": [{"name", "ok", "detail"}]}`.
pub fn json(checks: &[Check]) -> serde_json::Value {
    serde_json::json!({"healthy": checks.iter().all(|c| c.ok), "checks": checks})
}

/// Every check the database answers, against the database at `url`.
pub fn database_checks(url: &str, limits: &Limits, now: DateTime<Utc>) -> Vec<Check> {
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
            "queued {}, sent {}, in digests {}, failed {}, dead {}, cancelled {}",
            count(Status::Pending),
            count(Status::Sent),
            count(Status::Digested),
            count(Status::Failed),
            count(Status::Dead),
            count(Status::Cancelled)
        ),
    ));
    out.push(backlog(&mut conn, limits, now));
    out.push(relay(&mut conn, now));
    out.push(dead_letters(count(Status::Dead), limits));
    out.push(failed_rows(count(Status::Failed), limits));
    out.push(data_quality(&mut conn, limits, now));
    out.push(holidays(&mut conn, limits, now));
    out.push(team_channel(&mut conn, now));
    out
}

/// Team-channel posts refused or dead-lettered in the last week: a webhook that was revoked or
/// mistyped (the URL itself is never shown).
fn team_channel(conn: &mut PgConnection, now: DateTime<Utc>) -> Check {
    match store::team_posts::undelivered_since(conn, now - chrono::Duration::days(7)) {
        Ok(0) => pass("team-channel", "no post refused in the last 7 days".into()),
        Ok(n) => fail(
            "team-channel",
            format!(
                "{n} team-channel post(s) refused or dead-lettered in the last 7 days \
                 (team_posts.last_error says why; check the partnership's webhook URL file)"
            ),
        ),
        Err(e) => fail("team-channel", e.to_string()),
    }
}

/// The relay as configured: connect, greeting, EHLO, STARTTLS (as configured), AUTH (when a
/// password is configured), then QUIT. Nothing is sent.
pub async fn relay_login(settings: &Settings) -> Check {
    let relay = match crate::mail::Channel::configured(settings) {
        Ok(crate::mail::Channel::Smtp(r)) => r,
        Ok(_) => return pass("relay-login", "mail is not sent through a relay".into()),
        Err(e) => return fail("relay-login", format!("{e:#}")),
    };
    let mut limits = crate::smtp::Limits {
        deadline: tokio::time::Instant::now() + relay.timeout,
        timeout: relay.timeout,
        stop: None,
    };
    match relay.open(&mut limits).await {
        Ok(session) => {
            session.quit(limits.deadline).await;
            let login = if relay.credentials.is_some() {
                "accepted our login"
            } else {
                "accepted a session (no login configured)"
            };
            pass("relay-login", format!("{} {login}", relay.name()))
        }
        Err(f) => fail("relay-login", format!("{f}; {}", f.advice())),
    }
}

fn failed_rows(failed: i64, limits: &Limits) -> Check {
    let detail = format!(
        "{failed} message(s) refused for good by the relay (each with a data-quality notice; \
         outbox.last_error says why)"
    );
    match limits.max_failed {
        Some(max) if failed > max => fail("failed", format!("{detail}; limit {max}")),
        _ => pass("failed", detail),
    }
}

fn data_quality(conn: &mut PgConnection, limits: &Limits, now: DateTime<Utc>) -> Check {
    let n = match store::metrics::figures(conn, now) {
        Ok(f) => f.data_quality_last_day,
        Err(e) => return fail("data-quality", e.to_string()),
    };
    let detail = format!("{n} data-quality notice(s) in the last 24 h");
    match limits.max_data_quality {
        Some(max) if n > max => fail(
            "data-quality",
            format!("{detail}; limit {max}: is a case system's feed or a role mapping wrong?"),
        ),
        _ => pass("data-quality", detail),
    }
}

/// The bank-holiday data the calendars use: the stored feed recent, and holidays known ahead.
fn holidays(conn: &mut PgConnection, limits: &Limits, now: DateTime<Utc>) -> Check {
    let (fetched, until) = match crate::metrics::holiday_data(conn) {
        Ok(d) => d,
        Err(e) => return fail("holidays", format!("{e:#}")),
    };
    let until_text = until.map_or("-".into(), |d| d.to_string());
    let ahead = until.map_or(i64::MIN, |d| (d - now.date_naive()).num_days());
    let source = match fetched {
        Some(at) => format!(
            "feed fetched {} ({} day(s) ago; limit {})",
            crate::evaluate::rfc3339(at),
            (now - at).num_days(),
            limits.max_holiday_age_days
        ),
        None => "no feed fetched yet: the built-in snapshot".into(),
    };
    let detail = format!("{source}; holidays known to {until_text}");
    if ahead < HOLIDAYS_AHEAD_DAYS {
        fail(
            "holidays",
            format!(
                "{detail}: fewer than {HOLIDAYS_AHEAD_DAYS} days ahead; can cpwatch reach \
                 calendar.holiday_feed_url?"
            ),
        )
    } else if fetched.is_some_and(|at| (now - at).num_days() > limits.max_holiday_age_days) {
        fail(
            "holidays",
            format!("{detail}: the daily refresh is failing; can cpwatch reach calendar.holiday_feed_url?"),
        )
    } else {
        pass("holidays", detail)
    }
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
