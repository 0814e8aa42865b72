import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode, type BValue } from './bencode';

test('bencode: the ng examples of rtpengine', () => {
  assert.equal(encode({ command: 'ping' }).toString(), 'd7:command4:pinge');
  assert.equal(encode({ b: [1, 'x'], a: -3 }).toString(), 'd1:ai-3e1:bli1e1:xee');
  assert.deepEqual(decode(Buffer.from('d6:result4:ponge')), { result: 'pong' });
  assert.throws(() => decode(Buffer.from('d6:result4:pong')), /truncated/);
  assert.throws(() => decode(Buffer.from('i1ex')), /trailing/);
  assert.throws(() => decode(Buffer.from('5:ab')), /past the end/);
});

test('bencode: decode(encode(x)) is x', () => {
  const value: fc.Arbitrary<BValue> = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.integer(),
      fc.string(),
      fc.array(tie('v'), { maxLength: 4 }),
      fc.dictionary(fc.string(), tie('v'), { maxKeys: 4, noNullPrototype: true }),
    ),
  })).v as fc.Arbitrary<BValue>;
  fc.assert(fc.property(value, (v) => assert.deepEqual(decode(encode(v)), v)));
});
