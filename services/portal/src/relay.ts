/**
 * The portal outbox for the platform's OutboxRelay: portal.outbox rows go in seq
 * order to each row's topic, harmless to repeat on compacted topics (the later
 * value of a key wins). Rows are split in channels, each with its own lease in
 * portal.relay_leases: `bus` (every topic not starting with @) and one per
 * @receiver that is not the event bus.
 */
import type { Logger } from 'pino';
import {
  OutboxRelay as PlatformOutboxRelay,
  type EventBus,
  type OutboxRow,
  type OutboxStore,
  type Queryable,
} from '@switchboard/platform';

/** Rows whose topic starts with this go to a receiver other than the event bus. */
export const DIRECT_PREFIX = '@';

export interface RelayOptions {
  /** Which rows: `bus` (every topic not starting with @) or one @channel; each channel has its own lease. */
  channel: string;
  /** Delivers a run of rows of one topic (default: publish on the bus). */
  deliver?: (topic: string, rows: { key: string; value: string | null }[]) => Promise<void>;
  batchSize: number;
  /** How often to look when not woken (rows left by a crash, or written by another process). */
  pollMs: number;
  /** How long the lease holds without renewal. */
  leaseMs: number;
  logger?: Logger;
  onPublished?: (topic: string, n: number) => void;
}

export function portalOutbox(db: Queryable, channel: string): OutboxStore {
  return {
    async lease(holder, ms) {
      const r = await db.query(
        `INSERT INTO portal.relay_leases (channel, holder, expires_at)
         VALUES ($3, $1, now() + make_interval(secs => $2::double precision / 1000))
         ON CONFLICT (channel) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
         WHERE portal.relay_leases.holder = EXCLUDED.holder OR portal.relay_leases.expires_at < now()
         RETURNING holder`,
        [holder, ms, channel],
      );
      return r.rowCount === 1;
    },
    async fetch(limit) {
      // Each query matches a partial index that holds only rows of its kind, the bus's or the
      // direct channels' (migration 009), whatever the planner's statistics say of the outbox.
      const r =
        channel === 'bus'
          ? await db.query<OutboxRow>(
              `SELECT seq, topic, key, value FROM portal.outbox WHERE topic NOT LIKE '${DIRECT_PREFIX}%' ORDER BY seq LIMIT $1`,
              [limit],
            )
          : await db.query<OutboxRow>(
              `SELECT seq, topic, key, value FROM portal.outbox WHERE topic = $2 AND topic LIKE '${DIRECT_PREFIX}%' ORDER BY seq LIMIT $1`,
              [limit, channel],
            );
      return r.rows;
    },
    async remove(seqs) {
      await db.query('DELETE FROM portal.outbox WHERE seq = ANY($1::bigint[])', [seqs]);
    },
    async release(holder) {
      await db.query('DELETE FROM portal.relay_leases WHERE channel = $1 AND holder = $2', [channel, holder]);
    },
  };
}

/** The platform relay on one channel of the portal outbox. */
export class OutboxRelay extends PlatformOutboxRelay {
  constructor(db: Queryable, bus: EventBus, opts: RelayOptions) {
    const { channel, ...rest } = opts;
    super(portalOutbox(db, channel), bus, rest);
  }
}
