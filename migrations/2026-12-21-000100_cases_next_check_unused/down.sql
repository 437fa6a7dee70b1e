CREATE INDEX cases_next_check ON cases (next_check_at, id) WHERE next_check_at IS NOT NULL;
