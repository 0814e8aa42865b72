/**
 * The accounting relay's Kafka path alone: CPU per message of KafkaBus.publish (the
 * platform's idempotent producer, acks=all; kafkajs's before 907ae6c) for batches of accounting-sized messages (1.1 KB JSON
 * values, a unique Call-ID-like key each, the content-type header), as the relay worker
 * publishes them. Run it pinned (taskset -c 0) and A/B back to back.
 *
 *   npx tsx bench/radius/publish.ts [batch=50] [messages=20000]
 */
import { KafkaBus } from '@switchboard/platform';
import { testKafkaBrokers, uniqueName } from '@switchboard/platform/testing';

const BATCH = Number(process.argv[2] ?? 50);
const N = Number(process.argv[3] ?? 20000);
const bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: 'bench-publish' });
const topic = uniqueName('bench_publish');
await bus.ensureTopic(topic);
const body = JSON.stringify({ pad: 'x'.repeat(1050) });

async function run(n: number): Promise<void> {
  for (let i = 0; i < n; i += BATCH) {
    const msgs = [];
    for (let j = 0; j < BATCH; j++)
      msgs.push({
        key: `bench-${i + j}-${Math.random().toString(36).slice(2, 10)}@192.0.2.1`,
        value: body,
        headers: { 'content-type': 'application/json' },
      });
    await bus.publish(topic, msgs);
  }
}

await run(4000); // warm-up
for (let k = 0; k < 3; k++) {
  const u = process.cpuUsage();
  await run(N);
  const c = process.cpuUsage(u);
  console.log(
    `${BATCH} messages per publish: ${((c.user + c.system) / N).toFixed(1)} µs of CPU per message (user ${(c.user / N).toFixed(1)})`,
  );
}
await bus.close();
