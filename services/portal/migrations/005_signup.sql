-- Whether visitors may sign up themselves in a domain.
ALTER TABLE domains ADD COLUMN open_signup boolean NOT NULL DEFAULT false;
