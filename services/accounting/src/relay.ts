/**
 * The accounting outbox for the platform's OutboxRelay: accounting.outbox rows
 * (each naming its record in accounting.records) go to the `accounting` topic in
 * seq order; the lease is accounting.relay_lease. Consumers dedupe on the record id.
 */
import type { Logger } from 'pino';
import {
  OutboxRelay as PlatformOutboxRelay,
  type EventBus,
  type OutboxRow,
  type OutboxStore,
  type Queryable,
} from '@switchboard/platform';

export interface RelayOptions {
  topic: string;
  batchSize: number;
  /** How often to look for rows when not woken (rows left by a crash, or written by another process). */
  pollMs: number;
  /** How long the lease holds without renewal (renewed once a third of it has passed). */
  leaseMs: number;
  /** After being woken by a commit, wait this long so one round publishes what the next commits add. */
  lingerMs?: number;
  logger?: Logger;
  onPublished?: (n: number) => void;
}

export function accountingOutbox(db: Queryable, topic: string): OutboxStore {
  return {
    async lease(holder, ms) {
      const r = await db.query(
        `INSERT INTO accounting.relay_lease (id, holder, expires_at)
         VALUES (1, $1, now() + make_interval(secs => $2::double precision / 1000))
         ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
         WHERE accounting.relay_lease.holder = EXCLUDED.holder OR accounting.relay_lease.expires_at < now()
         RETURNING holder`,
        [holder, ms],
      );
      return r.rowCount === 1;
    },
    async fetch(limit) {
      const r = await db.query<OutboxRow>(
        `SELECT o.seq, $2::text AS topic, o.key, r.body::text AS value
         FROM (SELECT seq, key, record_id FROM accounting.outbox ORDER BY seq LIMIT $1) o
         JOIN accounting.records r ON r.id = o.record_id
         ORDER BY o.seq`,
        [limit, topic],
      );
      return r.rows;
    },
    async remove(seqs) {
      await db.query('DELETE FROM accounting.outbox WHERE seq = ANY($1::bigint[])', [seqs]);
    },
    async release(holder) {
      await db.query('DELETE FROM accounting.relay_lease WHERE holder = $1', [holder]);
    },
  };
}

/** The platform relay on the accounting outbox. */
export class OutboxRelay extends PlatformOutboxRelay {
  constructor(db: Queryable, bus: EventBus, opts: RelayOptions) {
    const { topic, onPublished, ...rest } = opts;
    super(accountingOutbox(db, topic), bus, {
      ...rest,
      onPublished: onPublished && ((_topic, n) => onPublished(n)),
    });
  }
}
