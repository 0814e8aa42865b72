// The rating service as it runs: started by the target runner, fed accounting
// records on the process's event bus as the accounting service publishes them,
// called over gRPC; on the embedded bus (PGlite) and on PostgreSQL + Kafka.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  defineService,
  grpcClient,
  runTargets,
  type EventBus,
  type EventMessage,
  type RunningProcess,
} from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
  until,
} from '@switchboard/platform/testing';
import {
  AdjustRequest_Kind,
  AuthorizeResponse_Reason,
  ListCdrsRequest,
  RatingAdminClient,
  RatingClient,
} from '@switchboard/proto/rating';
import { RATE_PLAN_MAX_BYTES } from '@switchboard/contracts';
import { ratingService } from './main';
import type { Cdr } from './cdr';
import { failedRecord, startRecord, stopRecord, type CallSpec } from './testing';

/** A module that only hands the test the process's event bus (the one rating consumes from). */
function tap() {
  const got: { bus?: EventBus } = {};
  const module = defineService({
    name: 'bus-tap',
    description: 'test: exposes the event bus',
    configSpec: {},
    async start(ctx) {
      got.bus = await ctx.events();
      return { stop: async () => undefined };
    },
  });
  return { module, got };
}

async function start(env: Record<string, string>) {
  const t = tap();
  const proc = await runTargets([t.module, ratingService], {
    version: 'test',
    env: {
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_RATING_GRPC_PORT: '0',
      SWITCHBOARD_LOG_LEVEL: process.env.RATING_TEST_LOG ?? 'silent',
      ...env,
    },
  });
  const url = proc.endpoints.find((e) => e.service === 'rating')!.url.replace('grpc://', '');
  return {
    proc,
    bus: t.got.bus!,
    rating: grpcClient(RatingClient, url),
    admin: grpcClient(RatingAdminClient, url),
  };
}
type Running = Awaited<ReturnType<typeof start>>;
const stop = async (s: Running) => {
  s.rating.close();
  s.admin.close();
  await s.proc.stop();
};

const RATES = `prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds
49,Germany,DE,,0,0.05,0,1/1,0
4915,Germany mobile,DE,,0.02,0.20,0,60/60,0
`;

/** The scenario both tiers run: plan import, account, authorize, records delivered twice, CDRs, one debit. */
async function scenario(s: Running, topics: { accounting: string; cdrs: string }, proc: RunningProcess) {
  const tag = randomBytes(4).toString('hex');
  const alice = `sip:alice-${tag}@example.com`;

  const bad = await s.admin.importRatePlan({
    planId: 'std',
    effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
    currency: 'EUR',
    timezone: 'Europe/Berlin',
    holidays: [],
    ratesCsv: RATES + '4930,Berlin,DE,,0,zero,0,1/1,0\n',
    periodsCsv: '',
    actor: 'test',
  });
  assert.equal(bad.ok, false);
  assert.deepEqual(
    bad.errors.map((e) => e.split(':')[0]),
    ['rates line 4'],
  );
  const ok = await s.admin.importRatePlan({
    planId: 'std',
    effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
    currency: 'EUR',
    timezone: 'Europe/Berlin',
    holidays: [],
    ratesCsv: RATES,
    periodsCsv: '',
    actor: 'test',
  });
  assert.deepEqual([ok.ok, ok.rates], [true, 2]);

  const exported = await s.admin.exportRatePlan({ planId: 'std', effectiveFrom: 0 });
  assert.deepEqual(
    [exported.currency, exported.timezone, exported.ratesCsv],
    [
      'EUR',
      'Europe/Berlin',
      `prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds
49,Germany,DE,,0.00,0.05,0,1/1,0
4915,Germany mobile,DE,,0.02,0.20,0,60/60,0
`,
    ],
    'the plan back as CSV',
  );
  await assert.rejects(s.admin.exportRatePlan({ planId: 'nope', effectiveFrom: 0 }), { kind: 'not_found' });

  await s.admin.setAccount({
    account: alice,
    prepaid: true,
    currency: 'EUR',
    planId: 'std',
    blocked: false,
    lowBalanceMicros: 0,
  });
  const topup = {
    account: alice,
    kind: AdjustRequest_Kind.KIND_TOPUP,
    amountMicros: 1_000_000,
    actor: 'test',
    reason: 'first top-up',
    idempotencyKey: `t-${tag}`,
  };
  await s.admin.adjust(topup);
  assert.equal((await s.admin.adjust(topup)).applied, false, 'the same top-up twice counts once');

  const quote = await s.admin.quote({
    account: alice,
    callee: '4915112345678',
    seconds: 61,
    at: 0,
    onNet: false,
  });
  assert.deepEqual(
    [quote.rated, quote.priceMicros, quote.billableSeconds, quote.destination],
    [true, 420_000, 120, 'Germany mobile'],
  );
  await s.admin.assignDomainPlan({ domain: `d-${tag}.example`, planId: 'std' });
  const viaDomain = await s.admin.quote({
    account: `sip:x@d-${tag}.example`,
    callee: '4930123456',
    seconds: 60,
    at: 0,
    onNet: false,
  });
  assert.equal(viaDomain.priceMicros, 50_000, "an account without a plan of its own gets its domain's");
  assert.equal((await s.admin.getAccount({ account: alice })).account?.balanceMicros, 1_000_000);

  const auth = await s.rating.authorize({ account: alice, callee: '4930123456', callId: `c1-${tag}` });
  assert.deepEqual(
    [auth.allowed, auth.maxSeconds, auth.reason],
    [true, 1200, AuthorizeResponse_Reason.REASON_OK],
  );
  const mobile = await s.rating.authorize({ account: alice, callee: '4915112345678', callId: `c2-${tag}` });
  assert.deepEqual(
    [mobile.allowed, mobile.reason],
    [false, AuthorizeResponse_Reason.REASON_INSUFFICIENT_CREDIT],
    'c1 holds the balance',
  );
  const held = await s.rating.getBalance({ account: alice });
  assert.deepEqual([held.balanceMicros, held.reservedMicros], [1_000_000, 1_000_000]);
  const onNet = await s.rating.authorize({
    account: alice,
    callee: 'sip:bob@example.com',
    callId: `c5-${tag}`,
  });
  assert.deepEqual(
    [onNet.allowed, onNet.maxSeconds],
    [true, undefined],
    'an AoR callee is on-net: free, no limit',
  );
  await assert.rejects(s.rating.authorize({ account: 'sip:nobody@example.com', callee: '49', callId: 'x' }), {
    kind: 'not_found',
  });

  // what the accounting service publishes, each record twice (its relay is at-least-once)
  const answered = Date.parse('2026-11-25T10:00:00Z');
  const c1: CallSpec = {
    callId: `c1-${tag}`,
    account: alice,
    callee: '4930123456',
    answeredAt: answered,
    duration: 60,
  };
  const c3: CallSpec = {
    callId: `c3-${tag}`,
    account: alice,
    callee: '4915112345678',
    answeredAt: answered + 100_000,
    duration: 61,
  };
  const records = [
    startRecord(c1),
    startRecord(c3),
    stopRecord(c1, true),
    stopRecord(c3),
    failedRecord({ ...c1, callId: `c4-${tag}` }, 486),
  ];
  const cdrs: Cdr[] = [];
  const feed = await s.bus.subscribe({
    topic: topics.cdrs,
    group: uniqueName('cdrs_reader'),
    fromBeginning: true,
    handler: async (m: EventMessage) => {
      const c = JSON.parse(m.value!.toString()) as Cdr;
      if (c.account === alice) {
        assert.equal(m.key, alice, 'cdrs are keyed by account');
        cdrs.push(c);
      }
    },
  });
  try {
    const publish = (rs: typeof records) =>
      s.bus.publish(
        topics.accounting,
        rs.map((r) => ({
          key: r.sessionId!,
          value: JSON.stringify(r),
          headers: { 'content-type': 'application/json' },
        })),
      );
    await publish(records);
    await publish(records);
    // then one more record on each Call-ID (same key, same partition, so after both copies):
    // once its CDR is out, every record of that call before it was handled
    const closing = [c1.callId, c3.callId, `c4-${tag}`];
    await publish(closing.map((callId) => failedRecord({ ...c1, callId, fromTag: 'sentinel' }, 408)));
    await until(
      () => closing.every((id) => cdrs.some((c) => c.callId === id && c.sipCode === 408)),
      'the sentinel CDR of every call',
      30_000,
    );
    await until(
      () => closing.every((id) => cdrs.some((c) => c.callId === id && c.sipCode !== 408)),
      'every CDR',
      30_000,
    );
    const real = cdrs.filter((c) => c.sipCode !== 408);
    const byCall = new Map(real.map((c) => [c.callId, c]));
    assert.equal(new Set(real.map((c) => c.id)).size, 3, 'three CDRs however often their records came');
    assert.equal(real.length, 3, 'each published once: a redelivered record finds its CDR stored');
    const cdr1 = byCall.get(c1.callId)!;
    assert.deepEqual(
      [cdr1.destination, cdr1.durationSeconds, cdr1.priceMicros, cdr1.endReason],
      ['Germany', 60, 50_000, 'bye'],
    );
    const cdr3 = byCall.get(c3.callId)!;
    assert.deepEqual(
      [cdr3.destination, cdr3.billableSeconds, cdr3.priceMicros],
      ['Germany mobile', 120, 20_000 + 400_000],
    );
    const cdr4 = byCall.get(`c4-${tag}`)!;
    assert.deepEqual(
      [cdr4.disposition, cdr4.sipCode, cdr4.billableSeconds, cdr4.priceMicros],
      ['failed', 486, 0, 0],
    );

    const b = await s.rating.getBalance({ account: alice });
    assert.equal(b.balanceMicros, 1_000_000 - 50_000 - 420_000, 'each call debited exactly once');
    assert.equal(b.reservedMicros, 0, 'the CDR settled the reservation');

    const listed = await s.admin.listCdrs(ListCdrsRequest.fromPartial({ account: alice, pageSize: 10 }));
    assert.deepEqual(
      listed.cdrs
        .filter((c) => c.sipCode !== 408)
        .map((c) => c.callId)
        .sort(),
      [...closing].sort(),
    );

    const rr = await s.admin.rerate({ account: alice, from: 0, to: 0, actor: 'test', reason: '' });
    assert.deepEqual(
      [rr.examined, rr.corrected, rr.deltaMicros],
      [2, 0, 0],
      'the same plans: nothing to correct',
    );

    const metrics = await (await fetch(`${proc.ops.url}/metrics`)).text();
    assert.match(metrics, /^switchboard_cdrs_rated_total\{disposition="answered",rate_status="rated"\} 2$/m);
    assert.match(metrics, /^switchboard_cdrs_rated_total\{disposition="failed",rate_status="unrated"\} 4$/m);
    assert.match(metrics, /^switchboard_rating_authorize_duration_seconds_count\{result="allowed"\} 2$/m);
    assert.match(metrics, /^switchboard_rating_open_calls 0$/m);
  } finally {
    await feed.close();
  }
}

/**
 * A carrier's deck larger than gRPC's default 4 MB message, imported and exported over HTTP/2 as the
 * portal of another process does.
 */
async function largePlanOverHttp2(s: Running) {
  const url = s.proc.endpoints.find((e) => e.service === 'rating')!.url.replace('grpc://', '');
  const admin = grpcClient(RatingAdminClient, url, {
    inProcess: false,
    channelOptions: { 'grpc.max_receive_message_length': RATE_PLAN_MAX_BYTES },
  });
  try {
    let csv = 'prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds\n';
    for (let i = 0; i < 80_000; i++)
      csv += `${4_900_000 + i},Germany mobile range ${i},DE,,0,0.${(i % 90) + 10},0,60/60,0\n`;
    assert.ok(csv.length > 4 * 1024 * 1024);
    const r = await admin.importRatePlan(
      {
        planId: 'deck',
        currency: 'EUR',
        effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
        timezone: 'UTC',
        holidays: [],
        ratesCsv: csv,
        periodsCsv: '',
        actor: 'test',
      },
      { deadlineMs: 60_000 },
    );
    assert.deepEqual({ ok: r.ok, rates: r.rates, errors: r.errors }, { ok: true, rates: 80_000, errors: [] });
    const back = await admin.exportRatePlan({ planId: 'deck', effectiveFrom: 0 }, { deadlineMs: 60_000 });
    const lines = back.ratesCsv.split('\n');
    assert.equal(lines.length, 80_002);
    assert.equal(lines[1], '4900000,Germany mobile range 0,DE,,0.00,0.10,0,60/60,0');
    assert.equal(lines[80_000], '4979999,Germany mobile range 79999,DE,,0.00,0.89,0,60/60,0');
  } finally {
    admin.close();
  }
}

test('embedded: records delivered twice make one CDR and one debit each; authorize, balance, plan import over gRPC', async () => {
  const s = await start({ SWITCHBOARD_DATA_DIR: ':memory:' });
  try {
    await scenario(s, { accounting: 'accounting', cdrs: 'cdrs' }, s.proc);
  } finally {
    await stop(s);
  }
});

test('PostgreSQL + Kafka: the same, on real infrastructure', async () => {
  await requirePostgres();
  await requireKafka();
  const name = `rating_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testPostgresUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(testPostgresUrl());
  url.pathname = `/${name}`;
  const topics = { accounting: uniqueName('accounting'), cdrs: uniqueName('cdrs') };
  const s = await start({
    DATABASE_URL: url.toString(),
    KAFKA_BROKERS: testKafkaBrokers().join(','),
    SWITCHBOARD_KAFKA_CLIENT_ID: uniqueName('rating-test'),
    SWITCHBOARD_RATING_ACCOUNTING_TOPIC: topics.accounting,
    SWITCHBOARD_RATING_MEDIA_TOPIC: uniqueName('media'),
    SWITCHBOARD_RATING_CDRS_TOPIC: topics.cdrs,
    SWITCHBOARD_RATING_GROUP: uniqueName('rating'),
  });
  try {
    await scenario(s, topics, s.proc);
    await largePlanOverHttp2(s);
  } finally {
    await stop(s);
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
});
