DROP INDEX outbox_pending_case;
