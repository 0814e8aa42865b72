/**
 * Durable bindings with group commit: writes queued within one tick (or up to
 * a batch size) go to the database in one transaction, so registrations per
 * second are not bounded by one round trip each. A caller's promise resolves
 * only once its write is committed.
 *
 * Batches start at most once per `minIntervalMs`: a write that comes after a
 * quiet spell is committed at once, while under load the writes of the
 * interval share one batch. A batch costs a handful of statements whatever its
 * size (the commit, the `location` publish, every replica's read of it), so
 * without the bound a faster batch means smaller batches and more statements
 * per binding, not more bindings per second.
 */
import type { Db } from '@switchboard/platform';
import type { Binding } from './bindings';

/** AoRs read per query at start. */
const LOAD_PAGE = 2000;

interface Pending {
  aor: string;
  bindings: Binding[];
  done: (err?: Error) => void;
}

export interface BindingStore {
  loadAll(): Promise<Map<string, Binding[]>>;
  /** Persist the full binding set of an AoR (empty deletes the row); resolves when committed. */
  save(aor: string, bindings: Binding[]): Promise<void>;
  flush(): Promise<void>;
}

export interface BindingStoreOptions {
  maxBatch?: number;
  /** Called after each committed batch with the latest bindings per AoR (the registrar publishes them); a save resolves after it. */
  afterCommit?: (latest: Map<string, Binding[]>) => Promise<void>;
  onBatch?: (size: number) => void;
  /** Shortest time between the starts of two batches (ms); 0: the next tick. */
  minIntervalMs?: number;
  /** The clock and the wait for the interval (default: Date.now and setTimeout). */
  timers?: { now(): number; sleep(ms: number): Promise<void> };
}

const realTimers = {
  now: Date.now,
  sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
};

export function createBindingStore(db: Db, opts: BindingStoreOptions = {}): BindingStore {
  const maxBatch = opts.maxBatch ?? 500;
  const minInterval = opts.minIntervalMs ?? 0;
  const timers = opts.timers ?? realTimers;
  let queue: Pending[] = [];
  let running: Promise<void> | undefined;
  let lastStart = -Infinity;

  /** Resolves when the next batch may start: after the tick, and minIntervalMs after the last start. */
  function due(): Promise<void> {
    const wait = lastStart + minInterval - timers.now();
    return wait > 0 && queue.length < maxBatch
      ? timers.sleep(wait)
      : new Promise<void>((r) => setImmediate(r));
  }

  async function writeBatch(batch: Pending[]): Promise<void> {
    // The latest state per AoR wins within a batch.
    const latest = new Map<string, Binding[]>();
    for (const p of batch) latest.set(p.aor, p.bindings);
    const upserts = [...latest].filter(([, b]) => b.length > 0);
    const deletes = [...latest].filter(([, b]) => b.length === 0).map(([aor]) => aor);
    await db.transaction(async (tx) => {
      if (upserts.length) {
        await tx.query(
          `INSERT INTO registrar.aors (aor, bindings, next_expiry, updated_at)
           SELECT x.aor, x.bindings, x.next_expiry, x.updated_at
           FROM jsonb_to_recordset($1::jsonb) AS x(aor text, bindings jsonb, next_expiry bigint, updated_at bigint)
           ON CONFLICT (aor) DO UPDATE SET bindings = EXCLUDED.bindings, next_expiry = EXCLUDED.next_expiry, updated_at = EXCLUDED.updated_at`,
          [
            JSON.stringify(
              upserts.map(([aor, bindings]) => ({
                aor,
                bindings,
                next_expiry: Math.min(...bindings.map((b) => b.expires)),
                updated_at: Math.max(...bindings.map((b) => b.updatedAt)),
              })),
            ),
          ],
        );
      }
      if (deletes.length) await tx.query('DELETE FROM registrar.aors WHERE aor = ANY($1::text[])', [deletes]);
    });
    await opts.afterCommit?.(latest);
    opts.onBatch?.(batch.length);
  }

  async function drain(): Promise<void> {
    while (queue.length) {
      lastStart = timers.now();
      const batch = queue.slice(0, maxBatch);
      queue = queue.slice(batch.length);
      try {
        await writeBatch(batch);
        for (const p of batch) p.done();
      } catch (e) {
        for (const p of batch) p.done(e as Error);
      }
      if (queue.length) await due();
    }
    running = undefined;
  }

  return {
    async loadAll() {
      // In pages by AoR: 100,000 AoRs in one result cost ~110 MB more, most of it the result left
      // as garbage on embedded PGlite's thread, which is idle after start and does not collect it.
      const all = new Map<string, Binding[]>();
      for (let after = ''; ;) {
        const r = await db.query<{ aor: string; bindings: Binding[] }>(
          `SELECT aor, bindings FROM registrar.aors WHERE aor > $1 ORDER BY aor LIMIT ${LOAD_PAGE}`,
          [after],
        );
        for (const row of r.rows) all.set(row.aor, row.bindings);
        if (r.rows.length < LOAD_PAGE) return all;
        after = r.rows[r.rows.length - 1].aor;
      }
    },
    save(aor, bindings) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ aor, bindings, done: (err) => (err ? reject(err) : resolve()) });
        // Group commit: the first writer starts a drain after the tick (or once the interval
        // since the last batch is over), so every save queued until then shares one transaction.
        running ??= due().then(drain);
      });
    },
    async flush() {
      while (running) await running;
    },
  };
}
