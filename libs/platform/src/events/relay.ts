/**
 * The transactional outbox relay, shared by the services that write events in
 * the same transaction as their state (accounting, portal). A service keeps the
 * rows in its own schema and says how to read, delete and lease them
 * (OutboxStore); the relay publishes them in seq order, consecutive rows of one
 * topic in one publish, and deletes them once the bus has them. At-least-once:
 * a crash between publish and delete publishes those rows again (consumers
 * dedupe, or the topic is compacted). One relay per store publishes at a time:
 * the holder of the store's lease, so order per key holds; another process
 * takes over when the lease expires.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { EventBus } from './types';

export interface OutboxRow {
  /** Position in the outbox (bigint as a decimal string): rows go out in this order. */
  seq: string;
  topic: string;
  key: string;
  /** null: a tombstone. */
  value: string | null;
}

/** Where a service keeps its outbox rows and the relay's lease. */
export interface OutboxStore {
  /** Takes or renews the lease for `holder` for `ms`; true when `holder` holds it now. */
  lease(holder: string, ms: number): Promise<boolean>;
  /** Up to `limit` rows in seq order. */
  fetch(limit: number): Promise<OutboxRow[]>;
  /** Deletes published rows. */
  remove(seqs: string[]): Promise<void>;
  /** Gives the lease up (at stop), so a restarted process need not wait for it to expire. */
  release(holder: string): Promise<void>;
}

export interface OutboxRelayOptions {
  batchSize: number;
  /** How often to look when not woken (rows left by a crash, or written by another process). */
  pollMs: number;
  /** How long the lease holds without renewal (renewed once a third of it has passed). */
  leaseMs: number;
  /** After being woken by a commit, wait this long so one round publishes what the next commits add. */
  lingerMs?: number;
  /** Delivers a run of rows of one topic (default: publish on the bus, content-type JSON). */
  deliver?: (topic: string, rows: { key: string; value: string | null }[]) => Promise<void>;
  logger?: Logger;
  onPublished?: (topic: string, n: number) => void;
}

export class OutboxRelay {
  readonly holder = randomUUID();
  private stopped = false;
  private wake: (() => void) | undefined;
  private woken = false;
  private loop: Promise<void> | undefined;
  private failures = 0;
  private idleWaiters: (() => void)[] = [];
  /** Local time until which the lease is surely ours (taken before the database's now()). */
  private heldUntil = 0;

  constructor(
    private readonly store: OutboxStore,
    private readonly bus: EventBus,
    private readonly opts: OutboxRelayOptions,
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  /** Something was written: look now. */
  notify(): void {
    this.woken = true;
    this.wake?.();
  }

  /** Resolves once a round found the outbox empty after this call (tests, start-up), or at stop. */
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

  /** Takes or renews the lease (when a third of it has passed); true when this relay holds it. */
  private async lease(): Promise<boolean> {
    const now = Date.now();
    if (now < this.heldUntil - (2 * this.opts.leaseMs) / 3) return true;
    const held = await this.store.lease(this.holder, this.opts.leaseMs);
    this.heldUntil = held ? now + this.opts.leaseMs : 0;
    return held;
  }

  /** One round: publishes up to batchSize rows; how many (-1: another relay holds the lease). */
  async drainOnce(): Promise<number> {
    if (!(await this.lease())) return -1;
    const rows = await this.store.fetch(this.opts.batchSize);
    if (rows.length === 0) return 0;
    // Consecutive rows of one topic go in one publish; topics keep the rows' order.
    for (let i = 0; i < rows.length;) {
      const topic = rows[i].topic;
      let j = i;
      while (j < rows.length && rows[j].topic === topic) j++;
      const run = rows.slice(i, j).map((r) => ({ key: r.key, value: r.value }));
      if (this.opts.deliver) await this.opts.deliver(topic, run);
      else
        await this.bus.publish(
          topic,
          run.map((r) => ({ ...r, headers: { 'content-type': 'application/json' } })),
        );
      this.opts.onPublished?.(topic, j - i);
      i = j;
    }
    await this.store.remove(rows.map((r) => r.seq));
    return rows.length;
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
        this.heldUntil = 0; // look at the lease again: a slow round may have outlived it
        this.opts.logger?.warn({ err, failures: this.failures }, 'outbox relay: publish failed; retrying');
        await this.sleep(Math.min(100 * 2 ** Math.min(this.failures, 6), 5000));
        continue;
      }
      if (n === 0 && !this.woken) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
      // A full round looks again at once, and so does one someone waits on to see the outbox
      // empty; otherwise wait for a wake-up or the poll.
      if (n <= 0 || (n < this.opts.batchSize && this.idleWaiters.length === 0)) {
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
    for (const w of this.idleWaiters) w();
    this.idleWaiters = [];
    this.heldUntil = 0;
    await this.store.release(this.holder).catch(() => undefined);
  }
}
