-- The relays read the outbox in seq order, the bus channel its topics and a
-- direct channel (@rating) its own, each from an index that holds only rows of
-- its kind. With the primary key and (topic, seq) for every row, the planner
-- went by statistics taken while the outbox held other rows (or none): it read
-- the whole table and sorted it for every batch. The 100,000 rows queued at a
-- start-up then took tens of seconds to go out instead of a few.
DROP INDEX outbox_topic;
CREATE INDEX outbox_bus ON outbox (seq) WHERE topic NOT LIKE '@%';
CREATE INDEX outbox_direct ON outbox (topic, seq) WHERE topic LIKE '@%';
