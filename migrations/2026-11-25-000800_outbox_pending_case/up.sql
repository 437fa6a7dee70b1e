-- Finding a case's queued notices when the case is evaluated again (to cancel those no longer due).
CREATE INDEX outbox_pending_case ON outbox (partnership_id, case_ref) WHERE status = 'pending';
