/**
 * Child process for the crash test: publishes numbered messages in batches and prints
 * each number on stdout once publish() has resolved (acknowledged), until it is killed.
 *   node --import tsx crash-publisher.fixture.ts embedded <pglite dir> <topic>
 *   node --import tsx crash-publisher.fixture.ts kafka <brokers> <topic>
 */
import { openDb } from '../../db/open';
import { openEmbeddedBus } from '../embedded';
import { KafkaBus } from '../kafka';
import type { EventBus } from '../types';

const [mode, where, topic] = process.argv.slice(2);
const BATCH = 5;

async function main(): Promise<void> {
  let bus: EventBus;
  if (mode === 'embedded') {
    bus = await openEmbeddedBus({ db: await openDb({ dataDir: where }) });
  } else {
    bus = new KafkaBus({ brokers: where.split(','), clientId: 'crash-publisher' });
  }
  await bus.ensureTopic(topic, { partitions: 2 });
  process.stdout.write('ready\n');
  for (let n = 1; ; n += BATCH) {
    const nums = Array.from({ length: BATCH }, (_, i) => n + i);
    await bus.publish(topic, nums.map((i) => ({ key: String(i), value: String(i) })));
    process.stdout.write(nums.map((i) => `${i}\n`).join(''));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
