/**
 * The accounting outbox for the platform's OutboxRelay: accounting.outbox holds one
 * row per group commit, naming the records it stored in order; the relay publishes
 * each row's records to the `accounting` topic in seq order, then that order, and
 * deletes the row once all of them are on the bus. The lease is
 * accounting.relay_lease. Consumers dedupe on the record id.
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

/** A group commit's records as the writer stored them: Kafka keys and bodies, in the outbox row's order. */
export interface CachedGroup {
  keys: string[];
  bodies: string[];
}

/**
 * The records of outbox rows this process just committed, by the row's seq, so the
 * relay publishes them without reading them back from accounting.records (the rows
 * themselves are still read from the outbox: order, and rows from elsewhere, come
 * from there). A body is exactly the text stored.
 */
export class OutboxBodyCache {
  private readonly groups = new Map<string, CachedGroup>();
  private records = 0;

  /** At most this many records are kept (another relay may hold the lease and publish them). */
  constructor(private readonly max = 100_000) {}

  /** Records held. */
  get size(): number {
    return this.records;
  }

  add(seq: string, group: CachedGroup): void {
    this.groups.set(seq, group);
    this.records += group.bodies.length;
    // Keep the newest only.
    for (const [k, g] of this.groups) {
      if (this.records <= this.max) break;
      this.groups.delete(k);
      this.records -= g.bodies.length;
    }
  }

  get(seq: string): CachedGroup | undefined {
    return this.groups.get(seq);
  }

  /** Forgets seqs below `seq` (the outbox holds none: they were published). */
  forgetBelow(seq: string): void {
    for (const [k, g] of this.groups) {
      if (!seqLess(k, seq)) continue;
      this.groups.delete(k);
      this.records -= g.bodies.length;
    }
  }

  delete(seqs: Iterable<string>): void {
    for (const s of seqs) {
      const g = this.groups.get(s);
      if (!g) continue;
      this.groups.delete(s);
      this.records -= g.bodies.length;
    }
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
    fetch: (limit) => fetchRecords(db, topic, limit, cache),
    async remove(seqs) {
      // Every record of a row carries the row's seq: each row once.
      const rows = [...new Set(seqs)];
      await db.query('DELETE FROM accounting.outbox WHERE seq = ANY($1::bigint[])', [rows], {
        name: 'accounting-outbox-delete',
      });
      cache?.delete(rows);
    },
    async release(holder) {
      await db.query('DELETE FROM accounting.relay_lease WHERE holder = $1', [holder]);
    },
  };
}

/**
 * The records of the first outbox rows, in seq order and each row's order, as OutboxRows
 * carrying their row's seq: whole rows only, as many as fit in `limit` records (at least
 * one row). Keys and bodies from the cache, or from accounting.records for rows it lacks.
 */
async function fetchRecords(
  db: Queryable,
  topic: string,
  limit: number,
  cache?: OutboxBodyCache,
): Promise<OutboxRow[]> {
  // Every row names at least one record: `limit` rows are always enough.
  const r = await db.query<{ seq: string; n: number }>(
    'SELECT seq::text AS seq, cardinality(record_ids) AS n FROM accounting.outbox ORDER BY seq LIMIT $1',
    [limit],
    { name: 'accounting-outbox-fetch' },
  );
  if (r.rows.length === 0) return [];
  cache?.forgetBelow(r.rows[0].seq);
  const rows: { seq: string; n: number }[] = [];
  let records = 0;
  for (const row of r.rows) {
    if (rows.length > 0 && records + row.n > limit) break;
    rows.push(row);
    records += row.n;
  }
  const missing: string[] = [];
  for (const row of rows) {
    const g = cache?.get(row.seq);
    if (!g || g.bodies.length !== row.n) missing.push(row.seq);
  }
  const read = new Map<string, CachedGroup>();
  if (missing.length > 0) {
    const b = await db.query<{ seq: string; key: string | null; body: string | null }>(
      `SELECT o.seq::text AS seq, coalesce(r.session_id, 'client:' || r.client) AS key, r.body::text AS body
       FROM accounting.outbox o
       CROSS JOIN LATERAL unnest(o.record_ids) WITH ORDINALITY AS u(id, n)
       LEFT JOIN accounting.records r ON r.id = u.id
       WHERE o.seq = ANY($1::bigint[])
       ORDER BY o.seq, u.n`,
      [missing],
    );
    for (const x of b.rows) {
      // Never a tombstone: a record outlives its outbox row (same statement, records kept for good).
      if (x.key === null || x.body === null) throw new Error(`outbox row ${x.seq}: a record not found`);
      let g = read.get(x.seq);
      if (!g) read.set(x.seq, (g = { keys: [], bodies: [] }));
      g.keys.push(x.key);
      g.bodies.push(x.body);
    }
  }
  const out: OutboxRow[] = [];
  for (const row of rows) {
    const g = read.get(row.seq) ?? cache?.get(row.seq);
    // Only this relay (the lease holder) deletes rows: one read a moment ago is still there.
    if (!g) throw new Error(`outbox row ${row.seq} vanished while being read`);
    for (let i = 0; i < g.bodies.length; i++)
      out.push({ seq: row.seq, topic, key: g.keys[i], value: g.bodies[i] });
  }
  return out;
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
