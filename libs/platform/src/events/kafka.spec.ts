import { before } from 'node:test';
import { createTestKafka, requireKafka, testKafkaBrokers, uniqueName } from '../testing';
import { eventBusContract } from './bus.contract';
import { KafkaBus } from './kafka';

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
