//! `cpwatch demo`: a private PostgreSQL, the sample partnership going live over its history, a
//! simulated month, and mail written to a folder as `.eml` files named after the summary table's
//! columns (time, case or dispute, kind), with a closing summary made from what was sent.

use crate::domain::Email;
use crate::import;
use crate::jobs::delivery::Delivery;
use crate::jobs::evaluation::{EvaluationPass, Mode};
use crate::jobs::Runtime;
use crate::mail::{eml_file_name, Channel, FileLabel, Renderer};
use crate::settings::Settings;
use crate::store;
use crate::store::deliveries::SentLine;
use anyhow::Context as _;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use diesel::pg::PgConnection;
use std::collections::BTreeMap;
use std::path::Path;

/// The sample partnership: seven Knowsley cases and four disagreements, one under each ladder.
pub const SAMPLE: &str = include_str!("../config/sample/knowsley-sample.json");
/// The simulated month starts here, and the sample partnership goes live at it.
const START: &str = "2026-03-02T00:00:00Z";

/// What each case and disagreement of the sample is there to show (facts of its history, true
/// whatever the number of days simulated).
const STORIES: &[(&str, &str)] = &[
    ("KN-0001", "every standard met on the day"),
    ("KN-0002", "the initial conference is never held"),
    ("KN-0003", "the enquiry finds on 12 March that no conference is needed; its outcome is signed off on 16 March"),
    ("KN-0004", "its team manager has no email address"),
    ("KN-0005", "the school's report for the conference of 16 March never comes; the school's head teacher is both its safeguarding lead and its senior manager"),
    ("KN-0006", "on a plan since January; the child is not seen between 9 February and 16 March"),
    ("KN-0007", "the plan ended on 12 January and no child in need plan was recorded"),
    ("D-K1", "Knowsley ladder (KN-0002): nobody resolves it"),
    ("D-L1", "Liverpool school ladder (KN-0001): resolved at stage 2 on 5 March"),
    ("D-P1", "Pan-Cheshire ladder (KN-0006): raised at immediate risk on Friday 6 March, 19:30; resolved at stage 2 on 10 March"),
    ("D-R1", "Richmond & Kingston ladder (KN-0005): the youth worker's line manager is the project's safeguarding lead, so step 2 is one person; resolved at step 4 on 17 March"),
];

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
    let start: DateTime<Utc> = START.parse()?;
    // As an operator would: `cpwatch import --go-live` over a history that is months old.
    store::go_live::set(&mut conn, "knowsley", start)?;
    println!(
        "imported the sample partnership: {} people, {} cases ({} events), {} disagreements; \
         live from {}",
        summary.people,
        summary.cases,
        summary.new_events,
        summary.disputes,
        start.format("%-d %B %Y")
    );
    let runtime = Runtime::load(&settings, &mut conn);
    println!(
        "simulating {days} days from {} hour by hour...",
        start.format("%-d %B %Y")
    );
    let sent = simulate(&mut conn, &runtime, &settings, out, start, days)?;
    println!(
        "\n{} message(s) written to {}/ as .eml files:\n",
        sent.len(),
        out.display()
    );
    let tz = runtime.tz_of("knowsley");
    print_table(&sent, tz);
    print_stories(&mut conn, &sent, tz, start, days)?;
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

/// A message the simulation sent, and the simulated hour it went.
struct Sent {
    at: DateTime<Utc>,
    line: SentLine,
}

impl Sent {
    fn about(&self) -> &str {
        self.line
            .dispute_ref
            .as_deref()
            .or(self.line.case_ref.as_deref())
            .unwrap_or("knowsley")
    }

    fn file(&self, tz: Tz) -> String {
        let kind = crate::evaluate::Kind::parse(&self.line.kind)
            .unwrap_or(crate::evaluate::Kind::DataQuality);
        eml_file_name(&FileLabel {
            at: self.at,
            tz,
            about: self.about(),
            kind,
            delivery: self.line.id,
        })
    }
}

/// Every hour from `start` for `days` days: an evaluation pass, then a delivery round into
/// `.eml` files in `out`. Returns what was sent, in order, each with the hour it went.
fn simulate(
    conn: &mut PgConnection,
    runtime: &Runtime,
    settings: &Settings,
    out: &Path,
    start: DateTime<Utc>,
    days: u32,
) -> anyhow::Result<Vec<Sent>> {
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
        let mut sent: Vec<Sent> = Vec::new();
        let mut seen = std::collections::HashSet::new();
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
            if delivery.run_once(conn, now).await?.sent > 0 {
                let mut new: Vec<SentLine> = store::deliveries::sent(conn)?
                    .into_iter()
                    .filter(|l| seen.insert(l.id))
                    .collect();
                new.sort_by_key(|l| l.id);
                sent.extend(new.into_iter().map(|line| Sent { at: now, line }));
            }
        }
        anyhow::Ok(sent)
    })
}

fn print_table(sent: &[Sent], tz: Tz) {
    println!(
        "{:<17} {:<8} {:<19} {:<32} {:<40} file",
        "sent (local time)", "about", "kind", "rule", "to"
    );
    for s in sent {
        let l = &s.line;
        println!(
            "{:<17} {:<8} {:<19} {:<32} {:<40} {}",
            s.at.with_timezone(&tz).format("%a %-d %b %H:%M"),
            s.about(),
            l.kind,
            l.rule,
            if l.position == "cc" {
                format!("cc {}", l.recipient)
            } else {
                l.recipient.clone()
            },
            s.file(tz)
        );
    }
}

/// What each case and disagreement is there to show, and what it brought in these days.
fn print_stories(
    conn: &mut PgConnection,
    sent: &[Sent],
    tz: Tz,
    start: DateTime<Utc>,
    days: u32,
) -> anyhow::Result<()> {
    let end = start + Duration::days(i64::from(days));
    println!(
        "\nWhat the sample's history holds for each case and disagreement, and what it brought \
         from {} to {}:",
        start.with_timezone(&tz).format("%a %-d %b"),
        end.with_timezone(&tz).format("%a %-d %b %Y")
    );
    let mut by_about: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for s in sent {
        by_about.entry(s.about()).or_default().push(s);
    }
    let summaries = by_about.remove("knowsley").unwrap_or_default();
    let summarised = summarised_cases(conn)?;
    println!(
        "  go-live  the partnership went live at the start, over months of history: deadlines that \
         had lapsed are not mailed one by one;"
    );
    println!(
        "           each team manager gets one summary of them. {}",
        mail_words(&summaries, tz)
    );
    let disputes = store::disputes::report_disputes(conn)?;
    for (about, story) in STORIES {
        println!("  {about:<8} history: {story}.");
        if let Some(to) = summarised.get(*about) {
            println!("           listed in the go-live summary to {to}");
        }
        if let Some(d) = disputes.iter().find(|d| d.reference == *about) {
            if d.opened_at >= end {
                println!("           not raised yet in these days");
                continue;
            }
            println!("           {}", stage_words(d, tz));
        }
        println!(
            "           {}",
            mail_words(by_about.get(about).map_or(&[][..], |v| v), tz)
        );
    }
    println!(
        "\nEach row above is one .eml file in the folder; `cpwatch case KN-0005` shows one case's \
         deadlines, disagreements and notices together."
    );
    Ok(())
}

/// The cases the go-live summaries that were sent list, and to whom.
fn summarised_cases(conn: &mut PgConnection) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let mut out = BTreeMap::new();
    for (about, _) in STORIES.iter().filter(|(a, _)| a.starts_with("KN-")) {
        let to: Vec<String> = store::case_notices::about_case(conn, "knowsley", about, &[])?
            .into_iter()
            .filter(|d| d.kind == "go_live_summary" && d.status == "sent")
            .map(|d| d.recipient)
            .collect();
        if !to.is_empty() {
            out.insert(*about, to.join(", "));
        }
    }
    Ok(out)
}

/// "sent: reminder Mon 9 Mar, due Wed 11 Mar, cause_for_concern Thu 12 Mar (2 messages) ...".
fn mail_words(sent: &[&Sent], tz: Tz) -> String {
    if sent.is_empty() {
        return "in these days: nothing was sent".into();
    }
    let mut notices: Vec<(String, String, usize)> = Vec::new();
    for s in sent {
        let when =
            s.at.with_timezone(&tz)
                .format("%a %-d %b %H:%M")
                .to_string();
        match notices
            .iter_mut()
            .find(|(k, w, _)| *k == s.line.kind && *w == when)
        {
            Some(n) => n.2 += 1,
            None => notices.push((s.line.kind.clone(), when, 1)),
        }
    }
    let parts: Vec<String> = notices
        .into_iter()
        .map(|(kind, when, n)| match n {
            1 => format!("{kind} {when}"),
            n => format!("{kind} {when} ({n} messages)"),
        })
        .collect();
    format!("in these days, sent: {}", parts.join("; "))
}

/// A disagreement's stage moves and where it stands.
fn stage_words(d: &crate::report::ReportDispute, tz: Tz) -> String {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%a %-d %b %H:%M").to_string();
    let moves: Vec<String> = d
        .history
        .iter()
        .map(|(from, to, at, why)| {
            format!(
                "{}→{} {} ({why})",
                from.map_or("-".into(), |f| f.to_string()),
                to,
                local(*at)
            )
        })
        .collect();
    let now = match (d.resolved_at, d.resolved_stage) {
        (Some(at), Some(stage)) => format!("resolved at stage {stage} {}", local(at)),
        _ => format!("open at stage {} at the end", d.stage),
    };
    if moves.is_empty() {
        format!("in these days: no stage moves; {now}")
    } else {
        format!("in these days: stages {}; {now}", moves.join(", "))
    }
}
