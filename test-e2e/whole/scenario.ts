/**
 * The whole-platform scenario, written once and run against the platform
 * started either way (test-e2e/lib/launch.ts): provisioning through the
 * portal API, phones registering with digest auth, a call with media through
 * the media proxy, RADIUS accounting, the CDR rated and the balance debited,
 * the metrics scraped and the SIP trace of the call.
 */
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { grpcClient } from '@switchboard/platform';
import { ListCdrsRequest, RatingAdminClient } from '@switchboard/proto/rating';
import { hostPort, type LaunchedPlatform } from '../lib/launch';
import { freePort } from '@switchboard/platform/testing';
import { inviteCallId, receivedAudioPorts, runUa, type UaRun } from './sipp-ua';

/** Calls the portal API as the administrator; the body parsed as JSON. */
export async function api<T = Record<string, unknown>>(
  p: LaunchedPlatform,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(p.portal + path, {
    method,
    headers: {
      authorization: `Bearer ${p.adminToken}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: keep the text for the assertion message
  }
  return { status: res.status, body: parsed as T };
}

/** Polls until `check` returns a value (not undefined), bounded; the last error or value in the failure. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not within ${timeoutMs} ms${last ? ` (last: ${last instanceof Error ? last.message : String(last)})` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Prometheus text exposition: the sum of the samples of `name` whose labels contain every `match`. */
export function metricSum(text: string, name: string, ...match: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labels = line.startsWith(`${name}{`) ? line.slice(name.length, line.lastIndexOf('}') + 1) : '';
    if (match.every((m) => labels.includes(m))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export const metricsOf = (ops: string) => fetch(`${ops}/metrics`).then((r) => r.text());

/** REGISTER with SIPp from `port` until the proxy accepts it (the subscriber travels portal → topic → proxy). */
export async function registerWithSipp(
  p: LaunchedPlatform,
  user: string,
  password: string,
  port: number,
  timeoutMs = 20_000,
): Promise<UaRun> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await runUa({
      scenario: 'register.xml',
      port,
      remote: p.sip,
      keys: { user, dom: p.domain },
      auth: { user, password },
      timeoutMs: 5000,
    }).done;
    if (run.result.successful === 1) return run;
    if (Date.now() > deadline) {
      throw new Error(`SIPp REGISTER of ${user} still failing after ${timeoutMs} ms:\n${run.errors}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Subscriber {
  id: string;
  aor: string;
}

interface Balance {
  account: string;
  balanceMicros: number;
  pending?: boolean;
  planId: string | null;
}

interface Cdr {
  callId: string;
  disposition: string;
  billableSeconds: number;
  price: string;
  currency: string;
}

/** Diagnosis for a CDR the portal does not list: ask rating directly under the account spellings in use. */
async function whereIsTheCdr(p: LaunchedPlatform, callId: string, aor: string): Promise<string> {
  const rating = grpcClient(RatingAdminClient, hostPort(p.endpoint('rating', 'gRPC')).text, {
    deadlineMs: 3000,
  });
  const found: string[] = [];
  try {
    for (const account of [aor, aor.replace(/^sip:/, '')]) {
      const r = await rating.listCdrs(ListCdrsRequest.fromPartial({ account, pageSize: 100 }));
      const c = r.cdrs.find((x) => x.callId === callId);
      if (c)
        found.push(
          `rating has it under account "${account}" (rateStatus ${c.rateStatus}, flags ${JSON.stringify(c.flags)})`,
        );
    }
  } catch (err) {
    found.push(`rating ListCdrs failed: ${(err as Error).message}`);
  } finally {
    rating.close();
  }
  return found.length ? found.join('; ') : `rating has no CDR of ${callId} under "${aor}" nor without "sip:"`;
}

/** Price per minute of on-net calls in the scenario's plan, and what it makes per second in micros. */
const ON_NET_PER_MINUTE = '0.60';
const MICROS_PER_SECOND = 10_000;

/**
 * Runs every step as a subtest of `t`, in order; a step that fails leaves the
 * later ones to fail on what it did not set up (each names what it waited for).
 */
export async function wholePlatformScenario(t: TestContext, p: LaunchedPlatform): Promise<void> {
  const planId = `onnet-${p.runId}`;
  const alice = { user: 'alice', password: `pw-a-${p.runId}` };
  const bob = { user: 'bob', password: `pw-b-${p.runId}` };
  let aliceSub: Subscriber | undefined;
  let balanceBefore = 0;
  let callId = '';
  let callerRun: UaRun | undefined;
  let calleeRun: UaRun | undefined;
  const metricsBefore: Record<string, string> = {};

  await t.test('provisioning through the portal API: a rate plan, two subscribers, credit', async () => {
    const plan = await api(p, 'PUT', `/api/v1/rate-plans/${planId}`, {
      currency: 'EUR',
      // On-net calls are free unless the plan prices them: this one does, per second.
      ratesCsv: `prefix,name,price_per_minute,increment\non-net,On net,${ON_NET_PER_MINUTE},1/1\n`,
      effectiveFrom: new Date(Date.now() - 60_000).toISOString(),
    });
    assert.equal(plan.status, 200, JSON.stringify(plan.body));
    const a = await api<Subscriber>(p, 'POST', '/api/v1/subscribers', {
      username: alice.user,
      password: alice.password,
      ratePlan: planId,
    });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    assert.equal(a.body.aor, `sip:alice@${p.domain}`);
    aliceSub = a.body;
    const b = await api<Subscriber>(p, 'POST', '/api/v1/subscribers', {
      username: bob.user,
      password: bob.password,
    });
    assert.equal(b.status, 201, JSON.stringify(b.body));

    const topup = await api(p, 'POST', `/api/v1/subscribers/${aliceSub.id}/credit`, {
      amount: '5.00',
      reason: 'whole-platform test top-up',
    });
    assert.equal(topup.status, 200, JSON.stringify(topup.body));
    const vouchers = await api<{ items: { code: string }[] }>(p, 'POST', '/api/v1/vouchers', {
      count: 1,
      amount: '1.00',
    });
    assert.equal(vouchers.status, 201, JSON.stringify(vouchers.body));
    const redeemed = await api(p, 'POST', `/api/v1/subscribers/${aliceSub.id}/vouchers`, {
      code: vouchers.body.items[0].code,
    });
    assert.equal(redeemed.status, 200, JSON.stringify(redeemed.body));
    const bal = await eventually('balance 6.00 after the top-up and the voucher', async () => {
      const r = await api<Balance>(p, 'GET', `/api/v1/subscribers/${aliceSub!.id}/balance`);
      return r.status === 200 && r.body.balanceMicros === 6_000_000 ? r.body : undefined;
    });
    assert.equal(bal.planId, planId);
    balanceBefore = bal.balanceMicros;
  });

  const alicePort = await freePort();
  const bobPort = await freePort();
  const aliceMedia = await freePort();
  const bobMedia = await freePort();

  await t.test('both phones register with digest auth (SIPp)', async () => {
    await registerWithSipp(p, alice.user, alice.password, alicePort);
    await registerWithSipp(p, bob.user, bob.password, bobPort);
    const regs = await api<{ items: { contact: string }[] }>(
      p,
      'GET',
      `/api/v1/registrations?aor=${encodeURIComponent(`sip:bob@${p.domain}`)}`,
    );
    assert.equal(regs.status, 200);
    assert.deepEqual(
      regs.body.items.map((r) => r.contact),
      [`sip:bob@127.0.0.1:${bobPort}`],
    );
  });

  await t.test('alice calls bob; media flows both ways through the media proxy', async () => {
    for (const s of ['media-proxy', 'sip-proxy', 'accounting', 'rating'] as const) {
      metricsBefore[s] = await metricsOf(p.ops[s]);
    }
    const callee = runUa({
      scenario: 'callee.xml',
      port: bobPort,
      mediaPort: bobMedia,
      keys: { user: 'bob' },
    });
    try {
      const caller = runUa({
        scenario: 'caller.xml',
        port: alicePort,
        mediaPort: aliceMedia,
        remote: p.sip,
        keys: { user: alice.user, callee: bob.user, dom: p.domain },
        auth: alice,
        talkMs: 2500,
        rtpPackets: 100,
      });
      callerRun = await caller.done;
      calleeRun = await callee.done;
    } finally {
      callee.kill();
    }
    assert.equal(callerRun.result.successful, 1, `caller: ${callerRun.errors}\nplatform:\n${p.output()}`);
    assert.equal(calleeRun.result.successful, 1, `callee: ${calleeRun.errors}`);
    callId = inviteCallId(callerRun.messages) ?? '';
    assert.ok(callId, 'the caller sent an INVITE');
    // Each side was offered a relay port of the media proxy, not the other phone's.
    const toBob = receivedAudioPorts(calleeRun.messages);
    const toAlice = receivedAudioPorts(callerRun.messages);
    assert.ok(toBob.length >= 1 && !toBob.includes(aliceMedia), `bob was offered ${toBob.join(', ')}`);
    assert.ok(toAlice.length >= 1 && !toAlice.includes(bobMedia), `alice was offered ${toAlice.join(', ')}`);

    // 2 × 100 RTP packets played; the relay counts what it received and forwarded.
    const before = metricsBefore['media-proxy'];
    const after = await metricsOf(p.ops['media-proxy']);
    const delta = (dir: string) =>
      metricSum(after, 'switchboard_media_packets_total', `direction="${dir}"`) -
      metricSum(before, 'switchboard_media_packets_total', `direction="${dir}"`);
    const dropped = ['no_session', 'strict_source', 'no_destination', 'malformed', 'loop']
      .map(
        (r) =>
          `${r}=${
            metricSum(after, 'switchboard_media_packets_dropped_total', `reason="${r}"`) -
            metricSum(before, 'switchboard_media_packets_dropped_total', `reason="${r}"`)
          }`,
      )
      .join(' ');
    const seen = `in=${delta('in')} out=${delta('out')}, dropped ${dropped}; offered to bob ${toBob.join(',')}, to alice ${toAlice.join(',')}; phones' RTP ports alice ${aliceMedia}, bob ${bobMedia}`;
    assert.ok(delta('in') >= 150, `relay received too few of the 200 packets played: ${seen}`);
    assert.ok(delta('out') >= 150, `relay forwarded too few of the 200 packets played: ${seen}`);
  });

  await t.test('the call is accounted over RADIUS: Start and Stop stored', async () => {
    assert.ok(callId, 'needs the call');
    // The proxy counts records the server acknowledged, and the server answers only once a record is stored.
    await eventually('Start and Stop acknowledged by the accounting server', async () => {
      const m = await metricsOf(p.ops['sip-proxy']);
      const was = metricsBefore['sip-proxy'];
      const d = (s: string) =>
        metricSum(m, 'switchboard_radius_client_sent_total', `status="${s}"`) -
        metricSum(was, 'switchboard_radius_client_sent_total', `status="${s}"`);
      return d('Start') >= 1 && d('Stop') >= 1 ? true : undefined;
    });
    const acc = await metricsOf(p.ops.accounting);
    const was = metricsBefore.accounting;
    for (const type of ['Start', 'Stop']) {
      const d =
        metricSum(acc, 'switchboard_radius_requests_total', `type="${type}"`) -
        metricSum(was, 'switchboard_radius_requests_total', `type="${type}"`);
      assert.ok(d >= 1, `accounting server received ${d} ${type}`);
    }
  });

  let cdr: Cdr | undefined;
  await t.test('the CDR is rated (portal GET /api/v1/subscribers/{id}/cdrs)', async () => {
    assert.ok(callId && aliceSub, 'needs the call');
    try {
      cdr = await eventually(
        `a CDR of ${callId} for ${aliceSub.aor}`,
        async () => {
          const r = await api<{ items: Cdr[] }>(p, 'GET', `/api/v1/subscribers/${aliceSub!.id}/cdrs`);
          if (r.status !== 200) throw new Error(`GET cdrs: ${r.status} ${JSON.stringify(r.body)}`);
          return r.body.items.find((c) => c.callId === callId);
        },
        30_000,
        500,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; ${await whereIsTheCdr(p, callId, aliceSub.aor)}`);
    }
    assert.equal(cdr.disposition, 'answered');
    assert.ok(cdr.billableSeconds >= 2, `billable ${cdr.billableSeconds} s of a ~2.5 s call`);
    assert.equal(cdr.currency, 'EUR');
    const priceMicros = Math.round(Number(cdr.price) * 1e6);
    assert.equal(priceMicros, cdr.billableSeconds * MICROS_PER_SECOND, `price ${cdr.price}`);
  });

  await t.test("the caller's balance is debited by the CDR's price", async () => {
    assert.ok(cdr && aliceSub, 'needs the rated CDR');
    const priceMicros = Math.round(Number(cdr.price) * 1e6);
    const bal = await eventually('the debit', async () => {
      const r = await api<Balance>(p, 'GET', `/api/v1/subscribers/${aliceSub!.id}/balance`);
      return r.status === 200 && r.body.balanceMicros !== balanceBefore ? r.body : undefined;
    });
    assert.equal(bal.balanceMicros, balanceBefore - priceMicros);
  });

  await t.test(
    'PSTN call with gateway failover: the first gateway answers 503, the second takes the call',
    async () => {
      assert.ok(aliceSub, 'needs alice');
      // A UK rate in alice's plan, the privilege to call abroad, two gateways for +44 (the failing one first).
      const plan = await api(p, 'PUT', `/api/v1/rate-plans/${planId}`, {
        currency: 'EUR',
        ratesCsv: `prefix,name,price_per_minute,increment\non-net,On net,${ON_NET_PER_MINUTE},1/1\n44,United Kingdom,0.60,1/1\n`,
      });
      assert.equal(plan.status, 200, JSON.stringify(plan.body));
      const grant = await api(p, 'PUT', `/api/v1/subscribers/${aliceSub.id}/privileges/international`);
      assert.ok(grant.status < 300, JSON.stringify(grant.body));
      const failingPort = await freePort();
      const livePort = await freePort();
      const gw = async (name: string, port: number, priority: number) => {
        const r = await api<{ id: string }>(p, 'POST', '/api/v1/gateways', {
          name: `${name}-${p.runId}`,
          address: `127.0.0.1:${port}`,
          priority,
        });
        assert.equal(r.status, 201, JSON.stringify(r.body));
        return r.body.id;
      };
      const ids = [await gw('failing', failingPort, 0), await gw('live', livePort, 1)];
      // For this run's domain only: the routing topic on a shared Kafka outlives a run.
      const route = await api<{ id: string }>(p, 'POST', '/api/v1/routes', {
        name: `uk-${p.runId}`,
        prefix: '44',
        gatewayIds: ids,
        domain: p.domain,
      });
      assert.equal(route.status, 201, JSON.stringify(route.body));
      // The routing topic reaches the proxy (one process, or over Kafka).
      await new Promise((r) => setTimeout(r, 2000));

      const failing = runUa({ scenario: 'gateway-503.xml', port: failingPort });
      const live = runUa({
        scenario: 'callee.xml',
        port: livePort,
        mediaPort: await freePort(),
        keys: { user: 'gw' },
      });
      try {
        const caller = runUa({
          scenario: 'caller.xml',
          port: alicePort,
          mediaPort: aliceMedia,
          remote: p.sip,
          keys: { user: alice.user, callee: '+442079460000', dom: p.domain },
          auth: alice,
          talkMs: 1000,
          rtpPackets: 20,
        });
        const c = await caller.done;
        const [f, l] = [await failing.done, await live.done];
        assert.equal(c.result.successful, 1, `caller: ${c.errors}\nplatform:\n${p.output()}`);
        assert.equal(f.result.successful, 1, `failing gateway: ${f.errors}`);
        assert.equal(l.result.successful, 1, `live gateway: ${l.errors}`);
        assert.match(l.messages, /INVITE sip:442079460000@127\.0\.0\.1/);
      } finally {
        failing.kill();
        live.kill();
        // Removed again (tombstones on the routing topic), so later runs do not inherit them.
        await api(p, 'DELETE', `/api/v1/routes/${route.body.id}`);
        for (const id of ids) await api(p, 'DELETE', `/api/v1/gateways/${id}`);
      }
    },
  );

  await t.test('metrics scraped from the ops ports', async () => {
    const sip = await metricsOf(p.ops['sip-proxy']);
    assert.ok(
      metricSum(sip, 'switchboard_sip_requests_total', 'method="REGISTER"') >= 4,
      'REGISTER counted (2 phones × challenge + auth)',
    );
    assert.ok(metricSum(sip, 'switchboard_sip_requests_total', 'method="INVITE"') >= 2, 'INVITE counted');
    assert.ok(metricSum(sip, 'switchboard_sip_requests_total', 'method="BYE"') >= 1, 'BYE counted');
    assert.ok(metricSum(sip, 'switchboard_sip_responses_total', 'code="407"') >= 1, '407 counted');
    assert.ok(metricSum(sip, 'switchboard_calls_total', 'outcome="answered"') >= 1, 'answered call counted');
    const reg = await metricsOf(p.ops.registrar);
    assert.ok(metricSum(reg, 'switchboard_registrations_active') >= 2, 'two registrations active');
    const rating = await metricsOf(p.ops.rating);
    assert.ok(
      metricSum(rating, 'switchboard_cdrs_rated_total') >
        metricSum(metricsBefore.rating, 'switchboard_cdrs_rated_total'),
      'a CDR rated',
    );
    const portal = await metricsOf(p.ops.portal);
    assert.ok(metricSum(portal, 'switchboard_http_requests_total') >= 1, 'portal HTTP requests counted');
    for (const [s, ops] of Object.entries(p.ops)) {
      const m = await metricsOf(ops);
      assert.match(m, /^switchboard_build_info\{/m, `${s}: build info`);
      assert.equal((await fetch(`${ops}/readyz`)).status, 200, `${s}: ready`);
    }
  });

  await t.test("the proxy's SIP trace shows the call (GET /sip/trace?callId=)", async () => {
    assert.ok(callId, 'needs the call');
    const r = await fetch(`${p.ops['sip-proxy']}/sip/trace?callId=${encodeURIComponent(callId)}`);
    assert.equal(r.status, 200);
    const { messages } = (await r.json()) as { messages: { summary: string; message: string }[] };
    const lines = messages.map((m) => m.summary).join('\n');
    for (const s of ['INVITE sip:bob@', '407', '180', '200', 'ACK', 'BYE']) {
      assert.ok(lines.includes(s), `trace lacks ${s}:\n${lines}`);
    }
    const auth = messages.find((m) => /^Proxy-Authorization:/im.test(m.message));
    assert.ok(auth, 'the authenticated INVITE is in the trace');
    assert.match(auth.message, /response="\*\*\*"/, 'credentials masked');
  });
}
