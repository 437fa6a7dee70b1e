//! A notice worded for one reader: the templates under `config/templates/` (compiled in, each
//! replaceable from a partnership's own directory), rendered with minijinja from the context
//! `config/templates/README.md` documents. The evaluator decides the facts; only here do they
//! become words.

use super::MailError;
use crate::evaluate::{Kind, Notice, Position, Recipient, Stance};
use crate::policy::role_words::in_words;
use crate::policy::Letter;
use crate::settings::{PartnershipMail, Settings};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in templates, by file name.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "layout.txt.j2",
        include_str!("../../config/templates/layout.txt.j2"),
    ),
    (
        "layout.html.j2",
        include_str!("../../config/templates/layout.html.j2"),
    ),
    (
        "_reader.txt.j2",
        include_str!("../../config/templates/_reader.txt.j2"),
    ),
    (
        "_facts.txt.j2",
        include_str!("../../config/templates/_facts.txt.j2"),
    ),
    (
        "_footer.txt.j2",
        include_str!("../../config/templates/_footer.txt.j2"),
    ),
    (
        "_action.txt.j2",
        include_str!("../../config/templates/_action.txt.j2"),
    ),
    (
        "_dispute.txt.j2",
        include_str!("../../config/templates/_dispute.txt.j2"),
    ),
    (
        "_records.txt.j2",
        include_str!("../../config/templates/_records.txt.j2"),
    ),
    (
        "reminder.subject.j2",
        include_str!("../../config/templates/reminder.subject.j2"),
    ),
    (
        "reminder.txt.j2",
        include_str!("../../config/templates/reminder.txt.j2"),
    ),
    (
        "due.subject.j2",
        include_str!("../../config/templates/due.subject.j2"),
    ),
    (
        "due.txt.j2",
        include_str!("../../config/templates/due.txt.j2"),
    ),
    (
        "overdue.subject.j2",
        include_str!("../../config/templates/overdue.subject.j2"),
    ),
    (
        "overdue.txt.j2",
        include_str!("../../config/templates/overdue.txt.j2"),
    ),
    (
        "overdue_escalation.subject.j2",
        include_str!("../../config/templates/overdue_escalation.subject.j2"),
    ),
    (
        "overdue_escalation.txt.j2",
        include_str!("../../config/templates/overdue_escalation.txt.j2"),
    ),
    (
        "chair_challenge.subject.j2",
        include_str!("../../config/templates/chair_challenge.subject.j2"),
    ),
    (
        "chair_challenge.txt.j2",
        include_str!("../../config/templates/chair_challenge.txt.j2"),
    ),
    (
        "cause_for_concern.subject.j2",
        include_str!("../../config/templates/cause_for_concern.subject.j2"),
    ),
    (
        "cause_for_concern.txt.j2",
        include_str!("../../config/templates/cause_for_concern.txt.j2"),
    ),
    (
        "escalation_stage.subject.j2",
        include_str!("../../config/templates/escalation_stage.subject.j2"),
    ),
    (
        "escalation_stage.txt.j2",
        include_str!("../../config/templates/escalation_stage.txt.j2"),
    ),
    (
        "escalation_outcome.subject.j2",
        include_str!("../../config/templates/escalation_outcome.subject.j2"),
    ),
    (
        "escalation_outcome.txt.j2",
        include_str!("../../config/templates/escalation_outcome.txt.j2"),
    ),
    (
        "data_quality.subject.j2",
        include_str!("../../config/templates/data_quality.subject.j2"),
    ),
    (
        "data_quality.txt.j2",
        include_str!("../../config/templates/data_quality.txt.j2"),
    ),
    (
        "go_live_summary.subject.j2",
        include_str!("../../config/templates/go_live_summary.subject.j2"),
    ),
    (
        "go_live_summary.txt.j2",
        include_str!("../../config/templates/go_live_summary.txt.j2"),
    ),
    (
        "digest.subject.j2",
        include_str!("../../config/templates/digest.subject.j2"),
    ),
    (
        "digest.txt.j2",
        include_str!("../../config/templates/digest.txt.j2"),
    ),
    (
        "digest.html.j2",
        include_str!("../../config/templates/digest.html.j2"),
    ),
    (
        "_problem.txt.j2",
        include_str!("../../config/templates/_problem.txt.j2"),
    ),
    (
        "_data_quality_title.j2",
        include_str!("../../config/templates/_data_quality_title.j2"),
    ),
    (
        "_dispute_title.j2",
        include_str!("../../config/templates/_dispute_title.j2"),
    ),
];

/// The notification templates, one per kind (each a `.subject.j2` and a `.txt.j2`, and an
/// optional `.html.j2`; without one the HTML part is the text's paragraphs in `layout.html.j2`).
pub const TEMPLATES: &[&str] = &[
    "reminder",
    "due",
    "overdue",
    "overdue_escalation",
    "chair_challenge",
    "cause_for_concern",
    "escalation_stage",
    "escalation_outcome",
    "data_quality",
    "go_live_summary",
    "digest",
];

/// How mail is worded: the templates (a partnership's own where it has them), whether names
/// appear in bodies, and each partnership's signature and contact address.
pub struct Renderer {
    default: Environment<'static>,
    partnerships: BTreeMap<String, (Environment<'static>, PartnershipMail)>,
    pub include_names: bool,
}

/// A rendered message, before it is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The conversation it belongs to (`Notice::thread_key`) and its reader: the root of the
    /// `In-Reply-To`/`References` every message of that thread carries.
    pub thread: String,
    /// Where replies go (the partnership's `contact`).
    pub reply_to: Option<String>,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Renderer {
    /// The built-in templates only, for every partnership.
    pub fn new(include_names: bool) -> Self {
        let default = environment(None).unwrap_or_else(|problems| {
            // The built-in templates are tested; this can only be a broken build.
            for p in problems {
                tracing::error!(problem = %p, "built-in mail template does not compile");
            }
            Environment::new()
        });
        Renderer {
            default,
            partnerships: BTreeMap::new(),
            include_names,
        }
    }

    /// As configured: each partnership's templates directory, signature and contact. Every
    /// template that does not compile is listed with its file and line.
    pub fn configured(settings: &Settings) -> Result<Self, Vec<String>> {
        let mut r = Renderer::new(settings.mail.include_names);
        let mut problems = Vec::new();
        for (name, p) in &settings.partnerships {
            match environment(p.mail.templates.as_deref()) {
                Ok(env) => {
                    r.partnerships.insert(name.clone(), (env, p.mail.clone()));
                }
                Err(mut e) => problems.append(&mut e),
            }
        }
        if problems.is_empty() {
            Ok(r)
        } else {
            Err(problems)
        }
    }

    /// The templates partnership `p` is worded with.
    pub fn environment_of(&self, p: &str) -> &Environment<'static> {
        self.for_partnership(p).0
    }

    fn for_partnership(&self, p: &str) -> (&Environment<'static>, Option<&PartnershipMail>) {
        match self.partnerships.get(p) {
            Some((env, mail)) => (env, Some(mail)),
            None => (&self.default, None),
        }
    }

    /// Word a notice for one recipient, with times in `tz`. `copied` is kept for callers that
    /// know the position only; the notice's own lists decide it when the recipient is on them.
    pub fn render(
        &self,
        n: &Notice,
        recipient: &str,
        copied: bool,
        _now: DateTime<Utc>,
        tz: Tz,
    ) -> Result<Rendered, MailError> {
        let (env, mail) = self.for_partnership(n.partnership.as_str());
        let position = n
            .recipients()
            .find(|(r, _)| r.email.as_str() == recipient)
            .map_or(if copied { Position::Cc } else { Position::To }, |(_, p)| p);
        let ctx = super::context::build(n, recipient, position, tz, mail, self.include_names);
        let name = template_for(n);
        render_parts(env, name, &Value::from_serialize(&ctx)).map(|(subject, text, html)| {
            Rendered {
                subject,
                text,
                html,
                thread: format!("{}/{recipient}", n.thread_key()),
                reply_to: mail.and_then(|m| m.contact.as_ref()).map(|c| c.to_string()),
            }
        })
    }
}

impl Renderer {
    /// Word the morning digest `digest` carrying `items` for `recipient`, with times in `tz`,
    /// in the digest's partnership's templates.
    pub fn render_digest(
        &self,
        digest: &Notice,
        items: &[Notice],
        recipient: &str,
        tz: Tz,
    ) -> Result<Rendered, MailError> {
        let (env, mail) = self.for_partnership(digest.partnership.as_str());
        let ctx = super::digest::context(digest, items, recipient, tz);
        let (subject, text, html) = render_parts(env, "digest", &ctx)?;
        Ok(Rendered {
            subject,
            text,
            html,
            thread: format!("{}/{recipient}", digest.thread_key()),
            reply_to: mail.and_then(|m| m.contact.as_ref()).map(|c| c.to_string()),
        })
    }
}

/// The template a notice is worded with.
pub fn template_for(n: &Notice) -> &'static str {
    let after_outcome =
        |step: &str| step.starts_with("confirm-outcome") || step == "tell-family-outcome";
    match (n.kind, &n.dispute) {
        (Kind::DataQuality, _) => "data_quality",
        (Kind::EscalationOutcome, _) => "escalation_outcome",
        (_, Some(_)) if after_outcome(&n.step) => "escalation_outcome",
        (_, Some(_)) => "escalation_stage",
        (Kind::Reminder, None) => "reminder",
        (Kind::Due, None) => "due",
        (Kind::Overdue, None) => "overdue",
        (Kind::OverdueEscalation, None) if n.letter == Some(Letter::ChairChallenge) => {
            "chair_challenge"
        }
        (Kind::OverdueEscalation, None) => "overdue_escalation",
        (Kind::CauseForConcern, None) => "cause_for_concern",
        (Kind::EscalationStage, None) => "escalation_stage",
        (Kind::GoLiveSummary, None) => "go_live_summary",
        (Kind::Digest, None) => "digest",
    }
}

/// Render template `name`'s subject, text and HTML from `ctx`.
pub fn render_parts(
    env: &Environment<'static>,
    name: &str,
    ctx: &Value,
) -> Result<(String, String, String), MailError> {
    let subject = env
        .get_template(&format!("{name}.subject.j2"))?
        .render(ctx)?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = tidy(&env.get_template(&format!("{name}.txt.j2"))?.render(ctx)?);
    let html = match env.get_template(&format!("{name}.html.j2")) {
        Ok(t) => t.render(ctx)?,
        Err(_) => {
            let paragraphs: Vec<Vec<&str>> = text
                .split("\n\n")
                .map(|p| p.lines().collect())
                .filter(|p: &Vec<&str>| !p.is_empty())
                .collect();
            let html_ctx = minijinja::context! { paragraphs => paragraphs, ..ctx.clone() };
            env.get_template("layout.html.j2")?.render(html_ctx)?
        }
    };
    Ok((subject, text, html))
}

/// At most one blank line between paragraphs, no trailing spaces, one final newline.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    let mut blank = true;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
        } else {
            out.push_str(line);
            out.push('\n');
            blank = false;
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// An environment with no templates yet, set as every mail template expects: a block tag's own
/// line leaves no blank line, `.html.j2` output is HTML-escaped, and our filters.
pub fn base_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.add_filter("shorten", shorten);
    env.add_filter("and_list", and_list);
    env.add_filter("upper_first", upper_first);
    env
}

/// The templates: the built-in ones, each replaced by a file of the same name in `dir`.
/// Every template that does not compile is a problem naming its file and line.
pub fn environment(dir: Option<&Path>) -> Result<Environment<'static>, Vec<String>> {
    let mut env = base_environment();
    let mut problems = Vec::new();
    let mut sources: BTreeMap<&'static str, (String, &'static str)> = BUILT_IN
        .iter()
        .map(|(n, t)| (*n, (format!("config/templates/{n}"), *t)))
        .collect();
    if let Some(dir) = dir {
        overrides(dir, &mut sources, &mut problems);
    }
    for (name, (file, text)) in sources {
        if let Err(e) = env.add_template(name, text) {
            problems.push(template_problem(&file, &e));
        }
    }
    if problems.is_empty() {
        Ok(env)
    } else {
        Err(problems)
    }
}

/// The `.j2` files of a partnership's directory, replacing the built-in ones of the same name.
fn overrides(
    dir: &Path,
    sources: &mut BTreeMap<&'static str, (String, &'static str)>,
    problems: &mut Vec<String>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if !name.ends_with(".j2") {
            continue;
        }
        match std::fs::read_to_string(&path) {
            // Read once at start-up and kept for the life of the process.
            Ok(text) => {
                let text: &'static str = Box::leak(text.into_boxed_str());
                let name: &'static str = match BUILT_IN.iter().find(|(n, _)| *n == name) {
                    Some((n, _)) => n,
                    None => Box::leak(name.into_boxed_str()),
                };
                sources.insert(name, (path.display().to_string(), text));
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
}

/// "config/templates/overdue.txt.j2 line 4: syntax error: unexpected end of input".
pub fn template_problem(file: &str, e: &minijinja::Error) -> String {
    let line = e.line().map_or(String::new(), |l| format!(" line {l}"));
    let detail = e.detail().map_or(String::new(), |d| format!(": {d}"));
    format!("{file}{line}: {}{detail}", e.kind())
}

/// `{{ title|shorten(50) }}`: at most `max` characters, cut at a word with "..." (ASCII, so a
/// subject stays readable in any client's list).
fn shorten(value: String, max: usize) -> String {
    if value.chars().count() <= max {
        return value;
    }
    let cut: String = value.chars().take(max.saturating_sub(3)).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => cut[..i].trim_end_matches([',', ';', ':']).to_owned(),
        _ => cut,
    };
    format!("{cut}...")
}

/// `{{ people|and_list }}`: "the team manager", "the team manager and the senior manager",
/// "a, b and c".
fn and_list(items: Vec<String>) -> String {
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// `{{ text|upper_first }}`: the first letter a capital, the rest as it is.
fn upper_first(text: String) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// Someone on a notice as another reader sees them: "the team manager", or with names on
/// "T Manager (the team manager)".
pub(super) fn described(r: &Recipient, names: bool) -> String {
    let role = in_words(&r.role);
    match (&r.name, names) {
        (Some(name), true) => format!("{name} ({role})"),
        _ => role,
    }
}

/// A reader's position in words the templates branch on.
pub(super) fn stance_of(n: &Notice, position: Position) -> Stance {
    n.stance(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_at_a_word() {
        assert_eq!(shorten("short".into(), 10), "short");
        assert_eq!(
            shorten(
                "Initial child protection conference within 15 working days".into(),
                30
            ),
            "Initial child protection..."
        );
    }

    #[test]
    fn every_built_in_template_compiles() {
        assert!(environment(None).is_ok());
    }
}
