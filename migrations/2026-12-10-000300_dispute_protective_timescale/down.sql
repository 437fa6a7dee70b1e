ALTER TABLE disputes DROP COLUMN protective_timescale;
