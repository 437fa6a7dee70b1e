-- What the mail relay last did, per relay (host:port), so that `cpwatch health` can say when
-- mail waits because of the relay or our credentials, and why.
CREATE TABLE relay_status (
    relay            TEXT PRIMARY KEY,
    last_success_at  TIMESTAMPTZ,
    last_failure_at  TIMESTAMPTZ,
    -- Set by a failure, cleared by the next message the relay accepts.
    failing_since    TIMESTAMPTZ,
    -- Where and why it failed ("mail relay h:25 at AUTH: refused (535 ...)"), and what to fix.
    last_failure     TEXT,
    advice           TEXT,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A delivery whose whole message went out but whose end of DATA the relay never answered:
-- recorded as sent (sending it again could deliver it twice), flagged for the operator.
ALTER TABLE deliveries ADD COLUMN unconfirmed BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX deliveries_unconfirmed ON deliveries (sent_at) WHERE unconfirmed;
