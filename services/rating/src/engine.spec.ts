import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { migrate, openDb, type Db, type QueryOptions } from '@switchboard/platform';
import { requirePostgres, testPostgresUrl, until } from '@switchboard/platform/testing';
import { RatingEngine, type LowBalance } from './engine';
import type { Cdr } from './cdr';
import { exportPlan } from './csv';
import { failedRecord, SAMPLE_RATES, startRecord, stopRecord, type CallSpec } from './testing';

const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');
const T0 = Date.parse('2026-11-25T12:00:00Z');

describe('rating engine (PGlite)', () => {
  let db: Db;
  let clock = T0;
  let published: Cdr[] = [];
  let publishedJson: string[] = [];
  let low: LowBalance[] = [];
  let engine: RatingEngine;
  const make = () =>
    new RatingEngine({
      db,
      now: () => clock,
      publish: async (c, json) => {
        published.push(...c);
        publishedJson.push(...json);
      },
      onLowBalance: (e) => void low.push(e),
      maxCallSeconds: 3600,
      reservationGraceSeconds: 60,
    });

  before(async () => {
    db = await openDb({ memory: true });
    await migrate(db, { schema: 'rating', dir: MIGRATIONS });
  });
  after(() => db.close());
  afterEach(() => {
    // what is sent on `cdrs` is each published CDR as JSON
    assert.deepEqual(
      publishedJson.map((j) => JSON.parse(j) as Cdr),
      published,
    );
  });
  beforeEach(async () => {
    await db.exec(
      'TRUNCATE rating.cdrs, rating.open_calls, rating.ledger, rating.reservations, rating.accounts, rating.media_quality, rating.plan_versions, rating.rates, rating.domain_plans, rating.consumed_offsets CASCADE',
    );
    clock = T0;
    published = [];
    publishedJson = [];
    low = [];
    engine = make();
    const r = await engine.importPlan(
      {
        planId: 'std',
        effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
        currency: 'EUR',
        timezone: 'UTC',
        holidays: [],
      },
      SAMPLE_RATES,
      '',
      'test',
    );
    assert.ok(r.ok);
    await engine.upsertAccount({
      account: 'sip:alice@example.com',
      prepaid: true,
      currency: 'EUR',
      creditLimitMicros: null,
      planId: 'std',
      blocked: false,
    });
    await engine.adjust({
      account: 'sip:alice@example.com',
      kind: 'topup',
      amountMicros: 1_000_000,
      actor: 'test',
      reason: 'initial',
    });
  });

  const call = (o: Partial<CallSpec> = {}): CallSpec => ({
    callId: 'c1@example.com',
    account: 'sip:alice@example.com',
    callee: '15551234567',
    answeredAt: T0 - 120_000,
    duration: 61,
    ...o,
  });
  const handle = async (r: Parameters<RatingEngine['handleAccounting']>[0]) => {
    await engine.handleAccounting(r);
    await engine.flush();
  };
  const handleMedia = async (e: Parameters<RatingEngine['handleMediaEvent']>[0]) => {
    await engine.handleMediaEvent(e);
    await engine.flush();
  };
  const balance = async (a = 'sip:alice@example.com') => (await engine.balance(a)).balanceMicros;
  const ledgerSum = async (a = 'sip:alice@example.com') =>
    Number(
      (
        await db.query<{ s: string }>(
          'SELECT coalesce(sum(amount_micros),0)::text AS s FROM rating.ledger WHERE account = $1',
          [a],
        )
      ).rows[0].s,
    );

  test('Start and Stop make one rated CDR and one debit, however often they are delivered', async () => {
    const c = call();
    const start = startRecord(c);
    const stop = stopRecord(c, true);
    await handle(start);
    assert.equal(published.length, 0);
    await handle(stop);
    assert.equal(published.length, 1);
    const cdr = published[0];
    assert.equal(cdr.account, 'sip:alice@example.com');
    assert.equal(cdr.calleeNumber, '15551234567');
    assert.equal(cdr.destination, 'USA fictional');
    assert.equal(cdr.prefix, '1555');
    assert.equal(cdr.durationSeconds, 61);
    assert.equal(cdr.billableSeconds, 61);
    assert.equal(cdr.priceMicros, 10_000 + 101_667);
    assert.equal(cdr.currency, 'EUR');
    assert.equal(cdr.disposition, 'answered');
    assert.equal(cdr.endReason, 'bye');
    assert.deepEqual(cdr.flags, []);
    assert.equal(await balance(), 1_000_000 - 111_667);

    // redelivery, in order and out of it
    for (const r of [start, stop, stop, start]) await handle(r);
    assert.equal(await balance(), 1_000_000 - 111_667, 'debited once');
    assert.equal(await ledgerSum(), await balance(), 'balance is the ledger sum');
    assert.equal(published.length, 1, 'published once: a redelivered record finds its CDR stored');
    const n = await db.query('SELECT 1 FROM rating.cdrs');
    assert.equal(n.rowCount, 1);
    const open = await db.query('SELECT 1 FROM rating.open_calls');
    assert.equal(open.rowCount, 0, 'a Start redelivered after its CDR opens nothing');
  });

  test('a batch with its position: applied once; a redelivered batch skips what the stored offset covers', async () => {
    const a = call({ callId: 'pos-a' });
    const b = call({ callId: 'pos-b', duration: 30 });
    const at = (offsets: number[], next: number) => ({
      consumer: 'rating',
      topic: 'accounting',
      partition: 0,
      offsets: offsets.map(String),
      next: String(next),
    });
    await engine.handleAccountingBatch([startRecord(a), stopRecord(a)], at([0, 1], 2));
    const pos = await db.query<{ n: string }>(
      "SELECT next_offset::text AS n FROM rating.consumed_offsets WHERE consumer = 'rating' AND topic = 'accounting' AND partition = 0",
    );
    assert.equal(pos.rows[0].n, '2', 'the position is stored with the CDR');
    const after1 = await balance();
    // Make a replay visible: were offsets 0-1 applied again, call a's CDR would come back.
    await db.query("DELETE FROM rating.cdrs WHERE call_id = 'pos-a'");
    await engine.handleAccountingBatch([startRecord(a), stopRecord(a)], at([0, 1], 2));
    assert.equal((await db.query("SELECT 1 FROM rating.cdrs WHERE call_id = 'pos-a'")).rowCount, 0);
    // A batch overlapping the stored position: only the records from it on are applied.
    await engine.handleAccountingBatch([stopRecord(a), startRecord(b), stopRecord(b)], at([1, 2, 3], 4));
    assert.equal((await db.query("SELECT 1 FROM rating.cdrs WHERE call_id = 'pos-a'")).rowCount, 0);
    assert.equal((await db.query("SELECT 1 FROM rating.cdrs WHERE call_id = 'pos-b'")).rowCount, 1);
    assert.equal(
      await balance(),
      after1 - 60_000,
      'one debit for b (30 s at 0.10/min + 0.01), none again for a',
    );
    assert.equal(await balance(), await ledgerSum());
    await assert.rejects(engine.handleAccountingBatch([startRecord(a)], at([], 1)));
    // the CDRs stored by batches are published from memory (as JSON serialised once, checked after each test)
    await engine.flush();
    assert.deepEqual(
      published.map((c) => c.callId),
      ['pos-a', 'pos-b'],
    );
  });

  for (const batched of [false, true])
    test(`a debit that crosses the low-balance threshold is reported once${batched ? ' (batches)' : ''}`, async () => {
      const handleOne = batched
        ? async (r: Parameters<RatingEngine['handleAccounting']>[0]) => {
            await engine.handleAccountingBatch([r]);
            await engine.flush();
          }
        : handle;
      await engine.upsertAccount({
        account: 'sip:alice@example.com',
        prepaid: true,
        currency: 'EUR',
        creditLimitMicros: null,
        planId: 'std',
        blocked: false,
        lowBalanceMicros: 900_000,
      });
      const c = call({ callee: '4930123456', duration: 60 });
      await handleOne(stopRecord({ ...c, callId: 'l0' }));
      assert.equal(low.length, 0, '950,000 left: above the threshold');
      await handleOne(stopRecord({ ...c, callId: 'l1' }));
      await handleOne(stopRecord({ ...c, callId: 'l1' }));
      await handleOne(stopRecord({ ...c, callId: 'l2' }));
      assert.deepEqual(
        low.map((l) => [l.account, l.balanceMicros, l.thresholdMicros]),
        [['sip:alice@example.com', 850_000, 900_000]],
        'l1 leaves exactly the threshold (not below); its redelivery debits nothing; l2 crosses it',
      );
    });

  test('two calls with one Call-ID but different tags (forked) are two CDRs', async () => {
    const a = call({ toTag: 'b1', duration: 10 });
    const b = call({ toTag: 'b2', duration: 20 });
    for (const r of [startRecord(a), startRecord(b), stopRecord(b), stopRecord(a)]) await handle(r);
    assert.deepEqual(
      published.map((p) => p.durationSeconds),
      [20, 10],
    );
    assert.notEqual(published[0].id, published[1].id);
  });

  test('Failed is a CDR with zero billable time and its SIP code, stored once', async () => {
    const f = failedRecord(call({ toTag: null as unknown as string }), 486);
    await handle(f);
    await handle(f);
    assert.equal(published.length, 1);
    assert.equal(published[0].disposition, 'failed');
    assert.equal(published[0].sipCode, 486);
    assert.equal(published[0].billableSeconds, 0);
    assert.equal(published[0].priceMicros, 0);
    assert.equal(await balance(), 1_000_000);
  });

  test('a Stop without a Start is rated from its own timestamps and flagged', async () => {
    await handle(stopRecord(call({ duration: 120, callee: '4930123456' })));
    const cdr = published[0];
    assert.deepEqual(cdr.flags, ['stop_without_start']);
    assert.equal(cdr.durationSeconds, 120);
    assert.equal(cdr.answeredAt, new Date(T0 - 120_000).toISOString());
    assert.equal(cdr.priceMicros, 100_000);
    assert.equal(await balance(), 900_000);
  });

  test('a Start whose Stop never comes is closed by the media timeout, at the last media packet', async () => {
    const c = call({ callee: '4930123456' });
    await handle(startRecord(c));
    const lastPacket = (c.answeredAt + 90_000) / 1000;
    await handleMedia({
      type: 'timeout',
      callId: c.callId,
      stats: {
        deleted: lastPacket + 30,
        legs: [
          { streams: [{ rtcp: false, stats: { packets: 990 }, lost: 10, jitterMs: 4, lastPacket }] },
          { streams: [{ rtcp: true, rttMs: 40, lastPacket: lastPacket - 1 }] },
        ],
      },
    });
    assert.equal(published.length, 1);
    const cdr = published[0];
    assert.equal(cdr.endReason, 'media_timeout');
    assert.equal(cdr.durationSeconds, 90);
    assert.equal(cdr.priceMicros, 75_000);
    assert.equal(cdr.quality?.lossRatio, 0.01);
    assert.ok(cdr.quality!.mos > 3.5 && cdr.quality!.mos < 4.5, String(cdr.quality!.mos));
    // the Stop arriving late changes nothing
    await handle(stopRecord(c));
    assert.equal(await balance(), 925_000);
  });

  test('media stats arriving after the CDR are added and the CDR published again', async () => {
    const c = call({ callee: '4930123456' });
    await handle(startRecord(c));
    await handle(stopRecord(c));
    assert.equal(published[0].quality, null);
    await handleMedia({
      type: 'delete',
      callId: c.callId,
      stats: { legs: [{ streams: [{ stats: { packets: 100 }, lost: 0, jitterMs: 1 }] }] },
    });
    assert.equal(published.length, 2);
    assert.equal(published[1].quality?.lossRatio, 0);
    assert.equal(published[1].priceMicros, published[0].priceMicros);
  });

  test('the sweep closes calls open longer than the maximum duration', async () => {
    const c = call({ callee: '4930123456', answeredAt: T0 });
    await handle(startRecord(c));
    // a Start caught up on from a backlog, answered long ago: its Stop may be right behind it
    await handle(startRecord(call({ callId: 'old', callee: '4930123456', answeredAt: T0 - 36_000_000 })));
    clock = T0 + 3599_000;
    assert.equal((await engine.sweep()).closed, 0, 'nothing open for an hour since rating saw its Start');
    clock = T0 + 3601_000;
    assert.equal((await engine.sweep()).closed, 2);
    published.sort((a, b) => (a.callId === 'old' ? 1 : 0) - (b.callId === 'old' ? 1 : 0));
    assert.equal(published[0].endReason, 'max_duration');
    assert.equal(published[0].durationSeconds, 3600);
    assert.equal(published[0].priceMicros, 3_000_000);
    assert.equal(
      await balance(),
      1_000_000 - 2 * 3_000_000,
      'the prepaid balance went negative: the proxy did not cut the calls',
    );
  });

  test('on-net calls are free; calls without a plan or rate are flagged unrated', async () => {
    await handle(stopRecord(call({ callId: 'on', gateway: null, callee: '100' })));
    assert.deepEqual([published[0].rateStatus, published[0].priceMicros], ['free', 0]);
    await handle(stopRecord(call({ callId: 'fr', callee: '33123456789' })));
    assert.deepEqual(published[1].flags, ['stop_without_start', 'unrated']);
    await handle(stopRecord(call({ callId: 'x', account: 'sip:nobody@example.com' })));
    assert.deepEqual(published[2].flags, ['stop_without_start', 'unrated', 'unknown_account']);
    assert.equal(await balance(), 1_000_000);
  });

  test('authorize: max seconds from balance and rate, reservations shared by concurrent calls, settled by the CDR', async () => {
    const alice = 'sip:alice@example.com';
    // 1.00 EUR at 0.05/min per second: 1200 s
    const a1 = await engine.authorize({ account: alice, callee: '4930123456', callId: 'a1' });
    assert.deepEqual(
      [a1.allowed, a1.maxSeconds, a1.reason, a1.reservedMicros],
      [true, 1200, 'ok', 1_000_000],
    );
    const a2 = await engine.authorize({ account: alice, callee: '4930123456', callId: 'a2' });
    assert.deepEqual(
      [a2.allowed, a2.reason],
      [false, 'insufficient_credit'],
      'the first call holds the whole balance',
    );
    const again = await engine.authorize({ account: alice, callee: '4930123456', callId: 'a1' });
    assert.equal(again.maxSeconds, 1200, 'authorizing the same call again replaces its reservation');
    assert.equal((await engine.balance(alice)).reservedMicros, 1_000_000);
    // the call lasts 60 s: its CDR settles the reservation
    const c = call({ callId: 'a1', callee: '4930123456', duration: 60 });
    await handle(startRecord(c));
    await handle(stopRecord(c));
    const b = await engine.balance(alice);
    assert.deepEqual([b.balanceMicros, b.reservedMicros], [950_000, 0]);
    const a3 = await engine.authorize({ account: alice, callee: '+44 7700 900000', callId: 'a3' });
    assert.equal(a3.maxSeconds, 948, '0.95 at 0.06/min on a 30/6 grid: 950 s affordable, 948 on the grid');
    assert.equal(a3.destination, 'United Kingdom');
    const us = await engine.authorize({ account: alice, callee: '12125550000', callId: 'a4' });
    assert.equal(us.allowed, false, 'the UK call holds the balance');
  });

  test('authorize: concurrent calls of one account never reserve more than its balance', async () => {
    const alice = 'sip:alice@example.com';
    // 1.00 at 0.10/min with a 60/60 grid and a 30 s minimum: up to 10 one-minute calls
    await engine.importPlan(
      { planId: 'min', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
      'prefix,price_per_minute,increment\n49,0.10,60/60\n',
      '',
      'test',
    );
    await engine.upsertAccount({
      account: alice,
      prepaid: true,
      currency: 'EUR',
      creditLimitMicros: null,
      planId: 'min',
      blocked: false,
    });
    let writes = 0;
    const counting: Db = {
      ...db,
      kind: db.kind,
      query: (sql, params, opts) => {
        if (opts?.name === 'rating-authorize-reserve') writes++;
        return db.query(sql, params, opts);
      },
      exec: (sql) => db.exec(sql),
      transaction: (fn) => db.transaction(fn),
      close: () => db.close(),
    };
    const engineOn = (d: Db) =>
      new RatingEngine({
        db: d,
        now: () => clock,
        publish: async () => undefined,
        maxCallSeconds: 120, // each call gets at most 2 minutes = 0.20
        reservationGraceSeconds: 60,
      });
    const small = engineOn(counting);
    await small.loadPlans();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        small.authorize({ account: alice, callee: '4930123456', callId: `k${i}` }),
      ),
    );
    const allowed = answers.filter((a) => a.allowed);
    assert.equal(allowed.length, 5, 'five calls of 0.20 fit in 1.00');
    assert.ok(writes < 12, `group commit: 12 requests in ${writes} writes`);
    assert.deepEqual(
      answers.map((a) => a.allowed),
      [true, true, true, true, true, false, false, false, false, false, false, false],
      'decided in arrival order',
    );
    assert.ok(allowed.every((a) => a.maxSeconds === 120));
    const b = await small.balance(alice);
    assert.deepEqual([b.balanceMicros, b.reservedMicros], [1_000_000, 1_000_000]);

    // two services on one database, their rounds racing (and a top-up between): still never more than the balance
    const others = [engineOn(db), engineOn(db), engineOn(db)];
    await Promise.all(others.map((e) => e.loadPlans()));
    const more = await Promise.all([
      ...Array.from({ length: 30 }, (_, i) =>
        others[i % 3].authorize({ account: alice, callee: '4930123456', callId: `m${i}` }),
      ),
      engine.adjust({ account: alice, kind: 'topup', amountMicros: 600_000, actor: 'test', reason: 'more' }),
    ]);
    assert.equal(
      more.filter((a) => 'allowed' in a && a.allowed).length,
      3,
      'three more calls of 0.20 in 0.60',
    );
    const b2 = await small.balance(alice);
    assert.deepEqual([b2.balanceMicros, b2.reservedMicros], [1_600_000, 1_600_000]);
  });

  test('authorize: reservations expire; refusals; on-net and postpaid', async () => {
    const alice = 'sip:alice@example.com';
    await engine.authorize({ account: alice, callee: '4930123456', callId: 'a1' });
    clock += (1200 + 61) * 1000;
    const later = await engine.authorize({ account: alice, callee: '4930123456', callId: 'a2' });
    assert.equal(later.maxSeconds, 1200, 'an expired reservation holds nothing');
    assert.equal((await engine.sweep()).expired, 1);
    assert.equal(
      (await engine.authorize({ account: alice, callee: '33123456789', callId: 'x' })).reason,
      'no_rate',
    );
    assert.deepEqual(await engine.authorize({ account: alice, callee: 'bob', callId: 'on', onNet: true }), {
      allowed: true,
      reason: 'ok',
      detail: 'on-net, free',
      reservedMicros: 0,
      destination: 'on-net',
    });
    await assert.rejects(engine.authorize({ account: 'sip:nobody@example.com', callee: '49', callId: 'n' }), {
      kind: 'not_found',
    });
    await engine.upsertAccount({
      account: alice,
      prepaid: true,
      currency: 'EUR',
      creditLimitMicros: null,
      planId: 'std',
      blocked: true,
    });
    assert.equal(
      (await engine.authorize({ account: alice, callee: '4930123456', callId: 'b' })).reason,
      'account_blocked',
    );
    await engine.upsertAccount({
      account: 'sip:corp@example.com',
      prepaid: false,
      currency: 'EUR',
      creditLimitMicros: null,
      planId: 'std',
      blocked: false,
    });
    const post = await engine.authorize({
      account: 'sip:corp@example.com',
      callee: '4930123456',
      callId: 'p',
    });
    assert.deepEqual([post.allowed, post.maxSeconds], [true, undefined]);
    await engine.upsertAccount({
      account: 'sip:corp@example.com',
      prepaid: false,
      currency: 'EUR',
      creditLimitMicros: 100_000,
      planId: 'std',
      blocked: false,
    });
    const limited = await engine.authorize({
      account: 'sip:corp@example.com',
      callee: '4930123456',
      callId: 'p',
    });
    assert.equal(limited.maxSeconds, 120, 'postpaid within its credit limit');
  });

  test('re-rating after a plan change: corrections are ledger entries, the CDR is published again, a second run changes nothing', async () => {
    const alice = 'sip:alice@example.com';
    const de = call({ callId: 'r1', callee: '4930123456', duration: 60 });
    const fr = call({ callId: 'r2', callee: '33123456789', duration: 60 });
    for (const c of [de, fr]) {
      await handle(startRecord(c));
      await handle(stopRecord(c));
    }
    assert.deepEqual(
      published.map((p) => [p.callId, p.priceMicros, p.rateStatus]),
      [
        ['r1', 50_000, 'rated'],
        ['r2', 0, 'unrated'],
      ],
    );
    assert.equal(await balance(), 950_000);
    // the plan version in force is replaced: Germany cheaper, France added
    const r = await engine.importPlan(
      {
        planId: 'std',
        effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
        currency: 'EUR',
        timezone: 'UTC',
        holidays: [],
      },
      SAMPLE_RATES.replace('49,Germany,DE,,0,0.05,0,1/1,0', '49,Germany,DE,,0,0.03,0,1/1,0') +
        '33,France,FR,,0,0.04,0,1/1,0\n',
      '',
      'test',
    );
    assert.ok(r.ok);
    published = [];
    publishedJson = [];
    const out = await engine.rerate({ account: alice, from: 0, to: T0 + 1, actor: 'portal:admin' });
    await engine.flush();
    assert.deepEqual(out, { examined: 2, corrected: 2, deltaMicros: 50_000 - 30_000 - 40_000 });
    assert.equal(await balance(), 1_000_000 - 30_000 - 40_000);
    assert.equal(await ledgerSum(), await balance());
    const adj = await db.query<{ amount_micros: string; actor: string }>(
      "SELECT amount_micros::text, actor FROM rating.ledger WHERE kind = 'adjustment' ORDER BY amount_micros",
    );
    assert.deepEqual(
      adj.rows.map((x) => [Number(x.amount_micros), x.actor]),
      [
        [-40_000, 'portal:admin'],
        [20_000, 'portal:admin'],
      ],
    );
    assert.deepEqual(published.map((p) => [p.callId, p.priceMicros, p.rateStatus, p.destination]).sort(), [
      ['r1', 30_000, 'rated', 'Germany'],
      ['r2', 40_000, 'rated', 'France'],
    ]);
    assert.equal((published[0] as Cdr & { rerated: unknown[] }).rerated.length, 1);
    assert.deepEqual(await engine.rerate({ account: alice, from: 0, to: T0 + 1, actor: 'portal:admin' }), {
      examined: 2,
      corrected: 0,
      deltaMicros: 0,
    });
    assert.equal(await balance(), 930_000);
  });

  test('adjust: idempotent by key, kinds checked, balance is the ledger sum', async () => {
    const alice = 'sip:alice@example.com';
    const e = {
      account: alice,
      kind: 'voucher' as const,
      amountMicros: 500_000,
      actor: 'portal:admin',
      reason: 'voucher 1234',
      idempotencyKey: 'v-1234',
    };
    assert.deepEqual(await engine.adjust(e), { balanceMicros: 1_500_000, applied: true });
    assert.deepEqual(await engine.adjust(e), { balanceMicros: 1_500_000, applied: false });
    await engine.adjust({
      account: alice,
      kind: 'adjustment',
      amountMicros: -200_000,
      actor: 'portal:admin',
      reason: 'goodwill reversed',
    });
    assert.equal(await balance(), 1_300_000);
    assert.equal(await ledgerSum(), 1_300_000);
    await assert.rejects(
      engine.adjust({ ...e, kind: 'topup', amountMicros: -1, idempotencyKey: undefined }),
      { kind: 'invalid_argument' },
    );
    await assert.rejects(engine.adjust({ ...e, account: 'nobody', idempotencyKey: undefined }), {
      kind: 'not_found',
    });
  });

  test('upsertAccounts: many in one call, the unchanged not written, the last of an account wins, fields named', async () => {
    const settings = (account: string, planId: string | null = 'std') => ({
      account,
      prepaid: true,
      currency: 'EUR',
      creditLimitMicros: null,
      planId,
      blocked: false,
    });
    const seqs = async () =>
      Object.fromEntries(
        (
          await db.query<{ account: string; auth_seq: string; plan_id: string | null }>(
            'SELECT account, auth_seq::text, plan_id FROM rating.accounts ORDER BY account',
          )
        ).rows.map((r) => [r.account, `${r.auth_seq}:${r.plan_id}`]),
      );
    const alice = 'sip:alice@example.com';
    const before = await seqs();
    assert.equal(
      await engine.upsertAccounts([
        settings(alice),
        settings('sip:bob@example.com'),
        settings('sip:carol@example.com'),
      ]),
      2,
      'alice is unchanged; bob and carol are new',
    );
    assert.equal((await seqs())[alice], before[alice], 'an unchanged account is not written');
    assert.equal(
      await engine.upsertAccounts([
        settings('sip:bob@example.com', 'gold'),
        settings('sip:carol@example.com'),
        settings('sip:bob@example.com', null),
      ]),
      1,
    );
    const after = await seqs();
    assert.equal(
      after['sip:bob@example.com'],
      '1:null',
      'the last settings of bob win, his sequence bumped once',
    );
    assert.equal(after['sip:carol@example.com'], '0:std');
    await engine.upsertAccount({ ...settings(alice), blocked: true });
    assert.equal((await engine.getAccount(alice))?.blocked, true);
    assert.equal(
      (await seqs())[alice],
      `${Number(before[alice].split(':')[0]) + 1}:std`,
      'a change bumps it',
    );
    await assert.rejects(engine.upsertAccounts([settings(alice), { ...settings('x'), currency: 'euro' }]), {
      kind: 'invalid_argument',
      field: 'accounts[1].currency',
    });
    await assert.rejects(engine.upsertAccounts(Array.from({ length: 1001 }, (_, i) => settings(`u${i}`))), {
      kind: 'invalid_argument',
      field: 'accounts',
    });
    assert.equal(await engine.upsertAccounts([]), 0);
  });

  test('a reload that read the plans before an import committed does not put the older plans back after it', async () => {
    // The reload (a sweep's) is held once it has read the rates of the version it found.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let held = false;
    const gated = new Proxy(db, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return async (sql: string, params?: unknown[]) => {
          const r = await target.query(sql, params);
          if (!held && sql.includes('FROM rating.rates WHERE plan_id')) {
            held = true;
            await gate;
          }
          return r;
        };
      },
    });
    const e = new RatingEngine({
      db: gated,
      now: () => clock,
      publish: async () => undefined,
      maxCallSeconds: 3600,
      reservationGraceSeconds: 60,
    });
    const sweep = e.loadPlans(true);
    for (let i = 0; !held; i++) {
      assert.ok(i < 10_000, 'the reload reads the rates of the version it found');
      await new Promise((r) => setImmediate(r));
    }
    const meta = {
      planId: 'std',
      effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
      currency: 'EUR',
      timezone: 'UTC',
      holidays: [],
    };
    const imported = e.importPlan(
      meta,
      SAMPLE_RATES.replace('49,Germany,DE,,0,0.05,', '49,Germany,DE,,0,0.07,'),
      '',
      'test',
    );
    await new Promise((r) => setTimeout(r, 50));
    open();
    await Promise.all([sweep, imported]);
    assert.equal(e.book.versionAt('std', T0)?.index.match('4930123')?.rates.get('')?.perMinuteMicros, 70_000);
  });

  test('a plan of more rates than a page is read back whole; a reload reads again only versions imported since', async () => {
    // The catch-all prefix has one rate, so the pages of two-rate destinations end inside one.
    let csv = 'prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds\n';
    csv += ',Anywhere,,,0,0.5,0,60/60,0\n';
    for (let i = 0; i < 6000; i++)
      csv += `${49000 + i},Dest ${i},DE,peak,0,0.1${i % 10},0,1/1,0\n${49000 + i},Dest ${i},DE,night,0,0.0${i % 10}1,0,1/1,0\n`;
    csv += 'on-net,On net,,,0,0.006,0,60/60,0\n';
    const periods = 'name,days,from,to\npeak,mon-fri,08:00,18:00\nnight,all,18:00,08:00\n';
    const meta = {
      planId: 'deck',
      effectiveFrom: Date.parse('2026-02-01T00:00:00Z'),
      currency: 'EUR',
      timezone: 'UTC',
      holidays: [],
    };
    const r = await engine.importPlan(meta, csv, periods, 'test');
    assert.equal(r.ok && r.rates, 12_002);
    const fresh = make();
    await fresh.loadPlans();
    const read = fresh.book.versionAt('deck', meta.effectiveFrom)!;
    assert.deepEqual(
      await exportPlan(read),
      await exportPlan(engine.book.versionAt('deck', meta.effectiveFrom)!),
    );
    assert.equal(read.index.size, 6001);
    assert.equal(read.onNet?.rates.get('')?.perMinuteMicros, 6000);

    await engine.importPlan({ ...meta, planId: 'other' }, SAMPLE_RATES, '', 'test');
    assert.equal(await fresh.loadPlans(), true);
    assert.ok(fresh.book.versionAt('other', meta.effectiveFrom));
    assert.equal(fresh.book.versionAt('deck', meta.effectiveFrom), read, 'unchanged: kept, not read again');

    await engine.importPlan(meta, csv.replace('Dest 0,', 'Dest zero,'), periods, 'test');
    assert.equal(await fresh.loadPlans(), true);
    const again = fresh.book.versionAt('deck', meta.effectiveFrom)!;
    assert.notEqual(again, read, 'imported again: read again');
    assert.equal(again.index.match('4900012')?.name, 'Dest zero');
  });

  test("every account's CDRs in the order they started, narrowed by account, result, callee prefix and gateway, paged", async () => {
    const calls = [
      { callId: 's1', account: 'sip:alice@example.com', callee: '15551234567', answeredAt: T0 - 50_000 },
      {
        callId: 's2',
        account: 'sip:bob@example.com',
        callee: '4930123456',
        answeredAt: T0 - 40_000,
        gateway: 'gw2',
      },
      { callId: 's3', account: 'sip:alice@example.com', callee: '4989123456', answeredAt: T0 - 30_000 },
      { callId: 's4', account: 'sip:bob@example.com', callee: '15557654321', answeredAt: T0 - 20_000 },
    ];
    for (const c of calls) await handle(stopRecord(call(c)));
    await handle(failedRecord(call({ callId: 's5', callee: '4930999999', answeredAt: T0 - 10_000 }), 486));
    const ids = async (q: Partial<Parameters<RatingEngine['listCdrs']>[0]>) =>
      (await engine.listCdrs({ limit: 100, ...q })).map((c) => c.callId);
    assert.deepEqual(await ids({}), ['s1', 's2', 's3', 's4', 's5']);
    assert.deepEqual(await ids({ account: 'sip:bob@example.com' }), ['s2', 's4']);
    assert.deepEqual(await ids({ calleePrefix: '49' }), ['s2', 's3', 's5']);
    assert.deepEqual(await ids({ calleePrefix: '49', disposition: 'answered' }), ['s2', 's3']);
    assert.deepEqual(await ids({ disposition: 'failed' }), ['s5']);
    assert.deepEqual(await ids({ gateway: 'gw2' }), ['s2']);
    assert.deepEqual(await ids({ from: T0 - 35_000, to: T0 - 15_000 }), ['s3', 's4']);
    const first = await engine.listCdrs({ limit: 2 });
    assert.deepEqual(await ids({ limit: 2, after: first[1].id }), ['s3', 's4']);
    assert.deepEqual(await ids({ limit: 2, after: first[1].id, account: 'sip:alice@example.com' }), [
      's3',
      's5',
    ]);
    await assert.rejects(engine.listCdrs({ limit: 1, disposition: 'busy' }), { field: 'disposition' });
    await assert.rejects(engine.listCdrs({ limit: 1, calleePrefix: "1' OR '1" }), { field: 'callee_prefix' });
  });

  test('plans, domain plans and CDR listing survive a new engine on the same database', async () => {
    await engine.upsertAccount({
      account: 'sip:bob@corp.example',
      prepaid: true,
      currency: 'EUR',
      creditLimitMicros: null,
      planId: null,
      blocked: false,
    });
    await engine.assignDomainPlan('corp.example', 'std');
    const fresh = make();
    await fresh.loadPlans();
    assert.equal(
      fresh.quote(fresh.planFor('sip:bob@corp.example', null), '15551234567', 61)?.priceMicros,
      111_667,
    );
    assert.equal(await fresh.loadPlans(), false, 'nothing changed: no reload');
    await fresh.handleAccounting(
      stopRecord(call({ callId: 'l1', account: 'sip:bob@corp.example', answeredAt: T0 - 50_000 })),
    );
    await fresh.handleAccounting(
      stopRecord(call({ callId: 'l2', account: 'sip:bob@corp.example', answeredAt: T0 - 40_000 })),
    );
    const page1 = await fresh.listCdrs({ account: 'sip:bob@corp.example', limit: 1 });
    const page2 = await fresh.listCdrs({ account: 'sip:bob@corp.example', limit: 1, after: page1[0].id });
    assert.deepEqual([page1[0].callId, page2[0]?.callId], ['l1', 'l2']);
  });
});

/** Two fresh PostgreSQL databases (dropped after). */
async function postgresPair(): Promise<{ dbs: [Db, Db]; drop: () => Promise<void> }> {
  await requirePostgres();
  const admin = new pg.Client({ connectionString: testPostgresUrl() });
  await admin.connect();
  const names = [0, 1].map(() => `rating_batch_${randomBytes(5).toString('hex')}`);
  const dbs: Db[] = [];
  for (const n of names) {
    await admin.query(`CREATE DATABASE "${n}"`);
    const url = new URL(testPostgresUrl());
    url.pathname = `/${n}`;
    dbs.push(await openDb({ databaseUrl: url.toString() }));
  }
  return {
    dbs: [dbs[0], dbs[1]],
    async drop() {
      for (const d of dbs) await d.close();
      for (const n of names) await admin.query(`DROP DATABASE IF EXISTS "${n}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

for (const where of ['PGlite', 'PostgreSQL'] as const)
  describe(`batched accounting (${where})`, () => {
    let one: Db;
    let many: Db;
    let drop: (() => Promise<void>) | undefined;
    before(async () => {
      if (where === 'PGlite')
        [one, many] = await Promise.all([openDb({ memory: true }), openDb({ memory: true })]);
      else
        ({
          dbs: [one, many],
          drop,
        } = await postgresPair());
      for (const d of [one, many]) await migrate(d, { schema: 'rating', dir: MIGRATIONS });
    });
    after(async () => {
      if (drop) return drop();
      await one.close();
      await many.close();
    });

    const engineOn = async (d: Db, batchSlice?: number) => {
      await d.exec(
        'TRUNCATE rating.cdrs, rating.open_calls, rating.ledger, rating.reservations, rating.accounts, rating.media_quality, rating.plan_versions, rating.rates, rating.consumed_offsets CASCADE',
      );
      const e = new RatingEngine({
        db: d,
        now: () => T0,
        publish: async () => undefined,
        maxCallSeconds: 3600,
        reservationGraceSeconds: 60,
        batchSlice,
      });
      await e.importPlan(
        { planId: 'std', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
        SAMPLE_RATES,
        '',
        'test',
      );
      for (const a of ['sip:a@example.com', 'sip:b@example.com']) {
        await e.upsertAccount({
          account: a,
          prepaid: true,
          currency: 'EUR',
          creditLimitMicros: null,
          planId: 'std',
          blocked: false,
          lowBalanceMicros: 0,
        });
        await e.adjust({
          account: a,
          kind: 'topup',
          amountMicros: 10_000_000,
          actor: 'test',
          reason: 'seed',
        });
      }
      return e;
    };
    const state = async (d: Db) => ({
      cdrs: (await d.query<{ cdr: Cdr }>('SELECT cdr FROM rating.cdrs ORDER BY id')).rows.map((r) => r.cdr),
      open: (await d.query<{ session_key: string }>('SELECT session_key FROM rating.open_calls ORDER BY 1'))
        .rows,
      balances: (await d.query('SELECT account, balance_micros FROM rating.accounts ORDER BY 1')).rows,
      ledger: (
        await d.query('SELECT account, kind, amount_micros, cdr_id FROM rating.ledger ORDER BY cdr_id, kind')
      ).rows,
    });

    test('Authorize from three services at once never reserves more than the balance', async () => {
      await engineOn(many);
      const engines = [0, 1, 2].map(
        () =>
          new RatingEngine({
            db: many,
            now: () => T0,
            publish: async () => undefined,
            maxCallSeconds: 3600,
            reservationGraceSeconds: 60,
          }),
      );
      await Promise.all(engines.map((e) => e.loadPlans()));
      // 10.00 at 0.05/min: three hours of calls to Germany, each granted up to one
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          engines[i % 3].authorize({ account: 'sip:a@example.com', callee: '4930123456', callId: `r${i}` }),
        ),
      );
      const reserved = await engines[0].balance('sip:a@example.com');
      assert.equal(
        reserved.reservedMicros,
        answers.reduce((sum, a) => sum + a.reservedMicros, 0),
        'every grant is a reservation',
      );
      assert.ok(reserved.reservedMicros <= 10_000_000, `reserved ${reserved.reservedMicros} of 10,000,000`);
      assert.ok(
        answers.some((a) => !a.allowed),
        'the balance ran out',
      );
    });

    /** An engine on `many` that runs after(reads) after each of Authorize's reads (the unlocked ones). */
    const authorizingWith = (after: (reads: number) => Promise<unknown>) => {
      const seen = { reads: 0 };
      const busy: Db = {
        kind: many.kind,
        query: async <T>(sql: string, params?: unknown[], opts?: QueryOptions) => {
          const r = await many.query<T>(sql, params, opts);
          if (opts?.name === 'rating-authorize-read') await after(++seen.reads);
          return r;
        },
        exec: (sql) => many.exec(sql),
        close: () => many.close(),
        transaction: (fn) => many.transaction(fn),
      };
      const e = new RatingEngine({
        db: busy,
        now: () => T0,
        publish: async () => undefined,
        maxCallSeconds: 3600,
        reservationGraceSeconds: 60,
      });
      return { e, seen };
    };

    test("Authorize is not decided again for a CDR's debit that leaves its reservations covered", async () => {
      const other = await engineOn(many);
      // a call of b rated and debited between each read and its write (as slices do every ~100 ms under load)
      const { e, seen } = authorizingWith((n) =>
        other.handleAccountingBatch(
          [
            {
              callId: `debit-${n}`,
              account: 'sip:b@example.com',
              callee: '4930123456',
              answeredAt: T0 - 60_000,
              duration: 30,
            },
          ].flatMap((c) => [startRecord(c), stopRecord(c)]),
        ),
      );
      await e.loadPlans();
      const a = await e.authorize({ account: 'sip:b@example.com', callee: '4930123456', callId: 'busy-1' });
      assert.equal(a.allowed, true);
      assert.equal(seen.reads, 1, 'written after its first read');
      const b = await e.balance('sip:b@example.com');
      assert.ok(b.balanceMicros < 10_000_000, 'the call was debited');
      assert.equal(b.reservedMicros, a.reservedMicros);
    });

    test('Authorize is decided again when a change since its read leaves too little credit for its reservations', async () => {
      const other = await engineOn(many);
      const { e, seen } = authorizingWith((n) =>
        n === 1
          ? other.adjust({
              account: 'sip:b@example.com',
              kind: 'adjustment',
              amountMicros: -9_990_000,
              actor: 'test',
              reason: 'nearly all',
            })
          : Promise.resolve(),
      );
      await e.loadPlans();
      const a = await e.authorize({ account: 'sip:b@example.com', callee: '4930123456', callId: 'busy-2' });
      assert.equal(seen.reads, 2, 'read again after the write found the credit gone');
      const b = await e.balance('sip:b@example.com');
      assert.equal(b.balanceMicros, 10_000);
      assert.equal(b.reservedMicros, a.reservedMicros);
      assert.ok(a.reservedMicros <= 10_000, `reserved ${a.reservedMicros} of 10,000`);
    });

    /** Calls of account a to Germany, Start and Stop each (in slices of two records, one call per slice). */
    const callRecords = (prefix: string, n: number) =>
      Array.from({ length: n }, (_, k): CallSpec => ({
        callId: `${prefix}${k}`,
        account: 'sip:a@example.com',
        callee: '4930123456',
        answeredAt: T0 - 600_000 + k * 1000,
        duration: 30 + k,
      })).flatMap((c) => [startRecord(c), stopRecord(c)]);
    /**
     * `many`, with a slice's write failing while failWrite() names a call of it, and its read while failRead();
     * failures() counts the writes failed.
     */
    const flakyDb = (failWrite: () => string | undefined, failRead = () => false) => {
      let failed = 0;
      const db: Db = {
        kind: many.kind,
        query: (sql, params, opts) =>
          failRead() && opts?.name === 'rating-read-slice'
            ? Promise.reject(new Error('injected read failure'))
            : many.query(sql, params, opts),
        exec: (sql) => many.exec(sql),
        close: () => many.close(),
        transaction: (fn) =>
          many.transaction((tx) =>
            fn({
              exec: (sql) => tx.exec(sql),
              query: (sql, params, opts) => {
                const call = failWrite();
                if (
                  !call ||
                  opts?.name !== 'rating-write-slice' ||
                  !String(params?.[0]).includes(`"callId":"${call}"`)
                )
                  return tx.query(sql, params, opts);
                failed++;
                return Promise.reject(new Error('injected write failure'));
              },
            }),
          ),
      };
      return { db, failures: () => failed };
    };

    test(
      'Authorize does not wait for a slice being written: its accounts are locked only for the balances and the commit',
      // PGlite has one connection: Authorize would wait for the transaction in any case
      { skip: where === 'PGlite' },
      async () => {
        await engineOn(many);
        let reached!: () => void;
        const atBalances = new Promise<void>((r) => (reached = r));
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        // the slice's transaction stops before its balances: the CDRs and ledger rows are written
        const slow: Db = {
          ...many,
          kind: many.kind,
          query: (sql, params, opts) => many.query(sql, params, opts),
          transaction: (fn) =>
            many.transaction((tx) =>
              fn({
                exec: (sql) => tx.exec(sql),
                query: async (sql, params, opts) => {
                  if (opts?.name === 'rating-write-balances') {
                    reached();
                    await held;
                  }
                  return tx.query(sql, params, opts);
                },
              }),
            ),
        };
        const e = new RatingEngine({
          db: slow,
          now: () => T0,
          publish: async () => undefined,
          maxCallSeconds: 3600,
          reservationGraceSeconds: 60,
        });
        await e.loadPlans();
        const writing = e.handleAccountingBatch(callRecords('h', 2));
        try {
          await atBalances;
          const answer = await Promise.race([
            e.authorize({ account: 'sip:a@example.com', callee: '4930123456', callId: 'during' }),
            new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), 3000)),
          ]);
          assert.notEqual(answer, 'waiting', 'Authorize answered while the slice was being written');
          assert.equal(answer !== 'waiting' && answer.allowed, true);
        } finally {
          release();
          await writing;
        }
        // 10.00 less the two calls (30 s and 31 s at 0.05/min), the reservation kept
        const b = await e.balance('sip:a@example.com');
        assert.equal(b.balanceMicros, 10_000_000 - 25_000 - 25_834);
        assert.equal(b.reservedMicros, 3_000_000, 'an hour at 0.05/min');
      },
    );

    test('a slice that fails mid-batch: the slices after it store nothing; delivered again, the batch is whole', async () => {
      const records = callRecords('f', 4);
      const at = {
        consumer: 'c',
        topic: 't',
        partition: 0,
        offsets: records.map((_, i) => String(i)),
        next: String(records.length),
      };
      const e1 = await engineOn(one);
      for (const r of records) await e1.handleAccounting(r);
      // the third slice's write (call f2's CDR) fails after it took the position row
      let failing = false;
      const flaky = flakyDb(() => (failing ? 'f2' : undefined)).db;
      const e2 = await engineOn(flaky, 2);
      failing = true;
      await assert.rejects(e2.handleAccountingBatch(records, at), /injected write failure/);
      const stored = await many.query<{ next_offset: string }>(
        'SELECT next_offset FROM rating.consumed_offsets',
      );
      assert.deepEqual(
        stored.rows.map((r) => r.next_offset),
        ['4'],
        'the position stops where the failed slice begins',
      );
      assert.equal((await many.query('SELECT 1 FROM rating.cdrs')).rowCount, 2);
      failing = false;
      await e2.handleAccountingBatch(records, at);
      assert.deepEqual(await state(many), await state(one));
    });

    test("a batch's last slice left in flight fails: written again after a backoff, or first by the next batch", async () => {
      const records = callRecords('g', 8);
      const batch = (from: number, to: number) => ({
        recs: records.slice(from, to),
        at: {
          consumer: 'c',
          topic: 't',
          partition: 0,
          offsets: records.slice(from, to).map((_, i) => String(from + i)),
          next: String(to),
        },
      });
      const e1 = await engineOn(one);
      for (const r of records) await e1.handleAccounting(r);
      let failOn: string | undefined;
      let failRead = false;
      const { db: flaky, failures } = flakyDb(
        () => failOn,
        () => failRead,
      );
      const e2 = await engineOn(flaky, 2);
      const cdrs = async () => (await many.query('SELECT 1 FROM rating.cdrs')).rowCount;
      // calls g0-g2: the last slice (g2) fails while no batch follows; it is written again by itself
      failOn = 'g2';
      const b1 = batch(0, 6);
      assert.equal(
        await e2.handleAccountingBatchInFlight(b1.recs, b1.at),
        '4',
        'committed up to the last slice',
      );
      await until(() => failures() === 1, 'the in-flight write failed');
      assert.equal(await cdrs(), 2);
      failOn = undefined;
      await until(async () => (await cdrs()) === 3, 'the failed slice written again');
      // calls g3-g5: g5's slice fails; the next batch (a redelivery of g5) writes it first, then its own
      failOn = 'g5';
      const b2 = batch(6, 12);
      assert.equal(await e2.handleAccountingBatchInFlight(b2.recs, b2.at), '10');
      await until(() => failures() === 2, 'the in-flight write failed');
      failOn = undefined;
      const b3 = batch(10, 12);
      assert.equal(await e2.handleAccountingBatchInFlight(b3.recs, b3.at), '10', 'its own slice in flight');
      // calls g6-g7: g7's slice fails, and so does the next call (its read of that slice): still kept for the one after
      failOn = 'g7';
      const b4 = batch(12, 16);
      assert.equal(await e2.handleAccountingBatchInFlight(b4.recs, b4.at), '14');
      await until(() => failures() === 3, 'the in-flight write failed');
      failOn = undefined;
      failRead = true;
      const b5 = batch(16, 16);
      await assert.rejects(e2.handleAccountingBatchInFlight(b5.recs, b5.at), /injected read failure/);
      failRead = false;
      await e2.settle();
      const stored = await many.query<{ next_offset: string }>(
        'SELECT next_offset FROM rating.consumed_offsets',
      );
      assert.deepEqual(
        stored.rows.map((r) => r.next_offset),
        ['16'],
      );
      assert.deepEqual(await state(many), await state(one));
    });

    test('property: any split into batches gives what one record at a time gives', async () => {
      const callees = ['15551234567', '4930123456', '447700900000', '33123456789'];
      const record = fc.record({
        call: fc.nat(5),
        kind: fc.constantFrom('Start', 'Stop', 'StopByCallee', 'Failed', 'Interim-Update'),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.array(record, { minLength: 1, maxLength: 30 }),
          fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }),
          fc.integer({ min: 1, max: 4 }),
          fc.option(fc.nat(30)),
          fc.boolean(),
          async (seq, sizes, slice, replayFrom, inFlight) => {
            const records = seq.map(({ call: n, kind }) => {
              const c: CallSpec = {
                callId: `p${n}`,
                account: n % 2 ? 'sip:a@example.com' : 'sip:b@example.com',
                callee: callees[n % callees.length],
                answeredAt: T0 - 600_000 + n * 1000,
                duration: 10 + n * 17,
              };
              if (kind === 'Start') return startRecord(c);
              if (kind === 'Stop' || kind === 'StopByCallee') return stopRecord(c, kind === 'StopByCallee');
              if (kind === 'Failed') return failedRecord(c, 480 + n);
              return { ...startRecord(c), statusType: 'Interim-Update' };
            });
            const [e1, e2] = await Promise.all([engineOn(one), engineOn(many, slice)]);
            for (const r of records) await e1.handleAccounting(r);
            // batches, each written in slices of `slice` records
            const batches = async (from: number, k: number, withPosition: boolean) => {
              for (let i = from; i < records.length; k++) {
                const n = sizes[k % sizes.length];
                const offsets = records.slice(i, i + n).map((_, j) => String(i + j));
                const at = {
                  consumer: 'c',
                  topic: 't',
                  partition: 0,
                  offsets,
                  next: String(i + offsets.length),
                };
                if (withPosition && inFlight) {
                  // as the consumer does: the last slice still written while the next batch comes
                  const upTo = Number(await e2.handleAccountingBatchInFlight(records.slice(i, i + n), at));
                  assert.ok(upTo >= i && upTo <= i + offsets.length, `committed ${upTo} in ${i}-${at.next}`);
                } else await e2.handleAccountingBatch(records.slice(i, i + n), withPosition ? at : undefined);
                i += n;
              }
            };
            if (replayFrom === null) await batches(0, 0, false);
            else {
              // with positions, then redelivered from an earlier offset, cut differently: nothing twice
              await batches(0, 0, true);
              await batches(Math.min(replayFrom, records.length - 1), 1, true);
            }
            await e2.settle();
            assert.deepEqual(await state(many), await state(one));
          },
        ),
        {
          numRuns: 40,
          examples: [
            // a Start stored by one batch and closed by the next; a redelivered Stop after it
            [
              [
                { call: 0, kind: 'Start' },
                { call: 0, kind: 'Stop' },
                { call: 0, kind: 'Start' },
                { call: 0, kind: 'StopByCallee' },
              ],
              [1],
              1,
              null,
              false,
            ],
            [
              [
                { call: 1, kind: 'Start' },
                { call: 2, kind: 'Start' },
                { call: 1, kind: 'StopByCallee' },
                { call: 3, kind: 'Failed' },
                { call: 3, kind: 'Failed' },
                { call: 2, kind: 'Stop' },
              ],
              [2, 3],
              2,
              1,
              true,
            ],
          ],
        },
      );
    });
  });
