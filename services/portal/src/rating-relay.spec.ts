// The `@rating` channel's delivery against a RatingAdmin test double (a unit: the real rating
// service is in credit.spec.ts): the order of calls, and which failures drop, fall back or retry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { DomainError } from '@switchboard/platform';
import { ratingDelivery } from './rating-relay';
import type { RatingOp } from './store';

const account = (name: string): RatingOp => ({
  op: 'account',
  account: `sip:${name}@example.com`,
  prepaid: true,
  currency: 'EUR',
  planId: '',
  blocked: false,
});
const topup = (name: string): RatingOp => ({
  op: 'adjust',
  account: `sip:${name}@example.com`,
  kind: 'topup',
  amountMicros: 1_000_000,
  actor: 'admin',
  reason: 'test',
  idempotencyKey: `k-${name}`,
});
const rows = (ops: RatingOp[]) => ops.map((o, i) => ({ key: String(i), value: JSON.stringify(o) }));
const user = (a: { account: string }) => /^sip:([^@]+)/.exec(a.account)![1];

/** RatingAdmin's calls, recorded; `fail` gives the error a call throws, if any. */
function fakeRating(fail: (call: string) => Error | undefined) {
  const calls: string[] = [];
  const answer = async (call: string) => {
    calls.push(call);
    const e = fail(call);
    if (e) throw e;
    return {};
  };
  return {
    calls,
    rating: {
      setAccounts: (r: { accounts: { account: string }[] }) =>
        answer(`setAccounts ${r.accounts.map(user).join(',')}`),
      setAccount: (r: { account: string }) => answer(`setAccount ${user(r)}`),
      adjust: (r: { account: string }) => answer(`adjust ${user(r)}`),
    },
  };
}
const log = pino({ level: 'silent' });
const queued = rows([account('alice'), account('bob'), topup('alice'), account('carol')]);

test('settings go many a call, a top-up after the settings queued before it', async () => {
  const f = fakeRating(() => undefined);
  await ratingDelivery(f.rating, log)('@rating', queued);
  assert.deepEqual(f.calls, ['setAccounts alice,bob', 'adjust alice', 'setAccounts carol']);
});

test('a rating service without SetAccounts (UNIMPLEMENTED, a rolling upgrade): settings go one at a time, in order', async () => {
  const old = new DomainError('unimplemented', 'Method not found');
  const f = fakeRating((c) => (c.startsWith('setAccounts') ? old : undefined));
  await ratingDelivery(f.rating, log)('@rating', queued);
  assert.deepEqual(f.calls, [
    'setAccounts alice,bob',
    'setAccount alice',
    'setAccount bob',
    'adjust alice',
    'setAccounts carol',
    'setAccount carol',
  ]);
});

test('an account refused for good is dropped alone; a transient failure is thrown for the relay to retry', async () => {
  const refused = new DomainError('invalid_argument', 'bad currency', 'currency');
  const f = fakeRating((c) =>
    c === 'setAccounts alice,bob' || c === 'setAccount bob' ? refused : undefined,
  );
  await ratingDelivery(f.rating, log)('@rating', queued);
  assert.deepEqual(f.calls, [
    'setAccounts alice,bob',
    'setAccount alice',
    'setAccount bob',
    'adjust alice',
    'setAccounts carol',
  ]);

  const down = fakeRating((c) =>
    c === 'adjust alice' ? new DomainError('unavailable', 'rating is down') : undefined,
  );
  await assert.rejects(ratingDelivery(down.rating, log)('@rating', queued), { kind: 'unavailable' });
  assert.deepEqual(down.calls, ['setAccounts alice,bob', 'adjust alice']);
});
