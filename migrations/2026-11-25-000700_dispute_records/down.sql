ALTER TABLE disputes DROP COLUMN resolved_stage;
DROP TABLE dispute_records;
