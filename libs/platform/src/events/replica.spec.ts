import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EventBus, EventMessage } from './types';
import { Replica } from './replica';

type Msg = Pick<EventMessage, 'key' | 'value'>;
const msg = (key: string, v: number): Msg => ({ key, value: Buffer.from(JSON.stringify({ v })) });

/** A bus whose compacted snapshot is `snapshot`, and whose subscription the test drives. */
function fakeBus(snapshot: Msg[]) {
  const bus = {
    live: undefined as ((msgs: Msg[]) => Promise<void>) | undefined,
    async ensureTopic() {},
    async subscribeBatch(o: { handler: (msgs: Msg[]) => Promise<void> }) {
      bus.live = o.handler;
      return { stop: async () => {} };
    },
    async readCompacted() {
      return new Map(snapshot.map((m) => [m.key, m]));
    },
  };
  return bus;
}

test('a big snapshot is applied in slices, and what arrives meanwhile is applied after it, in order', async () => {
  const snapshot = Array.from({ length: 20_000 }, (_, i) => msg(`k${i}`, 1));
  const bus = fakeBus(snapshot);
  const replica = new Replica<{ v: number }>('t', 'test');
  const sizes: number[] = [];
  let delivered = false;
  // Runs on the event loop's turns while start() goes on: it sees the snapshot part applied, and
  // newer values arrive on the subscription for keys the snapshot has not reached yet.
  const tick = () => {
    sizes.push(replica.size);
    if (!delivered && replica.size > 0) {
      delivered = true;
      void bus.live!([msg('k19999', 2), msg('k19998', 2), msg('k19998', 3), msg('new', 2)]);
    }
    if (replica.size < snapshot.length) setImmediate(tick);
  };
  setImmediate(tick);
  await replica.start(bus as unknown as EventBus);
  assert.ok(
    sizes.some((n) => n > 0 && n < snapshot.length),
    `the event loop had a turn while the snapshot was applied (sizes seen: ${sizes.slice(0, 5).join(', ')})`,
  );
  assert.deepEqual(
    replica.get('k19999'),
    { v: 2 },
    'a value that arrived meanwhile is not undone by the snapshot',
  );
  assert.deepEqual(replica.get('k19998'), { v: 3 }, 'in the order it arrived');
  assert.deepEqual(replica.get('new'), { v: 2 });
  assert.deepEqual(replica.get('k0'), { v: 1 });
  await bus.live!([msg('k0', 5)]);
  assert.deepEqual(replica.get('k0'), { v: 5 }, 'after start, a message is applied when it arrives');
});

test('a value that is not JSON is reported and skipped: the key keeps its value, the rest is applied', async () => {
  const bus = fakeBus([msg('a', 1), { key: 'b', value: Buffer.from('{"v":') }, msg('c', 1)]);
  const replica = new Replica<{ v: number }>('t', 'test');
  const malformed: string[] = [];
  replica.onMalformed = (key) => malformed.push(key);
  await replica.start(bus as unknown as EventBus);
  assert.deepEqual([replica.get('a'), replica.get('b'), replica.get('c')], [{ v: 1 }, undefined, { v: 1 }]);
  await bus.live!([{ key: 'a', value: Buffer.from('not json') }, msg('c', 2), { key: 'c', value: null }]);
  assert.deepEqual(malformed, ['b', 'a']);
  assert.deepEqual([replica.get('a'), replica.get('c'), replica.size], [{ v: 1 }, undefined, 1]);
});
