/**
 * SIP parse benchmark: @switchboard/sip against the npm packages `sip`
 * (require('sip').parse) and `sip.js` (Parser.parseMessage from sip.js/lib/core),
 * on the same Buffers, one core, side by side.
 *
 *   taskset -c 1 node --import tsx bench/sip-parse/run.ts   (SIP_BENCH_MS=300 per round, SIP_BENCH_ROUNDS=7)
 *
 * Rounds are interleaved across implementations; each round is timed by CPU time
 * (process.cpuUsage: what the pinned core spent on this process, so other processes
 * on a shared machine don't count) and by wall clock. Median and best are printed.
 *
 * parse: from the received Buffer to the routing fields: top Via branch/host/port,
 *   CSeq number and method, Call-ID, From/To tags, Max-Forwards, Content-Length,
 *   Request-URI (parsed), top Route's URI host (parsed: a proxy checks whether it is itself).
 * proxy: parse, then the edits a proxy makes (Via on top, Record-Route, first
 *   Route removed, Max-Forwards - 1, Request-URI rewritten) and serialize to a Buffer.
 *   sip.js has no serializer for a received message: n/a.
 *
 * SIP_BENCH_REV=<git rev>: run our side from that revision of libs/sip/src/message
 * (a snapshot, see snapshot.ts) instead of the working tree, for before/after figures.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { processEnv } from '@switchboard/platform';
import { Parser } from 'sip.js/lib/core/index.js';
import * as sipLib from '@switchboard/sip';
import type { SipRequest, SipUri } from '@switchboard/sip';
import { INVITE, REGISTER } from './messages';
import { snapshot } from './snapshot';

const env = processEnv();

const REV = env.SIP_BENCH_REV;
const { parseMessage } = REV ? ((await import(snapshot(REV))) as typeof sipLib) : sipLib;

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const sipPkg: any = require('sip');
const noLog = { error() {}, warn() {}, log() {}, debug() {} };

const MS = Number(env.SIP_BENCH_MS ?? 300);
const ROUNDS = Number(env.SIP_BENCH_ROUNDS ?? 7);
let sink = 0;

type Case = (buf: Buffer) => void;

const ours: Record<string, Case> = {
  parse(buf) {
    const m = parseMessage(buf) as SipRequest;
    const v = m.via;
    sink += v.branch!.length + v.host.length + (v.port ?? 0) + m.cseq.seq + m.cseq.method.length;
    sink += m.callId.length + (m.fromTag ?? '').length + (m.toTag ?? '').length + (m.maxForwards ?? 0);
    sink += m.contentLength + m.uri.scheme.length;
    const r = m.routes;
    if (r.length) sink += (r[0].uri as SipUri).host.length;
  },
  proxy(buf) {
    const m = parseMessage(buf) as SipRequest;
    m.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp4f1a2b3c');
    m.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
    if (m.hasHeader('Route')) m.removeFirstValue('Route');
    m.decrementMaxForwards();
    m.uri = 'sip:2002@198.51.100.7:5062';
    sink += m.serialize().length;
  },
};

const sipNpm: Record<string, Case> = {
  parse(buf) {
    const m = sipPkg.parse(buf);
    const v = m.headers.via[0];
    sink += v.params.branch.length + v.host.length + (v.port ?? 0) + m.headers.cseq.seq;
    sink += m.headers.cseq.method.length + m.headers['call-id'].length;
    sink += (m.headers.from.params.tag ?? '').length + (m.headers.to.params.tag ?? '').length;
    sink += +m.headers['max-forwards'] + (m.headers['content-length'] ?? 0);
    sink += sipPkg.parseUri(m.uri).schema.length;
    const r = m.headers.route; // parsed with its URI by sip.parse
    if (r) sink += r[0].uri.host.length;
  },
  proxy(buf) {
    const m = sipPkg.parse(buf);
    m.headers.via.unshift({
      version: '2.0',
      protocol: 'UDP',
      host: '203.0.113.5',
      port: 5060,
      params: { branch: 'z9hG4bKp4f1a2b3c' },
    });
    m.headers['record-route'] = [
      { uri: 'sip:203.0.113.5;lr', params: {} },
      ...(m.headers['record-route'] ?? []),
    ];
    if (m.headers.route) m.headers.route.shift();
    m.headers['max-forwards'] = +m.headers['max-forwards'] - 1;
    m.uri = 'sip:2002@198.51.100.7:5062';
    sink += Buffer.from(sipPkg.stringify(m), 'binary').length;
  },
};

const sipJs: Record<string, Case> = {
  parse(buf) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const m: any = Parser.parseMessage(buf.toString(), noLog as never);
    sink += m.via.branch.length + m.via.host.length + (m.via.port ?? 0) + m.cseq + m.method.length;
    sink += m.callId.length + (m.fromTag ?? '').length + (m.toTag ?? '').length;
    sink += +(m.getHeader('max-forwards') ?? 0) + +(m.getHeader('content-length') ?? 0);
    sink += (m.ruri?.scheme ?? '').length + m.getHeaders('route').length; // Route left as text
  },
};

/** One round: [msgs per CPU second, msgs per wall second]. */
function measure(fn: Case, buf: Buffer): [number, number] {
  for (let i = 0; i < 200; i++) fn(buf); // warm up
  let n = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const limit = BigInt(MS) * 1_000_000n;
  let el = 0n;
  do {
    for (let i = 0; i < 500; i++) fn(buf);
    n += 500;
    el = process.hrtime.bigint() - t0;
  } while (el < limit);
  const c = process.cpuUsage(c0);
  return [(n * 1e6) / (c.user + c.system), (n * 1e9) / Number(el)];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const fmt = (x: number | undefined) => (x === undefined ? 'n/a' : Math.round(x).toLocaleString('en-US'));
const inputs: Array<[string, Buffer]> = [
  [`INVITE (${INVITE.length} B)`, INVITE],
  [`REGISTER (${REGISTER.length} B)`, REGISTER],
];

// sanity: every implementation sees the same message
for (const [, b] of inputs) {
  ours.parse(b);
  sipNpm.parse(b);
  sipJs.parse(b);
}

type Stat = { cpu: number[]; wall: number[] };
const results: Array<{ label: string; w: string; ours: Stat; sip: Stat | null; sipjs: Stat | null }> = [];
for (const [label, buf] of inputs) {
  for (const w of ['parse', 'proxy'] as const) {
    // rounds interleaved across implementations: the machine is shared
    const a: Stat = { cpu: [], wall: [] };
    const b: Stat | null = sipNpm[w] ? { cpu: [], wall: [] } : null;
    const c: Stat | null = sipJs[w] ? { cpu: [], wall: [] } : null;
    for (let r = 0; r < ROUNDS; r++) {
      // the pair's order alternates, so a drift of the core's speed favours neither side
      const pair: Array<[Case, Stat]> = [[ours[w], a]];
      if (b) pair[r % 2 ? 'unshift' : 'push']([sipNpm[w], b]);
      for (const [fn, st] of pair) {
        const x = measure(fn, buf);
        st.cpu.push(x[0]);
        st.wall.push(x[1]);
      }
      if (c && r < 2) {
        const x = measure(sipJs[w], buf);
        c.cpu.push(x[0]);
        c.wall.push(x[1]);
      }
    }
    results.push({ label, w, ours: a, sip: b, sipjs: c });
  }
}

console.log(
  `@switchboard/sip from ${REV ? `revision ${REV}` : 'the working tree'}; ` +
    `node ${process.version}, ${ROUNDS} rounds of ${MS} ms per case (sip.js: 2 rounds), interleaved, ` +
    `${new Date().toISOString()}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
);
for (const kind of ['cpu', 'wall'] as const) {
  console.log(
    kind === 'cpu'
      ? '\nmessages per CPU-second of the process (median / best of the rounds)'
      : '\nmessages per wall-clock second (median / best; depressed when the core is shared)',
  );
  const rows: string[] = [];
  rows.push(
    '| message | workload | @switchboard/sip | sip | sip.js | ratio vs faster peer (median / best) | paired ratio vs sip (median of rounds) |',
  );
  rows.push('|---|---|---:|---:|---:|---:|---:|');
  for (const { label, w, ours, sip, sipjs } of results) {
    const cell = (s: Stat | null) => (s ? `${fmt(median(s[kind]))} / ${fmt(Math.max(...s[kind]))}` : 'n/a');
    const peerMed = Math.max(sip ? median(sip[kind]) : 0, sipjs ? median(sipjs[kind]) : 0);
    const peerBest = Math.max(sip ? Math.max(...sip[kind]) : 0, sipjs ? Math.max(...sipjs[kind]) : 0);
    const ratio = `${(median(ours[kind]) / peerMed).toFixed(2)}x / ${(Math.max(...ours[kind]) / peerBest).toFixed(2)}x`;
    // each round of ours against the peer's round next to it in time: robust to the core's speed
    // moving between rounds (sip.js is three orders of magnitude slower and never the faster peer)
    const paired = sip ? `${median(ours[kind].map((x, i) => x / sip[kind][i])).toFixed(2)}x` : 'n/a';
    rows.push(`| ${label} | ${w} | ${cell(ours)} | ${cell(sip)} | ${cell(sipjs)} | ${ratio} | ${paired} |`);
  }
  console.log(rows.join('\n'));
}
if (sink === 42) console.log('');
