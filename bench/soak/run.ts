/**
 * Soak: bounded mixed load against the whole platform, started by this script
 * the way an operator runs it, reporting every minute and at the end:
 * throughput and failures of registrations and calls, the RADIUS accounting
 * the calls made (records acknowledged by the accounting server), CDRs rated,
 * and memory (RSS of each platform process: one with --mode=one-process, one
 * per service with --mode=separate).
 *
 * Load per one-minute round (SIPp, real UDP on loopback):
 * - --reg-rate REGISTERs/s with digest auth, cycling over --users subscribers
 *   created through the portal API (bench/soak/register-inf.xml);
 * - --call-rate calls/s from a prepaid subscriber with a priced on-net plan to
 *   a registered SIPp callee, each challenged (407) and authenticated, talking
 *   --talk-ms with RTP both ways through the media proxy
 *   (SWITCHBOARD_SIP_MEDIA_RELAY=always), each one a RADIUS Start and Stop and a CDR.
 *
 *   npx tsx bench/soak/run.ts [--minutes=10] [--mode=one-process|separate]
 *                             [--reg-rate=10] [--call-rate=2] [--talk-ms=1000] [--users=50]
 *
 * --mode=separate needs PostgreSQL on 127.0.0.1:5432 and Kafka on 127.0.0.1:9092
 * (scripts/infra/postgres, scripts/infra/kafka start).
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { oneProcess, separateProcesses, type LaunchedPlatform } from '../../test-e2e/lib/launch';
import { api, eventually, metricSum, metricsOf, registerWithSipp } from '../../test-e2e/whole/scenario';
import { freePort } from '@switchboard/platform/testing';
import { runUa, type RunningUa } from '../../test-e2e/whole/sipp-ua';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    mode: { type: 'string', default: 'one-process' },
    'reg-rate': { type: 'string', default: '10' },
    'call-rate': { type: 'string', default: '2' },
    'talk-ms': { type: 'string', default: '1000' },
    users: { type: 'string', default: '50' },
  },
});
const MINUTES = Number(values.minutes);
const REG_RATE = Number(values['reg-rate']);
const CALL_RATE = Number(values['call-rate']);
const TALK_MS = Number(values['talk-ms']);
const USERS = Number(values.users);
const MODE = values.mode;
if (!(MINUTES > 0) || !(REG_RATE > 0) || !(CALL_RATE > 0) || !(TALK_MS >= 0) || !(USERS >= 1)) {
  throw new Error('--minutes, --reg-rate, --call-rate, --users must be positive numbers, --talk-ms >= 0');
}
if (MODE !== 'one-process' && MODE !== 'separate') throw new Error('--mode: one-process or separate');

/** The load of a round runs this long; the rest of the minute lets calls finish and samples. */
const LOAD_SECONDS = 50;
const ROUND_MS = 60_000;
const HERE = new URL('./', import.meta.url).pathname;

const mb = (b: number | undefined) => (b === undefined ? 'n/a' : (b / 2 ** 20).toFixed(0));
const log = (s: string) => console.log(s);

interface Counters {
  regOk: number;
  regFailed: number;
  callsOk: number;
  callsFailed: number;
  radiusStart: number;
  radiusStop: number;
  cdrs: number;
  relayedPackets: number;
}

async function platformCounters(
  p: LaunchedPlatform,
): Promise<Omit<Counters, 'regOk' | 'regFailed' | 'callsOk' | 'callsFailed'>> {
  const proxy = await metricsOf(p.ops['sip-proxy']);
  const rating = await metricsOf(p.ops.rating);
  const media = await metricsOf(p.ops['media-proxy']);
  return {
    radiusStart: metricSum(proxy, 'switchboard_radius_client_sent_total', 'status="Start"'),
    radiusStop: metricSum(proxy, 'switchboard_radius_client_sent_total', 'status="Stop"'),
    cdrs: metricSum(rating, 'switchboard_cdrs_rated_total'),
    relayedPackets: metricSum(media, 'switchboard_media_packets_total', 'direction="out"'),
  };
}

function rssOf(p: LaunchedPlatform): Map<string, number | undefined> {
  return new Map(p.processes.map((x) => [x.target, x.rss()]));
}

/** V8 heap in use of each process (prom-client's nodejs_heap_size_used_bytes on its ops port). */
async function heapOf(p: LaunchedPlatform): Promise<Map<string, number | undefined>> {
  const out = new Map<string, number | undefined>();
  for (const x of p.processes) {
    const m = await metricsOf(x.ops).catch(() => '');
    out.set(
      x.target,
      m.includes('nodejs_heap_size_used_bytes') ? metricSum(m, 'nodejs_heap_size_used_bytes') : undefined,
    );
  }
  return out;
}

async function main() {
  const started = new Date();
  log(
    `soak: ${MINUTES} min, mode ${MODE}, ${REG_RATE} REGISTER/s over ${USERS} users, ${CALL_RATE} calls/s of ${TALK_MS} ms with RTP through the media proxy; ${started.toISOString()}`,
  );
  const env = {
    SWITCHBOARD_SIP_MEDIA_RELAY: 'always',
    // Every SIPp UA sends from 127.0.0.1: the per-source rate limit would block the load itself.
    SWITCHBOARD_SIP_PIKE_REQUESTS: '1000000',
    SWITCHBOARD_SIP_BAN_FAILURES: '1000000',
  };
  const t0 = Date.now();
  const p = MODE === 'separate' ? await separateProcesses({ env }) : await oneProcess({ env });
  log(
    `platform up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${p.processes.map((x) => `${x.target} pid ${x.pid}`).join(', ')}`,
  );
  let callee: RunningUa | undefined;
  try {
    // Provisioning through the portal API: a priced on-net plan, the caller with credit, the callee, the users.
    const planId = `soak-${p.runId}`;
    const must = async (what: string, r: Promise<{ status: number; body: unknown }>, ok = [200, 201]) => {
      const x = await r;
      if (!ok.includes(x.status)) throw new Error(`${what}: ${x.status} ${JSON.stringify(x.body)}`);
      return x.body as Record<string, unknown>;
    };
    await must(
      'rate plan',
      api(p, 'PUT', `/api/v1/rate-plans/${planId}`, {
        currency: 'EUR',
        ratesCsv: 'prefix,name,price_per_minute,increment\non-net,On net,0.60,1/1\n',
        effectiveFrom: new Date(Date.now() - 60_000).toISOString(),
      }),
    );
    const caller = { user: 'caller', password: `pw-c-${p.runId}` };
    const callee1 = { user: 'callee', password: `pw-e-${p.runId}` };
    const c = await must(
      'caller',
      api(p, 'POST', '/api/v1/subscribers', {
        username: caller.user,
        password: caller.password,
        ratePlan: planId,
      }),
    );
    await must(
      'callee',
      api(p, 'POST', '/api/v1/subscribers', { username: callee1.user, password: callee1.password }),
    );
    await must(
      'credit',
      api(p, 'POST', `/api/v1/subscribers/${String(c.id)}/credit`, { amount: '100000.00', reason: 'soak' }),
    );
    const users = Array.from({ length: USERS }, (_, i) => ({
      user: `u${i}`,
      password: `pw-${i}-${p.runId}`,
    }));
    for (const u of users) {
      await must(u.user, api(p, 'POST', '/api/v1/subscribers', { username: u.user, password: u.password }));
    }
    const calleePort = await freePort();
    const calleeMedia = await freePort();
    const callerPort = await freePort();
    const callerMedia = await freePort();
    const regPort = await freePort();
    // Every subscriber has reached the proxy once the last one can register.
    await registerWithSipp(
      p,
      users[users.length - 1].user,
      users[users.length - 1].password,
      regPort,
      30_000,
    );
    await registerWithSipp(p, callee1.user, callee1.password, calleePort, 30_000);
    const roundCalls = Math.round(CALL_RATE * LOAD_SECONDS);
    const roundRegs = Math.round(REG_RATE * LOAD_SECONDS);
    callee = runUa({
      scenario: 'callee.xml',
      port: calleePort,
      mediaPort: calleeMedia,
      keys: { user: callee1.user },
      calls: roundCalls * MINUTES + 10,
      trace: false,
      rtpPackets: Math.max(1, Math.floor(TALK_MS / 20)),
      timeoutMs: (MINUTES + 2) * 60_000,
    });
    // Warm-up call, so that start-of-run figures are of a platform that has made a call.
    await eventually(
      'a first call',
      async () => {
        const r = await runUa({
          scenario: 'caller.xml',
          port: callerPort,
          mediaPort: callerMedia,
          remote: p.sip,
          keys: { user: caller.user, callee: callee1.user, dom: p.domain },
          auth: caller,
          talkMs: 100,
          rtpPackets: 5,
          trace: false,
          timeoutMs: 10_000,
        }).done;
        return r.result.successful === 1 ? true : undefined;
      },
      30_000,
      1000,
    );

    const rssStart = rssOf(p);
    const heapStart = await heapOf(p);
    const base = await platformCounters(p);
    const totals: Counters = { regOk: 0, regFailed: 0, callsOk: 0, callsFailed: 0, ...base };
    const inf = users.map((u) => `${u.user};${u.password}`).join('\n');
    const loadStart = Date.now();
    log(`load start; RSS MB: ${[...rssStart].map(([k, v]) => `${k} ${mb(v)}`).join(', ')}`);
    log(
      '| minute | REGISTER ok | REGISTER failed | calls ok | calls failed | RADIUS Start/Stop acked | CDRs | relayed packets | RSS MB |',
    );
    log('|---|---|---|---|---|---|---|---|---|');
    for (let minute = 1; minute <= MINUTES; minute++) {
      const roundStart = Date.now();
      const before = await platformCounters(p);
      const regs = runUa({
        scenario: join(HERE, 'register-inf.xml'),
        port: regPort,
        remote: p.sip,
        keys: { dom: p.domain },
        inf,
        auth: { user: '[field0]', password: '[field1]' },
        calls: roundRegs,
        rate: REG_RATE,
        limit: 50,
        trace: false,
        timeoutMs: ROUND_MS,
      });
      const calls = runUa({
        scenario: 'caller.xml',
        port: callerPort,
        mediaPort: callerMedia,
        remote: p.sip,
        keys: { user: caller.user, callee: callee1.user, dom: p.domain },
        auth: caller,
        calls: roundCalls,
        rate: CALL_RATE,
        limit: Math.max(10, Math.ceil(CALL_RATE * (TALK_MS / 1000 + 2) * 2)),
        talkMs: TALK_MS,
        rtpPackets: Math.max(1, Math.floor(TALK_MS / 20)),
        trace: false,
        timeoutMs: ROUND_MS,
      });
      const [r, k] = await Promise.all([regs.done, calls.done]);
      // Accounting and rating trail the calls a little: wait for the round's Stops (bounded) before sampling.
      await eventually(
        'the round accounted',
        async () => {
          const now = await platformCounters(p);
          return now.radiusStop - before.radiusStop >= k.result.successful ? true : undefined;
        },
        Math.max(1000, ROUND_MS - (Date.now() - roundStart) - 1000),
        500,
      ).catch(() => undefined);
      const after = await platformCounters(p);
      const rss = rssOf(p);
      totals.regOk += r.result.successful;
      totals.regFailed += r.result.failed;
      totals.callsOk += k.result.successful;
      totals.callsFailed += k.result.failed;
      log(
        `| ${minute} | ${r.result.successful} | ${r.result.failed} | ${k.result.successful} | ${k.result.failed} | ${after.radiusStart - before.radiusStart}/${after.radiusStop - before.radiusStop} | ${after.cdrs - before.cdrs} | ${after.relayedPackets - before.relayedPackets} | ${[...rss].map(([n, v]) => `${n} ${mb(v)}`).join(', ')} |`,
      );
      if (r.result.failed || k.result.failed) {
        process.stderr.write(
          `round ${minute} failures:\n${r.errors.slice(-1500)}\n${k.errors.slice(-1500)}\n`,
        );
      }
      const rest = ROUND_MS - (Date.now() - roundStart);
      if (rest > 0 && minute < MINUTES) await new Promise((res) => setTimeout(res, rest));
    }
    const seconds = (Date.now() - loadStart) / 1000;
    const end = await platformCounters(p);
    const rssEnd = rssOf(p);
    const heapEnd = await heapOf(p);
    const rate = (n: number) => (n / seconds).toFixed(2);
    const failPct = (ok: number, failed: number) =>
      ok + failed ? ((100 * failed) / (ok + failed)).toFixed(2) : 'n/a';
    log('');
    log(`## soak summary (${MODE}, ${seconds.toFixed(0)} s of load, ${started.toISOString()})`);
    log(
      `REGISTER: ${totals.regOk} ok, ${totals.regFailed} failed (${failPct(totals.regOk, totals.regFailed)} %), ${rate(totals.regOk)}/s`,
    );
    log(
      `calls: ${totals.callsOk} ok, ${totals.callsFailed} failed (${failPct(totals.callsOk, totals.callsFailed)} %), ${rate(totals.callsOk)}/s`,
    );
    log(
      `RADIUS acknowledged: ${end.radiusStart - base.radiusStart} Start, ${end.radiusStop - base.radiusStop} Stop (${rate(end.radiusStart - base.radiusStart + end.radiusStop - base.radiusStop)} records/s); CDRs rated: ${end.cdrs - base.cdrs}; packets relayed: ${end.relayedPackets - base.relayedPackets}`,
    );
    log('| process | RSS start MB | RSS end MB | RSS growth MB | V8 heap used start MB | end MB |');
    log('|---|---|---|---|---|---|');
    for (const [name, s] of rssStart) {
      const e = rssEnd.get(name);
      log(
        `| ${name} | ${mb(s)} | ${mb(e)} | ${s !== undefined && e !== undefined ? ((e - s) / 2 ** 20).toFixed(0) : 'n/a'} | ${mb(heapStart.get(name))} | ${mb(heapEnd.get(name))} |`,
      );
    }
  } finally {
    callee?.kill();
    await p.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
