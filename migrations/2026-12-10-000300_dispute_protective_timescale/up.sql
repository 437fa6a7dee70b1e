-- A dispute's own, shorter timescale that protects the child from harm ("or a timescale that
-- protects the child from harm (whichever is less)", Knowsley escalation stages 1-3): a
-- timescale phrase such as "2 working days", checked at import.
ALTER TABLE disputes ADD COLUMN protective_timescale TEXT;
