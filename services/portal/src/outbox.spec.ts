/**
 * The outbox: a change and its records commit together, so a crash (here: a
 * bus that fails every publish) loses nothing; a failed change queues nothing;
 * the next relay publishes what is left, in order.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { migrate, openDb, type Db, type EventBus, type PublishMessage } from '@switchboard/platform';
import { TOPICS } from '@switchboard/contracts';
import { OutboxRelay, portalOutbox } from './relay';
import { PortalStore, RATING_CHANNEL, type RatingOp } from './store';

let db: Db;
before(async () => {
  db = await openDb({ memory: true });
  await migrate(db, { schema: 'portal', dir: join(import.meta.dirname, '..', 'migrations') });
});
after(async () => {
  await db?.close();
});

function fakeBus(fail: () => boolean) {
  const published: { topic: string; key: string; value: string | null }[] = [];
  const bus = {
    kind: 'embedded',
    async publish(topic: string, messages: PublishMessage[]) {
      if (fail()) throw new Error('broker down');
      for (const m of messages)
        published.push({ topic, key: m.key, value: m.value === null ? null : String(m.value) });
    },
  } as unknown as EventBus;
  return { bus, published };
}

const relayOf = (bus: EventBus) =>
  new OutboxRelay(db, bus, { channel: 'bus', batchSize: 2, pollMs: 10_000, leaseMs: 60_000 });

test('writes commit with their outbox rows while the bus is down; a later relay publishes them in order', async () => {
  const store = new PortalStore(db, { defaultDomain: 'example.com' });
  await store.ensureDomain('example.com');
  const down = fakeBus(() => true);
  const stuck = relayOf(down.bus);
  await assert.rejects(stuck.drainOnce(), /broker down/);

  const a = await store.createSubscriber('test', { username: 'alice', password: 'secret' });
  await store.updateSubscriber('test', a.id, { privileges: ['pstn'] });
  await store.createSubscriber('test', { username: 'bob', password: 'secret' });
  await store.deleteSubscriber('test', a.id);
  // A change that fails queues nothing.
  await assert.rejects(store.createSubscriber('test', { username: 'bob', password: 'secret' }), /exists/);
  await assert.rejects(
    store.createSubscriber('test', { username: 'x', password: 'secret', domain: 'nowhere.example' }),
    /unknown domain/,
  );
  assert.equal(down.published.length, 0);
  assert.equal((await db.query('SELECT 1 FROM portal.outbox')).rowCount, 5);
  await stuck.stop(); // gives the lease up, as a stopped process does

  const up = fakeBus(() => false);
  const relay = relayOf(up.bus);
  relay.start();
  await relay.drained();
  await relay.stop();
  assert.deepEqual(
    up.published.map((m) => [m.topic, m.key, m.value === null ? null : JSON.parse(m.value).privileges]),
    [
      [TOPICS.routing, up.published[0].key, undefined],
      [TOPICS.subscribers, 'sip:alice@example.com', []],
      [TOPICS.subscribers, 'sip:alice@example.com', ['pstn']],
      [TOPICS.subscribers, 'sip:bob@example.com', []],
      [TOPICS.subscribers, 'sip:alice@example.com', null],
    ],
  );
  assert.match(up.published[0].key, /^domain:/);
  assert.equal((await db.query('SELECT 1 FROM portal.outbox')).rowCount, 0);

  // Start-up republishing queues every current record behind anything pending.
  assert.deepEqual(await store.republishAll(1), { subscribers: 1, domains: 1, routing: 0 });
  const again = fakeBus(() => false);
  const r2 = relayOf(again.bus);
  await r2.drainOnce();
  await r2.drainOnce();
  await r2.stop();
  assert.deepEqual(
    again.published.map((m) => m.key),
    [up.published[0].key, 'sip:bob@example.com'],
  );
});

test('while one relay holds the lease another publishes nothing', async () => {
  const store = new PortalStore(db, { defaultDomain: 'example.com' });
  const first = fakeBus(() => false);
  const second = fakeBus(() => false);
  const r1 = relayOf(first.bus);
  const r2 = relayOf(second.bus);
  await store.createSubscriber('test', { username: 'carol', password: 'secret' });
  assert.equal(await r1.drainOnce(), 1);
  await store.createSubscriber('test', { username: 'dave', password: 'secret' });
  assert.equal(await r2.drainOnce(), -1);
  assert.equal(await r1.drainOnce(), 1);
  assert.deepEqual(
    first.published.map((m) => m.key),
    ['sip:carol@example.com', 'sip:dave@example.com'],
  );
  assert.equal(second.published.length, 0);
  await r1.stop();
  await r2.stop();
});

test('start-up republishing and the accounts resync go page by page, every subscriber once, in id order', async () => {
  const own = await openDb({ memory: true });
  try {
    await migrate(own, { schema: 'portal', dir: join(import.meta.dirname, '..', 'migrations') });
    const store = new PortalStore(own, {
      defaultDomain: 'example.com',
      rating: { prepaid: true, currency: 'EUR' },
    });
    await store.ensureDomain('example.com');
    const subs = [];
    for (let i = 0; i < 7; i++)
      subs.push(await store.createSubscriber('test', { username: `u${i}`, password: 'secret' }));
    await store.updateSubscriber('test', subs[2].id, { enabled: false });
    await store.updateSubscriber('test', subs[4].id, { ratePlan: 'gold', displayName: 'Four' });
    await store.createAlias('test', { subscriberId: subs[5].id, username: 'five' });
    // What each subscriber's last change queued: republishing queues the same record.
    const queued = new Map(
      (
        await own.query<{ key: string; value: string }>(
          `SELECT key, value FROM portal.outbox WHERE topic = $1 ORDER BY seq`,
          [TOPICS.subscribers],
        )
      ).rows.map((r) => [r.key, JSON.parse(r.value) as unknown]),
    );
    await own.query('DELETE FROM portal.outbox');
    const byId = [...subs].sort((a, b) => (a.id < b.id ? -1 : 1)).map((s) => s.aor);

    assert.deepEqual(await store.republishAll(3), { subscribers: 7, domains: 1, routing: 0 });
    assert.equal(await store.resyncAccounts(3), 7);
    const rows = await own.query<{ topic: string; key: string; value: string }>(
      'SELECT topic, key, value FROM portal.outbox ORDER BY seq',
    );
    const of = (topic: string) => rows.rows.filter((r) => r.topic === topic);
    assert.deepEqual(
      of(TOPICS.subscribers).map((r) => r.key),
      byId,
    );
    for (const r of of(TOPICS.subscribers)) assert.deepEqual(JSON.parse(r.value), queued.get(r.key), r.key);
    assert.deepEqual((queued.get(subs[5].aor) as { aliases: string[] }).aliases, ['sip:five@example.com']);
    const accounts = of(RATING_CHANNEL).map((r) => JSON.parse(r.value) as RatingOp);
    assert.deepEqual(
      accounts.map((a) => a.account),
      byId,
    );
    for (const a of accounts) {
      assert.equal(a.op, 'account');
      if (a.op !== 'account') continue;
      assert.equal(a.blocked, a.account === subs[2].aor, a.account);
      assert.equal(a.planId, a.account === subs[4].aor ? 'gold' : '', a.account);
      assert.equal(a.prepaid, true);
      assert.equal(a.currency, 'EUR');
    }
  } finally {
    await own.close();
  }
});

test('each relay channel reads its rows in order from an index, never sorting the outbox, whatever the statistics say', async () => {
  const own = await openDb({ memory: true });
  try {
    await migrate(own, { schema: 'portal', dir: join(import.meta.dirname, '..', 'migrations') });
    // What a channel's fetch would do, from EXPLAIN of the very statement it sends.
    const planOf = async (channel: string) => {
      let plan = '';
      const explain = {
        query: async (sql: string, params?: unknown[]) => {
          const r = await own.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params);
          plan = r.rows.map((x) => x['QUERY PLAN']).join('\n');
          return { rows: [], rowCount: 0 };
        },
      } as unknown as Db;
      await portalOutbox(explain, channel).fetch(500);
      return plan;
    };
    const queue = (topic: string, n: number) =>
      own.query(
        `INSERT INTO portal.outbox (topic, key, value) SELECT $1, 'k' || g, '{}' FROM generate_series(1, $2::int) g`,
        [topic, n],
      );
    for (const [queued, other] of [
      ['subscribers', RATING_CHANNEL],
      [RATING_CHANNEL, 'subscribers'],
    ]) {
      const channel = queued === RATING_CHANNEL ? RATING_CHANNEL : 'bus';
      // Statistics taken while the outbox held only the other channel's rows (the state after
      // one start-up drain), then 20,000 rows of this channel queued and 5,000 of them sent.
      await own.query('DELETE FROM portal.outbox');
      await queue(other, 20_000);
      await own.query('ANALYZE portal.outbox');
      await own.query('DELETE FROM portal.outbox');
      await queue(queued, 20_000);
      await own.query(
        'DELETE FROM portal.outbox WHERE seq IN (SELECT seq FROM portal.outbox ORDER BY seq LIMIT 5000)',
      );
      for (const when of ['stale statistics', 'fresh statistics']) {
        if (when === 'fresh statistics') await own.query('ANALYZE portal.outbox');
        const plan = await planOf(channel);
        assert.match(plan, /Index Scan using/, `${channel}, ${when}:\n${plan}`);
        assert.doesNotMatch(plan, /Sort|Seq Scan|Bitmap/, `${channel}, ${when}:\n${plan}`);
      }
    }
  } finally {
    await own.close();
  }
});
