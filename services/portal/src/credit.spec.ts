/**
 * Credit through the rating service, started in the same process as `npm start`
 * does: accounts follow the subscribers, top-ups are applied once per
 * Idempotency-Key, vouchers are generated, exported and redeemed once, rate
 * plans are checked by rating, CDRs come from it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TOPICS } from '@switchboard/contracts';
import type { ServiceModule } from '@switchboard/platform';
import { ratingService } from '../../rating/src/main';
import { failedRecord, startRecord, stopRecord } from '../../rating/src/testing';
import { RATING_CHANNEL, type RatingOp } from './store';
import { startTestPortal, until, type TestPortal } from './test-support';

let p: TestPortal;
before(async () => {
  p = await startTestPortal(
    {
      SWITCHBOARD_RATING_GRPC_PORT: '0',
      SWITCHBOARD_RATING_GRPC_HOST: '127.0.0.1',
      SWITCHBOARD_PORTAL_LOGIN_RATE: '6',
    },
    [ratingService as ServiceModule],
  );
});
after(async () => {
  await p?.stop();
});

const RATES = `prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds
49,Germany,DE,,0,0.05,0,1/1,0
`;

async function subscriberSession(login: string, password: string) {
  const res = await fetch(`${p.url}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login, password }),
  });
  const { csrfToken } = (await res.json()) as { csrfToken: string };
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  return async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${p.url}${path}`, {
      method,
      headers: { cookie, 'x-csrf-token': csrfToken, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
}

test('a new subscriber has a prepaid account at zero; credit is added once per Idempotency-Key, with a reason in the audit log', async () => {
  const s = await p.api('POST', '/api/v1/subscribers', { username: 'alice', password: 'secret' });
  const bal = await until(async () => {
    const r = await p.api('GET', `/api/v1/subscribers/${s.body.id}/balance`);
    return r.status === 200 ? r.body : undefined;
  }, 'the rating account');
  assert.deepEqual(
    { balance: bal.balance, currency: bal.currency, prepaid: bal.prepaid, account: bal.account },
    { balance: '0.00', currency: 'EUR', prepaid: true, account: 'sip:alice@example.com' },
  );

  const add = () =>
    fetch(`${p.url}/api/v1/subscribers/${s.body.id}/credit`, {
      method: 'POST',
      headers: {
        authorization: 'Bearer test-admin-token-0123456789',
        'content-type': 'application/json',
        'idempotency-key': 'order-1',
      },
      body: JSON.stringify({ amount: '10.00', reason: 'paid by bank transfer' }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { balance: string } }));
  const first = await add();
  assert.equal(first.status, 200);
  assert.equal(first.body.balance, '10.00');
  assert.equal((await add()).body.balance, '10.00', 'the same key is applied once');
  const adj = await p.api('POST', `/api/v1/subscribers/${s.body.id}/credit`, {
    amount: '-2.5',
    reason: 'goodwill correction',
    kind: 'adjustment',
  });
  assert.equal(adj.body.balance, '7.50');
  const bad = await p.api('POST', `/api/v1/subscribers/${s.body.id}/credit`, { amount: '-1', reason: 'x' });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'amount');
  const audit = await p.api('GET', '/api/v1/audit?pageSize=3');
  assert.ok(
    audit.body.items.some(
      (e: { action: string; detail: { reason?: string } }) =>
        e.action === 'credit' && e.detail.reason === 'goodwill correction',
    ),
  );
});

test('vouchers: a batch is generated and exported; a subscriber redeems one once, and no one else’s account', async () => {
  const s = await p.api('POST', '/api/v1/subscribers', {
    username: 'bob',
    password: 'secret',
    webPassword: 'bob-web-pw',
  });
  const other = await p.api('POST', '/api/v1/subscribers', { username: 'carol', password: 'secret' });
  const batch = await p.api('POST', '/api/v1/vouchers', { count: 3, amount: '5', batch: 'fair-2026' });
  assert.equal(batch.status, 201);
  assert.equal(batch.body.items.length, 3);
  assert.match(batch.body.items[0].code, /^\d{16}$/);
  assert.equal(batch.body.items[0].amount, '5.00');
  const csv = await fetch(`${p.url}/api/v1/vouchers?batch=fair-2026&format=csv`, {
    headers: { authorization: 'Bearer test-admin-token-0123456789' },
  });
  assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
  const lines = (await csv.text()).trim().split('\r\n');
  assert.equal(lines[0], 'code,amount,currency,batch,createdAt,redeemedBy,redeemedAt');
  assert.equal(lines.length, 4);
  // A batch of more vouchers than a page is exported whole.
  assert.equal(
    (await p.api('POST', '/api/v1/vouchers', { count: 620, amount: '1', batch: 'cards' })).status,
    201,
  );
  const cards = await fetch(`${p.url}/api/v1/vouchers?batch=cards&format=csv`, {
    headers: { authorization: 'Bearer test-admin-token-0123456789' },
  });
  const codes = (await cards.text()).trim().split('\r\n').slice(1);
  assert.equal(new Set(codes.map((l) => l.split(',')[0])).size, 620);

  const call = await subscriberSession('bob@example.com', 'bob-web-pw');
  const code = batch.body.items[0].code as string;
  const dashed = `${code.slice(0, 4)}-${code.slice(4, 8)}-${code.slice(8, 12)}-${code.slice(12)}`;
  const redeemed = await call('POST', `/api/v1/subscribers/${s.body.id}/vouchers`, { code: dashed });
  assert.equal(redeemed.status, 200);
  assert.equal(redeemed.body.balance, '5.00');
  assert.equal((await call('POST', `/api/v1/subscribers/${s.body.id}/vouchers`, { code })).status, 404);
  assert.equal((await call('GET', `/api/v1/subscribers/${s.body.id}/balance`)).body.balance, '5.00');
  // Someone else's balance, CDRs and vouchers: refused.
  assert.equal((await call('GET', `/api/v1/subscribers/${other.body.id}/balance`)).status, 403);
  assert.equal((await call('GET', `/api/v1/subscribers/${other.body.id}/cdrs`)).status, 403);
  assert.equal(
    (await call('POST', `/api/v1/subscribers/${other.body.id}/vouchers`, { code: batch.body.items[1].code }))
      .status,
    403,
  );
  assert.equal(
    (await call('POST', `/api/v1/subscribers/${s.body.id}/credit`, { amount: '100', reason: 'free money' }))
      .status,
    403,
  );
  assert.equal((await call('GET', '/api/v1/vouchers')).status, 403);
  const list = await p.api('GET', '/api/v1/vouchers?batch=fair-2026');
  assert.equal(
    list.body.items.filter((v: { redeemedBy: string | null }) => v.redeemedBy === 'sip:bob@example.com')
      .length,
    1,
  );
});

test("administrators search every account's calls by period, account, number, result and gateway; subscribers may not", async () => {
  const eve = await p.api('POST', '/api/v1/subscribers', {
    username: 'eve',
    password: 'secret',
    webPassword: 'eve-web-pw',
  });
  const frank = await p.api('POST', '/api/v1/subscribers', { username: 'frank', password: 'secret' });
  const at = Date.now() - 600_000;
  const calls = [
    { callId: 'search-1', account: eve.body.aor, callee: '4930111222', answeredAt: at, duration: 30 },
    {
      callId: 'search-2',
      account: frank.body.aor,
      callee: '15551234567',
      answeredAt: at + 1000,
      duration: 60,
      gateway: 'gw2',
    },
  ];
  const failed = {
    callId: 'search-3',
    account: eve.body.aor,
    callee: '4930999000',
    answeredAt: at + 2000,
    duration: 0,
  };
  await p.bus.publish(
    TOPICS.accounting,
    [...calls.flatMap((c) => [startRecord(c), stopRecord(c)]), failedRecord(failed, 486)].map((r) => ({
      key: r.sessionId!,
      value: JSON.stringify(r),
    })),
  );
  const search = async (q: string) => {
    const r = await p.api('GET', `/api/v1/cdrs?from=${new Date(at - 1000).toISOString()}&${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { items: { callId: string }[]; nextPageToken: string | null };
  };
  await until(async () => (await search('')).items.length === 3, 'the three CDRs rated', 15_000);
  const ids = async (q: string) => (await search(q)).items.map((c) => c.callId);
  assert.deepEqual(await ids('callee=%2B4930'), ['search-1', 'search-3']);
  assert.deepEqual(await ids('callee=4930&disposition=failed'), ['search-3']);
  assert.deepEqual(await ids(`account=${encodeURIComponent(frank.body.aor)}`), ['search-2']);
  assert.deepEqual(await ids('account=eve%40example.com'), ['search-1', 'search-3']);
  assert.deepEqual(await ids('gateway=gw2'), ['search-2']);
  const first = await search('pageSize=2');
  assert.deepEqual(
    first.items.map((c) => c.callId),
    ['search-1', 'search-2'],
  );
  assert.deepEqual(await ids(`pageSize=2&pageToken=${encodeURIComponent(first.nextPageToken!)}`), [
    'search-3',
  ]);

  const csv = await fetch(`${p.url}/api/v1/cdrs?disposition=answered&callee=1555&format=csv`, {
    headers: { authorization: 'Bearer test-admin-token-0123456789' },
  });
  const lines = (await csv.text()).trim().split('\r\n');
  assert.equal(lines.length, 2);
  assert.match(lines[1], /search-2/);
  // The export has every CDR of the search, however many pages it is read in.
  const all = await fetch(
    `${p.url}/api/v1/cdrs?from=${new Date(at - 1000).toISOString()}&pageSize=1&format=csv`,
    { headers: { authorization: 'Bearer test-admin-token-0123456789' } },
  );
  const rows = (await all.text()).trim().split('\r\n');
  assert.deepEqual(
    rows.slice(1).map((l) => l.split(',')[1]),
    ['search-1', 'search-2', 'search-3'],
  );
  const bad = await p.api('GET', '/api/v1/cdrs?callee=49x');
  assert.deepEqual([bad.status, bad.body.field], [400, 'callee']);

  const asEve = await subscriberSession('eve@example.com', 'eve-web-pw');
  assert.equal((await asEve('GET', '/api/v1/cdrs')).status, 403);
  assert.equal(
    ((await asEve('GET', `/api/v1/subscribers/${eve.body.id}/cdrs`)).body.items as unknown[]).length,
    2,
  );
});

test('rate plans are checked by rating (400 naming ratesCsv) and assigned to a domain; CDRs list and export', async () => {
  const bad = await p.api('PUT', '/api/v1/rate-plans/basic', {
    currency: 'EUR',
    ratesCsv: 'prefix,name\nnot,a,plan\n',
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, 'ratesCsv');
  const ok = await p.api('PUT', '/api/v1/rate-plans/basic', { currency: 'EUR', ratesCsv: RATES });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { planId: 'basic', rates: 1 });
  const domains = await p.api('GET', '/api/v1/domains');
  const def = domains.body.items.find((d: { domain: string }) => d.domain === 'example.com');
  assert.equal((await p.api('PUT', `/api/v1/domains/${def.id}/rate-plan`, { planId: 'basic' })).status, 200);

  const s = await p.api('POST', '/api/v1/subscribers', {
    username: 'dave',
    password: 'secret',
    ratePlan: 'basic',
  });
  const bal = await until(async () => {
    const r = await p.api('GET', `/api/v1/subscribers/${s.body.id}/balance`);
    return r.status === 200 ? r.body : undefined;
  }, 'the account');
  assert.equal(bal.planId, 'basic');
  const cdrs = await p.api('GET', `/api/v1/subscribers/${s.body.id}/cdrs`);
  assert.equal(cdrs.status, 200);
  assert.deepEqual(cdrs.body, { items: [], nextPageToken: null });
  const csv = await fetch(`${p.url}/api/v1/subscribers/${s.body.id}/cdrs?format=csv`, {
    headers: { authorization: 'Bearer test-admin-token-0123456789' },
  });
  assert.equal((await csv.text()).split('\r\n')[0].split(',')[0], 'id');
});

test('sign-in attempts are limited per client address (429 with Retry-After), whatever the names tried', async () => {
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 8; i++) {
    const r = await fetch(`${p.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: `guess-${i}`, password: 'x' }),
    });
    statuses.push(r.status);
    retryAfter ??= r.headers.get('retry-after');
  }
  // The limit is 6 a minute (other tests here may have used some): wrong passwords until then, 429 after.
  const first = statuses.indexOf(429);
  assert.ok(first >= 1 && first <= 6, statuses.join(','));
  assert.ok(
    statuses.slice(0, first).every((x) => x === 401),
    statuses.join(','),
  );
  assert.ok(
    statuses.slice(first).every((x) => x === 429),
    statuses.join(','),
  );
  assert.match(retryAfter ?? '', /^\d+$/);
});

test('queued account changes go to rating in order, many a call; one that rating refuses is dropped alone', async () => {
  const account = (name: string, o: { currency?: string; blocked?: boolean } = {}): RatingOp => ({
    op: 'account',
    account: `sip:${name}@queued.example.com`,
    prepaid: true,
    currency: o.currency ?? 'EUR',
    planId: '',
    blocked: o.blocked ?? false,
  });
  const ops: RatingOp[] = [
    account('q1'),
    account('q2', { currency: 'euro' }), // refused by rating: not an ISO 4217 code
    account('q3'),
    {
      op: 'adjust',
      account: 'sip:q3@queued.example.com',
      kind: 'topup',
      amountMicros: 1_000_000,
      actor: 'test',
      reason: 'queued top-up',
      idempotencyKey: 'queued-q3',
    },
    account('q3', { blocked: true }),
  ];
  await p.db.query(
    `INSERT INTO portal.outbox (topic, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS x(k, v)`,
    [RATING_CHANNEL, ops.map((o) => o.account), ops.map((o) => JSON.stringify(o))],
  );
  await until(async () => {
    const r = await p.db.query('SELECT 1 FROM portal.outbox WHERE topic = $1', [RATING_CHANNEL]);
    return r.rowCount === 0 || undefined;
  }, 'the queue delivered');
  const r = await p.db.query<{ account: string; blocked: boolean; balance_micros: string }>(
    `SELECT account, blocked, balance_micros::text FROM rating.accounts WHERE account LIKE '%@queued.example.com' ORDER BY account`,
  );
  assert.deepEqual(r.rows, [
    { account: 'sip:q1@queued.example.com', blocked: false, balance_micros: '0' },
    { account: 'sip:q3@queued.example.com', blocked: true, balance_micros: '1000000' },
  ]);
});

test('a carrier rate deck of 60,000 prefixes (3.6 MB of CSV) imports through the API and exports back whole; other routes keep the 100 kB limit', async () => {
  let csv = 'prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds\n';
  for (let i = 0; i < 60_000; i++)
    csv += `${100000 + i},Destination number ${i} mobile,ZZ,,0,0.0${(i % 90) + 10},0,60/60,0\n`;
  const ok = await p.api('PUT', '/api/v1/rate-plans/deck', { currency: 'EUR', ratesCsv: csv });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body, { planId: 'deck', rates: 60_000 });
  const back = await p.api('GET', '/api/v1/rate-plans/deck');
  assert.equal(back.status, 200);
  const lines = back.body.ratesCsv.trim().split('\n');
  assert.equal(lines.length, 60_001);
  assert.equal(lines[60_000], '159999,Destination number 59999 mobile,ZZ,,0.00,0.069,0,60/60,0');

  // A deck wrong on every line: the first errors by line, and how many more.
  const wrong = await p.api('PUT', '/api/v1/rate-plans/deck', {
    currency: 'EUR',
    ratesCsv: csv.replaceAll(',0,60/60,0', ',x,60/60,0'),
  });
  assert.equal(wrong.status, 400);
  assert.match(wrong.body.message, /^ratesCsv: rates line 2: min_seconds: expected whole seconds, got "x"; /);
  assert.match(wrong.body.message, /rates line 21: .*; and 59980 more$/);
  const tooLarge = await p.api('PUT', '/api/v1/rate-plans/deck', {
    currency: 'EUR',
    ratesCsv: 'x'.repeat(33 << 20),
  });
  assert.deepEqual([tooLarge.status, tooLarge.body.field], [413, 'body']);
  const elsewhere = await p.api('POST', '/api/v1/subscribers', {
    username: 'x'.repeat(200_000),
    password: 'secret',
  });
  assert.deepEqual([elsewhere.status, elsewhere.body.field], [413, 'body']);
});
