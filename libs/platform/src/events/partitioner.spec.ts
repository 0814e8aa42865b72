import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Partitioners, type PartitionerArgs } from 'kafkajs';
import { murmur2, partitionOf } from './partitioner';

const metadata = (n: number): PartitionerArgs['partitionMetadata'] =>
  Array.from({ length: n }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));

const keys = (): Array<string | Buffer> => {
  const out: Array<string | Buffer> = ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'client:nas1', 'ü€😀'];
  for (let i = 0; i < 2000; i++) {
    const b = randomBytes(i % 70);
    out.push(i % 2 === 0 ? b : `${b.toString('base64')}-${i}@192.0.2.1`);
  }
  return out;
};

test('murmur2 gives Kafka reference values', () => {
  // The Java client's Utils.murmur2 test vectors (UtilsTest), which kafkajs's murmur2 also gives.
  assert.equal(murmur2(Buffer.from('21')), -973932308);
  assert.equal(murmur2(Buffer.from('foobar')), -790332482);
  assert.equal(murmur2(Buffer.from('a-little-bit-long-string')), -985981536);
  assert.equal(murmur2(Buffer.from('a-little-bit-longer-string')), -1486304829);
  assert.equal(murmur2(Buffer.from('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8')), -58897971);
});

test('partitionOf picks the partitions kafkajs DefaultPartitioner picks', () => {
  const theirs = Partitioners.DefaultPartitioner();
  for (const n of [1, 2, 3, 7, 12, 1009]) {
    const partitionMetadata = metadata(n);
    for (const key of keys()) {
      const args = { topic: 't', partitionMetadata, message: { key, value: 'v' } };
      assert.equal(partitionOf(key, n), theirs(args), `key ${JSON.stringify(String(key))}, ${n} partitions`);
    }
  }
});
