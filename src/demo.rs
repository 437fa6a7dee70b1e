//! `cpwatch demo`: a private PostgreSQL, the sample partnership, a simulated month, and mail
//! written to a folder as .eml files, with a summary a person can read.

use crate::domain::Email;
use crate::import;
use crate::jobs::delivery::Delivery;
use crate::jobs::evaluation::{EvaluationPass, Mode};
use crate::jobs::Runtime;
use crate::mail::{Channel, Renderer};
use crate::settings::Settings;
use crate::store;
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use diesel::pg::PgConnection;
use std::path::Path;

/// The sample partnership: four child-protection cases in March 2026.
pub const SAMPLE: &str = include_str!("../config/sample/knowsley-sample.json");
const START: &str = "2026-03-02T00:00:00Z";

pub fn run(out: &Path, days: u32) -> anyhow::Result<()> {
    clear_old_mail(out)?;
    println!("starting a private PostgreSQL server (from the installed PostgreSQL binaries)...");
    let db =
        crate::pgserver::PrivateServer::start().context("cannot start a private PostgreSQL")?;
    let mut settings = Settings::defaults_with_database(&db.url())?;
    settings.mail.admin_address = Some(Email::parse("cp-admin@lscp.example.org")?);
    let mut conn = store::connect(&db.url())?;
    store::migrate(&mut conn)?;
    let summary = import::import(
        &mut conn,
        "sample partnership",
        SAMPLE,
        &["knowsley".to_owned()],
    )?;
    println!(
        "imported the sample partnership: {} people, {} cases, {} events",
        summary.people, summary.cases, summary.new_events
    );
    let runtime = Runtime::load(&settings, &mut conn);
    let start: DateTime<Utc> = START.parse()?;
    println!(
        "simulating {days} days from {} hour by hour...",
        start.format("%-d %B %Y")
    );
    let sent = simulate(&mut conn, &runtime, &settings, out, start, days)?;
    println!(
        "\n{sent} message(s) written to {}/ as .eml files:\n",
        out.display()
    );
    print_summary(&mut conn, &runtime.tz_of("knowsley"))?;
    drop(conn);
    drop(db);
    Ok(())
}

/// Make `out` and remove the `.eml` files of an earlier demo from it.
fn clear_old_mail(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut old = 0;
    for entry in std::fs::read_dir(out)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "eml") {
            std::fs::remove_file(entry.path())?;
            old += 1;
        }
    }
    if old > 0 {
        println!(
            "removed {old} .eml file(s) of an earlier demo from {}",
            out.display()
        );
    }
    Ok(())
}

/// Every hour from `start` for `days` days: an evaluation pass, then a delivery round into
/// `.eml` files in `out`. Returns how many messages were written.
fn simulate(
    conn: &mut PgConnection,
    runtime: &Runtime,
    settings: &Settings,
    out: &Path,
    start: DateTime<Utc>,
    days: u32,
) -> anyhow::Result<usize> {
    let channel = Channel::files(out);
    let renderer = Renderer::new(false);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let delivery = Delivery {
            runtime,
            channel: &channel,
            renderer: &renderer,
            from: &settings.smtp.from,
            batch_size: 100,
            lease_seconds: 60,
            max_attempts: 3,
            working_hours_only: true,
            control: Default::default(),
        };
        let mut sent = 0;
        for hour in 0..i64::from(days) * 24 {
            let now = start + Duration::hours(hour);
            let pass = EvaluationPass {
                runtime,
                now,
                mode: Mode::Write,
                full: false,
                batch_size: 100,
            };
            tokio::task::block_in_place(|| pass.run(conn, &mut |_| {}))?;
            sent += delivery.run_once(conn, now).await?.sent;
        }
        anyhow::Ok(sent)
    })
}

fn print_summary(conn: &mut PgConnection, tz: &chrono_tz::Tz) -> anyhow::Result<()> {
    println!(
        "{:<18} {:<19} {:<32} {:<8} {:<35} deadline",
        "sent (local time)", "kind", "rule", "case", "to"
    );
    for l in store::deliveries::sent(conn)? {
        println!(
            "{:<18} {:<19} {:<32} {:<8} {:<35} {}",
            l.send_after.with_timezone(tz).format("%a %-d %b %H:%M"),
            l.kind,
            l.rule,
            l.case_ref.unwrap_or_default(),
            if l.position == "cc" {
                format!("cc {}", l.recipient)
            } else {
                l.recipient
            },
            l.due_at.with_timezone(tz).format("%a %-d %b %H:%M")
        );
    }
    println!(
        "\nKN-0001: everything done on the day, so only reminders and \"due today\" notices.\n\
         KN-0002: the initial conference was never held: reminder, due, overdue, then escalation to the\n\
         \x20        senior manager and the conference chair.\n\
         KN-0003: no conference was needed; the enquiry's sign-off came after one reminder.\n\
         KN-0004: the team manager has no email address, so when the first notice fell due a\n\
         \x20        data-quality notice went to the admin address instead."
    );
    Ok(())
}
