import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { AbuseGuard } from './abuse';

const make = (exempt: (a: string) => boolean = () => false) => {
  let now = 0;
  const guard = new AbuseGuard(
    { maxRequests: 3, windowMs: 1000, blockMs: 5000 },
    { maxFailures: 2, windowMs: 60_000, banMs: 10_000 },
    () => now,
    exempt,
  );
  return { guard, tick: (ms: number) => (now += ms) };
};

test('a source over the request rate is limited until the block ends; others are not', () => {
  const { guard, tick } = make();
  assert.deepEqual(
    [1, 2, 3].map(() => guard.admit('198.51.100.1')),
    ['ok', 'ok', 'ok'],
  );
  assert.equal(guard.admit('198.51.100.1'), 'rate-limited');
  assert.equal(guard.admit('198.51.100.2'), 'ok');
  tick(4000);
  assert.equal(guard.admit('198.51.100.1'), 'rate-limited', 'still blocked');
  tick(1001);
  assert.equal(guard.admit('198.51.100.1'), 'ok');
  assert.equal(guard.bannedSources(), 0);
});

test('a new window resets the count', () => {
  const { guard, tick } = make();
  for (let i = 0; i < 3; i++) guard.admit('a');
  tick(1000);
  assert.equal(guard.admit('a'), 'ok');
});

test('repeated authentication failures ban the source and the user', () => {
  const { guard, tick } = make();
  guard.authFailed('203.0.113.9', 'alice');
  guard.authFailed('203.0.113.9', 'alice');
  assert.equal(guard.admit('203.0.113.9'), 'ok', 'at the limit, not over it');
  guard.authFailed('203.0.113.9', 'alice');
  assert.equal(guard.admit('203.0.113.9'), 'banned');
  assert.equal(guard.userBanned('alice'), true);
  assert.equal(guard.userBanned('bob'), false);
  assert.equal(guard.bannedSources(), 1);
  tick(10_001);
  assert.equal(guard.admit('203.0.113.9'), 'ok');
  assert.equal(guard.userBanned('alice'), false);
});

test('a success clears the source count; exempt sources are never limited', () => {
  const { guard } = make((a) => a === '192.0.2.1');
  guard.authFailed('a', 'u');
  guard.authFailed('a', 'u');
  guard.authSucceeded('a');
  guard.authFailed('a', 'v');
  assert.equal(guard.admit('a'), 'ok');
  for (let i = 0; i < 10; i++) assert.equal(guard.admit('192.0.2.1'), 'ok');
});

test('the failures counted per user do not keep the requests they came in alive', () => {
  // 10,000 users (an enumeration) from ~4 KB requests: kept whole (the user a slice of the
  // request's text), they would hold ~40 MB.
  v8.setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { guard } = make();
  const pad = 'y'.repeat(4000);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 10_000; i++) {
    const text = Buffer.from(
      `REGISTER sip:example.com SIP/2.0\r\nX-User: guessed-user-${i}\r\n${pad}`,
    ).toString('latin1');
    guard.authFailed('203.0.113.9', text.slice(text.indexOf('X-User: ') + 8, text.indexOf('\r\n', 40)));
  }
  gc();
  const grown = (process.memoryUsage().heapUsed - before) / 1048576;
  assert.equal(guard.userBanned('guessed-user-9999'), false);
  assert.ok(grown < 10, `the heap grew ${grown.toFixed(1)} MB`);
});
