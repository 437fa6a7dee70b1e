-- Digests: a person who opts in receives one message each working morning carrying their
-- reminders and "due today" notices, instead of one message each.
--
-- digest_at: a held delivery waits (unclaimable) until this instant, when the digest step
-- carries it in that morning's digest. digest_id: the digest notice that carried it (its status
-- is then 'digested': sent by that digest, never on its own).
ALTER TABLE deliveries ADD COLUMN digest_at TIMESTAMPTZ;
ALTER TABLE deliveries ADD COLUMN digest_id BIGINT REFERENCES notices (id) ON DELETE SET NULL;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'cancelled', 'digested'));

-- The digest step's scan: held deliveries whose digest time has come.
CREATE INDEX deliveries_held ON deliveries (digest_at) WHERE status = 'pending' AND digest_at IS NOT NULL;
-- A digest's items, read when it is rendered.
CREATE INDEX deliveries_digest ON deliveries (digest_id) WHERE digest_id IS NOT NULL;
-- The last evaluation pass, read by the digest step (is the pass of the digest's instant done?)
-- and by `cpwatch health`.
CREATE INDEX audit_log_passes ON audit_log (at) WHERE action = 'evaluation_pass';
