-- Web sign-in: administrators' web accounts, sessions (cookie), and login lockout.

CREATE TABLE web_users (
  id            uuid PRIMARY KEY,
  username      text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  role          text NOT NULL CHECK (role IN ('admin')),
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- A session is found by the SHA-256 of its cookie value; the cookie itself is never stored.
CREATE TABLE sessions (
  id_hash    text PRIMARY KEY,
  role       text NOT NULL CHECK (role IN ('admin', 'subscriber')),
  subject    uuid NOT NULL,
  actor      text NOT NULL,
  name       text NOT NULL,
  csrf       text NOT NULL,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_subject ON sessions (subject);

CREATE TABLE login_failures (
  login        text PRIMARY KEY,
  failures     integer NOT NULL,
  locked_until timestamptz
);
