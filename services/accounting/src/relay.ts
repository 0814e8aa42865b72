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

/** Seqs compare as numbers (bigint as decimal strings, no leading zeros). */
const seqLess = (a: string, b: string) => a.length < b.length || (a.length === b.length && a < b);

/**
 * The bodies of outbox rows this process just committed, by seq, so the relay
 * publishes them without reading them back from accounting.records (the rows
 * themselves are still read from the outbox: order, and rows from elsewhere,
 * come from there). A body is exactly the text stored (json keeps its input).
 */
export class OutboxBodyCache {
  private readonly bodies = new Map<string, string>();

  constructor(private readonly max = 100_000) {}

  get size(): number {
    return this.bodies.size;
  }

  add(seqs: readonly string[], bodies: readonly string[]): void {
    for (let i = 0; i < seqs.length; i++) this.bodies.set(seqs[i], bodies[i]);
    // Another relay may hold the lease and publish these: keep the newest only.
    if (this.bodies.size > this.max) {
      for (const k of this.bodies.keys()) {
        if (this.bodies.size <= this.max) break;
        this.bodies.delete(k);
      }
    }
  }

  get(seq: string): string | undefined {
    return this.bodies.get(seq);
  }

  /** Forgets seqs below `seq` (the outbox holds none: they were published). */
  forgetBelow(seq: string): void {
    for (const k of this.bodies.keys()) if (seqLess(k, seq)) this.bodies.delete(k);
  }

  delete(seqs: readonly string[]): void {
    for (const s of seqs) this.bodies.delete(s);
  }
}

export function accountingOutbox(db: Queryable, topic: string, cache?: OutboxBodyCache): OutboxStore {
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
      if (cache) return fetchCached(db, topic, cache, limit);
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
      await db.query('DELETE FROM accounting.outbox WHERE seq = ANY($1::bigint[])', [seqs], {
        name: 'accounting-outbox-delete',
      });
      cache?.delete(seqs);
    },
    async release(holder) {
      await db.query('DELETE FROM accounting.relay_lease WHERE holder = $1', [holder]);
    },
  };
}

/** Outbox rows in seq order, their bodies from the cache, or from accounting.records for the others. */
async function fetchCached(
  db: Queryable,
  topic: string,
  cache: OutboxBodyCache,
  limit: number,
): Promise<OutboxRow[]> {
  const r = await db.query<{ seq: string; key: string; record_id: string }>(
    'SELECT seq, key, record_id FROM accounting.outbox ORDER BY seq LIMIT $1',
    [limit],
    { name: 'accounting-outbox-fetch' },
  );
  if (r.rows.length === 0) return [];
  cache.forgetBelow(r.rows[0].seq);
  const missing: string[] = [];
  for (const row of r.rows) if (cache.get(row.seq) === undefined) missing.push(row.record_id);
  const read = new Map<string, string>();
  if (missing.length > 0) {
    const b = await db.query<{ id: string; body: string }>(
      'SELECT id::text AS id, body::text AS body FROM accounting.records WHERE id = ANY($1::uuid[])',
      [missing],
    );
    for (const x of b.rows) read.set(x.id, x.body);
  }
  return r.rows.map((row) => {
    const value = cache.get(row.seq) ?? read.get(row.record_id);
    // Never a tombstone: a record outlives its outbox row (same statement, records kept for good).
    if (value === undefined) throw new Error(`outbox row ${row.seq}: record ${row.record_id} not found`);
    return { seq: row.seq, topic, key: row.key, value };
  });
}

/** The platform relay on the accounting outbox. */
export class OutboxRelay extends PlatformOutboxRelay {
  constructor(db: Queryable, bus: EventBus, opts: RelayOptions & { cache?: OutboxBodyCache }) {
    const { topic, onPublished, cache, ...rest } = opts;
    super(accountingOutbox(db, topic, cache), bus, {
      ...rest,
      onPublished: onPublished && ((_topic, n) => onPublished(n)),
    });
  }
}
