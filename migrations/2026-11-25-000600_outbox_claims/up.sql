-- Delivery workers name themselves on the rows they claim, so a worker whose lease ran out
-- (and whose row another worker took over) can tell, and never overwrites the other's outcome.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
-- The health check and operators count rows per status.
CREATE INDEX outbox_status ON outbox (status);
