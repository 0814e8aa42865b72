-- The portal's own tables (schema `portal`): the source of truth for subscribers and
-- domains; every change also writes an outbox row in the same transaction, which the
-- relay publishes on the `subscribers` / `routing` topics.

CREATE TABLE domains (
  id         uuid PRIMARY KEY,
  domain     text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscribers (
  id                uuid PRIMARY KEY,
  username          text NOT NULL,
  domain_id         uuid NOT NULL REFERENCES domains (id),
  domain            text NOT NULL,
  ha1               text NOT NULL,
  ha1_sha256        text NOT NULL,
  -- AES-256-GCM of the SIP password, only when a secret key is configured (phone provisioning).
  sip_password_enc  text,
  web_password_hash text,
  display_name      text,
  email             text,
  rate_plan         text,
  privileges        jsonb NOT NULL DEFAULT '[]',
  enabled           boolean NOT NULL DEFAULT true,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (username, domain)
);
CREATE INDEX subscribers_domain ON subscribers (domain_id);

-- Aliases and DIDs: further AoRs that reach a subscriber.
CREATE TABLE aliases (
  id            uuid PRIMARY KEY,
  subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  kind          text NOT NULL CHECK (kind IN ('alias', 'did')),
  username      text NOT NULL,
  domain        text NOT NULL,
  aor           text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX aliases_subscriber ON aliases (subscriber_id);

-- API tokens: only a SHA-256 of the token is kept.
CREATE TABLE api_tokens (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  role        text NOT NULL CHECK (role IN ('admin')),
  token_hash  text NOT NULL UNIQUE,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every administrative change: who, what, when.
CREATE TABLE audit_log (
  seq       bigserial PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT now(),
  actor     text NOT NULL,
  action    text NOT NULL,
  entity    text NOT NULL,
  entity_id text,
  detail    jsonb
);

-- Records to publish, written in the transaction of the change they describe.
CREATE TABLE outbox (
  seq   bigserial PRIMARY KEY,
  topic text NOT NULL,
  key   text NOT NULL,
  value text
);

CREATE TABLE relay_lease (
  id         integer PRIMARY KEY CHECK (id = 1),
  holder     text NOT NULL,
  expires_at timestamptz NOT NULL
);
