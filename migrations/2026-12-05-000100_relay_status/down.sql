DROP INDEX IF EXISTS deliveries_unconfirmed;
ALTER TABLE deliveries DROP COLUMN IF EXISTS unconfirmed;
DROP TABLE IF EXISTS relay_status;
