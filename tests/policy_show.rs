//! `cpwatch policy show` / `policy diff` on the shipped policies, the national/local tag, and a
//! partnership with no standards policy getting the national baseline.

mod common;

use common::*;
use serde_json::json;

fn policy(cp: &Cpwatch, args: &[&str]) -> String {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--width", "1000"]);
    cp.ok(&all)
}

/// Rows of a comfy-table: the first column of each line that starts a row with an id.
fn cell_lines(table: &str) -> Vec<String> {
    table
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| l.trim_matches('│').to_owned())
        .collect()
}

#[test]
fn show_prints_every_rule_with_timescale_people_source_and_scope() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);

    let wt = policy(&cp, &["show", "england-wt-2023"]);
    assert!(wt.contains("7 rules, 7 national, 0 local"), "{wt}");
    assert!(wt.contains("national baseline"));
    for rule in [
        "referral-actioned",
        "referrer-informed",
        "assessment-45wd",
        "icpc-within-15wd",
        "first-core-group",
        "first-review-3-months",
        "review-every-6-months",
    ] {
        let row = cell_lines(&wt)
            .into_iter()
            .find(|l| l.split('┆').next().unwrap().trim() == rule)
            .unwrap_or_else(|| panic!("{rule} in {wt}"));
        assert!(row.contains("national"), "{row}");
        assert!(row.contains("Working Together"), "{row}");
    }
    // Timescales in words, per enquiry for the conference.
    assert!(wt.contains("15 working days after each strategy discussion held (s47 initiated)"));
    assert!(wt.contains("45 working days after each referral received"));

    let kn = policy(&cp, &["show", "knowsley-cp-2019"]);
    assert!(kn.contains("38 rules, 4 national, 34 local"), "{kn}");
    assert!(kn.contains("the first strategy discussion held (s47 initiated)"));
    assert!(kn.contains("cause-for-concern letter from the chair to the invitee's manager at once"));
    assert!(kn.contains("Knowsley Multi-Agency Child Protection Standards (2019), Standard 10"));

    for (ladder, stages) in [
        ("knowsley-escalation-2019", 4),
        ("liverpool-school-escalation", 4),
        ("richmond-kingston-6-step", 6),
        ("pan-cheshire-escalation", 4),
    ] {
        let text = policy(&cp, &["show", ladder]);
        assert!(
            text.contains(&format!("{stages} stages, 0 national, {stages} local")),
            "{text}"
        );
        assert!(text.contains(&format!("stage {stages}")), "{text}");
        assert!(
            text.contains("until resolved"),
            "the last stage says who is told after it"
        );
    }
    let rk = policy(&cp, &["show", "richmond-kingston-6-step"]);
    assert!(
        rk.contains("of the disagreement"),
        "cumulative deadlines: {rk}"
    );
}

#[test]
fn diff_pairs_knowsley_with_the_national_baseline_and_shows_what_differs() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None);
    let d = policy(&cp, &["diff", "knowsley-cp-2019", "england-wt-2023"]);
    assert!(
        d.starts_with(
            "knowsley-cp-2019 and england-wt-2023: 6 in both (0 the same, 6 different), \
             32 only in knowsley-cp-2019, 1 only in england-wt-2023"
        ),
        "{d}"
    );
    let lines = cell_lines(&d);
    let row = |rule: &str| {
        let start = lines
            .iter()
            .position(|l| l.split('┆').next().unwrap().trim() == rule)
            .unwrap_or_else(|| panic!("{rule} in {d}"));
        lines[start..].join("\n")
    };
    // Knowsley acts on a referral the same working day; the nation allows one working day.
    let referral = row("referral-actioned");
    assert!(referral.contains("same working day after each referral received"));
    assert!(referral.contains("1 working day after each referral received"));
    // Knowsley counts the conference from the first enquiry only; the nation per enquiry.
    let icpc = row("icpc-within-15wd");
    assert!(
        icpc.contains("the first strategy discussion") && icpc.contains("each strategy discussion")
    );
    let only_wt = d.split("Only in england-wt-2023:").nth(1).unwrap();
    assert!(only_wt.contains("assessment-45wd"), "{only_wt}");

    // The same policy against itself: nothing differs.
    let same = policy(&cp, &["diff", "england-wt-2023", "england-wt-2023"]);
    assert!(same
        .starts_with("england-wt-2023 and england-wt-2023: 7 in both (7 the same, 0 different)"));

    // Ladders compare stage by stage.
    let ladders = policy(
        &cp,
        &[
            "diff",
            "knowsley-escalation-2019",
            "pan-cheshire-escalation",
        ],
    );
    assert!(ladders.contains("4 in both"), "{ladders}");

    // A ladder against a standards policy, or an unknown id: refused as bad input.
    for args in [
        vec![
            "policy",
            "diff",
            "knowsley-cp-2019",
            "pan-cheshire-escalation",
        ],
        vec!["policy", "show", "atlantis-2030", "--width", "100"],
    ] {
        let o = cp.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("policy") && err.contains("england-wt-2023") || err.contains("one kind"),
            "{err}"
        );
    }
}

#[test]
fn a_partnership_with_no_standards_policy_gets_the_national_baseline_per_enquiry() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None).with(
        "CPWATCH_PARTNERSHIPS__WIRRAL__DIVISION",
        "england-and-wales",
    );
    let check = cp.ok(&["check"]);
    assert!(
        check.contains("partnership wirral: no standards_policy configured: using the national baseline england-wt-2023"),
        "{check}"
    );
    assert!(
        !check.contains("partnership knowsley: no standards_policy"),
        "{check}"
    );

    // Two section 47 enquiries on one child: the baseline gives each its own conference deadline.
    let file = case_file(json!([
        {"kind": "referral_received", "at": "2026-01-05T10:00:00Z"},
        {"kind": "strategy_discussion_held", "at": "2026-01-06T10:00:00Z", "s47_initiated": true},
        {"kind": "s47_completed", "at": "2026-01-20T10:00:00Z", "icpc_required": false},
        {"kind": "strategy_discussion_held", "at": "2026-03-02T10:00:00Z", "s47_initiated": true},
        {"kind": "icpc_held", "at": "2026-03-30T10:00:00Z", "outcome": "no_plan"}
    ]))
    .replace("\"knowsley\"", "\"wirral\"");
    cp.setup(&file);
    let csv = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "timeliness",
        "--partnership",
        "wirral",
        "--at",
        "2026-06-01T00:00:00Z",
    ]);
    let row = csv
        .lines()
        .find(|l| l.starts_with("wirral,england-wt-2023,icpc-within-15wd,"))
        .unwrap_or_else(|| panic!("{csv}"));
    // The first enquiry needed no conference (cancelled); the second's, due Monday 23 March at
    // close, was held on the 30th: late by 6.71 days.
    assert_eq!(
        row, "wirral,england-wt-2023,icpc-within-15wd,WT 2023 ch.3,2,0,1,0,0,1,0.0,6.71",
        "{csv}"
    );
    assert!(
        csv.lines().all(|l| !l.starts_with("knowsley,")),
        "--partnership filters: {csv}"
    );
    let census = cp.ok(&[
        "report",
        "--format",
        "csv",
        "--table",
        "census",
        "--partnership",
        "wirral",
        "--at",
        "2026-06-01T00:00:00Z",
    ]);
    assert!(
        census.contains("wirral,icpc_within_15_working_days,"),
        "{census}"
    );
    assert!(
        census.contains(",1,0,0.0,"),
        "one conference, late: {census}"
    );
}

#[test]
fn the_scope_tag_is_validated() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let rule = |extra: &str| {
        format!(
            "id = \"local-x\"\ntitle = \"x\"\nkind = \"standards\"\n\n[[rules]]\nid = \"r1\"\nstandard = \"S1\"\n\
             title = \"t\"\n{extra}\naction = \"a\"\nanchor = {{ event = \"referral_received\" }}\n\
             deadline = \"1 working day\"\ndone_by = [{{ event = \"referral_actioned\" }}]\nresponsible = [\"team_manager\"]\n"
        )
    };
    for (extra, expect) in [
        (
            "scope = \"national\"",
            "a national rule must cite its source",
        ),
        ("scope = \"regional\"", "regional"),
    ] {
        std::fs::write(dir.path().join("local-x.toml"), rule(extra)).unwrap();
        let cp =
            Cpwatch::new(&db, None).with("CPWATCH_POLICIES__DIR", dir.path().to_str().unwrap());
        let o = cp.run(&["check"]);
        assert_eq!(o.status.code(), Some(2), "{extra}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{extra}: {err}");
    }
    // Left out, a rule is local; with a source it may be national.
    std::fs::write(dir.path().join("local-x.toml"), rule("")).unwrap();
    let cp = Cpwatch::new(&db, None).with("CPWATCH_POLICIES__DIR", dir.path().to_str().unwrap());
    let shown = policy(&cp, &["show", "local-x"]);
    assert!(shown.contains("1 rules, 0 national, 1 local"), "{shown}");
}
