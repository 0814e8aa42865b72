-- Rating: plans, accounts, ledger, reservations, open calls and CDRs.
-- Money is bigint micros (millionths of the currency unit).

CREATE TABLE plan_versions (
  plan_id text NOT NULL,
  effective_from timestamptz NOT NULL,
  currency text NOT NULL,
  timezone text NOT NULL DEFAULT 'UTC',
  holidays text[] NOT NULL DEFAULT '{}',
  -- [{name, days: [0..7], fromMinute, toMinute}], in match order
  periods jsonb NOT NULL DEFAULT '[]',
  actor text NOT NULL DEFAULT '',
  imported_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (plan_id, effective_from)
);

CREATE TABLE rates (
  plan_id text NOT NULL,
  effective_from timestamptz NOT NULL,
  prefix text NOT NULL, -- E.164 digits, or 'on-net'
  period text NOT NULL DEFAULT '', -- '' = any time
  name text NOT NULL DEFAULT '',
  country text NOT NULL DEFAULT '',
  connect_fee_micros bigint NOT NULL,
  price_per_minute_micros bigint NOT NULL,
  min_seconds integer NOT NULL,
  increment_first integer NOT NULL,
  increment_next integer NOT NULL,
  free_seconds integer NOT NULL,
  PRIMARY KEY (plan_id, effective_from, prefix, period),
  FOREIGN KEY (plan_id, effective_from) REFERENCES plan_versions ON DELETE CASCADE
);

-- Plans assigned to every subscriber of a domain (an account's own plan wins).
CREATE TABLE domain_plans (
  domain text PRIMARY KEY,
  plan_id text NOT NULL
);

CREATE TABLE accounts (
  account text PRIMARY KEY,
  prepaid boolean NOT NULL DEFAULT true,
  currency text NOT NULL DEFAULT 'EUR',
  -- postpaid: how far the balance may go below zero; NULL = no limit. Ignored for prepaid.
  credit_limit_micros bigint,
  plan_id text,
  blocked boolean NOT NULL DEFAULT false,
  -- the sum of the account's ledger entries, kept in the same transaction as each entry
  balance_micros bigint NOT NULL DEFAULT 0,
  low_balance_micros bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ledger (
  id bigserial PRIMARY KEY,
  account text NOT NULL REFERENCES accounts,
  kind text NOT NULL CHECK (kind IN ('topup', 'voucher', 'debit', 'adjustment', 'refund')),
  amount_micros bigint NOT NULL, -- signed: debits are negative
  cdr_id text,
  actor text NOT NULL,
  reason text NOT NULL DEFAULT '',
  idempotency_key text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX ledger_debit_once ON ledger (cdr_id) WHERE kind = 'debit';
CREATE INDEX ledger_account ON ledger (account, id);

-- Credit held by authorized calls until their CDR settles them.
CREATE TABLE reservations (
  call_id text PRIMARY KEY,
  account text NOT NULL,
  amount_micros bigint NOT NULL,
  max_seconds integer,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX reservations_account ON reservations (account);
CREATE INDEX reservations_expiry ON reservations (expires_at);

-- Answered calls whose Stop has not come yet.
CREATE TABLE open_calls (
  session_key text PRIMARY KEY,
  call_id text NOT NULL,
  cdr_id text NOT NULL,
  started_at timestamptz NOT NULL,
  start jsonb NOT NULL
);
CREATE INDEX open_calls_call_id ON open_calls (call_id);
CREATE INDEX open_calls_started ON open_calls (started_at);

-- Media quality and end of media per call, from media-events.
CREATE TABLE media_quality (
  call_id text PRIMARY KEY,
  event_type text NOT NULL,
  quality jsonb,
  media_ended_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cdrs (
  id text PRIMARY KEY,
  call_id text NOT NULL,
  account text NOT NULL,
  started_at timestamptz NOT NULL,
  answered_at timestamptz,
  ended_at timestamptz NOT NULL,
  duration_seconds integer NOT NULL,
  billable_seconds integer NOT NULL,
  disposition text NOT NULL,
  end_reason text NOT NULL,
  sip_code integer NOT NULL,
  destination text NOT NULL,
  price_micros bigint NOT NULL,
  currency text NOT NULL,
  flags text[] NOT NULL,
  -- the whole CDR as published
  cdr jsonb NOT NULL,
  published_at timestamptz
);
CREATE INDEX cdrs_account_started ON cdrs (account, started_at);
CREATE INDEX cdrs_call_id ON cdrs (call_id);
CREATE INDEX cdrs_unpublished ON cdrs (id) WHERE published_at IS NULL;
