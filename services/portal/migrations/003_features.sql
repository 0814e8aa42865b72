-- Subscribers' call features (published inside the subscriber's record) and the
-- routing entities the proxy and accounting read from the `routing` topic.

CREATE TABLE call_features (
  id            uuid PRIMARY KEY,
  subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  kind          text NOT NULL CHECK (kind IN ('forwarding', 'block', 'speed-dial')),
  -- A key unique per subscriber and kind: the forwarding condition, the speed-dial code, the direction+pattern.
  unique_key    text NOT NULL,
  data          jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (subscriber_id, kind, unique_key)
);

CREATE TABLE routing_entities (
  id         uuid PRIMARY KEY,
  kind       text NOT NULL CHECK (kind IN ('gateway', 'route', 'trusted', 'radius-client')),
  unique_key text NOT NULL,
  data       jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, unique_key)
);
