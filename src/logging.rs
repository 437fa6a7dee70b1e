//! Where log lines go and in what form: journald natively under systemd, plain text elsewhere
//! (colour only on a terminal), or JSON lines for log shippers (`--log-format`).
//!
//! Log lines carry identifiers only (pass id, case and dispute references, outbox ids): never a
//! person's name or an address. Under journald each field is a journal field prefixed
//! `CPWATCH_` (`CPWATCH_PASS_ID`, `CPWATCH_ID`), span fields included, with the level's priority
//! (error 3, warn 4, info 6, debug and trace 7).

use clap::ValueEnum;
use std::io::IsTerminal as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when systemd connected standard error to the journal (`JOURNAL_STREAM`), else text.
    #[default]
    Auto,
    /// Plain text on standard error; colour only when it is a terminal.
    Text,
    /// One JSON object per line on standard error, with the fields of the spans it is in.
    Json,
    /// The systemd journal's own protocol (falls back to text when there is no journal).
    Journald,
}

/// The journal field prefix of cpwatch's own fields.
pub const JOURNAL_FIELD_PREFIX: &str = "CPWATCH";

/// Install the log writer for this process; `level` is the filter unless `RUST_LOG` is set.
pub fn init(level: &str, format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let fallback = match format {
        LogFormat::Journald => match journald() {
            Ok(layer) => {
                let _ = tracing_subscriber::registry()
                    .with(filter())
                    .with(layer)
                    .try_init();
                return;
            }
            Err(e) => Some(e),
        },
        _ => None,
    };
    if format == LogFormat::Json {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
    if let Some(e) = fallback {
        tracing::warn!(error = %e, "no systemd journal to write to; logging text to standard error");
    }
}

fn journald() -> std::io::Result<tracing_journald::Layer> {
    use tracing_journald::{Priority, PriorityMappings};
    Ok(tracing_journald::layer()?
        .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.into()))
        .with_priority_mappings(PriorityMappings {
            error: Priority::Error,
            warn: Priority::Warning,
            info: Priority::Informational,
            debug: Priority::Debug,
            trace: Priority::Debug,
        }))
}

/// Whether standard error is the journal stream systemd gave us: `JOURNAL_STREAM` names its
/// device and inode (`dev:ino`), so a child whose stderr was redirected elsewhere writes text.
fn stderr_is_journal() -> bool {
    let Ok(expected) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    stderr_identity().is_some_and(|id| id == expected.trim())
}

#[cfg(unix)]
fn stderr_identity() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata("/proc/self/fd/2")
        .or_else(|_| std::fs::metadata("/dev/stderr"))
        .ok()?;
    Some(format!("{}:{}", m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn stderr_identity() -> Option<String> {
    None
}
