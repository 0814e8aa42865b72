-- The record's body as text: the writer only ever stores the JSON.stringify of a record, and
-- validating it again as json cost PostgreSQL about 4 of its ~22 µs of CPU per record
-- (json_lex; bench/RESULTS.md, RADIUS accounting). Read it as JSON with a cast:
--   SELECT body::json->>'userName' FROM accounting.records WHERE session_id = '...';
-- (This rewrites the table once.)
ALTER TABLE records ALTER COLUMN body TYPE text;
