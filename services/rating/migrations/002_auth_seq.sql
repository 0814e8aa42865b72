-- Bumped by every change that can lower an account's available credit
-- (a reservation, a debit, an adjustment, new settings): Authorize reads
-- without a lock and writes its reservation only if this is unchanged.
ALTER TABLE accounts ADD COLUMN auth_seq bigint NOT NULL DEFAULT 0;
