-- The CDR outbox as its own small table: one row per transaction that stored or
-- changed CDRs (the ids), deleted once they are published. Marking each CDR
-- published with an UPDATE rewrote the row and every index of rating.cdrs.
CREATE TABLE cdr_outbox (
  seq bigserial PRIMARY KEY,
  ids text[] NOT NULL
);
INSERT INTO cdr_outbox (ids)
  SELECT array_agg(id ORDER BY id) FROM cdrs WHERE published_at IS NULL HAVING count(*) > 0;
DROP INDEX cdrs_unpublished;
ALTER TABLE cdrs DROP COLUMN published_at;
