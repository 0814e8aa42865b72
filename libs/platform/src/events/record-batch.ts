/**
 * Kafka's RecordBatch (magic 2, uncompressed) encoded in one Buffer per partition: varints
 * written in place, strings written once as UTF-8, the CRC32C by @node-rs/crc32 (native, about
 * 6x the JavaScript table's speed: bench/RESULTS.md, RADIUS accounting), or by the table
 * (slicing by 8) where its binary does not load. kafkajs encodes every record and header in an
 * Encoder of its own and copies them into the batch; this writes each byte once.
 */
import { createRequire } from 'node:module';
import type { PublishMessage } from './types';

/** CRC32C (Castagnoli, reflected 0x82f63b78) tables for slicing by 8. */
const T = new Int32Array(8 * 256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  T[n] = c;
}
for (let t = 1; t < 8; t++)
  for (let n = 0; n < 256; n++) {
    const prev = T[(t - 1) * 256 + n];
    T[t * 256 + n] = (prev >>> 8) ^ T[prev & 0xff];
  }

/** CRC32C of buf[start, end), unsigned, by the table (the fallback, and the reference in tests). */
export function crc32cTable(buf: Uint8Array, start = 0, end = buf.length): number {
  let c = -1;
  let i = start;
  const end8 = start + ((end - start) & ~7);
  while (i < end8) {
    const a = c ^ (buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24));
    c =
      T[1792 + (a & 0xff)] ^
      T[1536 + ((a >>> 8) & 0xff)] ^
      T[1280 + ((a >>> 16) & 0xff)] ^
      T[1024 + (a >>> 24)] ^
      T[768 + buf[i + 4]] ^
      T[512 + buf[i + 5]] ^
      T[256 + buf[i + 6]] ^
      T[buf[i + 7]];
    i += 8;
  }
  while (i < end) c = T[(c ^ buf[i++]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

type NativeCrc32c = (input: Buffer, initialState?: number) => number;

/** @node-rs/crc32's crc32c, or undefined when no binary for this platform loads. */
function loadNative(): NativeCrc32c | undefined {
  try {
    return (createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: NativeCrc32c }).crc32c;
  } catch {
    return undefined;
  }
}
const native = loadNative();

/** CRC32C of buf[start, end), unsigned. */
export const crc32c: (buf: Uint8Array, start?: number, end?: number) => number = native
  ? (buf, start = 0, end = buf.length) =>
      native(Buffer.from(buf.buffer, buf.byteOffset + start, end - start)) >>> 0
  : crc32cTable;

/** Bytes of the unsigned varint of n (n < 2^35). */
const varintSize = (n: number): number =>
  n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;

/** Writes the unsigned varint of n (0 <= n < 2^35) at pos; returns the position after it. */
function putVarint(buf: Buffer, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** A length-prefixed (zigzag varint) UTF-8 string at pos; returns the position after it. */
function putString(buf: Buffer, pos: number, s: string): number {
  if (s.length === 0) {
    buf[pos] = 0;
    return pos + 1;
  }
  // UTF-8 takes length..3*length bytes: reserve the larger prefix, move the text if it was too much.
  const reserve = varintSize(s.length * 6);
  const at = pos + reserve;
  const n = buf.write(s, at);
  const size = varintSize(n * 2);
  if (size !== reserve) buf.copyWithin(pos + size, at, at + n);
  putVarint(buf, pos, n * 2);
  return pos + size + n;
}

function putBytes(buf: Buffer, pos: number, b: Buffer): number {
  pos = putVarint(buf, pos, b.length * 2);
  return pos + b.copy(buf, pos);
}

/**
 * An upper bound of the bytes of one record, its length prefix included: its UTF-8 sizes
 * plus the longest varint of each length (a few bytes over the exact size).
 */
export function recordBound(m: PublishMessage): number {
  let n = 27 + Buffer.byteLength(m.key);
  const v = m.value;
  if (v !== null) n += typeof v === 'string' ? Buffer.byteLength(v) : v.length;
  const h = m.headers;
  if (h) for (const k in h) n += 10 + Buffer.byteLength(k) + Buffer.byteLength(h[k]);
  return n;
}

/** The batch header's size: baseOffset .. records count. */
export const BATCH_HEADER = 61;
/** Where the CRC'd part (attributes onwards) starts. */
const CRC_FROM = 21;

export interface BatchProducer {
  /** The idempotent producer's id and epoch; -1n and -1 for none. */
  producerId: bigint;
  producerEpoch: number;
}

/**
 * Encodes msgs[from, to) as one RecordBatch at buf[pos, ...) with the given first sequence and
 * timestamp; returns the position after it. buf must hold BATCH_HEADER plus the records' bounds.
 */
export function writeRecordBatch(
  buf: Buffer,
  pos: number,
  msgs: readonly PublishMessage[],
  from: number,
  to: number,
  producer: BatchProducer,
  baseSequence: number,
  timestamp: number,
): number {
  const start = pos;
  const count = to - from;
  let p = start + BATCH_HEADER;
  for (let i = 0; i < count; i++) {
    const m = msgs[from + i];
    // The record's length prefix is at most 5 bytes: write the record after 5, then close the gap.
    const rec = p;
    let q = rec + 5;
    buf[q++] = 0; // attributes
    buf[q++] = 0; // timestampDelta 0: every record has the batch's timestamp
    q = putVarint(buf, q, i * 2); // offsetDelta (zigzag)
    q = putString(buf, q, m.key);
    const v = m.value;
    if (v === null)
      buf[q++] = 1; // -1: a null value (tombstone)
    else q = typeof v === 'string' ? putString(buf, q, v) : putBytes(buf, q, v);
    const h = m.headers;
    if (h === undefined) buf[q++] = 0;
    else {
      const at = q;
      q += 1; // header counts above 63 take two bytes: moved below
      let n = 0;
      for (const k in h) {
        q = putString(buf, q, k);
        q = putString(buf, q, h[k]);
        n++;
      }
      if (n * 2 < 0x80) buf[at] = n * 2;
      else {
        const size = varintSize(n * 2);
        buf.copyWithin(at + size, at + 1, q);
        q += size - 1;
        putVarint(buf, at, n * 2);
      }
    }
    const len = q - (rec + 5);
    const size = varintSize(len * 2);
    buf.copyWithin(rec + size, rec + 5, q);
    putVarint(buf, rec, len * 2);
    p = q - (5 - size);
  }
  const hi = Math.floor(timestamp / 0x100000000);
  const lo = timestamp >>> 0;
  buf.writeInt32BE(0, start); // baseOffset
  buf.writeInt32BE(0, start + 4);
  buf.writeInt32BE(p - start - 12, start + 8); // batchLength: after this field
  buf.writeInt32BE(-1, start + 12); // partitionLeaderEpoch
  buf[start + 16] = 2; // magic
  buf.writeInt16BE(0, start + 21); // attributes: no compression, CreateTime, not transactional
  buf.writeInt32BE(count - 1, start + 23); // lastOffsetDelta
  buf.writeUInt32BE(hi, start + 27); // baseTimestamp
  buf.writeUInt32BE(lo, start + 31);
  buf.writeUInt32BE(hi, start + 35); // maxTimestamp
  buf.writeUInt32BE(lo, start + 39);
  buf.writeBigInt64BE(producer.producerId, start + 43);
  buf.writeInt16BE(producer.producerEpoch, start + 51);
  buf.writeInt32BE(baseSequence, start + 53);
  buf.writeInt32BE(count, start + 57);
  buf.writeUInt32BE(crc32c(buf, start + CRC_FROM, p), start + 17);
  return p;
}
