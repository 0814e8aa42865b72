import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/open';
import type { Db } from '../db/types';
import { openEmbeddedBus, type EmbeddedBus } from './embedded';
import { OutboxRelay, type OutboxRow, type OutboxStore } from './relay';

/** An outbox in memory, with a lease one holder at a time holds. */
function memoryStore(rows: OutboxRow[]): OutboxStore & { holder?: string; fail?: boolean } {
  const s: OutboxStore & { holder?: string; fail?: boolean } = {
    async lease(holder) {
      if (s.holder && s.holder !== holder) return false;
      s.holder = holder;
      return true;
    },
    async fetch(limit) {
      if (s.fail) throw new Error('store down');
      return rows.slice(0, limit);
    },
    async remove(seqs) {
      for (const q of seqs)
        rows.splice(
          rows.findIndex((r) => r.seq === q),
          1,
        );
    },
    async release(holder) {
      if (s.holder === holder) s.holder = undefined;
    },
  };
  return s;
}

let db: Db;
let bus: EmbeddedBus;
before(async () => {
  db = await openDb({ memory: true });
  bus = await openEmbeddedBus({ db });
});
after(async () => {
  await bus.close();
  await db.close();
});

test('rows go out in seq order, a run of one topic per publish, and are removed; drained() after', async () => {
  const rows: OutboxRow[] = [
    { seq: '1', topic: 'a', key: 'k1', value: '1' },
    { seq: '2', topic: 'a', key: 'k2', value: '2' },
    { seq: '3', topic: 'b', key: 'k1', value: null },
    { seq: '4', topic: 'a', key: 'k1', value: '4' },
  ];
  const delivered: [string, string[]][] = [];
  const relay = new OutboxRelay(memoryStore(rows), bus, {
    batchSize: 3,
    pollMs: 60_000,
    leaseMs: 60_000,
    deliver: async (topic, run) => void delivered.push([topic, run.map((r) => `${r.key}=${r.value}`)]),
  });
  relay.start();
  await relay.drained();
  await relay.stop();
  assert.deepEqual(delivered, [
    ['a', ['k1=1', 'k2=2']],
    ['b', ['k1=null']],
    ['a', ['k1=4']],
  ]);
  assert.equal(rows.length, 0);
});

test('publishes on the bus by default; another holder of the lease keeps a relay out; a failed round is retried', async () => {
  const rows: OutboxRow[] = [{ seq: '1', topic: 'relay-spec', key: 'k', value: '{"v":1}' }];
  const store = memoryStore(rows);
  const r1 = new OutboxRelay(store, bus, { batchSize: 10, pollMs: 60_000, leaseMs: 60_000 });
  const r2 = new OutboxRelay(store, bus, { batchSize: 10, pollMs: 60_000, leaseMs: 60_000 });
  store.fail = true;
  await assert.rejects(r1.drainOnce(), /store down/);
  store.fail = false;
  assert.equal(await r2.drainOnce(), -1, 'r1 holds the lease');
  assert.equal(await r1.drainOnce(), 1);
  assert.equal(rows.length, 0);
  const got = await bus.readCompacted('relay-spec');
  assert.equal(got.get('k')?.value?.toString(), '{"v":1}');
  assert.equal(got.get('k')?.headers['content-type'], 'application/json');
  await r1.stop();
  assert.equal(store.holder, undefined, 'stop gives the lease up');
  rows.push({ seq: '2', topic: 'relay-spec', key: 'k', value: '{"v":2}' });
  assert.equal(await r2.drainOnce(), 1);
  await r2.stop();
});
