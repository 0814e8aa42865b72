import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMicros, toMicros } from './money';

test('amounts convert to micros and back', () => {
  assert.equal(toMicros('10'), 10_000_000);
  assert.equal(toMicros('10.5'), 10_500_000);
  assert.equal(toMicros('-2.000001'), -2_000_001);
  assert.equal(formatMicros(10_500_000), '10.50');
  assert.equal(formatMicros(-2_000_001), '-2.000001');
  assert.equal(formatMicros(0), '0.00');
  for (const bad of ['', '1.2345678', '1e3', '10,00', '--1']) assert.throws(() => toMicros(bad), /amount/);
});
