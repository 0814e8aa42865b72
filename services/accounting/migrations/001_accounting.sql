-- RADIUS clients (NAS) allowed to send accounting: an address or CIDR and its shared secret.
-- Rows named after their CIDR are seeded from SWITCHBOARD_ACCOUNTING_CLIENTS at start.
CREATE TABLE clients (
  name       text PRIMARY KEY,
  cidr       text NOT NULL,
  secret     text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every accepted Accounting-Request, once. The unique key is RFC 5080 §2.2.2's
-- duplicate detection (source address and port, Identifier, Request Authenticator),
-- kept for good: a retransmission arriving after a restart is still answered, not stored.
CREATE TABLE records (
  seq           bigserial NOT NULL,
  id            uuid PRIMARY KEY,
  received_at   timestamptz NOT NULL,
  client        text NOT NULL,
  src_addr      text NOT NULL,
  src_port      integer NOT NULL,
  identifier    integer NOT NULL,
  authenticator text NOT NULL,
  status_type   text NOT NULL,
  session_id    text,
  body          jsonb NOT NULL,
  UNIQUE (src_addr, src_port, identifier, authenticator)
);
CREATE INDEX records_session_id ON records (session_id);
CREATE INDEX records_received_at ON records (received_at);

-- Records not yet published to the `accounting` topic, written in the same
-- statement as the record; the relay publishes them in seq order and deletes them.
CREATE TABLE outbox (
  seq       bigserial PRIMARY KEY,
  record_id uuid NOT NULL,
  key       text NOT NULL,
  value     text NOT NULL
);

-- One relay publishes at a time (per database): the holder of this lease.
CREATE TABLE relay_lease (
  id         integer PRIMARY KEY CHECK (id = 1),
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL
);
