/**
 * A/B timing of the parse (or proxy) workload: the working tree against a git revision,
 * in one process, rounds interleaved, CPU time (process.cpuUsage), median of 15.
 *
 *   taskset -c 1 node --import tsx bench/sip-parse/ab.ts [rev=HEAD] [parse|proxy|lenient]
 *   (AB_ROUNDS=15, AB_N=20000 messages per round; on a busy machine more, shorter
 *   rounds and the best of them are steadier than the median)
 */
import { processEnv } from '@switchboard/platform';
import * as cur from '../../libs/sip/src/message/index';
import { INVITE, REGISTER } from './messages';
import { snapshot } from './snapshot';

type Lib = typeof cur;
const rev = process.argv[2] ?? 'HEAD';
const which = process.argv[3] ?? 'parse';
const ROUNDS = Number(processEnv().AB_ROUNDS ?? 15);
const N = Number(processEnv().AB_N ?? 20000);
const base = (await import(snapshot(rev))) as Lib;
let sink = 0;

/* eslint-disable @typescript-eslint/no-explicit-any */
const parse = (lib: Lib) => (b: Buffer) => {
  const m: any = lib.parseMessage(b);
  const v = m.via;
  sink += v.branch.length + v.host.length + (v.port ?? 0) + m.cseq.seq + m.cseq.method.length;
  sink += m.callId.length + (m.fromTag ?? '').length + (m.toTag ?? '').length + (m.maxForwards ?? 0);
  sink += m.contentLength + m.uri.scheme.length;
  const r = m.routes;
  if (r.length) sink += r[0].uri.host.length;
};
const proxy = (lib: Lib) => (b: Buffer) => {
  const m: any = lib.parseMessage(b);
  m.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp4f1a2b3c');
  m.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
  if (m.hasHeader('Route')) m.removeFirstValue('Route');
  m.decrementMaxForwards();
  m.uri = 'sip:2002@198.51.100.7:5062';
  sink += m.serialize().length;
};
const lenient = (lib: Lib) => (b: Buffer) => {
  sink += lib.parseMessage(b, { lenient: true }).contentLength;
};
/* eslint-enable @typescript-eslint/no-explicit-any */

function round(fn: (b: Buffer) => void, b: Buffer, n: number): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(b);
  const d = process.cpuUsage(t0);
  return ((d.user + d.system) * 1000) / n;
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const [label, b] of [
  ['INVITE', INVITE],
  ['REGISTER', REGISTER],
] as const) {
  const mk = which === 'proxy' ? proxy : which === 'lenient' ? lenient : parse;
  const A = mk(base);
  const B = mk(cur);
  for (let i = 0; i < 30000; i++) {
    A(b);
    B(b);
  }
  const ra: number[] = [];
  const rb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    ra.push(round(A, b, N));
    rb.push(round(B, b, N));
  }
  const d = (med(rb) / med(ra) - 1) * 100;
  const best = (xs: number[]) => Math.min(...xs);
  const db = (best(rb) / best(ra) - 1) * 100;
  console.log(
    `${which} ${label}: ${rev} ${med(ra).toFixed(0)} ns, working tree ${med(rb).toFixed(0)} ns (${d.toFixed(1)}%); ` +
      `best ${best(ra).toFixed(0)} / ${best(rb).toFixed(0)} ns (${db.toFixed(1)}%)`,
  );
}
if (sink === 1) console.log();
