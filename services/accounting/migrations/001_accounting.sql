-- RADIUS clients (NAS) allowed to send accounting: an address or CIDR and its shared secret.
-- Rows named after their CIDR are seeded from SWITCHBOARD_ACCOUNTING_CLIENTS at start.
CREATE TABLE clients (
  name       text PRIMARY KEY,
  cidr       text NOT NULL,
  secret     text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every accepted Accounting-Request, once. The id is derived from RFC 5080 §2.2.2's
-- duplicate-detection key (source address and port, Identifier, Request Authenticator),
-- so the primary key detects retransmissions, for good: one arriving after a restart
-- is still answered, not stored. The body is the published JSON record, kept as text
-- (json, not jsonb: stored and published as received, no conversion either way).
CREATE TABLE records (
  id            uuid PRIMARY KEY,
  received_at   timestamptz NOT NULL,
  client        text NOT NULL,
  src_addr      text NOT NULL,
  src_port      integer NOT NULL,
  identifier    integer NOT NULL,
  authenticator text NOT NULL,
  status_type   text NOT NULL,
  session_id    text,
  body          json NOT NULL
);

-- Records not yet published to the `accounting` topic, written in the same
-- statement as the record; the relay publishes them (the record's body, keyed
-- by `key`) in seq order and deletes them.
CREATE TABLE outbox (
  seq       bigserial PRIMARY KEY,
  record_id uuid NOT NULL,
  key       text NOT NULL
);

-- One relay publishes at a time (per database): the holder of this lease.
CREATE TABLE relay_lease (
  id         integer PRIMARY KEY CHECK (id = 1),
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL
);
