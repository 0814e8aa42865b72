/**
 * The outbox relay: publishes portal.outbox rows in seq order (to each row's
 * topic) and deletes them once the bus has them. At-least-once: a crash between
 * publish and delete publishes those rows again, harmless on compacted topics
 * (the later value of a key wins). One relay per database publishes at a time,
 * the holder of the channel's lease in portal.relay_leases, so order per key holds.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus, Queryable } from '@switchboard/platform';

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

interface OutboxRow {
  seq: string;
  topic: string;
  key: string;
  value: string | null;
}

export class OutboxRelay {
  readonly holder = randomUUID();
  private stopped = false;
  private wake: (() => void) | undefined;
  private woken = false;
  private loop: Promise<void> | undefined;
  private failures = 0;
  private idleWaiters: (() => void)[] = [];

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

  /** Resolves once a round found the outbox empty after this call (tests, start-up). */
  drained(): Promise<void> {
    this.notify();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
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

  /** Takes or renews the lease; true when this relay holds it. */
  private async lease(): Promise<boolean> {
    const r = await this.db.query(
      `INSERT INTO portal.relay_leases (channel, holder, expires_at)
       VALUES ($3, $1, now() + make_interval(secs => $2::double precision / 1000))
       ON CONFLICT (channel) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE portal.relay_leases.holder = EXCLUDED.holder OR portal.relay_leases.expires_at < now()
       RETURNING holder`,
      [this.holder, this.opts.leaseMs, this.opts.channel],
    );
    return r.rowCount === 1;
  }

  /** One round: publish up to batchSize rows; returns how many were published (-1: another relay holds the lease). */
  async drainOnce(): Promise<number> {
    if (!(await this.lease())) return -1;
    const r =
      this.opts.channel === 'bus'
        ? await this.db.query<OutboxRow>(
            `SELECT seq, topic, key, value FROM portal.outbox WHERE topic NOT LIKE '${DIRECT_PREFIX}%' ORDER BY seq LIMIT $1`,
            [this.opts.batchSize],
          )
        : await this.db.query<OutboxRow>(
            'SELECT seq, topic, key, value FROM portal.outbox WHERE topic = $2 ORDER BY seq LIMIT $1',
            [this.opts.batchSize, this.opts.channel],
          );
    if (r.rows.length === 0) return 0;
    // Consecutive rows of one topic go in one publish; topics keep the rows' order.
    for (let i = 0; i < r.rows.length;) {
      const topic = r.rows[i].topic;
      let j = i;
      while (j < r.rows.length && r.rows[j].topic === topic) j++;
      const rows = r.rows.slice(i, j);
      if (this.opts.deliver) await this.opts.deliver(topic, rows);
      else {
        await this.bus.publish(
          topic,
          rows.map((row) => ({
            key: row.key,
            value: row.value,
            headers: { 'content-type': 'application/json' },
          })),
        );
      }
      this.opts.onPublished?.(topic, j - i);
      i = j;
    }
    await this.db.query('DELETE FROM portal.outbox WHERE seq = ANY($1::bigint[])', [
      r.rows.map((x) => x.seq),
    ]);
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
      if (n === 0 && !this.woken) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
      // After publishing, look again at once (more rows, or an empty outbox to report).
      if (n <= 0) await this.sleep(this.opts.pollMs);
    }
  }

  /** Stops after the round in flight (rows left are published by the next start, or another process). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    for (const w of this.idleWaiters) w();
    this.idleWaiters = [];
    await this.db
      .query('DELETE FROM portal.relay_leases WHERE channel = $1 AND holder = $2', [
        this.opts.channel,
        this.holder,
      ])
      .catch(() => undefined);
  }
}
