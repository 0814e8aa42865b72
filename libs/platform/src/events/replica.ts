/**
 * An in-memory replica of a compacted topic of JSON records (latest value per key), so a
 * service answers from memory: no synchronous lookup on a request's path (the SIP proxy's
 * subscribers, location and routing; the accounting service's subscribers for RADIUS digest).
 */
import { randomUUID } from 'node:crypto';
import { nextTurn } from '../service';
import type { EventBus, EventMessage, Subscription } from './types';

/** Snapshot records applied between two turns of the event loop at start. */
const SNAPSHOT_SLICE = 5000;

export class Replica<T> {
  private readonly map = new Map<string, T>();
  private sub?: Subscription;
  /** when()'s waiters, by key. */
  private readonly waiters = new Map<string, Set<() => void>>();
  /** Called after each change (key, new value or null when deleted, the value before). */
  onChange?: (key: string, value: T | null, prev: T | undefined) => void;
  /** Called for a value that is not JSON; the key keeps its value. */
  onMalformed?: (key: string, err: unknown) => void;

  constructor(
    readonly topic: string,
    private readonly groupPrefix: string,
  ) {}

  /**
   * Subscribe first (from the end), then read the compacted snapshot and apply it, then what
   * the subscription delivered meanwhile, in order: a message published in between is in both
   * and applied again after the snapshot, so the replica ends at the latest value either way.
   * The snapshot goes in slices with a turn of the event loop between them: 100,000 records
   * take most of a second, and the services already started in this process go on meanwhile.
   */
  async start(bus: EventBus): Promise<void> {
    await bus.ensureTopic(this.topic, { compacted: true });
    let meanwhile: Pick<EventMessage, 'key' | 'value'>[] | undefined = [];
    // Batches: applying a message is a map update (the embedded log's rounds, Kafka's eachBatch).
    this.sub = await bus.subscribeBatch({
      topic: this.topic,
      // Every process keeps its own full replica: a group of its own, started afresh each time
      // from the snapshot below, so its position is never stored (no offset commit per batch).
      group: `${this.groupPrefix}-${randomUUID()}`,
      fromBeginning: false,
      commitOffsets: false,
      handler: async (msgs) => {
        if (meanwhile) meanwhile.push(...msgs);
        else for (const m of msgs) this.apply(m);
      },
    });
    let n = 0;
    for (const m of (await bus.readCompacted(this.topic)).values()) {
      this.apply(m);
      if (++n % SNAPSHOT_SLICE === 0) await nextTurn();
    }
    for (const m of meanwhile) this.apply(m);
    meanwhile = undefined;
  }

  apply(m: Pick<EventMessage, 'key' | 'value'>): void {
    let v: T | null;
    try {
      v = m.value === null ? null : (JSON.parse(m.value.toString('utf8')) as T);
    } catch (err) {
      this.onMalformed?.(m.key, err);
      return;
    }
    const prev = this.map.get(m.key);
    if (v === null) this.map.delete(m.key);
    else this.map.set(m.key, v);
    this.onChange?.(m.key, v, prev);
    const w = this.waiters.get(m.key);
    if (w) for (const check of [...w]) check();
  }

  /**
   * Resolves true once the key's value (undefined when absent) satisfies `holds`, at once if
   * it does already; false when it still does not after `timeoutMs`.
   */
  when(key: string, holds: (value: T | undefined) => boolean, timeoutMs: number): Promise<boolean> {
    if (holds(this.map.get(key))) return Promise.resolve(true);
    return new Promise((resolve) => {
      let set = this.waiters.get(key);
      if (!set) this.waiters.set(key, (set = new Set()));
      const done = (ok: boolean) => {
        clearTimeout(timer);
        set.delete(check);
        if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
        resolve(ok);
      };
      const check = () => {
        if (holds(this.map.get(key))) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      set.add(check);
    });
  }

  get(key: string): T | undefined {
    return this.map.get(key);
  }

  get size(): number {
    return this.map.size;
  }

  values(): IterableIterator<T> {
    return this.map.values();
  }

  async stop(): Promise<void> {
    await this.sub?.close();
  }
}
