-- One row per address-of-record with all of its bindings: the registrar applies
-- a REGISTER to an AoR as a whole (RFC 3261 §10.3), so that is the unit stored.
CREATE TABLE aors (
  aor         text PRIMARY KEY,
  bindings    jsonb NOT NULL,
  -- earliest expiry among the bindings (unix seconds), for the sweeper
  next_expiry bigint NOT NULL,
  updated_at  bigint NOT NULL
);
CREATE INDEX aors_next_expiry ON aors (next_expiry);
