//! The command line: parse, load settings, call into jobs and the store, map errors to exit codes
//! (0 ok, 2 usage/config/input error, 1 runtime failure).

mod generate;
mod outbox;
mod report;

use crate::evaluate::rfc3339;
use crate::import::{self, ImportError};
use crate::jobs::delivery::{Control, Delivery, DeliveryReport};
use crate::jobs::evaluation::{EvaluationPass, Mode, Narrow};
use crate::jobs::Runtime;
use crate::mail::{Channel, Renderer};
use crate::policy::PolicyError;
use crate::settings::{ConfigError, Settings};
use crate::store;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use diesel::pg::PgConnection;
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::process::ExitCode;

mod census;

#[derive(Parser, Debug)]
#[command(
    name = "cpwatch",
    version,
    about = "Keeps child-protection timescales and professional-disagreement ladders on time",
    long_about = "cpwatch reads child-protection case state from PostgreSQL, works out every hour which \
                  timescales of the partnership's policies are coming due or have lapsed, and emails \
                  reminders, overdue notices and escalations to the people who hold the roles.\n\n\
                  Configuration: built-in defaults, then /etc/cpwatch/cpwatch.toml (or --config), then \
                  CPWATCH_* environment variables (CPWATCH_DATABASE__URL, CPWATCH_SMTP__PASSWORD, ...)."
)]
pub struct Cli {
    /// Configuration file (default: /etc/cpwatch/cpwatch.toml if it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. info, debug, cpwatch=debug (RUST_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Where and how logs are written: auto (the systemd journal when standard error is
    /// connected to it, else text), text (plain; colour only on a terminal), json (a JSON object
    /// a line, for log shippers) or journald.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub log_format: crate::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: schema check, hourly evaluation, continuous delivery, bank-holiday refresh.
    Run,
    /// Apply pending database migrations.
    Migrate,
    /// Validate the configuration and every policy file; exit 2 with every problem found.
    Check,
    /// Load a case file (JSON: partnership, agencies, people, cases, events, disputes) or a
    /// children-in-need census extract (XML), in one transaction: all of it or, listing every
    /// problem with its place, nothing.
    Import {
        /// The case file, or the census extract.
        file: PathBuf,
        /// json (cpwatch's case file) or cin-census (the DfE children-in-need census XML, read
        /// as a stream: its Header/Source/LEA names the partnership, see la_codes).
        #[arg(long, value_enum, default_value = "json")]
        format: ImportFormat,
        /// cin-census: import into this partnership whatever the extract's local authority code.
        #[arg(long, value_name = "NAME")]
        partnership: Option<String>,
        /// cin-census: who holds each role on the census cases, a CSV `child,role,person`
        /// (child = LAchildID, or * for every child; person = a person id cpwatch holds).
        #[arg(long, value_name = "CSV")]
        roles: Option<PathBuf>,
        /// Record when the partnership goes live with cpwatch (RFC 3339): deadlines that lapsed
        /// before it are not mailed one by one; each team manager gets one summary of them
        /// instead, and open disagreements continue from their current stage.
        #[arg(long, value_parser = parse_instant, value_name = "RFC3339")]
        go_live: Option<DateTime<Utc>>,
    },
    /// Run one evaluation pass as if the clock read --at, and print what it newly queued and
    /// the stage changes it made (a dry run: what a writing pass would newly queue and make).
    Evaluate {
        /// The instant to evaluate at (RFC 3339, e.g. 2026-03-20T09:00:00Z); default now.
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// Decide and print, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// text (a line per notice, in words) or json (a JSON object per line).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Look at every open case, not only those whose next check has come.
        #[arg(long)]
        full: bool,
        /// List every notice due at that instant, already queued or not, each saying which
        /// ("queued": true|false); looks at every open case.
        #[arg(long)]
        list_due: bool,
        /// Only this case (by reference) and its disagreements.
        #[arg(long, value_name = "REF")]
        case: Option<String>,
        /// Treat every partnership as going live at this instant, for this pass (RFC 3339).
        #[arg(long, value_parser = parse_instant, value_name = "RFC3339")]
        go_live: Option<DateTime<Utc>>,
    },
    /// One case on one screen: its events, every timescale (deadline, status, next step and who it
    /// will reach), its disagreements, and every notice queued, sent, failed or withdrawn about it.
    Case {
        /// The case reference.
        reference: String,
        /// Show the case as at this instant (RFC 3339; default now).
        #[arg(long, value_parser = parse_instant)]
        at: Option<DateTime<Utc>>,
        /// text (for people) or json (one document).
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// The partnership, when several hold a case with this reference.
        #[arg(long)]
        partnership: Option<String>,
    },
    /// Send what is queued in the outbox, first making the morning digests whose time has come
    /// (see [digest] in the configuration).
    Deliver {
        /// Send what is due now and exit (default: keep delivering until interrupted).
        #[arg(long)]
        once: bool,
        /// Treat this instant as now when choosing what is due (for replays and tests).
        #[arg(long, value_parser = parse_instant, hide = true)]
        at: Option<DateTime<Utc>>,
    },
    /// Probe a deployment: database, schema, last evaluation pass, outbox, delivery backlog, the
    /// relay as delivery last found it, dead letters, failed messages, data-quality notices, the
    /// bank-holiday data, and a login to the relay (connect, STARTTLS, AUTH, QUIT: nothing is
    /// sent). One line per check; exit 0 healthy, 1 unhealthy.
    Health(HealthArgs),
    /// Timeliness per case rule (on time, late, overdue, pending, cancelled), the census-aligned
    /// measures (ICPCs within 15 working days, reviews on time, assessments within 45 working
    /// days, plans of 2 years or more, second plans) over the period, by team and by month,
    /// escalation figures per ladder stage and the records the ladders demand.
    Report(report::ReportArgs),
    /// Show a policy as a table (rule, timescale in words, who acts, who is told next, source,
    /// national or local), or where two policies differ.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The outbox: list deliveries, show one message as it will be or was sent, retry failed or
    /// dead ones, cancel queued ones; each retry and cancel is written to the audit log.
    Outbox {
        #[command(subcommand)]
        command: outbox::OutboxCommand,
    },
    /// Write the man page or the shell completions (for packaging).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
    /// A private database, the sample partnership, a simulated month; mail written to ./outbox/.
    #[cfg(feature = "demo")]
    Demo {
        /// Where the .eml files go.
        #[arg(long, default_value = "outbox")]
        out: PathBuf,
        /// Days to simulate.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

/// `cpwatch health`'s limits and output.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// Fail when the last evaluation pass (by any replica) is older than this.
    #[arg(long, value_name = "MINUTES", default_value_t = 120)]
    pub max_pass_age: i64,
    /// Fail when mail due this long ago is still queued.
    #[arg(long, value_name = "MINUTES", default_value_t = 60)]
    pub max_backlog: i64,
    /// Fail when more messages than this are dead-lettered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_dead: i64,
    /// Fail when the stored bank-holiday feed is older than this (the daemon refreshes it daily).
    #[arg(long, value_name = "DAYS", default_value_t = 35)]
    pub max_holiday_age: i64,
    /// Fail when more messages than this were refused for good (default: report only).
    #[arg(long, value_name = "N")]
    pub max_failed: Option<i64>,
    /// Fail when more data-quality notices than this were queued in the last 24 hours
    /// (default: report only).
    #[arg(long, value_name = "N")]
    pub max_data_quality: Option<i64>,
    /// Leave out the login to the relay (e.g. for a probe that runs every minute).
    #[arg(long)]
    pub no_relay_login: bool,
    /// text (a line per check) or json (one document: {"healthy", "checks": [{"name", "ok",
    /// "detail"}]}).
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print one policy (standards rules or ladder stages) as a readable table.
    Show {
        /// The policy id, e.g. england-wt-2023, knowsley-cp-2019, pan-cheshire-escalation.
        id: String,
        /// Table width in characters (default: $COLUMNS, else 140).
        #[arg(long)]
        width: Option<u16>,
    },
    /// Show where two policies of one kind differ: rules paired by id (or by what starts and
    /// meets their clocks), the fields that differ, and the rules only one of them has.
    Diff {
        a: String,
        b: String,
        /// Table width in characters (default: $COLUMNS, else 140).
        #[arg(long)]
        width: Option<u16>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    Json,
    CinCensus,
}

pub(crate) fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant like 2026-03-20T09:00:00Z ({e})"))
}

/// Exit status of `evaluate` when other replicas hold the lock of every partnership and this pass was
/// skipped (EX_TEMPFAIL: nothing is wrong, nothing was done; try again later).
pub const EXIT_PASS_SKIPPED: u8 = 75;

/// The pass was skipped because another replica is evaluating (exit `EXIT_PASS_SKIPPED`).
#[derive(Debug, thiserror::Error)]
#[error("skipped: another cpwatch is running an evaluation pass; nothing was written")]
pub struct PassSkipped;

/// An error the user can fix by changing their input (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init(&cli.log_level, cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<PassSkipped>() => ExitCode::from(EXIT_PASS_SKIPPED),
        Err(e) => {
            eprintln!("cpwatch: {e:#}");
            if is_input_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn is_input_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<ConfigError>()
            || c.is::<PolicyError>()
            || c.is::<InputError>()
            || matches!(
                c.downcast_ref::<ImportError>(),
                Some(ImportError::Invalid { .. } | ImportError::Syntax { .. })
            )
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    #[cfg(feature = "demo")]
    if let Command::Demo { out, days } = &cli.command {
        return crate::demo::run(out, *days);
    }
    if let Command::Generate(args) = &cli.command {
        return generate::run(args);
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Check => check(&settings),
        Command::Migrate => migrate(&settings),
        Command::Import {
            file,
            format,
            partnership,
            roles,
            go_live,
        } => import(&settings, &file, format, partnership, roles, go_live),
        Command::Evaluate {
            at,
            dry_run,
            format,
            full,
            list_due,
            case,
            go_live,
        } => evaluate(
            &settings,
            at.unwrap_or_else(Utc::now),
            EvaluateOptions {
                dry_run,
                format,
                full,
                list_due,
                case,
                go_live,
            },
        ),
        Command::Case {
            reference,
            at,
            format,
            partnership,
        } => show_case(
            &settings,
            &reference,
            partnership.as_deref(),
            at.unwrap_or_else(Utc::now),
            format,
        ),
        Command::Deliver { once, at } => deliver(&settings, once, at),
        Command::Run => crate::daemon::run(settings),
        Command::Health(args) => health(&settings, args),
        Command::Report(args) => report::run(&settings, args),
        Command::Policy { command } => policy(&settings, command),
        Command::Outbox { command } => outbox::run(&settings, command),
        #[cfg(feature = "demo")]
        Command::Demo { .. } => unreachable!("handled above"),
        Command::Generate(_) => unreachable!("handled above"),
    }
}

/// `cpwatch import`: a case file, or a census extract with its options.
fn import(
    settings: &Settings,
    file: &std::path::Path,
    format: ImportFormat,
    partnership: Option<String>,
    roles: Option<PathBuf>,
    go_live: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    match format {
        ImportFormat::Json if partnership.is_some() || roles.is_some() => Err(InputError(
            "--partnership and --roles are for --format cin-census; a case file names its partnership \
             and its roles itself"
                .into(),
        )
        .into()),
        ImportFormat::Json => import_file(settings, file, go_live),
        ImportFormat::CinCensus => {
            census::import(settings, file, partnership.as_deref(), roles.as_deref(), go_live)
        }
    }
}

/// `cpwatch policy show|diff`: the tables come from `policy_view`.
fn policy(settings: &Settings, command: PolicyCommand) -> anyhow::Result<()> {
    use crate::policy_view::{self as view, Policy};
    let catalogue = &settings.catalogue;
    let find = |id: &str| {
        Policy::find(catalogue, id).ok_or_else(|| {
            InputError(format!(
                "no policy {id:?} (known: {})",
                view::known_ids(catalogue).join(", ")
            ))
        })
    };
    let columns = |w: Option<u16>| {
        w.or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
            .unwrap_or(140)
    };
    match command {
        PolicyCommand::Show { id, width } => print!("{}", view::show(find(&id)?, columns(width))),
        PolicyCommand::Diff { a, b, width } => {
            print!(
                "{}",
                view::diff(find(&a)?, find(&b)?, columns(width)).map_err(InputError)?
            )
        }
    }
    Ok(())
}

/// `cpwatch check`: the settings loaded (which validated them and every policy); say what is there.
fn check(settings: &Settings) -> anyhow::Result<()> {
    println!("configuration and policies are valid");
    let catalogue = &settings.catalogue;
    let mut ids: Vec<_> = catalogue
        .standards
        .values()
        .map(|p| format!("{} ({} rules)", p.id, p.rules.len()))
        .chain(
            catalogue
                .ladders
                .values()
                .map(|p| format!("{} ({} stages)", p.id, p.stages.len())),
        )
        .collect();
    ids.sort();
    println!("policies: {}", ids.join(", "));
    let names: Vec<&str> = settings.partnerships.keys().map(String::as_str).collect();
    println!("partnerships: {}", names.join(", "));
    check_templates(settings)?;
    for (name, p) in &settings.partnerships {
        if p.standards_defaulted {
            println!(
                "partnership {name}: no standards_policy configured: using the national baseline \
                 {} (the timescales Working Together to Safeguard Children 2023 sets)",
                p.standards_policy
            );
        }
    }
    check_channels(settings);
    let m = &settings.metrics;
    if m.enabled && !m.listen.ip().is_loopback() {
        println!(
            "note: metrics.listen {} is not a loopback address: /metrics, /healthz and /readyz \
             (counts and check results, no names or case references) are open to that network; \
             firewall the port",
            m.listen
        );
    }
    let smtp = &settings.smtp;
    if smtp.insecure_cleartext_password
        && smtp.security == crate::settings::Security::Plain
        && !crate::smtp::is_loopback(&smtp.host)
    {
        println!(
            "WARNING: smtp.insecure_cleartext_password is set: the SMTP password crosses the \
             network to {} unencrypted",
            smtp.host
        );
    }
    Ok(())
}

/// `check`: where mail goes, and the team channels (never their URLs).
fn check_channels(settings: &Settings) {
    if settings.mail.channel == crate::settings::MailChannel::Notify {
        let n = &settings.notify;
        let service = n.key.as_ref().map_or("?", |k| k.service_id.as_str());
        println!(
            "mail: through GOV.UK Notify at {} (service {service}; {} kind(s) with a template of their own)",
            n.base_url,
            n.templates.len()
        );
    }
    for (name, p) in &settings.partnerships {
        if let Some(t) = &p.team_channel {
            println!(
                "partnership {name}: team channel ({:?}): overdue summary {}, immediate-risk alerts {}",
                t.format,
                if t.summary { format!("at {} on working days", t.summary_at.format("%H:%M")) } else { "off".into() },
                if t.alerts { "on" } else { "off" }
            );
        }
    }
}

/// `check`: every template of every partnership rendered against the sample notices.
fn check_templates(settings: &Settings) -> anyhow::Result<()> {
    let renderer = Renderer::configured(settings).map_err(crate::mail::template_error)?;
    let mut problems = Vec::new();
    for (name, p) in &settings.partnerships {
        problems.extend(crate::mail::samples::check(&renderer, &[name], p.timezone));
    }
    if !problems.is_empty() {
        return Err(crate::mail::template_error(problems));
    }
    let own: Vec<String> = settings
        .partnerships
        .iter()
        .filter_map(|(n, p)| {
            p.mail
                .templates
                .as_ref()
                .map(|d| format!("{n} ({})", d.display()))
        })
        .collect();
    println!(
        "mail templates: {} kinds render for every reader{}",
        crate::mail::TEMPLATES.len(),
        if own.is_empty() {
            String::new()
        } else {
            format!("; partnerships' own templates: {}", own.join(", "))
        }
    );
    Ok(())
}

fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    let applied = store::migrate(&mut conn)?;
    if applied.is_empty() {
        println!("the schema is up to date");
    } else {
        println!(
            "applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(())
}

fn import_file(
    settings: &Settings,
    file: &std::path::Path,
    go_live: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let text = read_case_file(file)?;
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    let names: Vec<String> = settings.partnerships.keys().cloned().collect();
    let s = import::import_with(
        &mut conn,
        &file.display().to_string(),
        &text,
        &names,
        &settings.catalogue.ladders,
    )?;
    println!(
        "imported into {}: {} agencies, {} people, {} cases ({} new events), {} disputes ({} new events)",
        s.partnership, s.agencies, s.people, s.cases, s.new_events, s.disputes, s.new_dispute_events
    );
    if let Some(g) = go_live {
        record_go_live(&mut conn, settings, &s.partnership, g)?;
    }
    Ok(())
}

/// Record when `partnership` goes live with cpwatch (`import --go-live`), and say so.
pub(crate) fn record_go_live(
    conn: &mut PgConnection,
    settings: &Settings,
    partnership: &str,
    g: DateTime<Utc>,
) -> anyhow::Result<()> {
    store::go_live::set(conn, partnership, g)?;
    println!(
        "{partnership} goes live at {}: deadlines that lapsed before then are summarised once per \
         team manager, not mailed one by one",
        rfc3339(g)
    );
    if let Some(c) = settings
        .partnerships
        .get(partnership)
        .and_then(|p| p.go_live)
    {
        if c != g {
            println!(
                "note: partnerships.{partnership}.go_live ({}) is configured and wins over this",
                rfc3339(c)
            );
        }
    }
    Ok(())
}

/// A case file's text, read up to the documented size limit (a larger file, or an endless one
/// like /dev/zero, is refused before it fills memory).
fn read_case_file(file: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read as _;
    let limit = crate::import::limits::MAX_CASE_FILE_BYTES;
    let cannot = |e: std::io::Error| InputError(format!("cannot read {}: {e}", file.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(file)
        .map_err(cannot)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(InputError(format!(
            "{}: larger than the {} MB a case file may be; split it into several files, \
             or use --format cin-census or direct writes for a whole authority's data",
            file.display(),
            limit / (1024 * 1024)
        ))
        .into());
    }
    String::from_utf8(bytes).map_err(|e| {
        InputError(format!(
            "{}: not UTF-8 text (byte {} is not valid UTF-8)",
            file.display(),
            e.utf8_error().valid_up_to()
        ))
        .into()
    })
}

/// `cpwatch evaluate`'s options besides the instant.
struct EvaluateOptions {
    dry_run: bool,
    format: Format,
    full: bool,
    list_due: bool,
    case: Option<String>,
    go_live: Option<DateTime<Utc>>,
}

fn evaluate(settings: &Settings, now: DateTime<Utc>, o: EvaluateOptions) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    if let Some(reference) = &o.case {
        if store::cases::partnerships_with_case(&mut conn, reference)?.is_empty() {
            return Err(InputError(format!("--case: there is no case {reference:?}")).into());
        }
    }
    let mut runtime = Runtime::load(settings, &mut conn);
    if let Some(g) = o.go_live {
        for p in runtime.partnerships.values_mut() {
            p.go_live = Some(g);
        }
    }
    let pass = EvaluationPass {
        runtime: &runtime,
        now,
        mode: if o.dry_run { Mode::DryRun } else { Mode::Write },
        full: o.full || o.list_due,
        batch_size: settings.database.batch_size,
    };
    let style = crate::pass_output::Style {
        json: o.format == Format::Json,
        dry_run: o.dry_run,
        list_due: o.list_due,
    };
    let narrow = Narrow { case: o.case };
    let report = pass.run_reporting(&mut conn, &narrow, &mut |d| {
        if let Some(line) = crate::pass_output::line(d, style) {
            println!("{line}");
        }
    })?;
    if report.skipped {
        match o.format {
            Format::Text => println!("{PassSkipped}"),
            Format::Json => println!(
                "{}",
                serde_json::json!({"kind": "pass_skipped", "reason": PassSkipped.to_string()})
            ),
        }
        return Err(PassSkipped.into());
    }
    if o.format == Format::Text {
        print!("{}", crate::pass_output::summary(&report, now, style));
    }
    Ok(())
}

/// The partnership whose case `reference` is meant: the one given, or the only one holding it.
fn case_partnership(
    conn: &mut PgConnection,
    reference: &str,
    given: Option<&str>,
) -> anyhow::Result<String> {
    let holding = store::cases::partnerships_with_case(conn, reference)?;
    let found = match (given, holding.as_slice()) {
        (Some(p), h) if h.iter().any(|x| x == p) => Ok(p.to_owned()),
        (Some(p), _) => Err(format!("partnership {p} has no case {reference:?}")),
        (None, [one]) => Ok(one.clone()),
        (None, []) => Err(format!("there is no case {reference:?}")),
        (None, many) => Err(format!(
            "several partnerships have a case {reference:?} ({}): say which with --partnership",
            many.join(", ")
        )),
    };
    found.map_err(|e| InputError(e).into())
}

/// `cpwatch case REF`: the case, evaluated as at `at`, with its disputes and notices.
fn show_case(
    settings: &Settings,
    reference: &str,
    partnership: Option<&str>,
    at: DateTime<Utc>,
    format: Format,
) -> anyhow::Result<()> {
    let mut conn = connect(settings)?;
    store::ensure_schema(&mut conn, false)?;
    let partnership = case_partnership(&mut conn, reference, partnership)?;
    let runtime = Runtime::load(settings, &mut conn);
    let Some(rt) = runtime.partnerships.get(&partnership) else {
        return Err(InputError(format!("partnership {partnership} is not configured")).into());
    };
    let mut bad = Vec::new();
    let Some((case_id, case, _)) =
        store::cases::load_one(&mut conn, &partnership, reference, &mut bad)?
    else {
        anyhow::bail!("case {reference} cannot be read: {:?}", bad);
    };
    let directory =
        store::cases::load_directory(&mut conn, &partnership, runtime.admin_email.clone())?;
    let ctx = crate::evaluate::Context {
        calendar: &rt.calendar,
        directory: &directory,
        now: at,
    };
    let policy = runtime
        .catalogue
        .standards
        .get(&rt.standards_policy)
        .context("the partnership's standards policy is not loaded")?;
    let (disputes, _) = store::disputes::load_for_case(&mut conn, &partnership, case_id)?;
    let go_live = match rt.go_live {
        Some(g) => Some(g),
        None => store::go_live::load(&mut conn, &partnership)?.map(|g| g.at),
    };
    let dispute_views = disputes
        .iter()
        .filter_map(|(_, d)| {
            let policy = runtime.catalogue.ladders.get(&d.policy)?;
            let outcome = crate::evaluate::dispute::evaluate_dispute_from(policy, d, &ctx, go_live);
            Some(crate::case_view::DisputeView {
                dispute: d,
                policy,
                outcome,
            })
        })
        .collect();
    let refs: Vec<String> = disputes
        .iter()
        .map(|(_, d)| d.reference.to_string())
        .collect();
    let notices = store::case_notices::about_case(&mut conn, &partnership, reference, &refs)?;
    let view = crate::case_view::CaseView {
        case: &case,
        at,
        tz: rt.calendar.tz(),
        occurrences: crate::evaluate::occurrences(policy, &case, &ctx),
        disputes: dispute_views,
        notices: notices.into_iter().map(Into::into).collect(),
    };
    match format {
        Format::Json => println!("{}", view.json()),
        Format::Text => print!("{}", view.text()),
    }
    Ok(())
}

fn deliver(settings: &Settings, once: bool, at: Option<DateTime<Utc>>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conn = connect(settings)?;
        store::ensure_schema(&mut conn, false)?;
        let runtime = Runtime::load(settings, &mut conn);
        let channel = Channel::configured(settings)?;
        let renderer = Renderer::configured(settings).map_err(crate::mail::template_error)?;
        let delivery = Delivery::configured(
            &runtime,
            &channel,
            &renderer,
            &settings.smtp.from,
            &settings.delivery,
            Control::from_settings(&settings.delivery),
        );
        let interval = std::time::Duration::from_secs(settings.delivery.interval_seconds);
        let mut total = DeliveryReport::default();
        loop {
            let report = delivery
                .run_once(&mut conn, at.unwrap_or_else(Utc::now))
                .await?;
            total.add(report);
            if report.handled() == 0 {
                team_round(settings, &runtime, &mut conn, at).await?;
                if once {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        channel.close().await;
        println!(
            "sent {}, to retry {}, rejected {}, dead-lettered {}{}",
            total.sent,
            total.retried,
            total.failed,
            total.dead,
            if total.unconfirmed > 0 {
                format!(", sent without the relay's confirmation {}", total.unconfirmed)
            } else {
                String::new()
            }
        );
        if once && total.relay_down {
            anyhow::bail!(
                "the mail relay failed and mail waits; the log above says why, and `cpwatch health` \
                 shows it until the relay accepts mail again"
            );
        }
        Ok(())
    })
}

/// When the mail queue is empty: the team channels' summaries, alerts and posts (if any
/// partnership has a team channel).
async fn team_round(
    settings: &Settings,
    runtime: &Runtime,
    conn: &mut PgConnection,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    use crate::jobs::team_channel::TeamChannels;
    if !TeamChannels::any(settings) {
        return Ok(());
    }
    let r = TeamChannels::new(runtime, settings)
        .run_once(conn, at.unwrap_or_else(Utc::now))
        .await?;
    if r != Default::default() {
        println!(
            "team channels: queued {} summaries and {} alerts; posted {}, to retry {}, refused {}, dead-lettered {}",
            r.summaries, r.alerts, r.sent, r.retried, r.failed, r.dead
        );
    }
    Ok(())
}

fn health(settings: &Settings, args: HealthArgs) -> anyhow::Result<()> {
    let limits = crate::health::Limits {
        max_pass_age_minutes: args.max_pass_age,
        max_backlog_minutes: args.max_backlog,
        max_dead: args.max_dead,
        max_holiday_age_days: args.max_holiday_age,
        max_failed: args.max_failed,
        max_data_quality: args.max_data_quality,
    };
    let (relay_login, format) = (!args.no_relay_login, args.format);
    let now = Utc::now();
    let checks = if relay_login {
        crate::health::checks(settings, &limits, now)
    } else {
        crate::health::database_checks(settings.database.url.expose_secret(), &limits, now)
    };
    match format {
        Format::Json => println!("{}", crate::health::json(&checks)),
        Format::Text => {
            for c in &checks {
                println!("{c}");
            }
        }
    }
    let failed: Vec<&'static str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(crate::health::Unhealthy(failed).into())
    }
}

pub fn connect(settings: &Settings) -> anyhow::Result<PgConnection> {
    store::connect(settings.database.url.expose_secret()).context("database.url")
}
