//! Every template for each reader position, as snapshots (`tests/snapshots/`); with names off no
//! person's name appears anywhere in any message; every role reads as plain English; subjects
//! are short, start with the reference and carry no names; values are HTML-escaped; a
//! partnership's own template replaces the built-in one and a broken one is reported with its
//! file and line. Pure rendering: no database or relay is involved.

use cpwatch::domain::{AGENCY_ROLES, CASE_ROLES, PARTNERSHIP_ROLES};
use cpwatch::mail::{samples, Renderer};
use cpwatch::settings::{PartnershipMail, Settings};

const TZ: chrono_tz::Tz = chrono_tz::Europe::London;

/// Every sample notice rendered for each of its readers: (label, reader's email, message).
fn rendered(renderer: &Renderer) -> Vec<(String, String, cpwatch::mail::Rendered)> {
    let mut out = Vec::new();
    for (label, n) in samples::notices() {
        for (r, _) in n.recipients() {
            let m = renderer
                .render(&n, r.email.as_str(), false, n.due, TZ)
                .unwrap_or_else(|e| panic!("{label} for {}: {e}", r.email));
            out.push((label.clone(), r.role.clone(), m));
        }
    }
    out
}

#[test]
fn every_template_for_each_reader_position() {
    let renderer = Renderer::new(false);
    for (label, role, m) in rendered(&renderer) {
        let name = format!("{label}-{}", role.replace(['.', '+', '|'], "-"));
        insta::assert_snapshot!(name, format!("Subject: {}\n\n{}", m.subject, m.text));
    }
    let (d, items) = samples::digest();
    let digest = renderer
        .render_digest(&d, &items, "sw@ksc.example.org", TZ)
        .expect("the digest renders");
    insta::assert_snapshot!(
        "digest",
        format!("Subject: {}\n\n{}", digest.subject, digest.text)
    );
}

#[test]
fn with_names_off_no_person_is_named_and_every_role_is_plain_english() {
    let renderer = Renderer::new(false);
    let role_codes: Vec<&str> = CASE_ROLES
        .iter()
        .chain(AGENCY_ROLES)
        .chain(PARTNERSHIP_ROLES)
        .chain(&[
            "line_manager",
            "invitee_manager",
            "sqa_unit_manager",
            "raiser.",
            "respondent.",
            "case.",
            "admin",
        ])
        .copied()
        .filter(|c| c.contains(['_', '.']) || *c == "admin")
        .collect();
    let all = rendered(&renderer);
    assert!(all.len() > 20, "{}", all.len());
    for (label, role, m) in &all {
        for part in [&m.subject, &m.text, &m.html] {
            for name in samples::PEOPLE {
                assert!(
                    !part.contains(name),
                    "{label} to {role} names {name}:\n{part}"
                );
            }
            // The reference line is a key, not words for a reader.
            let words: String = part
                .lines()
                .filter(|l| !l.contains("Reference: "))
                .collect::<Vec<_>>()
                .join("\n");
            for code in &role_codes {
                assert!(
                    !words.contains(code),
                    "{label} to {role} shows {code:?}:\n{words}"
                );
            }
            assert!(!words.contains(" the the "), "{label}: {words}");
        }
    }
}

#[test]
fn with_names_on_bodies_name_people_and_subjects_never_do() {
    let renderer = Renderer::new(true);
    let all = rendered(&renderer);
    let letter = all
        .iter()
        .find(|(l, role, _)| l == "cause_for_concern" && role == "invitee_manager")
        .expect("the letter");
    assert!(
        letter.2.text.contains("Chris Chair"),
        "signed by the chair: {}",
        letter.2.text
    );
    for (label, _, m) in &all {
        for name in samples::PEOPLE {
            assert!(!m.subject.contains(name), "{label}: {}", m.subject);
        }
    }
}

#[test]
fn subjects_are_short_with_the_reference_first() {
    for (label, role, m) in rendered(&Renderer::new(false)) {
        assert!(
            m.subject.chars().count() <= 78,
            "{label} to {role}: {} ({} chars)",
            m.subject,
            m.subject.chars().count()
        );
        if !label.starts_with("go_live_summary") {
            assert!(
                m.subject.starts_with("KN-0001 ") || m.subject.starts_with("D-7 "),
                "{label}: {}",
                m.subject
            );
        }
    }
}

#[test]
fn readers_are_told_their_position() {
    let all = rendered(&Renderer::new(false));
    let text = |label: &str, role: &str| {
        all.iter()
            .find(|(l, r, _)| l == label && r == role)
            .map(|(_, _, m)| m.text.clone())
            .unwrap_or_else(|| panic!("{label} to {role}"))
    };
    let escalated = text("overdue_escalation", "senior_manager");
    assert!(
        escalated.contains("This is escalated to you as the senior manager"),
        "{escalated}"
    );
    assert!(escalated.contains("2 working days late"), "{escalated}");
    let copied = text("overdue_escalation", "team_manager");
    assert!(
        copied.contains("You are copied for information as the team manager"),
        "{copied}"
    );
    assert!(!copied.contains("escalated to you"), "{copied}");
    let unreachable = text("overdue_escalation-unreachable", "senior_manager");
    assert!(
        unreachable.contains("could not be reached: no email address"),
        "{unreachable}"
    );
    let chair = text("chair_challenge", "conference_chair");
    assert!(
        !chair.contains("Convene"),
        "the chair is not given the worker's action: {chair}"
    );
    let teacher = text("cause_for_concern", "invitee");
    assert!(
        !teacher.contains("I am raising this with you as"),
        "{teacher}"
    );
    let stage = text("escalation_stage-entered", "respondent.line_manager");
    for words in [
        "threshold for a strategy discussion not met",
        "stage 1, Practitioner to practitioner",
        "moves to stage 3 (Senior manager to senior manager) and goes to the raising professional's senior manager and",
        "An Escalation Notice",
    ] {
        assert!(stage.contains(words), "{words:?} in {stage}");
    }
}

#[test]
fn values_are_html_escaped_and_threads_are_per_occurrence() {
    let renderer = Renderer::new(false);
    let (_, mut n) = samples::notices().remove(0);
    n.action = "Record <b>it</b> & tell the chair.".into();
    let m = renderer
        .render(&n, "tm@ksc.example.org", false, n.due, TZ)
        .unwrap();
    assert!(
        m.html
            .contains("Record &lt;b&gt;it&lt;&#x2f;b&gt; &amp; tell")
            || m.html.contains("Record &lt;b&gt;it&lt;/b&gt; &amp; tell"),
        "{}",
        m.html
    );
    assert!(m.text.contains("Record <b>it</b> & tell"), "{}", m.text);
    let notices = samples::notices();
    let thread = |label: &str| {
        notices
            .iter()
            .find(|(l, _)| l == label)
            .unwrap()
            .1
            .thread_key()
    };
    assert_eq!(thread("reminder"), thread("overdue_escalation"));
    assert_eq!(
        thread("escalation_stage-entered"),
        thread("escalation_outcome")
    );
    assert_ne!(thread("reminder"), thread("cause_for_concern"));
}

#[test]
fn a_partnership_template_replaces_the_built_in_and_a_broken_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("due.subject.j2"), "{{ ref }} is due today").unwrap();
    let mut settings = Settings::load(None).unwrap();
    let p = settings.partnerships.get_mut("knowsley").unwrap();
    p.mail = PartnershipMail {
        signature: Some("Jo Bloggs, Head of Safeguarding and Quality Assurance".into()),
        contact: Some(cpwatch::domain::Email::parse("sqa@knowsley.example.org").unwrap()),
        templates: Some(dir.path().to_path_buf()),
    };
    let renderer = Renderer::configured(&settings).expect("valid templates");
    let notices = samples::notices();
    let due = &notices.iter().find(|(l, _)| l == "due").unwrap().1;
    let m = renderer
        .render(due, "tm@ksc.example.org", false, due.due, TZ)
        .unwrap();
    assert_eq!(m.subject, "KN-0001 is due today");
    assert_eq!(m.reply_to.as_deref(), Some("sqa@knowsley.example.org"));
    let letter = &notices
        .iter()
        .find(|(l, _)| l == "cause_for_concern")
        .unwrap()
        .1;
    let m = renderer
        .render(letter, "head@school.example.org", false, letter.due, TZ)
        .unwrap();
    assert!(
        m.text.contains("Jo Bloggs, Head of Safeguarding"),
        "{}",
        m.text
    );
    assert!(m.text.contains("sqa@knowsley.example.org"), "{}", m.text);
    assert!(!m.text.contains("replies are not read"), "{}", m.text);
    assert!(samples::check(&renderer, &["knowsley"], TZ).is_empty());

    // The digest is worded with the partnership's templates too.
    std::fs::write(
        dir.path().join("digest.subject.j2"),
        "Knowsley: {{ count }} things for {{ date_short }}",
    )
    .unwrap();
    let renderer = Renderer::configured(&settings).expect("valid templates");
    let (d, items) = samples::digest();
    let m = renderer
        .render_digest(&d, &items, "sw@ksc.example.org", TZ)
        .unwrap();
    assert_eq!(m.subject, "Knowsley: 3 things for Tue 24 Mar");
    assert!(m.text.contains("Case KN-0002"), "{}", m.text);
    assert_eq!(m.reply_to.as_deref(), Some("sqa@knowsley.example.org"));
    let other = Renderer::new(false)
        .render_digest(&d, &items, "sw@ksc.example.org", TZ)
        .unwrap();
    assert!(
        other.subject.starts_with("cpwatch digest Tue 24 Mar"),
        "{}",
        other.subject
    );
    assert!(samples::check(&renderer, &["knowsley"], TZ).is_empty());
    std::fs::write(dir.path().join("digest.txt.j2"), "{{ cases|nosuchfilter }}").unwrap();
    let broken = Renderer::configured(&settings).expect("it compiles; it fails to render");
    let problems = samples::check(&broken, &["knowsley"], TZ);
    assert!(
        problems.iter().any(|p| p.contains("sample digest")),
        "cpwatch check renders the partnership's digest: {problems:?}"
    );
    std::fs::remove_file(dir.path().join("digest.txt.j2")).unwrap();

    std::fs::write(dir.path().join("overdue.txt.j2"), "line one\n{% if %}\n").unwrap();
    let problems = Renderer::configured(&settings)
        .err()
        .expect("a broken template is refused");
    assert!(
        problems.iter().any(|p| p.contains("overdue.txt.j2 line 2")),
        "{problems:?}"
    );
}

/// A disagreement's reminder carried in a digest: its title (stored as the code
/// `dispute-stage`) is worded from its story; one queued before payload version 4 keeps the
/// title it was stored with.
#[test]
fn a_disagreement_in_a_digest_is_titled_from_its_story_or_as_stored() {
    let renderer = Renderer::new(false);
    let (d, mut items) = samples::digest();
    let (_, reminder) = samples::notices()
        .into_iter()
        .find(|(label, _)| label == "escalation_stage-reminder")
        .expect("the sample stage reminder");
    assert_eq!(reminder.title, "dispute-stage", "the evaluator's code");
    items.push(reminder.clone());
    let m = renderer
        .render_digest(&d, &items, "sw@ksc.example.org", TZ)
        .expect("the digest renders");
    let worded = "Knowsley Safeguarding Children Partnership escalation policy (2019), stage 2: Line manager to line manager";
    assert!(
        m.text.contains(&format!("  Reminder: {worded}\n    Rule:")),
        "{}",
        m.text
    );
    assert!(m.html.contains(&format!("<td>{worded}</td>")), "{}", m.html);
    assert!(!m.text.contains("dispute-stage") && !m.html.contains("dispute-stage"));
    let mut old = reminder;
    old.title = "An older policy, stage 2: as it was worded then".into();
    items.pop();
    items.push(old);
    let m = renderer
        .render_digest(&d, &items, "sw@ksc.example.org", TZ)
        .expect("the digest renders");
    assert!(
        m.text
            .contains("  Reminder: An older policy, stage 2: as it was worded then\n"),
        "{}",
        m.text
    );
}
