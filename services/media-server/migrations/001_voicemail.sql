-- Voicemail messages: the audio is a WAV file under the voicemail directory,
-- the rest is here. folder: 'new' until heard or saved, then 'saved'.
CREATE TABLE voicemail_messages (
  id          bigserial PRIMARY KEY,
  mailbox     text NOT NULL,          -- the owner's AoR without scheme, "bob@example.com"
  caller      text NOT NULL,          -- From URI of the caller
  caller_name text,
  call_id     text NOT NULL,
  received_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  file        text NOT NULL,          -- path relative to the voicemail directory
  folder      text NOT NULL DEFAULT 'new' CHECK (folder IN ('new', 'saved'))
);
CREATE INDEX voicemail_messages_mailbox ON voicemail_messages (mailbox, folder, received_at);
