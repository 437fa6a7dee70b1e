//! `cpwatch outbox list|show|retry|cancel`: what is queued, sent, failed or dead, one message as
//! it will be or was sent, and the operator's two actions on it, each audited with who ran it.

use super::{connect, InputError};
use crate::jobs::Runtime;
use crate::mail::{self, Renderer};
use crate::settings::Settings;
use crate::store::deliveries::Status;
use crate::store::outbox_admin::{self as admin, Action, Filter, Line};
use crate::store::{self};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use diesel::pg::PgConnection;
use std::io::{BufRead as _, Write as _};

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// List deliveries (one message to one recipient), oldest first: id, status, kind, case or
    /// disagreement, recipient, attempts, next attempt or when it was sent, and age.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// table (for people) or json (one object per line).
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Show at most this many (the last line says how many matched).
        #[arg(long, default_value_t = 200)]
        limit: i64,
    },
    /// Show one delivery's message exactly as it will be sent (if it is queued) or as it was
    /// sent: its headers and its text part.
    Show {
        /// The delivery id (from `outbox list`).
        id: i64,
        /// Who is looking, for the audit log (default: $SUDO_USER, else $USER, else the uid).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Put failed or dead deliveries back in the queue, attempts reset. Never a sent one.
    Retry(ActionArgs),
    /// Cancel deliveries that are queued, failed or dead, with a reason. Never a sent one.
    Cancel {
        #[command(flatten)]
        action: ActionArgs,
        /// Why (written to the delivery and the audit log).
        #[arg(long, required = true, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Args, Debug, Default, Clone)]
pub struct FilterArgs {
    /// Only deliveries with this status (repeat for several).
    #[arg(long, value_enum)]
    status: Vec<StatusArg>,
    /// Only notices of this kind (reminder, due, overdue, overdue_escalation, cause_for_concern,
    /// escalation_stage, escalation_outcome, data_quality, go_live_summary).
    #[arg(long)]
    kind: Option<String>,
    /// Only notices about this case (by reference).
    #[arg(long, value_name = "REF")]
    case: Option<String>,
    /// Only notices about this disagreement (by reference).
    #[arg(long, value_name = "REF")]
    dispute: Option<String>,
    /// Only recipients whose address contains this (any case): `head@`, `@school.example.org`.
    #[arg(long, value_name = "TEXT")]
    recipient: Option<String>,
    /// Only deliveries queued longer ago than this (e.g. 90m, 6h, 3d, 2w).
    #[arg(long, value_parser = parse_age, value_name = "AGE")]
    older_than: Option<chrono::Duration>,
    /// Only deliveries queued more recently than this (e.g. 90m, 6h, 3d, 2w).
    #[arg(long, value_parser = parse_age, value_name = "AGE")]
    newer_than: Option<chrono::Duration>,
}

#[derive(Args, Debug)]
pub struct ActionArgs {
    /// One delivery, by id; or leave it out and choose with the filters.
    #[arg(conflicts_with_all = ["status", "kind", "case", "dispute", "recipient", "older_than", "newer_than"])]
    id: Option<i64>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Do not ask "N deliveries match; ... them? [y/N]" before acting on a filter.
    #[arg(long)]
    yes: bool,
    /// Who is acting, for the audit log (default: $SUDO_USER, else $USER, else the uid).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum StatusArg {
    Pending,
    Sent,
    Failed,
    Dead,
    Cancelled,
}

impl From<StatusArg> for Status {
    fn from(s: StatusArg) -> Status {
        match s {
            StatusArg::Pending => Status::Pending,
            StatusArg::Sent => Status::Sent,
            StatusArg::Failed => Status::Failed,
            StatusArg::Dead => Status::Dead,
            StatusArg::Cancelled => Status::Cancelled,
        }
    }
}

fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not an age like 90m, 6h, 3d or 2w ({e})"))?;
    chrono::Duration::from_std(d).map_err(|_| format!("{s:?} is too long ago"))
}

impl FilterArgs {
    fn to_filter(&self, now: DateTime<Utc>) -> Filter {
        Filter {
            statuses: self.status.iter().map(|&s| s.into()).collect(),
            kind: self.kind.clone(),
            case: self.case.clone(),
            dispute: self.dispute.clone(),
            recipient: self.recipient.clone(),
            queued_before: self.older_than.map(|a| now - a),
            queued_after: self.newer_than.map(|a| now - a),
        }
    }
}

pub fn run(settings: &Settings, command: OutboxCommand) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    let now = Utc::now();
    match command {
        OutboxCommand::List {
            filter,
            format,
            limit,
        } => list(&mut conn, &filter.to_filter(now), format, limit.max(1), now),
        OutboxCommand::Show { id, by } => show(settings, &mut conn, id, &actor(by), now),
        OutboxCommand::Retry(a) => act(&mut conn, Action::Retry, &a, None, now),
        OutboxCommand::Cancel { action, reason } => {
            if reason.trim().is_empty() {
                return Err(InputError("--reason: say why these are cancelled".into()).into());
            }
            act(&mut conn, Action::Cancel, &action, Some(reason.trim()), now)
        }
    }
}

/// Who ran the command: `--by`, else the user who ran sudo, else the login, else the uid.
fn actor(by: Option<String>) -> String {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| env("SUDO_USER"))
        .or_else(|| env("USER"))
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| {
            let uid = std::fs::metadata("/proc/self")
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m).to_string())
                .unwrap_or_else(|_| "unknown".into());
            format!("uid {uid}")
        })
}

fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    format: ListFormat,
    limit: i64,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let lines = admin::list(conn, filter, limit)?;
    let total = lines.first().map_or(0, |l| l.total);
    match format {
        ListFormat::Json => {
            for l in &lines {
                println!("{}", line_json(l, now));
            }
        }
        ListFormat::Table => {
            if !lines.is_empty() {
                println!("{}", table(&lines, now));
            }
            println!("{}", count_words(lines.len() as i64, total));
        }
    }
    Ok(())
}

fn count_words(shown: i64, total: i64) -> String {
    match (shown, total) {
        (0, _) => "no deliveries match".to_owned(),
        (s, t) if s < t => {
            format!("{s} of {t} deliveries shown; narrow the filters or raise --limit")
        }
        (_, 1) => "1 delivery".to_owned(),
        (_, t) => format!("{t} deliveries"),
    }
}

fn about(l: &Line) -> String {
    match (&l.case_ref, &l.dispute_ref) {
        (Some(c), Some(d)) => format!("{c} / {d}"),
        (Some(c), None) => c.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => format!("({})", l.partnership),
    }
}

/// "next attempt / sent at": when a queued one may go next, when a sent one went.
fn when(l: &Line) -> String {
    let t = |t: DateTime<Utc>| crate::evaluate::rfc3339(t);
    match (l.next_attempt, l.sent_at) {
        (Some(n), _) => format!("next {}", t(n)),
        (None, Some(s)) if l.unconfirmed => format!("sent {} (unconfirmed)", t(s)),
        (None, Some(s)) => format!("sent {}", t(s)),
        (None, None) => "-".to_owned(),
    }
}

/// How long ago it was queued, in the largest whole unit: 45m, 6h, 3d.
fn age(queued: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = now - queued;
    match (d.num_days(), d.num_hours(), d.num_minutes()) {
        (days, _, _) if days > 0 => format!("{days}d"),
        (_, h, _) if h > 0 => format!("{h}h"),
        (_, _, m) => format!("{}m", m.max(0)),
    }
}

fn table(lines: &[Line], now: DateTime<Utc>) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header([
        "id",
        "status",
        "kind",
        "case/dispute",
        "recipient",
        "attempts",
        "next attempt / sent at",
        "age",
    ]);
    for l in lines {
        t.add_row([
            l.id.to_string(),
            l.status.clone(),
            l.kind.clone(),
            about(l),
            format!("{} ({})", l.recipient, l.position),
            l.attempts.to_string(),
            when(l),
            age(l.queued_at, now),
        ]);
    }
    t
}

fn line_json(l: &Line, now: DateTime<Utc>) -> serde_json::Value {
    let t = |t: Option<DateTime<Utc>>| t.map(crate::evaluate::rfc3339);
    serde_json::json!({
        "id": l.id,
        "status": l.status,
        "kind": l.kind,
        "partnership": l.partnership,
        "case": l.case_ref,
        "dispute": l.dispute_ref,
        "recipient": l.recipient,
        "position": l.position,
        "attempts": l.attempts,
        "next_attempt": t(l.next_attempt),
        "sent_at": t(l.sent_at),
        "unconfirmed": l.unconfirmed,
        "queued_at": crate::evaluate::rfc3339(l.queued_at),
        "age_seconds": (now - l.queued_at).num_seconds(),
        "last_error": l.last_error,
    })
}

/// A delivery's message worded as the delivery worker words it: with the partnership's own
/// templates, and a digest with the notices it carries.
fn render(
    settings: &Settings,
    conn: &mut PgConnection,
    notice: &crate::evaluate::Notice,
    (recipient, copied): (&str, bool),
    (at, tz): (DateTime<Utc>, chrono_tz::Tz),
) -> anyhow::Result<mail::Rendered> {
    let renderer = Renderer::configured(settings).map_err(mail::template_error)?;
    if notice.kind != crate::evaluate::Kind::Digest {
        return Ok(renderer.render(notice, recipient, copied, at, tz)?);
    }
    let items: Vec<crate::evaluate::Notice> =
        crate::store::digests::items(conn, notice.key.as_str())?
            .iter()
            .filter_map(|r| r.read().ok())
            .collect();
    Ok(renderer.render_digest(notice, &items, recipient, tz)?)
}

/// `outbox show ID`: the message as the delivery worker would build it, at the instant it was
/// (or, at the earliest, will be) sent.
fn show(
    settings: &Settings,
    conn: &mut PgConnection,
    id: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(m) = admin::message(conn, id)? else {
        return Err(InputError(format!("there is no delivery {id}")).into());
    };
    let notice = m
        .notice
        .read()
        .map_err(|e| anyhow::anyhow!("delivery {id}: its notice cannot be read ({e})"))?;
    let at = m
        .line
        .sent_at
        .unwrap_or_else(|| m.line.next_attempt.map_or(now, |n| n.max(now)));
    let tz = Runtime::load(settings, conn).tz_of(notice.partnership.as_str());
    let copied = m.line.position == "cc";
    let rendered = render(
        settings,
        conn,
        &notice,
        (&m.line.recipient, copied),
        (at, tz),
    )?;
    let built = mail::build_message(
        &m.line.recipient,
        &m.message_id,
        &settings.smtp.from,
        &rendered,
        at,
    )?;
    admin::audit_viewed(conn, actor, id)?;
    println!("{}", status_words(&m.line, now));
    if m.line.status == "pending" && notice.kind.stale_after_deadline() && notice.due <= at {
        println!(
            "It will not be sent: its deadline {} will have passed, so delivery cancels it",
            crate::evaluate::rfc3339(notice.due)
        );
    }
    println!("Notice: {}", notice.key.as_str());
    for name in [
        "From",
        "To",
        "Date",
        "Subject",
        "Message-ID",
        "Auto-Submitted",
    ] {
        if let Some(v) = built.headers().get_raw(name) {
            println!("{name}: {v}");
        }
    }
    println!();
    print!("{}", rendered.text);
    Ok(())
}

fn status_words(l: &Line, now: DateTime<Utc>) -> String {
    let t = crate::evaluate::rfc3339;
    let why = l
        .last_error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    let head = format!("Delivery {} ({}, {})", l.id, l.recipient, l.position);
    match Status::parse(&l.status) {
        Some(Status::Sent) => format!(
            "{head}: sent {}{} after {} attempt(s)",
            l.sent_at.map(t).unwrap_or_default(),
            if l.unconfirmed {
                " (the relay never confirmed it)"
            } else {
                ""
            },
            l.attempts
        ),
        Some(Status::Pending) => {
            let next = l.next_attempt.map_or(now, |n| n.max(now));
            format!(
                "{head}: queued; as it will be sent at {}, at the earliest{why}",
                t(next)
            )
        }
        _ => format!(
            "{head}: {} after {} attempt(s){why}; shown as it would be sent now",
            l.status, l.attempts
        ),
    }
}

/// `outbox retry|cancel`: one delivery by id, or every one a filter matches (after asking).
fn act(
    conn: &mut PgConnection,
    action: Action,
    a: &ActionArgs,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let verb = match action {
        Action::Retry => "retry",
        Action::Cancel => "cancel",
    };
    let ids = match a.id {
        Some(id) => vec![one(conn, action, id)?],
        None => {
            let ids = matching(conn, action, &a.filter, now)?;
            if ids.is_empty() {
                println!("no deliveries match; nothing to {verb}");
                return Ok(());
            }
            if !a.yes && !confirm(ids.len(), verb)? {
                println!("nothing changed");
                return Ok(());
            }
            ids
        }
    };
    let who = actor(a.by.clone());
    let changed = admin::apply(conn, action, &ids, &who, reason)?;
    let done = match action {
        Action::Retry => "queued again",
        Action::Cancel => "cancelled",
    };
    for c in &changed {
        println!("delivery {} ({} before): {done}", c.id, c.was);
    }
    println!(
        "{} delivery(ies) {done}, recorded in the audit log as {who}",
        changed.len()
    );
    if changed.len() < ids.len() {
        println!(
            "{} left alone: being sent right now, or changed since they were listed",
            ids.len() - changed.len()
        );
    }
    Ok(())
}

/// The one delivery `id`, if `action` applies to it; else why not.
fn one(conn: &mut PgConnection, action: Action, id: i64) -> anyhow::Result<i64> {
    let Some(m) = admin::message(conn, id)? else {
        return Err(InputError(format!("there is no delivery {id}")).into());
    };
    let status = Status::parse(&m.line.status);
    if status.is_some_and(|s| action.applies_to().contains(&s)) {
        return Ok(id);
    }
    let why = match (action, status) {
        (_, Some(Status::Sent)) => "it was sent; cpwatch never sends a message twice".to_owned(),
        (Action::Retry, Some(Status::Pending)) => "it is still queued".to_owned(),
        (Action::Retry, Some(Status::Cancelled)) => {
            "it was cancelled; only failed or dead deliveries are retried".to_owned()
        }
        (_, _) => format!("it is {}", m.line.status),
    };
    let verb = match action {
        Action::Retry => "retry",
        Action::Cancel => "cancel",
    };
    Err(InputError(format!("cannot {verb} delivery {id}: {why}")).into())
}

/// The ids of every delivery the filter matches that `action` applies to.
fn matching(
    conn: &mut PgConnection,
    action: Action,
    args: &FilterArgs,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    let mut filter = args.to_filter(now);
    if filter.is_empty() {
        return Err(InputError(
            "give a delivery id, or filters (--status, --kind, --case, --dispute, --recipient, \
             --older-than, --newer-than) to choose which"
                .into(),
        )
        .into());
    }
    let allowed = action.applies_to();
    if let Some(s) = filter.statuses.iter().find(|s| !allowed.contains(s)) {
        let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
        return Err(InputError(format!(
            "--status {}: only {} deliveries can be changed this way",
            s.as_str(),
            names.join(", ")
        ))
        .into());
    }
    if filter.statuses.is_empty() {
        filter.statuses = allowed.to_vec();
    }
    let lines = admin::list(conn, &filter, i64::MAX)?;
    Ok(lines.iter().map(|l| l.id).collect())
}

/// "N deliveries match; retry them? [y/N]" on standard error, the answer from standard input.
/// No answer at all (no input) is a usage error: say --yes.
fn confirm(n: usize, verb: &str) -> anyhow::Result<bool> {
    let mut err = std::io::stderr();
    let noun = if n == 1 {
        "delivery matches"
    } else {
        "deliveries match"
    };
    write!(err, "{n} {noun}; {verb} them? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        writeln!(err)?;
        return Err(InputError(format!(
            "{n} {noun} and there is no one to confirm (no input): add --yes to {verb} them"
        ))
        .into());
    }
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}
