/**
 * The outbox relay on its worker thread, on PostgreSQL and Kafka: rows the
 * writer commits are published by the thread; a thread that dies is started
 * again and publishes what was committed meanwhile.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import pino from 'pino';
import { KafkaBus, migrate, openDb, type Db } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { buildRecord, recordId } from './record';
import { OutboxBodyCache } from './relay';
import { RelayThread } from './relay-worker';
import { collectAccounting, createTestDatabase, until } from './test-support';
import { RecordWriter } from './writer';

test('OutboxBodyCache keeps the newest groups and forgets published seqs', () => {
  const c = new OutboxBodyCache(3);
  const g = (...bodies: string[]) => ({ keys: bodies.map((b) => `k${b}`), bodies });
  c.add('8', g('a'));
  c.add('9', g('b'));
  c.add('10', g('c'));
  c.add('11', g('d', 'e'));
  assert.equal(c.size, 3, 'the oldest two dropped to keep 3 records');
  assert.equal(c.get('8'), undefined);
  assert.equal(c.get('9'), undefined);
  c.add('12', g('f'));
  assert.equal(c.size, 3);
  assert.deepEqual([c.get('11')?.bodies, c.get('12')?.keys], [['d', 'e'], ['kf']]);
  c.forgetBelow('12');
  assert.equal(c.get('11'), undefined);
  assert.equal(c.size, 1);
  c.delete(['12', '13']);
  assert.equal(c.size, 0);
});

describe('RelayThread (the relay on a worker thread)', () => {
  let testDb: { url: string; drop(): Promise<void> };
  let db: Db;
  let bus: KafkaBus;
  const topic = uniqueName('accounting_thread');

  before(async () => {
    await requirePostgres();
    await requireKafka();
    testDb = await createTestDatabase(testPostgresUrl());
    db = await openDb({ databaseUrl: testDb.url });
    await migrate(db, { schema: 'accounting', dir: join(import.meta.dirname, '..', 'migrations') });
    bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: uniqueName('relay-thread-test') });
    await bus.ensureTopic(topic);
  });
  after(async () => {
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  test('publishes committed records; started again after it dies, it publishes the rest', async () => {
    let published = 0;
    const thread = await RelayThread.start(
      {
        databaseUrl: testDb.url,
        kafkaBrokers: testKafkaBrokers(),
        kafkaClientId: 'relay-thread-test',
        logLevel: 'silent',
        relay: { topic, batchSize: 100, pollMs: 50, leaseMs: 2000, lingerMs: 5 },
      },
      { logger: pino({ level: 'silent' }), onPublished: (n) => (published += n) },
    );
    const feed = await collectAccounting(bus, uniqueName('relay-thread'), topic);
    const writer = new RecordWriter(db, {
      maxBatch: 50,
      concurrency: 2,
      maxQueued: 1000,
      onStored: (group) => thread.stored(group),
    });
    const store = (i: number) => {
      const id = recordId({ client: 'test', senderRecordId: `thread-${i}` });
      const record = buildRecord(
        { id, receivedAt: new Date(), client: 'test' },
        { 'Acct-Status-Type': 'Start', 'Acct-Session-Id': `thread-call-${i}` },
      );
      return writer.submit({
        record,
        srcAddr: '127.0.0.1',
        srcPort: 1,
        identifier: i % 256,
        authenticator: '00',
      });
    };
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => store(i)));
      await thread.drained();
      await until(() => feed.messages.length >= 20, '20 records on the topic');
      assert.equal(published, 20);

      await thread.kill();
      await Promise.all(Array.from({ length: 20 }, (_, i) => store(20 + i)));
      // Nobody publishes until the new thread runs (within a second) and takes the lease (the dead one's expires).
      await until(() => feed.messages.length >= 40, '40 records on the topic', 15_000);
      const keys = new Set(feed.messages.map((m) => m.key));
      for (let i = 0; i < 40; i++) assert.ok(keys.has(`thread-call-${i}`), `thread-call-${i}`);
      // The first 20 went out from the bodies the writer handed over, the rest read back: the same text as stored.
      const stored = await db.query<{ id: string; body: string }>(
        'SELECT id::text AS id, body::text AS body FROM accounting.records',
      );
      const bodyOf = new Map(stored.rows.map((r) => [r.id, r.body]));
      for (const m of feed.messages) {
        const v = m.value!.toString();
        assert.equal(v, bodyOf.get((JSON.parse(v) as { id: string }).id));
      }
      await until(
        async () =>
          Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM accounting.outbox')).rows[0].n) ===
          0,
        'the outbox emptied',
      );
    } finally {
      await thread.stop();
      await feed.close();
    }
  });
});
