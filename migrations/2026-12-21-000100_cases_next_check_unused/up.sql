-- Every reading of cases by their next check names the partnership, so it goes through
-- `cases_due` (partnership_id, next_check_at, id); this older index served no query and cost an
-- entry for every next check a pass writes (issue 17).
DROP INDEX IF EXISTS cases_next_check;
