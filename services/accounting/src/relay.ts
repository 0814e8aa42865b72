/**
 * The outbox relay: publishes accounting.outbox rows to the `accounting` topic
 * in seq order and deletes them once the bus has them (at-least-once: a crash
 * between publish and delete publishes those rows again; consumers dedupe on
 * the record id). One relay per database publishes at a time: the holder of
 * the lease in accounting.relay_lease; another process takes over when it expires.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus, Queryable } from '@switchboard/platform';

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

interface OutboxRow {
  seq: string;
  key: string;
  value: string;
}

export class OutboxRelay {
  readonly holder = randomUUID();
  private stopped = false;
  private wake: (() => void) | undefined;
  private woken = false;
  private loop: Promise<void> | undefined;
  private failures = 0;
  /** Local time until which the lease is surely ours (taken before the database's now()). */
  private heldUntil = 0;

  constructor(
    private readonly db: Queryable,
    private readonly bus: EventBus,
    private readonly opts: RelayOptions,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Something was written: look now. */
  notify(): void {
    this.woken = true;
    this.wake?.();
  }

  private async sleep(ms: number): Promise<void> {
    if (this.woken || this.stopped) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
    this.wake = undefined;
  }

  /** Takes or renews the lease (when a third of it has passed); true when this relay holds it. */
  private async lease(): Promise<boolean> {
    const now = Date.now();
    if (now < this.heldUntil - (2 * this.opts.leaseMs) / 3) return true;
    const r = await this.db.query(
      `INSERT INTO accounting.relay_lease (id, holder, expires_at)
       VALUES (1, $1, now() + make_interval(secs => $2::double precision / 1000))
       ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE accounting.relay_lease.holder = EXCLUDED.holder OR accounting.relay_lease.expires_at < now()
       RETURNING holder`,
      [this.holder, this.opts.leaseMs],
    );
    this.heldUntil = r.rowCount === 1 ? now + this.opts.leaseMs : 0;
    return r.rowCount === 1;
  }

  /** One round: publish up to batchSize rows; returns how many were published. */
  async drainOnce(): Promise<number> {
    if (!(await this.lease())) return 0;
    const r = await this.db.query<OutboxRow>(
      `SELECT o.seq, o.key, r.body::text AS value
       FROM (SELECT seq, key, record_id FROM accounting.outbox ORDER BY seq LIMIT $1) o
       JOIN accounting.records r ON r.id = o.record_id
       ORDER BY o.seq`,
      [this.opts.batchSize],
    );
    if (r.rows.length === 0) return 0;
    await this.bus.publish(
      this.opts.topic,
      r.rows.map((row) => ({
        key: row.key,
        value: row.value,
        headers: { 'content-type': 'application/json' },
      })),
    );
    await this.db.query('DELETE FROM accounting.outbox WHERE seq = ANY($1::bigint[])', [
      r.rows.map((x) => x.seq),
    ]);
    this.opts.onPublished?.(r.rows.length);
    return r.rows.length;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      this.woken = false;
      let n = 0;
      try {
        n = await this.drainOnce();
        this.failures = 0;
      } catch (err) {
        this.failures++;
        this.opts.logger?.warn({ err, failures: this.failures }, 'outbox relay: publish failed; retrying');
        await this.sleep(Math.min(100 * 2 ** Math.min(this.failures, 6), 5000));
        continue;
      }
      if (n < this.opts.batchSize) {
        await this.sleep(this.opts.pollMs);
        if (this.woken && !this.stopped && this.opts.lingerMs)
          await new Promise((r) => setTimeout(r, this.opts.lingerMs));
      }
    }
  }

  /** Stops after the round in flight (rows left are published by the next start, or another process). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    this.heldUntil = 0;
    // Give the lease up so a restarted process does not wait for it to expire.
    await this.db
      .query('DELETE FROM accounting.relay_lease WHERE holder = $1', [this.holder])
      .catch(() => undefined);
  }
}
