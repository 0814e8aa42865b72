/**
 * An in-memory replica of the compacted `subscribers` topic (owner: portal), for
 * digest authentication on 1812: the latest record per AoR, no lookup per request.
 */
import { randomUUID } from 'node:crypto';
import type { EventBus, EventMessage, Subscription } from '@switchboard/platform';
import { TOPICS, decodeRecord, type SubscriberRecord } from '@switchboard/contracts';

export class SubscriberReplica {
  private readonly byAor = new Map<string, SubscriberRecord>();
  private sub?: Subscription;

  /** Subscribe from the end first, then read the snapshot: a message in between is applied twice, in order. */
  async start(bus: EventBus, topic: string = TOPICS.subscribers): Promise<void> {
    await bus.ensureTopic(topic, { compacted: true });
    this.sub = await bus.subscribe({
      topic,
      group: `accounting-subscribers-${randomUUID()}`,
      fromBeginning: false,
      // a group of this process's own, started afresh each time: no offset to store
      commitOffsets: false,
      handler: async (m) => this.apply(m),
    });
    for (const m of (await bus.readCompacted(topic)).values()) this.apply(m);
  }

  apply(m: Pick<EventMessage, 'key' | 'value'>): void {
    let v: SubscriberRecord | null;
    try {
      v = decodeRecord<SubscriberRecord>(m.value);
    } catch {
      return;
    }
    if (v === null) this.byAor.delete(m.key);
    else this.byAor.set(m.key, v);
  }

  /** The subscriber for username@realm (AoR sip:username@realm). */
  lookup(username: string, realm: string): SubscriberRecord | undefined {
    return this.byAor.get(`sip:${username}@${realm}`);
  }

  get size(): number {
    return this.byAor.size;
  }

  async stop(): Promise<void> {
    await this.sub?.close();
  }
}
