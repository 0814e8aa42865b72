import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from './rate-limit';

test('at most limit hits per window and key; the next window starts afresh', () => {
  let now = 1_000_000;
  const l = new RateLimiter(3, 60_000, () => now);
  assert.deepEqual([l.hit('a'), l.hit('a'), l.hit('a')], [0, 0, 0]);
  assert.equal(l.hit('a'), 60);
  assert.equal(l.hit('b'), 0, 'another address is not limited');
  now += 59_000;
  assert.equal(l.hit('a'), 1);
  now += 1_000;
  assert.equal(l.hit('a'), 0);
});
