import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KafkaBus, openDb, type Db } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import {
  collectAccounting,
  createTestDatabase,
  radclient,
  startTestAccounting,
  until,
  type TestAccounting,
} from './test-support';
import type { AccountingRecord } from './record';

const SECRET = 'kafka-secret';

describe('accounting service on PostgreSQL and Kafka', () => {
  let testDb: { url: string; drop(): Promise<void> };
  let db: Db;
  let bus: KafkaBus;
  let acct: TestAccounting;
  const topic = uniqueName('accounting');

  before(async () => {
    await requirePostgres();
    await requireKafka();
    testDb = await createTestDatabase(testPostgresUrl());
    db = await openDb({ databaseUrl: testDb.url });
    bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: uniqueName('acct-test') });
    acct = await startTestAccounting(db, bus, {
      SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.0/8=${SECRET}`,
      SWITCHBOARD_ACCOUNTING_TOPIC: topic,
    });
  });
  after(async () => {
    await acct?.stop();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  test('radclient Start and Stop are stored, answered and published to Kafka keyed by Call-ID', async () => {
    const feed = await collectAccounting(bus, uniqueName('g'), topic);
    try {
      for (const type of ['Start', 'Stop']) {
        const r = await radclient(
          acct.port,
          'acct',
          SECRET,
          `Acct-Status-Type = ${type}, Acct-Session-Id = "kafka-call-1@example.com", Sip-From-Tag = "f1", Sip-To-Tag = "t1", Sip-Method = ${type === 'Start' ? 'INVITE' : 'BYE'}, Switchboard-Account = "acct-7"\n`,
        );
        assert.equal(r.code, 0, r.stdout + r.stderr);
      }
      const rows = (
        await db.query<{ id: string; status_type: string }>(
          "SELECT id, status_type FROM accounting.records WHERE session_id = 'kafka-call-1@example.com' ORDER BY received_at",
        )
      ).rows;
      assert.deepEqual(
        rows.map((r) => r.status_type),
        ['Start', 'Stop'],
      );
      await until(() => feed.messages.length >= 2, 'two records on Kafka', 30_000);
      const got = feed.messages.map((m) => ({
        key: m.key,
        record: JSON.parse(m.value!.toString()) as AccountingRecord,
      }));
      assert.deepEqual(
        got.map((g) => [g.key, g.record.id, g.record.statusType, g.record.account]),
        [
          ['kafka-call-1@example.com', rows[0].id, 'Start', 'acct-7'],
          ['kafka-call-1@example.com', rows[1].id, 'Stop', 'acct-7'],
        ],
      );
    } finally {
      await feed.close();
    }
  });
});
