-- Whether Access-Requests from this client must carry a Message-Authenticator
-- (the BlastRADIUS mitigation). Turn it off only for an old client that cannot
-- send one (radcli before 1.4, e.g. Kamailio's auth_radius on Debian 12) on a
-- trusted link. Accounting-Requests are unaffected (their authenticator is keyed).
ALTER TABLE clients ADD COLUMN require_message_authenticator boolean NOT NULL DEFAULT true;
