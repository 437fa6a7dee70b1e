//! The context a morning digest is worded from: the notices it carries, grouped by case, for
//! `digest.{subject,txt,html}.j2` (rendered by `mail::Renderer::render_digest` with the
//! partnership's templates). The context holds case references, rules, deadlines and actions
//! only: no names, in the subject or the body.

use crate::evaluate::Kind;
use crate::evaluate::Notice;
use crate::policy::role_words::in_words;
use chrono_tz::Tz;
use minijinja::{context, Value};

/// The context `digest.*.j2` are rendered from (documented in `config/templates/README.md`):
/// the digest `digest` carrying `items` for `recipient`, with times in `tz`.
pub fn context(digest: &Notice, items: &[Notice], recipient: &str, tz: Tz) -> Value {
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
    context! {
        kind => digest.kind.as_str(),
        date_local => day.format("%A %-d %B %Y").to_string(),
        date_short => day.format("%a %-d %b").to_string(),
        count => items.len(),
        case_count => groups.len(),
        role => role,
        partnership => digest.partnership.as_str(),
        key => digest.key.as_str(),
        cases => cases,
    }
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
        story => n.facts.dispute.as_ref().map(|d| context! {
            policy_title => d.policy_title,
            stage => d.stage,
            stage_name => d.stage_name,
        }),
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
