import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import { createTestKafka, requireKafka, testKafkaBrokers, uniqueName } from '../testing';
import { eventBusContract } from './bus.contract';
import { KafkaBus, whileRetriable } from './kafka';

before(async () => {
  await requireKafka();
});

eventBusContract('Kafka', {
  open: async (hooks) =>
    new KafkaBus({
      brokers: testKafkaBrokers(),
      clientId: uniqueName('bus_spec'),
      // Short group timings keep joins and leaves quick on the single test broker.
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 300,
      rebalanceTimeoutMs: 6_000,
      maxWaitTimeMs: 200,
      retryInitialMs: 50,
      ...hooks,
    }),
  dropTopics: async (topics) => {
    const admin = createTestKafka(uniqueName('bus_spec_admin')).admin();
    await admin.connect();
    try {
      await admin.deleteTopics({ topics });
    } finally {
      await admin.disconnect();
    }
  },
});

describe('whileRetriable (admin calls on a new broker)', () => {
  // What the broker answered in the failure this guards against (kafkajs marks it retriable).
  const notCoordinator = () =>
    new kafkajs.KafkaJSProtocolError(
      Object.assign(new Error('This is not the correct coordinator for this group'), {
        type: 'NOT_COORDINATOR_FOR_GROUP',
        code: 16,
        retriable: true,
      }),
    );

  test('a retriable error is retried until the call succeeds', async () => {
    let calls = 0;
    const r = await whileRetriable(async () => {
      if (++calls < 3) throw notCoordinator();
      return 'offsets';
    }, 5_000);
    assert.equal(r, 'offsets');
    assert.equal(calls, 3);
  });

  test('an error that is not retriable, or a retriable one past the timeout, is thrown', async () => {
    let calls = 0;
    await assert.rejects(
      whileRetriable(async () => {
        calls++;
        throw new Error('bad request');
      }, 5_000),
      /bad request/,
    );
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(
      whileRetriable(async () => {
        calls++;
        throw notCoordinator();
      }, 250),
      (e: unknown) => (e as { type?: string }).type === 'NOT_COORDINATOR_FOR_GROUP',
    );
    assert.ok(calls >= 2 && calls <= 3, `${calls} calls`);
  });
});
