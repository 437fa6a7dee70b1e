//! Role expressions (`raiser.agency.safeguarding_lead`, `partnership_chair|partnership_vice_chair`,
//! `team_manager+conference_chair`) as a reader says them: "the raising agency's safeguarding
//! lead". Used wherever a role reaches a person's eyes (mail, data-quality notices).

/// A role expression in plain English, with its article: "the team manager", "the partnership
/// chair or the partnership vice chair", "the team manager and the conference chair".
pub fn in_words(expr: &str) -> String {
    if expr.contains('+') {
        return join(expr.split('+').map(in_words).collect(), "and");
    }
    if expr.contains('|') {
        return join(expr.split('|').map(in_words).collect(), "or");
    }
    let expr = expr.trim();
    let (owner, role) = match expr.split_once('.') {
        Some((owner @ ("raiser" | "respondent" | "both" | "case" | "event" | "agency"), rest)) => {
            (Some(owner), rest)
        }
        _ => (None, expr),
    };
    match (owner, role.split_once('.')) {
        (Some(side @ ("raiser" | "respondent" | "both")), Some(("agency", r))) => {
            format!("{} {}", agency_of(side), base(r))
        }
        (Some(side @ ("raiser" | "respondent" | "both")), _) => {
            format!("{} {}", person_of(side), base(role))
        }
        (Some("agency"), _) => format!("the agency's {}", base(role)),
        (Some("case"), _) if role == "social_worker" => "the child's social worker".into(),
        (Some("case" | "event"), _) => format!("the {}", base(role)),
        _ => match role {
            "raiser" => "the professional who raised the disagreement".into(),
            "respondent" => "the professional the disagreement is with".into(),
            "social_worker" => "the child's social worker".into(),
            r => format!("the {}", base(r)),
        },
    }
}

fn agency_of(side: &str) -> &'static str {
    match side {
        "raiser" => "the raising agency's",
        "respondent" => "the responding agency's",
        _ => "each agency's",
    }
}

fn person_of(side: &str) -> &'static str {
    match side {
        "raiser" => "the raising professional's",
        "respondent" => "the responding professional's",
        _ => "each professional's",
    }
}

/// One role's name, without an article.
fn base(role: &str) -> String {
    let words = match role {
        "team_manager" => "team manager",
        "assistant_team_manager" => "assistant team manager",
        "senior_manager" => "senior manager",
        "line_manager" => "line manager",
        "conference_chair" => "conference chair",
        "head_of_service_safeguarding" => "head of service for safeguarding",
        "legal" => "legal adviser",
        "core_group_member" => "core group member",
        "mash_team_manager" => "MASH team manager",
        "sqa_unit_manager" => "manager of the Safeguarding and Quality Assurance unit",
        "safeguarding_lead" => "safeguarding lead",
        "deputy_safeguarding_lead" => "deputy safeguarding lead",
        "lscp_representative" => "representative on the safeguarding partnership",
        "partnership_chair" => "partnership chair",
        "partnership_vice_chair" => "partnership vice chair",
        "partnership_manager" => "partnership manager",
        "business_manager" => "partnership business manager",
        "qa_subgroup_chair" => "chair of the quality assurance subgroup",
        "scr_subgroup" => "safeguarding practice review subgroup",
        "strategic_leads" => "strategic leads",
        "contact_and_referral_team" => "contact and referral team",
        "invitee" => "agency's representative at the meeting",
        "invitee_manager" => "manager of the agency's representative at the meeting",
        "admin" => "partnership's cpwatch administrator",
        "referrer" => "referrer",
        "examining_doctor" => "examining doctor",
        "social_worker" => "social worker",
        other => return other.replace(['_', '.'], " "),
    };
    words.to_owned()
}

fn join(parts: Vec<String>, word: &str) -> String {
    match parts.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn roles_read_as_plain_english() {
        for (expr, words) in [
            ("team_manager", "the team manager"),
            (
                "partnership_chair|partnership_vice_chair",
                "the partnership chair or the partnership vice chair",
            ),
            (
                "raiser.agency.safeguarding_lead",
                "the raising agency's safeguarding lead",
            ),
            (
                "respondent.line_manager",
                "the responding professional's line manager",
            ),
            (
                "invitee_manager",
                "the manager of the agency's representative at the meeting",
            ),
            ("admin", "the partnership's cpwatch administrator"),
            ("case.social_worker", "the child's social worker"),
            (
                "team_manager+conference_chair",
                "the team manager and the conference chair",
            ),
            ("event.examining_doctor", "the examining doctor"),
            ("agency.safeguarding_lead", "the agency's safeguarding lead"),
        ] {
            assert_eq!(in_words(expr), words, "{expr}");
        }
    }
}
