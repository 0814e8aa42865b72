/**
 * An in-memory replica of a compacted topic (latest value per key), so the
 * proxy answers from memory: no synchronous lookup on the call path.
 */
import { randomUUID } from 'node:crypto';
import type { EventBus, EventMessage, Subscription } from '@switchboard/platform';
import { decodeRecord } from '@switchboard/contracts';

export class Replica<T> {
  private readonly map = new Map<string, T>();
  private sub?: Subscription;
  /** Called after each change (key, new value or null when deleted, the value before). */
  onChange?: (key: string, value: T | null, prev: T | undefined) => void;

  constructor(
    private readonly topic: string,
    private readonly groupPrefix: string,
  ) {}

  /**
   * Subscribe first (from the end), then read the compacted snapshot: a message
   * published in between is seen by both and applied again in order, so the
   * replica ends at the latest value either way.
   */
  async start(bus: EventBus): Promise<void> {
    await bus.ensureTopic(this.topic, { compacted: true });
    // Batches: applying a message is a map update, so the offset commit is what a message would
    // cost; one commit per batch (the embedded log's rounds, Kafka's eachBatch) instead of one each.
    this.sub = await bus.subscribeBatch({
      topic: this.topic,
      // Every process keeps its own full replica: a group of its own.
      group: `${this.groupPrefix}-${randomUUID()}`,
      fromBeginning: false,
      handler: async (msgs) => {
        for (const m of msgs) this.apply(m);
      },
    });
    for (const m of (await bus.readCompacted(this.topic)).values()) this.apply(m);
  }

  apply(m: Pick<EventMessage, 'key' | 'value'>): void {
    const v = decodeRecord<T>(m.value);
    const prev = this.map.get(m.key);
    if (v === null) this.map.delete(m.key);
    else this.map.set(m.key, v);
    this.onChange?.(m.key, v, prev);
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
