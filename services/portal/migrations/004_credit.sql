-- Outbox channels: the event bus, and the rating service (accounts, ledger entries over gRPC);
-- each channel has its own relay lease so one stalled receiver holds up nothing else.
CREATE TABLE relay_leases (
  channel    text PRIMARY KEY,
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX outbox_topic ON outbox (topic, seq);

-- Prepaid vouchers: generated in batches, redeemed once into a subscriber's balance.
CREATE TABLE vouchers (
  id            uuid PRIMARY KEY,
  code          text NOT NULL UNIQUE,
  batch         text NOT NULL,
  amount_micros bigint NOT NULL CHECK (amount_micros > 0),
  currency      text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  redeemed_by   uuid,
  redeemed_aor  text,
  redeemed_at   timestamptz
);
CREATE INDEX vouchers_batch ON vouchers (batch);
