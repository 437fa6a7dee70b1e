-- Case data in without an integration project (issue 14).
--
-- 1. Events carry who sent them (`source`) and the sender's own id (`source_id`): the same id
--    sent again with another time or field replaces the event, a retraction removes it, and a
--    census extract re-imported moves, adds and removes only its own events. Events without an
--    id keep being one event per (case, kind, instant, data).
-- 2. A row a case system writes (events, roles, cases, disputes, people) asks for its case or
--    dispute to be checked (`check_requests`) and wakes the daemon (NOTIFY cpwatch_changes). The
--    request stays until a pass takes it, so a pass that read the case before the write commits
--    cannot bury it under a later next check.

ALTER TABLE case_events ADD COLUMN source TEXT NOT NULL DEFAULT 'case-file';
ALTER TABLE case_events ADD COLUMN source_id TEXT;
ALTER TABLE case_events ALTER COLUMN source SET DEFAULT 'direct';
ALTER TABLE case_events DROP CONSTRAINT case_events_case_id_kind_at_data_key;
CREATE UNIQUE INDEX case_events_same ON case_events (case_id, kind, at, data) WHERE source_id IS NULL;
CREATE UNIQUE INDEX case_events_source_id ON case_events (case_id, source, source_id) WHERE source_id IS NOT NULL;
-- A case system writing events directly names each one.
ALTER TABLE case_events ADD CONSTRAINT case_events_direct_needs_id
    CHECK (source <> 'direct' OR source_id IS NOT NULL);

ALTER TABLE dispute_events ADD COLUMN source TEXT NOT NULL DEFAULT 'case-file';
ALTER TABLE dispute_events ADD COLUMN source_id TEXT;
ALTER TABLE dispute_events ALTER COLUMN source SET DEFAULT 'direct';
ALTER TABLE dispute_events DROP CONSTRAINT dispute_events_dispute_id_kind_at_data_key;
CREATE UNIQUE INDEX dispute_events_same ON dispute_events (dispute_id, kind, at, data) WHERE source_id IS NULL;
CREATE UNIQUE INDEX dispute_events_source_id ON dispute_events (dispute_id, source, source_id) WHERE source_id IS NOT NULL;
ALTER TABLE dispute_events ADD CONSTRAINT dispute_events_direct_needs_id
    CHECK (source <> 'direct' OR source_id IS NOT NULL);

-- A dispute written directly starts at stage 1 when it was opened, unless it says otherwise
-- (NOT NULL is checked after this trigger has filled it in).
CREATE FUNCTION cpwatch_dispute_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.stage_started_at := coalesce(NEW.stage_started_at, NEW.opened_at);
    RETURN NEW;
END $$;
CREATE TRIGGER disputes_defaults BEFORE INSERT OR UPDATE ON disputes
    FOR EACH ROW EXECUTE FUNCTION cpwatch_dispute_defaults();

CREATE TABLE check_requests (
    kind          TEXT NOT NULL CHECK (kind IN ('case', 'dispute')),
    id            BIGINT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, id)
);

-- Statement-level: one request per changed case and one notification per statement.
CREATE FUNCTION cpwatch_case_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO check_requests (kind, id)
        SELECT DISTINCT 'case', case_id FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO check_requests (kind, id)
        SELECT DISTINCT 'case', o.case_id FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM cases c WHERE c.id = o.case_id)
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM pg_notify('cpwatch_changes', 'case');
    RETURN NULL;
END $$;

CREATE FUNCTION cpwatch_dispute_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO check_requests (kind, id)
        SELECT DISTINCT 'dispute', dispute_id FROM new_rows ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO check_requests (kind, id)
        SELECT DISTINCT 'dispute', o.dispute_id FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM disputes d WHERE d.id = o.dispute_id)
        ON CONFLICT DO NOTHING;
    END IF;
    PERFORM pg_notify('cpwatch_changes', 'dispute');
    RETURN NULL;
END $$;

CREATE TRIGGER case_events_inserted AFTER INSERT ON case_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();
CREATE TRIGGER case_events_updated AFTER UPDATE ON case_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();
CREATE TRIGGER case_events_deleted AFTER DELETE ON case_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();

CREATE TRIGGER case_roles_inserted AFTER INSERT ON case_roles
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();
CREATE TRIGGER case_roles_updated AFTER UPDATE ON case_roles
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();
CREATE TRIGGER case_roles_deleted AFTER DELETE ON case_roles
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_case_rows_changed();

CREATE TRIGGER dispute_events_inserted AFTER INSERT ON dispute_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_dispute_rows_changed();
CREATE TRIGGER dispute_events_updated AFTER UPDATE ON dispute_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_dispute_rows_changed();
CREATE TRIGGER dispute_events_deleted AFTER DELETE ON dispute_events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cpwatch_dispute_rows_changed();

-- Cases and disputes: a new row, or a change to what a case system writes (not to the columns
-- cpwatch itself keeps: next checks, stages, resolutions).
CREATE FUNCTION cpwatch_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO check_requests (kind, id) VALUES (TG_ARGV[0], NEW.id) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('cpwatch_changes', TG_ARGV[0]);
    RETURN NULL;
END $$;

CREATE TRIGGER cases_inserted AFTER INSERT ON cases
    FOR EACH ROW EXECUTE FUNCTION cpwatch_row_changed('case');
CREATE TRIGGER cases_updated AFTER UPDATE ON cases FOR EACH ROW
    WHEN (OLD.unborn IS DISTINCT FROM NEW.unborn
          OR OLD.visit_interval_days IS DISTINCT FROM NEW.visit_interval_days
          OR OLD.closed_at IS DISTINCT FROM NEW.closed_at
          OR OLD.ref IS DISTINCT FROM NEW.ref)
    EXECUTE FUNCTION cpwatch_row_changed('case');

CREATE TRIGGER disputes_inserted AFTER INSERT ON disputes
    FOR EACH ROW EXECUTE FUNCTION cpwatch_row_changed('dispute');
CREATE TRIGGER disputes_updated AFTER UPDATE ON disputes FOR EACH ROW
    WHEN (OLD.subject IS DISTINCT FROM NEW.subject
          OR OLD.immediate_risk IS DISTINCT FROM NEW.immediate_risk
          OR OLD.policy IS DISTINCT FROM NEW.policy
          OR OLD.raised_by IS DISTINCT FROM NEW.raised_by
          OR OLD.respondent_person IS DISTINCT FROM NEW.respondent_person
          OR OLD.respondent_agency IS DISTINCT FROM NEW.respondent_agency
          OR OLD.opened_at IS DISTINCT FROM NEW.opened_at
          OR OLD.disagreement_at IS DISTINCT FROM NEW.disagreement_at
          OR OLD.case_id IS DISTINCT FROM NEW.case_id)
    EXECUTE FUNCTION cpwatch_row_changed('dispute');

-- A person's address, agency or manager changed: the cases where they hold a role.
CREATE FUNCTION cpwatch_person_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO check_requests (kind, id)
    SELECT DISTINCT 'case', c.id FROM case_roles r JOIN cases c ON c.id = r.case_id
    WHERE c.partnership_id = NEW.partnership_id AND r.person_id = NEW.id AND c.closed_at IS NULL
    ON CONFLICT DO NOTHING;
    PERFORM pg_notify('cpwatch_changes', 'case');
    RETURN NULL;
END $$;
CREATE TRIGGER people_updated AFTER UPDATE ON people FOR EACH ROW
    WHEN (OLD.email IS DISTINCT FROM NEW.email
          OR OLD.agency_id IS DISTINCT FROM NEW.agency_id
          OR OLD.manager_id IS DISTINCT FROM NEW.manager_id)
    EXECUTE FUNCTION cpwatch_person_changed();
