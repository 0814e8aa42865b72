import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Partitioners, type Admin } from 'kafkajs';
import { createTestKafka, requireKafka, testKafkaBrokers, uniqueName } from '../testing';
import { KafkaProducer, type KafkaProducerOptions } from './producer';
import type { PublishMessage } from './types';

interface Stored {
  partition: number;
  offset: bigint;
  key: string;
  value: Buffer | null;
  headers: Record<string, string>;
}

const kafka = createTestKafka(uniqueName('producer_spec'));
let admin: Admin;
const topics: string[] = [];

before(async () => {
  await requireKafka();
  admin = kafka.admin();
  await admin.connect();
});
after(async () => {
  await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
});

async function topic(partitions: number): Promise<string> {
  const t = uniqueName('producer');
  topics.push(t);
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: t, numPartitions: partitions }] });
  return t;
}

/** Everything stored in the topic, per partition in offset order (read with kafkajs). */
async function readAll(t: string): Promise<Stored[]> {
  const ends = await admin.fetchTopicOffsets(t);
  const total = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  const out: Stored[] = [];
  const consumer = kafka.consumer({ groupId: uniqueName('producer_spec_read'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [t], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${out.length} of ${total}`)), 20_000);
      if (total === 0) resolve();
      consumer
        .run({
          eachMessage: async ({ partition, message: m }) => {
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v);
            out.push({
              partition,
              offset: BigInt(m.offset),
              key: m.key?.toString() ?? '',
              value: m.value,
              headers,
            });
            if (out.length === total) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return out.sort((a, b) => a.partition - b.partition || Number(a.offset - b.offset));
}

async function withProducer(
  opts: Partial<KafkaProducerOptions>,
  fn: (p: KafkaProducer) => Promise<void>,
): Promise<void> {
  const p = new KafkaProducer({
    brokers: testKafkaBrokers(),
    clientId: uniqueName('producer_spec'),
    ...opts,
  });
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

const values = (s: Stored[]) => s.map((m) => m.value?.toString() ?? null);

test('records land on the partitions kafkajs DefaultPartitioner picks, with every field', async () => {
  const t = await topic(7);
  const msgs: PublishMessage[] = [
    { key: '', value: 'empty key' },
    { key: 'ü€😀', value: 'ü€😀 value', headers: { 'x-ü': 'ÿ', 'content-type': 'text/plain' } },
    { key: 'tomb', value: null },
    { key: 'bin', value: Buffer.from([0, 1, 2, 255]) },
  ];
  for (let i = 0; i < 300; i++)
    msgs.push({
      key: `${randomBytes(1 + (i % 40)).toString('base64')}-${i}@192.0.2.1`,
      value: `v${i}`,
      headers: i % 3 === 0 ? { i: String(i) } : undefined,
    });
  await withProducer({}, (p) => p.send(t, msgs));
  const stored = await readAll(t);
  assert.equal(stored.length, msgs.length);
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: 7 }, (_, i) => ({
    partitionId: i,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));
  const byKey = new Map(stored.map((s) => [s.key, s]));
  for (const m of msgs) {
    const s = byKey.get(m.key);
    assert.ok(s, `key ${m.key} stored`);
    assert.equal(
      s.partition,
      partitioner({ topic: t, partitionMetadata, message: { key: m.key, value: 'x' } }),
    );
    assert.deepEqual(s.value, m.value === null ? null : Buffer.from(m.value));
    assert.deepEqual(s.headers, m.headers ?? {});
  }
  assert.ok(new Set(stored.map((s) => s.partition)).size === 7, 'every partition used');
});

test('a Produce answer that is lost is sent again and stored once', async () => {
  const t = await topic(2);
  const batch = (from: number) =>
    Array.from({ length: 10 }, (_, i) => ({ key: `k${(from + i) % 3}`, value: String(from + i) }));
  await withProducer({ loseProduceResponses: 2, retryInitialMs: 10 }, async (p) => {
    await p.send(t, batch(0)); // answer lost once: resent on a new connection
    await p.send(t, batch(10)); // and again
    await p.send(t, batch(20));
  });
  const stored = await readAll(t);
  assert.deepEqual(
    values(stored).sort((a, b) => Number(a) - Number(b)),
    Array.from({ length: 30 }, (_, i) => String(i)),
    'each once',
  );
  for (const k of ['k0', 'k1', 'k2']) {
    const seq = stored.filter((s) => s.key === k).map((s) => Number(s.value));
    assert.deepEqual(
      seq,
      [...seq].sort((a, b) => a - b),
      `order of ${k}`,
    );
  }
});

test('a send whose answers were all lost fails, and the next one goes under a new producer id', async () => {
  const t = await topic(1);
  const batch = (tag: string) => Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: `${tag}${i}` }));
  await withProducer({ loseProduceResponses: 2, retries: 1, retryInitialMs: 10 }, async (p) => {
    await assert.rejects(p.send(t, batch('a')), /Produce failed after 2 attempts/);
    // The same count again: under the old id and sequence the broker would take it for the
    // first batch resent and drop it.
    await p.send(t, batch('b'));
  });
  assert.deepEqual(
    values(await readAll(t)),
    [...batch('a'), ...batch('b')].map((m) => m.value),
  );
});

test('concurrent sends all resolve, stored in call order', async () => {
  const t = await topic(3);
  await withProducer({}, async (p) => {
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => p.send(t, [{ key: `k${i % 2}`, value: String(i) }])),
    );
  });
  const stored = await readAll(t);
  assert.equal(stored.length, 40);
  for (const k of ['k0', 'k1']) {
    const seq = stored.filter((s) => s.key === k).map((s) => Number(s.value));
    assert.deepEqual(
      seq,
      Array.from({ length: 20 }, (_, i) => 2 * i + (k === 'k1' ? 1 : 0)),
    );
  }
});

test('more than a broker batch for one partition goes in consecutive batches, in order', async () => {
  const t = await topic(1);
  // 1.5 MB for one partition: more than the broker's message.max.bytes (1 MiB) in one batch.
  const pad = 'x'.repeat(1000);
  const msgs = Array.from({ length: 1500 }, (_, i) => ({ key: 'same', value: `${i} ${pad}` }));
  await withProducer({}, (p) => p.send(t, msgs));
  const stored = await readAll(t);
  assert.deepEqual(
    stored.map((s) => Number(s.value!.toString().split(' ')[0])),
    msgs.map((_, i) => i),
  );
});

test('a send to a topic that does not exist fails', async () => {
  await withProducer({ retries: 1, retryInitialMs: 10 }, async (p) => {
    await assert.rejects(p.send(uniqueName('producer_missing'), [{ key: 'k', value: 'v' }]), /no metadata/);
  });
});
