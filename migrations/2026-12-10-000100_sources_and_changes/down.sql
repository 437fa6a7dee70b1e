DROP TRIGGER people_updated ON people;
DROP FUNCTION cpwatch_person_changed();
DROP TRIGGER disputes_updated ON disputes;
DROP TRIGGER disputes_inserted ON disputes;
DROP TRIGGER cases_updated ON cases;
DROP TRIGGER cases_inserted ON cases;
DROP FUNCTION cpwatch_row_changed();
DROP TRIGGER dispute_events_deleted ON dispute_events;
DROP TRIGGER dispute_events_updated ON dispute_events;
DROP TRIGGER dispute_events_inserted ON dispute_events;
DROP TRIGGER case_roles_deleted ON case_roles;
DROP TRIGGER case_roles_updated ON case_roles;
DROP TRIGGER case_roles_inserted ON case_roles;
DROP TRIGGER case_events_deleted ON case_events;
DROP TRIGGER case_events_updated ON case_events;
DROP TRIGGER case_events_inserted ON case_events;
DROP FUNCTION cpwatch_dispute_rows_changed();
DROP FUNCTION cpwatch_case_rows_changed();
DROP TABLE check_requests;
DROP TRIGGER disputes_defaults ON disputes;
DROP FUNCTION cpwatch_dispute_defaults();
-- Events that differ only by sender id become one again.
DELETE FROM dispute_events a USING dispute_events b
 WHERE a.id > b.id AND a.dispute_id = b.dispute_id AND a.kind = b.kind AND a.at = b.at AND a.data = b.data;
ALTER TABLE dispute_events DROP CONSTRAINT dispute_events_direct_needs_id;
DROP INDEX dispute_events_source_id;
DROP INDEX dispute_events_same;
ALTER TABLE dispute_events ADD CONSTRAINT dispute_events_dispute_id_kind_at_data_key UNIQUE (dispute_id, kind, at, data);
ALTER TABLE dispute_events DROP COLUMN source_id;
ALTER TABLE dispute_events DROP COLUMN source;
DELETE FROM case_events a USING case_events b
 WHERE a.id > b.id AND a.case_id = b.case_id AND a.kind = b.kind AND a.at = b.at AND a.data = b.data;
ALTER TABLE case_events DROP CONSTRAINT case_events_direct_needs_id;
DROP INDEX case_events_source_id;
DROP INDEX case_events_same;
ALTER TABLE case_events ADD CONSTRAINT case_events_case_id_kind_at_data_key UNIQUE (case_id, kind, at, data);
ALTER TABLE case_events DROP COLUMN source_id;
ALTER TABLE case_events DROP COLUMN source;
