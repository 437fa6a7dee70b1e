//! Wording a morning digest: the notices it carries, grouped by case, from
//! `config/templates/digest.{subject,txt,html}.j2` (compiled in). The context holds case
//! references, rules, deadlines and actions only: no names, in the subject or the body.

use super::{MailError, Rendered};
use crate::evaluate::Kind;
use crate::evaluate::Notice;
use crate::policy::role_words::in_words;
use chrono_tz::Tz;
use minijinja::{context, Environment, Value};

const TEMPLATES: [(&str, &str); 3] = [
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
];

fn environment() -> Result<Environment<'static>, MailError> {
    let mut env = super::render::base_environment();
    for (name, text) in TEMPLATES {
        env.add_template(name, text)?;
    }
    Ok(env)
}

/// Word the digest `digest` carrying `items` for `recipient`, with times in `tz`.
pub fn render(
    digest: &Notice,
    items: &[Notice],
    recipient: &str,
    tz: Tz,
) -> Result<Rendered, MailError> {
    let env = environment()?;
    let role = digest
        .recipients()
        .find(|(r, _)| r.email.as_str() == recipient)
        .map_or("a recipient".to_owned(), |(r, _)| in_words(&r.role));
    let groups = crate::digest::by_case(items);
    let cases: Vec<Value> = groups
        .iter()
        .map(|(case, list)| {
            let items: Vec<Value> = list.iter().map(|n| item(n, recipient, tz)).collect();
            context! { case => case, items => items }
        })
        .collect();
    let day = digest.send_after.with_timezone(&tz);
    let ctx = context! {
        date_local => day.format("%A %-d %B %Y").to_string(),
        date_short => day.format("%a %-d %b").to_string(),
        count => items.len(),
        case_count => groups.len(),
        role => role,
        key => digest.key.as_str(),
        cases => cases,
    };
    let subject = env
        .get_template("digest.subject.j2")?
        .render(&ctx)?
        .trim()
        .to_owned();
    let text = env.get_template("digest.txt.j2")?.render(&ctx)?;
    let html = env.get_template("digest.html.j2")?.render(&ctx)?;
    Ok(Rendered {
        subject,
        text,
        html,
        thread: format!("{}/{recipient}", digest.thread_key()),
        reply_to: None,
    })
}

/// One item, with who else it was sent to, by role (never by name).
fn item(n: &Notice, recipient: &str, tz: Tz) -> Value {
    let others: Vec<String> = n
        .recipients()
        .filter(|(r, _)| r.email.as_str() != recipient)
        .map(|(r, _)| in_words(&r.role))
        .collect();
    context! {
        others => others,
        kind => n.kind.as_str(),
        kind_label => kind_label(n.kind),
        rule => n.rule,
        standard => n.standard.as_deref().map(|s| s.trim_start_matches('S').to_owned()),
        title => n.title,
        due_local => n.due.with_timezone(&tz).format("%A %-d %B %Y, %H:%M %Z").to_string(),
        action => n.action,
        key => n.key.as_str(),
    }
}

/// What an item is, as its line in the digest begins.
fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Reminder => "Reminder",
        Kind::Due => "Due today",
        _ => "Notice",
    }
}
