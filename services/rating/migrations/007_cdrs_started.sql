-- Every account's CDRs in the order they started, for the administrators' call search
-- (ListCdrs without an account): a page is read from here, not sorted from the whole table.
-- (Built once, with writes to cdrs waiting meanwhile: about a second a million CDRs.)
CREATE INDEX cdrs_started ON cdrs (started_at, id);
