-- A domain's dial plan (country code, national and international prefixes), published on the routing topic.
ALTER TABLE portal.domains ADD COLUMN dial_plan jsonb;
