-- When rating saw the Start (its clock, not the record's): the sweep closes a
-- call whose Stop has not come this long after, so a backlog of old records
-- being caught up on is not closed early.
ALTER TABLE open_calls ADD COLUMN opened_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX open_calls_opened ON open_calls (opened_at);
