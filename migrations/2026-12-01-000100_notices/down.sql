-- Back to one outbox row per recipient carrying the whole notice. Payloads written as version 1
-- are rebuilt into the old shape from the notice's columns.
DROP VIEW outbox;

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
    message_id       TEXT NOT NULL,
    claimed_by       TEXT
);
CREATE INDEX outbox_pending ON outbox (send_after, id) WHERE status = 'pending';
CREATE INDEX outbox_status ON outbox (status);
CREATE INDEX outbox_pending_case ON outbox (partnership_id, case_ref) WHERE status = 'pending';

INSERT INTO outbox (id, dedupe_key, partnership_id, kind, rule, case_ref, dispute_ref, recipient,
                    recipient_role, due_at, send_after, urgent, payload, created_at, status,
                    attempts, next_attempt_at, locked_until, last_error, sent_at, message_id,
                    claimed_by)
SELECT d.id, n.key || '/' || d.recipient, n.partnership_id, n.kind, n.rule, n.case_ref,
       n.dispute_ref, d.recipient, d.position, n.due_at, d.send_after, d.urgent,
       CASE WHEN n.payload ? 'v' THEN
           (n.payload - 'v') || jsonb_build_object(
               'key', n.key, 'kind', n.kind, 'rule', n.rule, 'partnership', n.partnership_id,
               'case', n.case_ref, 'dispute', n.dispute_ref, 'occurrence', n.occurrence,
               'step', n.step,
               'due', to_char(n.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'trigger_at', to_char(n.trigger_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'send_after', to_char(n.send_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'urgent', n.urgent)
       ELSE n.payload END,
       d.created_at, d.status, d.attempts, d.next_attempt_at, d.locked_until, d.last_error,
       d.sent_at, d.message_id, d.claimed_by
FROM deliveries d JOIN notices n ON n.id = d.notice_id;
SELECT setval(pg_get_serial_sequence('outbox', 'id'), greatest((SELECT max(id) FROM outbox), 1));

DROP TABLE deliveries;
DROP TABLE notices;
