DROP INDEX cases_due;
ALTER TABLE cases DROP COLUMN decided_hash;
