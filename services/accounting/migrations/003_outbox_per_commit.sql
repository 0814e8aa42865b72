-- One outbox row per group commit instead of one per record: the ids of the records it
-- stored, in the order they go out (each keyed as before, by its session_id or
-- 'client:' || client). The relay publishes a row's records in that order and deletes
-- the row: one index entry, one insert and one delete per commit rather than per record
-- (and as much less to vacuum).
-- Rows waiting at the upgrade become one row, in their order.
ALTER TABLE outbox RENAME TO outbox_per_record;
ALTER SEQUENCE outbox_seq_seq RENAME TO outbox_per_record_seq_seq;
ALTER INDEX outbox_pkey RENAME TO outbox_per_record_pkey;

CREATE TABLE outbox (
  seq        bigserial PRIMARY KEY,
  record_ids uuid[] NOT NULL CHECK (cardinality(record_ids) > 0)
);

INSERT INTO outbox (record_ids)
SELECT array_agg(record_id ORDER BY seq)
FROM outbox_per_record
HAVING count(*) > 0;

DROP TABLE outbox_per_record;
