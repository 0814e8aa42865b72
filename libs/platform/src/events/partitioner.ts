/**
 * The partition of a keyed record as the Java client and kafkajs's DefaultPartitioner pick
 * it (murmur2 of the key, modulo the partition count), with the hash in 32-bit integer
 * arithmetic: only the low 32 bits ever matter, so Math.imul gives the same partition.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (signed 32-bit), as kafkajs's default partitioner computes it. */
export function murmur2(key: Buffer | string): number {
  const data = typeof key === 'string' ? Buffer.from(key) : key;
  const length = data.length;
  let h = SEED ^ length;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2] << 16;
  if (rest >= 2) h ^= data[tail + 1] << 8;
  if (rest >= 1) h = Math.imul(h ^ data[tail], M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a record with this key among n partitions. */
export const partitionOf = (key: Buffer | string, n: number): number => (murmur2(key) & 0x7fffffff) % n;
