-- The embedded event log: one row per message, per-topic dense offsets, committed
-- offsets per (group, topic, partition) with a lease naming the member that consumes.
CREATE TABLE topics (
  name text PRIMARY KEY,
  compacted boolean NOT NULL DEFAULT false,
  -- The offset the next published message gets; publishing locks this row, so
  -- offsets are handed out in commit order.
  next_offset bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
  topic text NOT NULL,
  partition integer NOT NULL DEFAULT 0,
  "offset" bigint NOT NULL,
  key text NOT NULL,
  value bytea,
  headers jsonb NOT NULL DEFAULT '{}',
  ts bigint NOT NULL,
  PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX events_latest_by_key ON events (topic, key, "offset" DESC);

CREATE TABLE consumer_offsets (
  group_id text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL DEFAULT 0,
  -- The next offset to deliver (Kafka's committed offset).
  committed_offset bigint NOT NULL,
  owner text,
  lease_until timestamptz,
  PRIMARY KEY (group_id, topic, partition)
);
