//! The shipped ladder files parse, and a broken one is reported with file, stage and field.

mod ladder_support;

use cpwatch::policy::ladder::{parse_ladder, Coalesce, DeadlineFrom};
use ladder_support::policy;

#[test]
fn the_four_shipped_ladders_parse() {
    let k = policy("knowsley-escalation-2019");
    assert_eq!(k.stages.len(), 4);
    assert!(k.escalate_to_last);
    assert_eq!(k.immediate_risk.start_stage, 2);
    assert_eq!(k.stage(3).unwrap().records, ["escalation_notice"]);
    let l = policy("liverpool-school-escalation");
    assert_eq!(l.stage(3).unwrap().from, DeadlineFrom::StartOfStage(2));
    let r = policy("richmond-kingston-6-step");
    assert_eq!(r.stages.len(), 6);
    assert_eq!(r.coalesce, Coalesce::Skip);
    assert_eq!(r.stage(3).unwrap().from, DeadlineFrom::Disagreement);
    assert_eq!(r.stage(6).unwrap().from, DeadlineFrom::Opened);
    assert!(r.stage(2).unwrap().deadline_is_default);
    let p = policy("pan-cheshire-escalation");
    assert_eq!(p.coalesce, Coalesce::MailOnce);
    assert!(p.family_notice.is_some());
}

#[test]
fn every_problem_names_the_file_the_stage_and_the_field() {
    let text = r#"
id = "local-ladder"
title = "t"
kind = "escalation"
[immediate_risk]
start_stage = 7
tell = ["raiser.team_boss"]
[after_last_stage]
every = "3 working days"
to = ["partnership_chair"]
[[stages]]
stage = 1
name = "one"
action = "a"
deadline = "3 working dayz"
to = ["respondent"]
[[stages]]
stage = 2
name = "two"
action = "a"
from = "stage 5"
to = ["both.line_manager", "case.nobody"]
records = ["minutes"]
outcome_confirmed_by = ["respondent.line_manager"]
"#;
    let err = parse_ladder("local.toml", text).unwrap_err().to_string();
    for want in [
        "local.toml: stage 1: deadline: unrecognised timescale \"3 working dayz\"",
        "local.toml: stage 2: deadline: no deadline, and no defaults.deadline",
        "local.toml: stage 2: from: \"stage 5\": only an earlier stage's start",
        "local.toml: stage 2: to[1]: \"nobody\" is not a role",
        "local.toml: stage 2: records[0]: \"minutes\" is not a record cpwatch keeps",
        "local.toml: stage 2: outcome_confirmed_by: set outcome.confirm_within",
        "local.toml: immediate_risk.start_stage: there is no stage 7",
        "local.toml: immediate_risk.tell[0]: \"team_boss\" is not a role",
        "local.toml: after_last_stage.every: 3 working days: the interval",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let wrong_kind = parse_ladder("x.toml", &text.replace("escalation", "standards"))
        .unwrap_err()
        .to_string();
    assert!(wrong_kind.contains("x.toml: kind:"), "{wrong_kind}");
}
