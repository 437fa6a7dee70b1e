-- The notice as a record of its own. Until now each outbox row (one per recipient) carried the
-- whole notice as unversioned JSON. Now a notice is one row, with a versioned payload holding
-- exactly what the mail needs, and each recipient has one delivery row that refers to it.
-- Queued (and past) rows are carried over; their old payloads stay as they were (no "v" field)
-- and are read as version 0.

CREATE TABLE notices (
    id              BIGSERIAL PRIMARY KEY,
    -- subject/rule/occurrence/step: unique per notice (see evaluate::NoticeKey).
    key             TEXT NOT NULL UNIQUE,
    partnership_id  TEXT NOT NULL,
    kind            TEXT NOT NULL,
    rule            TEXT NOT NULL,
    case_ref        TEXT,
    dispute_ref     TEXT,
    occurrence      TEXT NOT NULL,
    step            TEXT NOT NULL,
    due_at          TIMESTAMPTZ NOT NULL,
    trigger_at      TIMESTAMPTZ NOT NULL,
    send_after      TIMESTAMPTZ NOT NULL,
    urgent          BOOLEAN NOT NULL DEFAULT false,
    -- {"v": 1, "title", "standard", "action", "letter", "to": [...], "cc": [...]}
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Withdrawing a case's queued notices when the case is evaluated again.
CREATE INDEX notices_case ON notices (partnership_id, case_ref) WHERE dispute_ref IS NULL;

-- One message to one recipient: what delivery claims, sends and marks.
CREATE TABLE deliveries (
    id               BIGSERIAL PRIMARY KEY,
    notice_id        BIGINT NOT NULL REFERENCES notices (id) ON DELETE CASCADE,
    recipient        TEXT NOT NULL,
    position         TEXT NOT NULL CHECK (position IN ('to', 'cc')),
    -- The notice's, copied so the claim reads one index.
    send_after       TIMESTAMPTZ NOT NULL,
    urgent           BOOLEAN NOT NULL DEFAULT false,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    locked_until     TIMESTAMPTZ,
    claimed_by       TEXT,
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    message_id       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (notice_id, recipient)
);
-- The claim's order. Withdrawal finds a notice's deliveries by the unique (notice_id, recipient)
-- index; status counts read the table (narrow rows), so no index of their own.
CREATE INDEX deliveries_pending ON deliveries (send_after, id) WHERE status = 'pending';

-- Carry every outbox row over. A row's notice key is its dedupe key without "/<recipient>".
INSERT INTO notices (key, partnership_id, kind, rule, case_ref, dispute_ref, occurrence, step,
                     due_at, trigger_at, send_after, urgent, payload, created_at)
SELECT DISTINCT ON (k.key)
       k.key, o.partnership_id, o.kind, o.rule, o.case_ref, o.dispute_ref,
       coalesce(o.payload->>'occurrence', '-'), coalesce(o.payload->>'step', '-'),
       o.due_at, coalesce((o.payload->>'trigger_at')::timestamptz, o.due_at), o.send_after,
       o.urgent, o.payload, o.created_at
FROM outbox o
CROSS JOIN LATERAL (
    SELECT CASE WHEN right(o.dedupe_key, length(o.recipient) + 1) = '/' || o.recipient
                THEN left(o.dedupe_key, length(o.dedupe_key) - length(o.recipient) - 1)
                ELSE o.dedupe_key END AS key
) k
ORDER BY k.key, o.id;

INSERT INTO deliveries (id, notice_id, recipient, position, send_after, urgent, status, attempts,
                        next_attempt_at, locked_until, claimed_by, last_error, sent_at, message_id,
                        created_at)
SELECT o.id, n.id, o.recipient, o.recipient_role, o.send_after, o.urgent, o.status, o.attempts,
       o.next_attempt_at, o.locked_until, o.claimed_by, o.last_error, o.sent_at, o.message_id,
       o.created_at
FROM outbox o
JOIN notices n ON n.key = CASE WHEN right(o.dedupe_key, length(o.recipient) + 1) = '/' || o.recipient
                               THEN left(o.dedupe_key, length(o.dedupe_key) - length(o.recipient) - 1)
                               ELSE o.dedupe_key END;
SELECT setval(pg_get_serial_sequence('deliveries', 'id'), greatest((SELECT max(id) FROM deliveries), 1));

DROP TABLE outbox;

-- The outbox as operators and reports knew it: one row per message to one recipient.
CREATE VIEW outbox AS
SELECT d.id, n.key || '/' || d.recipient AS dedupe_key, n.id AS notice_id, n.partnership_id,
       n.kind, n.rule, n.case_ref, n.dispute_ref, n.occurrence, n.step, d.recipient,
       d.position AS recipient_role, n.due_at, d.send_after, d.urgent, n.payload, d.created_at,
       d.status, d.attempts, d.next_attempt_at, d.locked_until, d.last_error, d.sent_at,
       d.message_id, d.claimed_by
FROM deliveries d
JOIN notices n ON n.id = d.notice_id;
