-- Phones assigned to subscribers, provisioned over HTTP(S) by MAC address.
CREATE TABLE devices (
  id            uuid PRIMARY KEY,
  subscriber_id uuid NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
  vendor        text NOT NULL CHECK (vendor IN ('yealink', 'polycom', 'grandstream', 'cisco-spa', 'linphone')),
  model         text NOT NULL,
  mac           text NOT NULL UNIQUE CHECK (mac ~ '^[0-9a-f]{12}$'),
  -- SHA-256 of the device's provisioning password (HTTP Basic user = MAC, or ?token=).
  secret_hash   text NOT NULL,
  last_fetch_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_subscriber ON devices (subscriber_id);
