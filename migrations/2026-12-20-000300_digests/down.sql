-- Back to one message per notice: what a digest carried counts as sent, held deliveries are
-- released to go on their own, and the digest notices themselves are removed.
UPDATE deliveries SET status = 'sent', sent_at = coalesce(sent_at, now()) WHERE status = 'digested';
DELETE FROM notices WHERE kind = 'digest';
DROP INDEX IF EXISTS audit_log_passes;
DROP INDEX IF EXISTS deliveries_digest;
DROP INDEX IF EXISTS deliveries_held;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'cancelled'));
ALTER TABLE deliveries DROP COLUMN digest_id;
ALTER TABLE deliveries DROP COLUMN digest_at;
