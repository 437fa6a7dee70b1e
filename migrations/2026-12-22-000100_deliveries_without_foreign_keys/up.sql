-- A delivery's notice is checked by the statement that queues it, not by a foreign key (issue 17).
--
-- Deliveries are inserted by one statement only (`store::notices::enqueue_chunk`), which takes
-- each delivery's notice id from the notice rows it inserted or found in the same statement, and
-- no notice is ever deleted. The foreign key re-checked each new delivery against its notice
-- (locking the notice row) and was a third of the cost of inserting deliveries: 0.56 s of 1.55 s
-- for the 151 929 deliveries of a 100 000-case pass. `cpwatch outbox` and the delivery workers
-- read deliveries joined to their notices, so a delivery without one would be left unsent,
-- never sent wrongly.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_notice_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_digest_id_fkey;
