-- Only keyed ledger entries are indexed by their idempotency key: debits carry none
-- (their CDR id is their key, ledger_debit_once), and the unique constraint put a
-- NULL entry in its index for every debit. ON CONFLICT DO NOTHING (adjust) still
-- skips an entry whose key was applied before.
ALTER TABLE ledger DROP CONSTRAINT ledger_idempotency_key_key;
CREATE UNIQUE INDEX ledger_idempotency_key ON ledger (idempotency_key) WHERE idempotency_key IS NOT NULL;
