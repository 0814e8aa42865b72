/**
 * SIP parse benchmark: @switchboard/sip against the npm packages `sip`
 * (require('sip').parse) and `sip.js` (Parser.parseMessage from sip.js/lib/core),
 * on the same Buffers, one core, side by side.
 *
 *   node --import tsx bench/sip-parse/run.ts   (SIP_BENCH_MS=300 per round, SIP_BENCH_ROUNDS=5)
 *
 * parse: from the received Buffer to the routing fields (top Via branch/host/port,
 *   CSeq, Call-ID, From/To tags, Max-Forwards, Request-URI, Route).
 * proxy: parse, then the edits a proxy makes (Via on top, Record-Route, first
 *   Route removed, Max-Forwards - 1, Request-URI rewritten) and serialize to a Buffer.
 *   sip.js has no serializer for a received message: n/a.
 */
import { createRequire } from 'node:module';
import { Parser } from 'sip.js/lib/core/index.js';
import { parseMessage, type SipRequest } from '@switchboard/sip';
import { INVITE, REGISTER } from './messages';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const sipPkg: any = require('sip');
const noLog = { error() {}, warn() {}, log() {}, debug() {} };

const MS = Number(process.env.SIP_BENCH_MS ?? 300);
const ROUNDS = Number(process.env.SIP_BENCH_ROUNDS ?? 5);
let sink = 0;

type Case = (buf: Buffer) => void;

const ours: Record<string, Case> = {
  parse(buf) {
    const m = parseMessage(buf) as SipRequest;
    const v = m.via;
    sink += v.branch!.length + v.host.length + (v.port ?? 0) + m.cseq.seq + m.callId.length;
    sink += (m.fromTag ?? '').length + (m.toTag ?? '').length + (m.maxForwards ?? 0) + m.uri.scheme.length;
    sink += m.routes.length;
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
    sink +=
      v.params.branch.length +
      v.host.length +
      (v.port ?? 0) +
      m.headers.cseq.seq +
      m.headers['call-id'].length;
    sink +=
      (m.headers.from.params.tag ?? '').length +
      (m.headers.to.params.tag ?? '').length +
      +m.headers['max-forwards'];
    sink += sipPkg.parseUri(m.uri).schema.length + (m.headers.route ?? []).length;
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
    sink += m.via.branch.length + m.via.host.length + (m.via.port ?? 0) + m.cseq + m.callId.length;
    sink += (m.fromTag ?? '').length + (m.toTag ?? '').length + +(m.getHeader('max-forwards') ?? 0);
    sink += (m.ruri?.scheme ?? '').length + m.getHeaders('route').length;
  },
};

function measure(fn: Case, buf: Buffer): number {
  for (let i = 0; i < 200; i++) fn(buf); // warm up
  let n = 0;
  const t0 = process.hrtime.bigint();
  const limit = BigInt(MS) * 1_000_000n;
  let el = 0n;
  do {
    for (let i = 0; i < 500; i++) fn(buf);
    n += 500;
    el = process.hrtime.bigint() - t0;
  } while (el < limit);
  return (n * 1e9) / Number(el);
}

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

const rows: string[] = [];
rows.push(
  '| message | workload | @switchboard/sip msgs/s | sip msgs/s | sip.js msgs/s | ratio vs faster peer |',
);
rows.push('|---|---|---:|---:|---:|---:|');
for (const [label, buf] of inputs) {
  for (const w of ['parse', 'proxy'] as const) {
    // rounds interleaved across implementations, best of each: the machine is shared
    let a = 0;
    let b: number | undefined;
    let c: number | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      a = Math.max(a, measure(ours[w], buf));
      if (sipNpm[w]) b = Math.max(b ?? 0, measure(sipNpm[w], buf));
      if (sipJs[w] && r < 2) c = Math.max(c ?? 0, measure(sipJs[w], buf));
    }
    const peer = Math.max(b ?? 0, c ?? 0);
    rows.push(
      `| ${label} | ${w} | ${fmt(a)} | ${fmt(b)} | ${fmt(c)} | ${peer ? (a / peer).toFixed(1) + 'x' : 'n/a'} |`,
    );
  }
}
console.log(
  `node ${process.version}, best of ${ROUNDS} rounds of ${MS} ms per case (sip.js: 2 rounds), one core`,
);
console.log(rows.join('\n'));
if (sink === 42) console.log('');
