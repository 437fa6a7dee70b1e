-- Records the escalation policies demand (Knowsley escalation notice, LSCB report form, the
-- Liverpool summary logs, the Pan-Cheshire step-4 record) and notes cpwatch keeps (late raising,
-- a stage passed over), one per (dispute, kind, stage); and the stage a dispute was resolved at.
CREATE TABLE dispute_records (
    id          BIGSERIAL PRIMARY KEY,
    dispute_id  BIGINT NOT NULL REFERENCES disputes (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    stage       INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    detail      JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (dispute_id, kind, stage)
);
CREATE INDEX dispute_records_kind ON dispute_records (kind, at);

ALTER TABLE disputes ADD COLUMN resolved_stage INTEGER;
