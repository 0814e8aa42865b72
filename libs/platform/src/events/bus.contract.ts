/**
 * The contract every EventBus adapter keeps, as one suite taking a factory. Every test
 * uses its own topics and groups (uniqueName), so suites can share a broker or database.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { uniqueName, until as waitUntil } from '../testing';
import type { ConsumerLag, EventBus, EventMessage, LagHook } from './types';

export interface BusContractTarget {
  open(hooks: { onLag?: LagHook }): Promise<EventBus>;
  /** Removes the topics the suite made, after it. */
  dropTopics?(topics: string[]): Promise<void>;
}

/** until() of the testing helpers, 20 s by default (a Kafka group's join and rebalance). */
export const until = (cond: () => boolean, what: string, ms = 20_000): Promise<void> =>
  waitUntil(cond, what, ms);

const text = (m: EventMessage) => (m.value === null ? null : m.value.toString('utf8'));

export function eventBusContract(label: string, target: BusContractTarget): void {
  describe(`EventBus contract: ${label}`, () => {
    const topics: string[] = [];
    const topic = () => {
      const t = uniqueName('bus');
      topics.push(t);
      return t;
    };
    after(async () => {
      await target.dropTopics?.(topics);
    });
    async function withBus(
      fn: (bus: EventBus) => Promise<void>,
      hooks: { onLag?: LagHook } = {},
    ): Promise<void> {
      const bus = await target.open(hooks);
      try {
        await fn(bus);
      } finally {
        await bus.close();
      }
    }

    test('publish then subscribe delivers every field', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 1 });
        const before = Date.now();
        await bus.publish(t, [
          { key: 'k1', value: 'hello', headers: { 'x-trace': 'abc' } },
          { key: 'k2', value: Buffer.from([0, 1, 2, 255]) },
          { key: 'k3', value: null },
        ]);
        const got: EventMessage[] = [];
        const sub = await bus.subscribe({
          topic: t,
          group: uniqueName('g'),
          fromBeginning: true,
          handler: async (m) => void got.push(m),
        });
        try {
          await until(() => got.length >= 3, '3 messages');
        } finally {
          await sub.close();
        }
        assert.equal(got.length, 3);
        const [a, b, c] = got;
        assert.equal(a.topic, t);
        assert.equal(typeof a.partition, 'number');
        assert.equal(a.key, 'k1');
        assert.ok(Buffer.isBuffer(a.value));
        assert.equal(text(a), 'hello');
        assert.deepEqual(a.headers, { 'x-trace': 'abc' });
        assert.match(a.offset, /^\d+$/);
        assert.ok(BigInt(b.offset) > BigInt(a.offset));
        assert.ok(
          a.timestamp >= before - 60_000 && a.timestamp <= Date.now() + 60_000,
          `timestamp ${a.timestamp}`,
        );
        assert.deepEqual([...b.value!], [0, 1, 2, 255]);
        assert.deepEqual(b.headers, {});
        assert.equal(c.key, 'k3');
        assert.equal(c.value, null);
      }));

    test('messages with one key arrive in publish order', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 3 });
        const keys = ['alice', 'bob', 'carol', 'dave', 'erin'];
        for (let i = 0; i < 40; i += 8) {
          await bus.publish(
            t,
            Array.from({ length: 8 }, (_, j) => ({ key: keys[(i + j) % keys.length], value: String(i + j) })),
          );
        }
        const got: EventMessage[] = [];
        const sub = await bus.subscribe({
          topic: t,
          group: uniqueName('g'),
          fromBeginning: true,
          handler: async (m) => void got.push(m),
        });
        try {
          await until(() => got.length >= 40, '40 messages');
        } finally {
          await sub.close();
        }
        assert.equal(got.length, 40);
        for (const k of keys) {
          const seq = got.filter((m) => m.key === k).map((m) => Number(text(m)));
          assert.deepEqual(
            seq,
            [...seq].sort((x, y) => x - y),
            `order of key ${k}`,
          );
          assert.equal(seq.length, 8);
        }
      }));

    test('two groups each receive every message', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 2 });
        const sent = Array.from({ length: 10 }, (_, i) => ({ key: `k${i % 3}`, value: `v${i}` }));
        await bus.publish(t, sent);
        const got1: string[] = [];
        const got2: string[] = [];
        const [s1, s2] = await Promise.all([
          bus.subscribe({
            topic: t,
            group: uniqueName('g1'),
            fromBeginning: true,
            handler: async (m) => void got1.push(text(m)!),
          }),
          bus.subscribe({
            topic: t,
            group: uniqueName('g2'),
            fromBeginning: true,
            handler: async (m) => void got2.push(text(m)!),
          }),
        ]);
        try {
          await until(() => got1.length >= 10 && got2.length >= 10, 'both groups');
        } finally {
          await Promise.all([s1.close(), s2.close()]);
        }
        const all = sent.map((m) => m.value).sort();
        assert.deepEqual([...got1].sort(), all);
        assert.deepEqual([...got2].sort(), all);
      }));

    test('a group resumes from its committed offset after close: nothing lost, nothing committed redelivered', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.ensureTopic(t, { partitions: 1 });
        const msgs = (from: number) =>
          Array.from({ length: 5 }, (_, i) => ({ key: 'same', value: String(from + i) }));
        await bus.publish(t, msgs(1));
        const first: string[] = [];
        const s1 = await bus.subscribe({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (m) => void first.push(text(m)!),
        });
        await until(() => first.length >= 5, 'first 5');
        await s1.close();
        await bus.publish(t, msgs(6));
        const second: string[] = [];
        const s2 = await bus.subscribe({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (m) => void second.push(text(m)!),
        });
        try {
          await until(() => second.length >= 5, 'next 5');
        } finally {
          await s2.close();
        }
        assert.deepEqual(first, ['1', '2', '3', '4', '5']);
        assert.deepEqual(second, ['6', '7', '8', '9', '10']);
      }));

    test('a new group without fromBeginning starts at the end', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 1 });
        await bus.publish(t, [{ key: 'k', value: 'old' }]);
        const got: string[] = [];
        const sub = await bus.subscribe({
          topic: t,
          group: uniqueName('g'),
          handler: async (m) => void got.push(text(m)!),
        });
        try {
          await bus.publish(t, [{ key: 'k', value: 'new' }]);
          await until(() => got.length >= 1, 'the new message');
        } finally {
          await sub.close();
        }
        assert.deepEqual(got, ['new']);
      }));

    test('a handler that throws gets the same message again before any later one', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 1 });
        await bus.publish(t, [
          { key: 'k', value: 'm1' },
          { key: 'k', value: 'm2' },
        ]);
        const seen: string[] = [];
        let failOnce = true;
        const sub = await bus.subscribe({
          topic: t,
          group: uniqueName('g'),
          fromBeginning: true,
          handler: async (m) => {
            seen.push(text(m)!);
            if (text(m) === 'm1' && failOnce) {
              failOnce = false;
              throw new Error('transient');
            }
          },
        });
        try {
          await until(() => seen.includes('m2'), 'm2');
        } finally {
          await sub.close();
        }
        assert.deepEqual(seen, ['m1', 'm1', 'm2']);
      }));

    test('a message whose handler never succeeded is delivered again after close and resubscribe', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.ensureTopic(t, { partitions: 1 });
        await bus.publish(
          t,
          ['m1', 'm2', 'm3'].map((v) => ({ key: 'k', value: v })),
        );
        const first: string[] = [];
        const s1 = await bus.subscribe({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (m) => {
            first.push(text(m)!);
            if (text(m) === 'm2') throw new Error('down');
          },
        });
        await until(() => first.filter((v) => v === 'm2').length >= 2, 'm2 retried');
        await s1.close();
        const second: string[] = [];
        const s2 = await bus.subscribe({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (m) => void second.push(text(m)!),
        });
        try {
          await until(() => second.length >= 2, 'm2 and m3');
        } finally {
          await s2.close();
        }
        assert.ok(!first.includes('m3'), `m3 handled before m2 succeeded: ${first}`);
        assert.deepEqual(second, ['m2', 'm3']);
      }));

    test('subscribeBatch: batches of one partition, at most maxBatch, in order per key; committed per batch', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.ensureTopic(t, { partitions: 3 });
        const keys = ['a', 'b', 'c', 'd'];
        const msgs = (from: number, n: number) =>
          Array.from({ length: n }, (_, i) => ({
            key: keys[(from + i) % keys.length],
            value: String(from + i),
          }));
        await bus.publish(t, msgs(0, 40));
        const batches: EventMessage[][] = [];
        const s1 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          maxBatch: 7,
          maxWaitMs: 50,
          handler: async (b) => void batches.push(b),
        });
        await until(() => batches.flat().length >= 40, '40 messages in batches');
        await s1.close();
        const all = batches.flat();
        assert.equal(all.length, 40, 'each message once');
        for (const b of batches) {
          assert.ok(b.length >= 1 && b.length <= 7, `batch of ${b.length}`);
          assert.equal(new Set(b.map((m) => m.partition)).size, 1, 'one partition per batch');
          for (let i = 1; i < b.length; i++) assert.ok(BigInt(b[i].offset) > BigInt(b[i - 1].offset));
        }
        for (const k of keys) {
          const order = all.filter((m) => m.key === k).map((m) => Number(text(m)));
          assert.deepEqual(
            order,
            [...order].sort((x, y) => x - y),
            `order of key ${k}`,
          );
        }
        // committed: the same group resumes after what it handled
        await bus.publish(t, msgs(40, 5));
        const second: string[] = [];
        const s2 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (b) => void second.push(...b.map((m) => text(m)!)),
        });
        try {
          await until(() => second.length >= 5, 'the 5 new messages');
        } finally {
          await s2.close();
        }
        assert.deepEqual([...second].sort(), ['40', '41', '42', '43', '44']);
      }));

    test('subscribeBatch: a handler answering an offset inside its batch gets the next batch, and that offset is committed', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.publish(
          t,
          Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: String(i) })),
        );
        const seen: string[] = [];
        const s1 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          maxBatch: 4,
          // the last message of each batch "still in flight"
          handler: async (b) => {
            seen.push(...b.map((m) => text(m)!));
            return b[b.length - 1].offset;
          },
        });
        await until(() => seen.length >= 10, 'the 10 messages');
        // nothing more comes: the bus went on from each batch's end, not from the answered offset
        await new Promise((r) => setTimeout(r, 300));
        await s1.close();
        assert.deepEqual(seen, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
        // what was committed is the last batch's answer: the group reads again from there
        const again: string[] = [];
        const s2 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (b) => void again.push(...b.map((m) => text(m)!)),
        });
        try {
          await until(() => again.length >= 1, 'the messages from the committed offset on');
          await new Promise((r) => setTimeout(r, 300));
        } finally {
          await s2.close();
        }
        assert.deepEqual(again, ['9']);
      }));

    test('commitOffsets false: each message handled once, in order; nothing stored, so the group starts again', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.ensureTopic(t, { partitions: 1 });
        const msgs = (from: number, n: number) =>
          Array.from({ length: n }, (_, i) => ({ key: 'k', value: String(from + i) }));
        await bus.publish(t, msgs(0, 3));
        const first: string[] = [];
        const s1 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          commitOffsets: false,
          handler: async (b) => void first.push(...b.map((m) => text(m)!)),
        });
        await until(() => first.length >= 3, 'the first 3');
        for (let i = 3; i < 9; i += 2) {
          await bus.publish(t, msgs(i, 2));
          await until(() => first.length >= i + 2, `up to ${i + 2}`);
        }
        await s1.close();
        assert.deepEqual(
          first,
          Array.from({ length: 9 }, (_, i) => String(i)),
        );
        const again: string[] = [];
        const s2 = await bus.subscribe({
          topic: t,
          group,
          fromBeginning: true,
          commitOffsets: false,
          handler: async (m) => void again.push(text(m)!),
        });
        try {
          await until(() => again.length >= 9, 'all 9 again');
        } finally {
          await s2.close();
        }
        assert.deepEqual(again, first, 'from the beginning again: no position was stored');
      }));

    test('subscribeBatch: maxFetchBytes lets a batch hold more than 1 MiB of messages', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { partitions: 1 });
        const body = 'x'.repeat(1000);
        await bus.publish(
          t,
          Array.from({ length: 3000 }, (_, i) => ({ key: 'k', value: `${i} ${body}` })),
        );
        const sizes: number[] = [];
        const s = await bus.subscribeBatch({
          topic: t,
          group: uniqueName('g'),
          fromBeginning: true,
          maxBatch: 5000,
          maxFetchBytes: 8 * 1024 * 1024,
          maxWaitMs: 200,
          handler: async (b) => void sizes.push(b.length),
        });
        try {
          await until(() => sizes.reduce((a, b) => a + b, 0) >= 3000, '3000 messages');
        } finally {
          await s.close();
        }
        // ~3 MB: with Kafka's default 1 MiB per partition and fetch, no batch passes ~1,040 messages
        assert.ok(Math.max(...sizes) > 1100, `batches of ${sizes.join(', ')}`);
      }));

    test('subscribeBatch: a batch whose handler throws is delivered again from its first message; after close too', () =>
      withBus(async (bus) => {
        const t = topic();
        const group = uniqueName('g');
        await bus.ensureTopic(t, { partitions: 1 });
        await bus.publish(
          t,
          ['m1', 'm2', 'm3', 'm4'].map((v) => ({ key: 'k', value: v })),
        );
        const calls: string[][] = [];
        let fail = 2;
        const s1 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          maxBatch: 2,
          handler: async (b) => {
            calls.push(b.map((m) => text(m)!));
            if (b.some((m) => text(m) === 'm3') && fail-- > 0) throw new Error('transient');
          },
        });
        try {
          await until(() => calls.flat().includes('m4') && fail < 0, 'm3 and m4 after two failures', 20_000);
        } finally {
          await s1.close();
        }
        assert.deepEqual(calls, [
          ['m1', 'm2'],
          ['m3', 'm4'],
          ['m3', 'm4'],
          ['m3', 'm4'],
        ]);

        // a batch that never succeeded before close comes again to the next member
        await bus.publish(t, [{ key: 'k', value: 'm5' }]);
        const failing: string[] = [];
        const s2 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (b) => {
            failing.push(...b.map((m) => text(m)!));
            throw new Error('down');
          },
        });
        await until(() => failing.length >= 2, 'm5 retried');
        await s2.close();
        const again: string[] = [];
        const s3 = await bus.subscribeBatch({
          topic: t,
          group,
          fromBeginning: true,
          handler: async (b) => void again.push(...b.map((m) => text(m)!)),
        });
        try {
          await until(() => again.length >= 1, 'm5 again');
        } finally {
          await s3.close();
        }
        assert.deepEqual(again, ['m5']);
      }));

    test('readCompacted gives the latest value per key and honours tombstones', () =>
      withBus(async (bus) => {
        const t = topic();
        await bus.ensureTopic(t, { compacted: true, partitions: 2 });
        assert.equal((await bus.readCompacted(t)).size, 0);
        await bus.publish(t, [
          { key: 'a', value: 'a1' },
          { key: 'b', value: 'b1' },
          { key: 'c', value: 'c1' },
        ]);
        await bus.publish(t, [
          { key: 'a', value: 'a2', headers: { v: '2' } },
          { key: 'b', value: null },
          { key: 'd', value: Buffer.from('d1') },
        ]);
        const m = await bus.readCompacted(t);
        assert.deepEqual([...m.keys()].sort(), ['a', 'c', 'd']);
        assert.equal(text(m.get('a')!), 'a2');
        assert.deepEqual(m.get('a')!.headers, { v: '2' });
        assert.equal(text(m.get('c')!), 'c1');
        assert.equal(text(m.get('d')!), 'd1');
        assert.equal(m.get('a')!.topic, t);
      }));

    test('the lag hook reports the group caught up', async () => {
      const reports: ConsumerLag[] = [];
      await withBus(
        async (bus) => {
          const t = topic();
          const group = uniqueName('g');
          await bus.ensureTopic(t, { partitions: 1 });
          await bus.publish(
            t,
            [1, 2, 3].map((i) => ({ key: 'k', value: String(i) })),
          );
          let n = 0;
          const sub = await bus.subscribe({
            topic: t,
            group,
            fromBeginning: true,
            handler: async () => void n++,
          });
          try {
            await until(() => n >= 3 && reports.some((r) => r.group === group && r.lag === 0), 'lag 0');
          } finally {
            await sub.close();
          }
          const r = reports.find((x) => x.group === group)!;
          assert.equal(r.topic, t);
          assert.equal(r.partition, 0);
        },
        { onLag: (l) => reports.push(l) },
      );
    });
  });
}
