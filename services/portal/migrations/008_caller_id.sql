-- The DID a subscriber presents as caller ID on outgoing PSTN calls (one of its own DIDs).
ALTER TABLE portal.subscribers ADD COLUMN caller_id text;
