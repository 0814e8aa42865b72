/**
 * Differential check of the message layer against an earlier revision: the corpus
 * (testdata/torture + the bench messages) and seeded mutations of it go through both,
 * in datagram, stream and lenient mode, and every observable result must be equal:
 * the error (class, code, status, header, message) or the accessors' values, the
 * serialized message, a proxy's edits serialized, a response built from it.
 *
 *   node --import tsx bench/sip-parse/diff-check.ts [rev=95afaf5] [mutations=20000] [seed=7]
 *
 * Used for every speed change: behaviour must not move.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as cur from '../../libs/sip/src/message/index';
import { INVITE, REGISTER } from './messages';
import { snapshot } from './snapshot';

type Lib = typeof cur;
const rev = process.argv[2] ?? '95afaf5';
const N = Number(process.argv[3] ?? 20000);
const seed = Number(process.argv[4] ?? 7);
const old = (await import(snapshot(rev))) as Lib;

const DIR = join(import.meta.dirname, '..', '..', 'libs', 'sip', 'testdata', 'torture');
const corpus: Buffer[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.sip'))
  .sort()
  .map((f) => readFileSync(join(DIR, f)));
corpus.push(INVITE, REGISTER);

/** mulberry32 */
function rng(s: number) {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const SPECIAL = Buffer.from(':;,<>"\\\r\n \t\v=@%[]?&/0123456789z9hG4bK\x00\xff\xc3\xa9\xc2\xa0');
function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const rounds = 1 + Math.floor(r() * 4);
  for (let k = 0; k < rounds; k++) {
    const at = Math.floor(r() * (b.length + 1));
    const op = Math.floor(r() * 6);
    if (op === 0 && b.length) b[Math.min(at, b.length - 1)] ^= 1 << Math.floor(r() * 8);
    else if (op === 1) b = b.subarray(0, at);
    else if (op === 2) {
      const ins = Buffer.alloc(1 + Math.floor(r() * 8));
      for (let i = 0; i < ins.length; i++)
        ins[i] = r() < 0.7 ? SPECIAL[Math.floor(r() * SPECIAL.length)] : Math.floor(r() * 256);
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
    } else if (op === 3) {
      const len = Math.floor(r() * 200);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
    } else if (op === 4) {
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + Math.floor(r() * 20))]);
    } else {
      const line = b.indexOf(10, at); // fold the next line
      if (line >= 0) b = Buffer.concat([b.subarray(0, line + 1), Buffer.from([32]), b.subarray(line + 1)]);
    }
  }
  return b;
}

function errInfo(e: unknown): unknown {
  if (!(e instanceof Error)) return { thrown: String(e) };
  const x = e as Error & { code?: string; status?: number; header?: string };
  return { err: e.constructor.name, code: x.code, status: x.status, header: x.header, msg: e.message };
}
function plain(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v ?? 'undefined', (_k, x: unknown) =>
      x !== null && typeof x === 'object' && !Array.isArray(x) && x.constructor?.name !== 'Object'
        ? { ...(x as object), s: String(x) }
        : x,
    ),
  );
}
function get(f: () => unknown): unknown {
  try {
    return plain(f());
  } catch (e) {
    return errInfo(e);
  }
}

/* eslint-disable @typescript-eslint/no-explicit-any */
function observe(lib: Lib, b: Buffer, opts: cur.ParseOptions): unknown {
  let m: any;
  try {
    m = lib.parseMessage(b, opts);
  } catch (e) {
    return errInfo(e);
  }
  const out: Record<string, unknown> = {};
  for (const k of [
    'isRequest',
    'method',
    'status',
    'reason',
    'uriText',
    'callId',
    'fromTag',
    'toTag',
    'maxForwards',
    'contactStar',
    'contentType',
    'expires',
    'contentLength',
  ])
    out[k] = get(() => m[k]);
  out.uri = get(() => (m.isRequest ? String(m.uri) : null));
  out.via = get(() => [String(m.via), m.via.branch, m.via.host, m.via.port, m.via.rport, m.via.received]);
  out.vias = get(() => m.vias.map(String));
  out.cseq = get(() => m.cseq);
  out.from = get(() => [String(m.from), m.from.displayName, m.from.uriText, String(m.from.uri)]);
  out.to = get(() => [String(m.to), m.to.displayName, String(m.to.uri)]);
  out.routes = get(() => m.routes.map((r: any) => [String(r), String(r.uri)]));
  out.rr = get(() => m.recordRoutes.map(String));
  out.contacts = get(() => m.contacts.map((c: any) => [String(c), c.expires, c.q, c.instance]));
  out.entries = get(() => m.headerEntries());
  out.body = get(() => m.body.toString('latin1'));
  out.serialized = get(() => m.serialize().toString('latin1'));
  out.proxied = get(() => {
    const p: any = lib.parseMessage(b, opts);
    p.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp4f1a2b3c');
    p.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
    if (p.hasHeader('Route')) p.removeFirstValue('Route');
    p.decrementMaxForwards();
    if (p.isRequest) p.uri = 'sip:2002@198.51.100.7:5062';
    return p.serialize().toString('latin1');
  });
  out.response = get(() => (m.isRequest ? lib.createResponse(m, 200).serialize().toString('latin1') : null));
  // responses built from a message whose header index is intact (nothing above read it whole),
  // then after a proxy's edits (fields added to the index)
  out.responseFresh = get(() => {
    const p: any = lib.parseMessage(b, opts);
    if (!p.isRequest) return null;
    const built = (s: number) =>
      lib.createResponse(p, s, undefined, { toTag: 'rt1' }).serialize().toString('latin1');
    const before = [100, 180, 200].map(built);
    p.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp4f1a2b3c');
    p.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
    return [...before, built(200)];
  });
  // received/rport set on the top Via of an intact index (what the transaction layer does)
  out.received = get(() => {
    const p: any = lib.parseMessage(b, opts);
    if (!p.isRequest) return null;
    p.setViaReceived('192.0.2.99', 5099);
    return [p.via.received, p.via.rport, p.serialize().toString('latin1')];
  });
  // headers without their own id, read and removed on an intact index
  out.others = get(() => {
    const p: any = lib.parseMessage(b, opts);
    const read = ['Proxy-Require', 'User-Agent', 'Supported', 'X-Nope'].map((n) => p.getHeaders(n));
    p.removeHeader('User-Agent').removeHeader('Supported').removeHeader('X-Nope');
    // serialized only when something was removed (removing nothing used to rebuild the message
    // from field objects; now it is left as received, as an unedited message is)
    const removed = read[1]!.length + read[2]!.length > 0;
    return [read, p.getHeaders('User-Agent'), removed ? p.serialize().toString('latin1') : null];
  });
  return out;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const r = rng(seed);
const inputs = [...corpus];
for (let i = 0; i < N; i++) inputs.push(mutate(corpus[Math.floor(r() * corpus.length)], r));
let diffs = 0;
for (const b of inputs) {
  for (const opts of [{}, { transport: 'stream' as const }, { lenient: true }]) {
    const a = JSON.stringify(observe(old, b, opts));
    const c = JSON.stringify(observe(cur, b, opts));
    if (a !== c && diffs++ < 3) {
      console.log('DIFF', JSON.stringify(b.toString('latin1')).slice(0, 400), opts);
      console.log('  old', a.slice(0, 800));
      console.log('  new', c.slice(0, 800));
    }
  }
}
console.log(`${inputs.length} inputs x 3 modes against ${rev}: ${diffs} differences`);
process.exit(diffs ? 1 : 0);
