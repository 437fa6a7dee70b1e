-- The core tables of cpwatch: who is who, what happened on each case, disputes,
-- the notification outbox (the only path to a recipient), an audit log and bank holidays.

CREATE TABLE partnerships (
    id          TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE agencies (
    partnership_id TEXT NOT NULL REFERENCES partnerships (id),
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    PRIMARY KEY (partnership_id, id)
);

CREATE TABLE people (
    partnership_id TEXT NOT NULL REFERENCES partnerships (id),
    id             TEXT NOT NULL,
    name           TEXT NOT NULL,
    email          TEXT,
    agency_id      TEXT,
    manager_id     TEXT,
    PRIMARY KEY (partnership_id, id),
    FOREIGN KEY (partnership_id, agency_id) REFERENCES agencies (partnership_id, id)
);

-- Roles an agency names (safeguarding_lead, senior_manager, ...).
CREATE TABLE agency_roles (
    partnership_id TEXT NOT NULL,
    agency_id      TEXT NOT NULL,
    role           TEXT NOT NULL,
    person_id      TEXT NOT NULL,
    PRIMARY KEY (partnership_id, agency_id, role),
    FOREIGN KEY (partnership_id, agency_id) REFERENCES agencies (partnership_id, id),
    FOREIGN KEY (partnership_id, person_id) REFERENCES people (partnership_id, id)
);

-- Roles the partnership names (partnership_chair, partnership_manager, ...).
CREATE TABLE partnership_roles (
    partnership_id TEXT NOT NULL REFERENCES partnerships (id),
    role           TEXT NOT NULL,
    person_id      TEXT NOT NULL,
    PRIMARY KEY (partnership_id, role),
    FOREIGN KEY (partnership_id, person_id) REFERENCES people (partnership_id, id)
);

CREATE TABLE cases (
    id                  BIGSERIAL PRIMARY KEY,
    partnership_id      TEXT NOT NULL REFERENCES partnerships (id),
    ref                 TEXT NOT NULL,
    unborn              BOOLEAN NOT NULL DEFAULT false,
    visit_interval_days INTEGER,
    closed_at           TIMESTAMPTZ,
    -- The next instant at which evaluating this case can change anything; NULL = nothing pending.
    -- Writers of events set it to -infinity so the next pass looks at the case.
    next_check_at       TIMESTAMPTZ DEFAULT '-infinity',
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (partnership_id, ref)
);
CREATE INDEX cases_next_check ON cases (next_check_at, id) WHERE next_check_at IS NOT NULL;

CREATE TABLE case_roles (
    case_id   BIGINT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    role      TEXT NOT NULL,
    person_id TEXT NOT NULL,
    PRIMARY KEY (case_id, role, person_id)
);

CREATE TABLE case_events (
    id          BIGSERIAL PRIMARY KEY,
    case_id     BIGINT NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ,
    data        JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The same event imported twice is one event.
    UNIQUE (case_id, kind, at, data)
);
CREATE INDEX case_events_case ON case_events (case_id, at);

CREATE TABLE disputes (
    id                 BIGSERIAL PRIMARY KEY,
    partnership_id     TEXT NOT NULL REFERENCES partnerships (id),
    ref                TEXT NOT NULL,
    case_id            BIGINT REFERENCES cases (id),
    policy             TEXT NOT NULL,
    raised_by          TEXT NOT NULL,
    respondent_person  TEXT,
    respondent_agency  TEXT,
    subject            TEXT NOT NULL DEFAULT '',
    immediate_risk     BOOLEAN NOT NULL DEFAULT false,
    opened_at          TIMESTAMPTZ NOT NULL,
    disagreement_at    TIMESTAMPTZ,
    stage              INTEGER NOT NULL DEFAULT 1,
    stage_started_at   TIMESTAMPTZ NOT NULL,
    stage_deadline     TIMESTAMPTZ,
    resolved_at        TIMESTAMPTZ,
    next_check_at      TIMESTAMPTZ DEFAULT '-infinity',
    UNIQUE (partnership_id, ref)
);
CREATE INDEX disputes_next_check ON disputes (next_check_at, id) WHERE next_check_at IS NOT NULL;

CREATE TABLE dispute_events (
    id          BIGSERIAL PRIMARY KEY,
    dispute_id  BIGINT NOT NULL REFERENCES disputes (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    stage       INTEGER,
    data        JSONB NOT NULL DEFAULT '{}',
    UNIQUE (dispute_id, kind, at, data)
);

-- Every stage a dispute entered: by hand (escalated) or by itself (timescale lapsed).
CREATE TABLE dispute_stage_history (
    id          BIGSERIAL PRIMARY KEY,
    dispute_id  BIGINT NOT NULL REFERENCES disputes (id) ON DELETE CASCADE,
    from_stage  INTEGER,
    to_stage    INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    why         TEXT NOT NULL,
    by_person   TEXT,
    UNIQUE (dispute_id, to_stage)
);

-- One row per message to one recipient. dedupe_key = subject/rule/occurrence/step/recipient.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    dedupe_key       TEXT NOT NULL UNIQUE,
    partnership_id   TEXT NOT NULL,
    kind             TEXT NOT NULL,
    rule             TEXT NOT NULL,
    case_ref         TEXT,
    dispute_ref      TEXT,
    recipient        TEXT NOT NULL,
    recipient_role   TEXT NOT NULL CHECK (recipient_role IN ('to', 'cc')),
    due_at           TIMESTAMPTZ NOT NULL,
    send_after       TIMESTAMPTZ NOT NULL,
    urgent           BOOLEAN NOT NULL DEFAULT false,
    payload          JSONB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    locked_until     TIMESTAMPTZ,
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    message_id       TEXT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (send_after, id) WHERE status = 'pending';

CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    JSONB NOT NULL DEFAULT '{}'
);

CREATE TABLE bank_holidays (
    division   TEXT NOT NULL,
    date       DATE NOT NULL,
    title      TEXT NOT NULL,
    notes      TEXT NOT NULL DEFAULT '',
    bunting    BOOLEAN NOT NULL DEFAULT false,
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (division, date)
);
