// Integration tests for the test-infra helpers: they connect to the real
// PostgreSQL and Kafka that scripts/infra/postgres and scripts/infra/kafka
// start (npm test runs both first).
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { EachMessagePayload } from 'kafkajs';
import {
  DEFAULT_TEST_DATABASE_URL,
  DEFAULT_TEST_KAFKA_BROKERS,
  createTestKafka,
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from './index';

function withEnv(name: string, value: string | undefined, fn: () => void): void {
  const old = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    fn();
  } finally {
    if (old === undefined) delete process.env[name];
    else process.env[name] = old;
  }
}

describe('uniqueName', () => {
  test('gives a different name on every call', () => {
    const names = new Set(Array.from({ length: 200 }, () => uniqueName('reg')));
    assert.equal(names.size, 200);
  });

  test('is a valid unquoted PostgreSQL identifier and Kafka topic name', () => {
    for (const prefix of ['registrar', 'Rating-CDRs', '9lives', 'a.b c']) {
      const n = uniqueName(prefix);
      assert.match(n, /^[a-z_][a-z0-9_]*$/);
      assert.ok(n.length <= 63, n);
    }
    assert.ok(uniqueName('Rating-CDRs').startsWith('rating_cdrs_'));
    assert.ok(uniqueName('9lives').startsWith('t_9lives_'));
  });
});

describe('locations from the environment', () => {
  test('testPostgresUrl defaults to the local switchboard_test database', () => {
    withEnv('SWITCHBOARD_TEST_DATABASE_URL', undefined, () => {
      assert.equal(testPostgresUrl(), DEFAULT_TEST_DATABASE_URL);
      assert.equal(testPostgresUrl(), 'postgres://postgres@127.0.0.1:5432/switchboard_test');
    });
    withEnv('SWITCHBOARD_TEST_DATABASE_URL', 'postgres://u@db:5433/x', () => {
      assert.equal(testPostgresUrl(), 'postgres://u@db:5433/x');
    });
  });

  test('testKafkaBrokers defaults to 127.0.0.1:9092 and splits a list', () => {
    withEnv('SWITCHBOARD_TEST_KAFKA_BROKERS', undefined, () => {
      assert.deepEqual(testKafkaBrokers(), [DEFAULT_TEST_KAFKA_BROKERS]);
    });
    withEnv('SWITCHBOARD_TEST_KAFKA_BROKERS', 'a:1, b:2,', () => {
      assert.deepEqual(testKafkaBrokers(), ['a:1', 'b:2']);
    });
  });
});

describe('PostgreSQL', () => {
  test('requirePostgres reaches the test database, where a per-test schema can be made', async () => {
    await requirePostgres();
    const client = new pg.Client({ connectionString: testPostgresUrl() });
    await client.connect();
    const schema = uniqueName('infra_spec');
    try {
      const db = await client.query<{ db: string }>('select current_database() as db');
      assert.equal(db.rows[0]?.db, new URL(testPostgresUrl()).pathname.slice(1));
      await client.query(`create schema ${schema}`);
      await client.query(`create table ${schema}.t (v int)`);
      await client.query(`insert into ${schema}.t values (41), (1)`);
      const sum = await client.query<{ s: number }>(`select sum(v)::int as s from ${schema}.t`);
      assert.equal(sum.rows[0]?.s, 42);
    } finally {
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  });

  test('requirePostgres fails with a message naming the script when nothing listens', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    await assert.rejects(
      requirePostgres('postgres://postgres:secret@127.0.0.1:1/switchboard_test'),
      (err: Error) => {
        assert.match(
          err.message,
          /PostgreSQL is not reachable at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\//,
        );
        assert.match(err.message, /run scripts\/infra\/postgres/);
        assert.doesNotMatch(err.message, /secret/);
        return true;
      },
    );
  });
});

describe('Kafka', () => {
  const kafka = createTestKafka(uniqueName('infra_spec'));
  const admin = kafka.admin();
  const topics: string[] = [];
  after(async () => {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
    await admin.disconnect();
  });

  test('requireKafka fails with a message naming the script when nothing listens', async () => {
    await assert.rejects(requireKafka(['127.0.0.1:1']), (err: Error) => {
      assert.match(err.message, /Kafka is not reachable at 127\.0\.0\.1:1: run scripts\/infra\/kafka start/);
      return true;
    });
  });

  test('requireKafka reaches the test broker, and a message produced is consumed back in key order', async () => {
    await requireKafka();
    await admin.connect();
    const topic = uniqueName('infra_spec');
    topics.push(topic);
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }),
      true,
    );

    const sent = ['one', 'two', 'three', 'four'].map((v) => ({ key: 'same-key', value: v }));
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    try {
      await producer.send({ topic, messages: sent });
    } finally {
      await producer.disconnect();
    }

    const consumer = kafka.consumer({ groupId: uniqueName('infra_spec_group') });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      const got: { key: string; value: string; partition: number }[] = [];
      await new Promise<void>((resolve, reject) => {
        const bound = setTimeout(
          () => reject(new Error(`consumed only ${got.length} of ${sent.length} messages in 30 s`)),
          30_000,
        );
        consumer
          .run({
            eachMessage: async ({ message, partition }: EachMessagePayload) => {
              got.push({ key: String(message.key), value: String(message.value), partition });
              if (got.length === sent.length) {
                clearTimeout(bound);
                resolve();
              }
            },
          })
          .catch((err: unknown) => {
            clearTimeout(bound);
            reject(err instanceof Error ? err : new Error(String(err)));
          });
      });
      // One key lands on one partition, so order holds.
      assert.deepEqual(
        got.map((m) => m.value),
        sent.map((m) => m.value),
      );
      assert.equal(new Set(got.map((m) => m.partition)).size, 1);
      assert.ok(got.every((m) => m.key === 'same-key'));
    } finally {
      await consumer.disconnect();
    }
  });
});
