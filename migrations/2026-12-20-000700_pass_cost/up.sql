-- Evaluation passes that cost what changed (issue 17).
--
-- 1. What a case's last writing pass decided, as one hash of its notice keys and recipients
--    (`store::cases::decided_hash`): a pass that decides the same again for the case writes
--    nothing for it (no notices sent to PostgreSQL only to be dropped as already queued, no
--    withdrawal, no next-check update when that is unchanged too). NULL: not known, write all.
ALTER TABLE cases ADD COLUMN decided_hash BIGINT;

-- 2. What is due, per partnership: the idle pass's probe (the earliest next check of the
--    partnership's open cases) reads the first entry of this index whatever the planner's
--    statistics say, and the hourly pass collects the due cases from it.
CREATE INDEX cases_due ON cases (partnership_id, next_check_at, id)
    WHERE closed_at IS NULL AND next_check_at IS NOT NULL;
