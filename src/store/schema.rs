//! The diesel schema, kept in step with `migrations/` by hand (tests run every query against it).
//! The `outbox` view (one row per delivery, with its notice's columns) is for operators and
//! tests; cpwatch itself reads `notices` and `deliveries`.

diesel::table! {
    partnerships (id) {
        id -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    agencies (partnership_id, id) {
        partnership_id -> Text,
        id -> Text,
        name -> Text,
    }
}

diesel::table! {
    people (partnership_id, id) {
        partnership_id -> Text,
        id -> Text,
        name -> Text,
        email -> Nullable<Text>,
        agency_id -> Nullable<Text>,
        manager_id -> Nullable<Text>,
    }
}

diesel::table! {
    agency_roles (partnership_id, agency_id, role) {
        partnership_id -> Text,
        agency_id -> Text,
        role -> Text,
        person_id -> Text,
    }
}

diesel::table! {
    partnership_roles (partnership_id, role) {
        partnership_id -> Text,
        role -> Text,
        person_id -> Text,
    }
}

diesel::table! {
    cases (id) {
        id -> Int8,
        partnership_id -> Text,
        #[sql_name = "ref"]
        reference -> Text,
        unborn -> Bool,
        visit_interval_days -> Nullable<Int4>,
        closed_at -> Nullable<Timestamptz>,
        next_check_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        decided_hash -> Nullable<Int8>,
    }
}

diesel::table! {
    case_roles (case_id, role, person_id) {
        case_id -> Int8,
        role -> Text,
        person_id -> Text,
    }
}

diesel::table! {
    case_events (id) {
        id -> Int8,
        case_id -> Int8,
        kind -> Text,
        at -> Timestamptz,
        recorded_at -> Nullable<Timestamptz>,
        data -> Jsonb,
        created_at -> Timestamptz,
        source -> Text,
        source_id -> Nullable<Text>,
    }
}

diesel::table! {
    disputes (id) {
        id -> Int8,
        partnership_id -> Text,
        #[sql_name = "ref"]
        reference -> Text,
        case_id -> Nullable<Int8>,
        policy -> Text,
        raised_by -> Text,
        respondent_person -> Nullable<Text>,
        respondent_agency -> Nullable<Text>,
        subject -> Text,
        immediate_risk -> Bool,
        opened_at -> Timestamptz,
        disagreement_at -> Nullable<Timestamptz>,
        stage -> Int4,
        stage_started_at -> Timestamptz,
        stage_deadline -> Nullable<Timestamptz>,
        resolved_at -> Nullable<Timestamptz>,
        next_check_at -> Nullable<Timestamptz>,
        protective_timescale -> Nullable<Text>,
    }
}

diesel::table! {
    dispute_events (id) {
        id -> Int8,
        dispute_id -> Int8,
        kind -> Text,
        at -> Timestamptz,
        stage -> Nullable<Int4>,
        data -> Jsonb,
        source -> Text,
        source_id -> Nullable<Text>,
    }
}

diesel::table! {
    check_requests (kind, id) {
        kind -> Text,
        id -> Int8,
        requested_at -> Timestamptz,
    }
}

diesel::table! {
    dispute_stage_history (id) {
        id -> Int8,
        dispute_id -> Int8,
        from_stage -> Nullable<Int4>,
        to_stage -> Int4,
        at -> Timestamptz,
        why -> Text,
        by_person -> Nullable<Text>,
    }
}

diesel::table! {
    notices (id) {
        id -> Int8,
        key -> Text,
        partnership_id -> Text,
        kind -> Text,
        rule -> Text,
        case_ref -> Nullable<Text>,
        dispute_ref -> Nullable<Text>,
        occurrence -> Text,
        step -> Text,
        due_at -> Timestamptz,
        trigger_at -> Timestamptz,
        send_after -> Timestamptz,
        urgent -> Bool,
        payload -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    deliveries (id) {
        id -> Int8,
        notice_id -> Int8,
        recipient -> Text,
        position -> Text,
        send_after -> Timestamptz,
        urgent -> Bool,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        locked_until -> Nullable<Timestamptz>,
        claimed_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
        message_id -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        at -> Timestamptz,
        actor -> Text,
        action -> Text,
        subject -> Text,
        detail -> Jsonb,
    }
}

diesel::table! {
    partnership_go_live (partnership_id) {
        partnership_id -> Text,
        go_live_at -> Timestamptz,
        summarised_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(case_roles -> cases (case_id));
diesel::joinable!(deliveries -> notices (notice_id));
diesel::joinable!(case_events -> cases (case_id));
diesel::allow_tables_to_appear_in_same_query!(
    cases,
    case_roles,
    case_events,
    people,
    agencies,
    agency_roles,
    partnership_roles
);
diesel::allow_tables_to_appear_in_same_query!(notices, deliveries);
