import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { BATCH_HEADER, crc32c, crc32cTable, recordBound, writeRecordBatch } from './record-batch';
import type { PublishMessage } from './types';

// kafkajs's own RecordBatch and Record encoders (not part of its typed API): the reference.
const require = createRequire(import.meta.url);
interface KafkaJsEncoder {
  buffer: Buffer;
}
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (args: object) => Promise<KafkaJsEncoder>;
};
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (
  args: object,
) => KafkaJsEncoder;
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: string): unknown };

async function kafkajsBatch(
  msgs: PublishMessage[],
  producerId: bigint,
  producerEpoch: number,
  firstSequence: number,
  timestamp: number,
): Promise<Buffer> {
  const enc = await RecordBatch({
    firstTimestamp: timestamp,
    maxTimestamp: timestamp,
    partitionLeaderEpoch: -1,
    lastOffsetDelta: msgs.length - 1,
    producerId: Long.fromValue(producerId.toString()),
    producerEpoch,
    firstSequence,
    records: msgs.map((m, i) =>
      Record({ offsetDelta: i, timestampDelta: 0, key: m.key, value: m.value, headers: m.headers }),
    ),
  });
  return enc.buffer;
}

function ours(
  msgs: PublishMessage[],
  producerId: bigint,
  producerEpoch: number,
  firstSequence: number,
  timestamp: number,
): Buffer {
  const bound = BATCH_HEADER + msgs.reduce((n, m) => n + recordBound(m), 0);
  const buf = Buffer.alloc(bound + 7, 0xee);
  const end = writeRecordBatch(
    buf,
    3,
    msgs,
    0,
    msgs.length,
    { producerId, producerEpoch },
    firstSequence,
    timestamp,
  );
  assert.ok(end <= 3 + bound, 'within the bound');
  assert.ok(
    buf.subarray(3 + bound).every((b) => b === 0xee),
    'nothing written past the bound',
  );
  return buf.subarray(3, end);
}

for (const [name, crc] of [
  ['crc32c', crc32c],
  ['crc32cTable (the fallback)', crc32cTable],
] as const)
  test(`${name} gives the Castagnoli check values`, () => {
    assert.equal(crc(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc(Buffer.alloc(32, 0)), 0x8a9136aa); // RFC 3720 B.4
    assert.equal(crc(Buffer.alloc(32, 0xff)), 0x62a8ab43);
    assert.equal(crc(Buffer.from(Array.from({ length: 32 }, (_, i) => i))), 0x46dd794e);
    assert.equal(crc(Buffer.alloc(0)), 0);
    const b = randomBytes(1000);
    assert.equal(crc(Buffer.concat([Buffer.from('xyz'), b]), 3), crc(b), 'from an offset');
    assert.equal(crc(Buffer.concat([b, Buffer.from('xyz')]), 0, 1000), crc(b), 'to an end');
    assert.equal(crc(b), crc32cTable(b), 'the same as the table');
  });

test('a record batch is byte for byte what kafkajs encodes', async () => {
  const long = 'é'.repeat(5000); // 10,000 UTF-8 bytes: a 3-byte length prefix
  const cases: Array<[string, PublishMessage[]]> = [
    ['one string', [{ key: 'k', value: 'v' }]],
    [
      'every kind of value',
      [
        { key: 'k1', value: 'hello', headers: { 'x-trace': 'abc' } },
        { key: 'k2', value: Buffer.from([0, 1, 2, 255]) },
        { key: 'k3', value: null },
        { key: '', value: '' },
        { key: 'ü€😀', value: 'ü€😀 ½', headers: { ключ: 'значение', e: '' } },
      ],
    ],
    [
      'long values and keys',
      [
        { key: 'a'.repeat(70), value: long },
        { key: long, value: randomBytes(20_000) },
      ],
    ],
    [
      'many headers',
      [
        {
          key: 'h',
          value: 'v',
          headers: Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`h${i}`, `${i}`])),
        },
      ],
    ],
    [
      'accounting-sized, 200 records',
      Array.from({ length: 200 }, (_, i) => ({
        key: `call-${i}-${randomBytes(4).toString('hex')}@192.0.2.1`,
        value: JSON.stringify({ i, pad: 'x'.repeat(1050) }),
        headers: { 'content-type': 'application/json' },
      })),
    ],
  ];
  for (const [name, msgs] of cases) {
    for (const [pid, epoch, seq] of [
      [-1n, -1, -1],
      [4711n, 3, 2_000_000_000],
      [2n ** 40n + 5n, 0, 0],
    ] as const) {
      const ts = 1_764_000_000_123;
      assert.deepEqual(ours(msgs, pid, epoch, seq, ts), await kafkajsBatch(msgs, pid, epoch, seq, ts), name);
    }
  }
});
