-- Where each consumer stands in each partition of the topics it reads, written in
-- the same transaction as the CDRs, debits and open calls a batch of records
-- made: a batch redelivered after a crash (its effects committed, the bus's
-- offset not) is recognised and skipped here.
CREATE TABLE consumed_offsets (
  consumer text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  -- the offset of the next record to apply
  next_offset bigint NOT NULL,
  PRIMARY KEY (consumer, topic, partition)
);
