/**
 * Where the parse time goes: the INVITE through growing subsets of the work,
 * ns per message (CPU time, best of 9 rounds). Differences between rows are the
 * cost of each step (lenient = start line + header index only).
 *
 *   taskset -c 1 node --import tsx bench/sip-parse/parts.ts [case]
 */
import { parseMessage, type SipRequest, type SipUri } from '../../libs/sip/src/message/index';
import { INVITE } from './messages';

let sink = 0;
const cases: Record<string, (b: Buffer) => void> = {
  lenient(b) {
    sink += parseMessage(b, { lenient: true }).contentLength;
  },
  '+ decode, Call-ID'(b) {
    sink += parseMessage(b, { lenient: true }).callId.length;
  },
  '+ top Via'(b) {
    const m = parseMessage(b, { lenient: true });
    sink += m.callId.length + m.via.host.length;
  },
  '+ To'(b) {
    const m = parseMessage(b, { lenient: true });
    sink += m.callId.length + m.to.params.size;
  },
  '+ From'(b) {
    const m = parseMessage(b, { lenient: true });
    sink += m.callId.length + m.from.params.size;
  },
  '+ Request-URI'(b) {
    const m = parseMessage(b, { lenient: true }) as SipRequest;
    sink += m.callId.length + m.uri.scheme.length;
  },
  '+ CSeq, Max-Forwards'(b) {
    const m = parseMessage(b, { lenient: true }) as SipRequest;
    sink += m.callId.length + m.cseq.seq + (m.maxForwards ?? 0);
  },
  'strict (all checks)'(b) {
    sink += parseMessage(b).contentLength;
  },
  'bench parse workload'(b) {
    const m = parseMessage(b) as SipRequest;
    const v = m.via;
    sink += v.branch!.length + v.host.length + (v.port ?? 0) + m.cseq.seq + m.cseq.method.length;
    sink += m.callId.length + (m.fromTag ?? '').length + (m.toTag ?? '').length + (m.maxForwards ?? 0);
    sink += m.contentLength + m.uri.scheme.length;
    const r = m.routes;
    if (r.length) sink += (r[0].uri as SipUri).host.length;
  },
  'bench proxy workload'(b) {
    const m = parseMessage(b) as SipRequest;
    m.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp4f1a2b3c');
    m.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
    if (m.hasHeader('Route')) m.removeFirstValue('Route');
    m.decrementMaxForwards();
    m.uri = 'sip:2002@198.51.100.7:5062';
    sink += m.serialize().length;
  },
};
const only = process.argv[2];
const out: string[] = [];
for (let round = 0; round < 2; round++) {
  for (const [name, fn] of Object.entries(cases)) {
    if (only && name !== only) continue;
    for (let i = 0; i < 20000; i++) fn(INVITE);
    let best = Infinity;
    for (let r = 0; r < 9; r++) {
      const t0 = process.cpuUsage();
      for (let i = 0; i < 50000; i++) fn(INVITE);
      const d = process.cpuUsage(t0);
      best = Math.min(best, ((d.user + d.system) * 1000) / 50000);
    }
    if (round === 1) out.push(`${name.padEnd(22)} ${best.toFixed(0).padStart(5)} ns`);
  }
}
console.log(out.join('\n'));
if (sink === 42) console.log();
