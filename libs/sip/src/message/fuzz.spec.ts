/**
 * Mutation fuzzing over the torture corpus and realistic phone messages: byte
 * flips, truncation, insertion, duplication, deletion (fixed seed, 20,000 cases
 * in total). Nothing but SipParseError may escape parsing, any accessor, the
 * serializer or the stream framer; every loop is linear, so a hang fails by timeout.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseMessage, SipParseError, StreamFramer, uriEquals, SipRequest, type SipMessage } from './index';

const DIR = join(import.meta.dirname, '..', '..', 'testdata', 'torture');
const corpus: Buffer[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.sip'))
  .sort()
  .map((f) => readFileSync(join(DIR, f)));
corpus.push(
  Buffer.from(
    'REGISTER sip:sip.example.net SIP/2.0\r\nVia: SIP/2.0/TCP 192.168.1.23:5060;branch=z9hG4bK31;rport;received=[::1]\r\n' +
      'From: "Alice" <sip:2001@sip.example.net>;tag=15\r\nTo: <sip:2001@sip.example.net>\r\nCall-ID: 1_12@192.168.1.23\r\n' +
      'CSeq: 2 REGISTER\r\nContact: <sip:2001@192.168.1.23:5060;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-805ec0a1b2c3>";reg-id=1;expires=60\r\n' +
      'Authorization: Digest username="2001", realm="sip.example.net", nonce="5f8d", uri="sip:sip.example.net", response="9b1c"\r\n' +
      'Route: <sip:[2001:db8::1]:5061;transport=tls;lr>, <tel:+1-201-555-0123;phone-context=example.com>\r\n' +
      'Record-Route: <sips:p.example.com;lr>\r\nMax-Forwards: 70\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n',
  ),
);

/** mulberry32: small seeded PRNG so failures reproduce. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIAL = Buffer.from(':;,<>"\\\r\n \t=@%[]?&/0123456789z9hG4bK\x00\xff');

function mutate(src: Buffer, r: () => number): Buffer {
  let b = Buffer.from(src);
  const rounds = 1 + Math.floor(r() * 4);
  for (let k = 0; k < rounds; k++) {
    const at = Math.floor(r() * (b.length + 1));
    const op = Math.floor(r() * 6);
    if (op === 0 && b.length) b[Math.min(at, b.length - 1)] ^= 1 << Math.floor(r() * 8);
    else if (op === 1) b = b.subarray(0, at);
    else if (op === 2) {
      const n = 1 + Math.floor(r() * 8);
      const ins = Buffer.alloc(n);
      for (let i = 0; i < n; i++)
        ins[i] = r() < 0.7 ? SPECIAL[Math.floor(r() * SPECIAL.length)] : Math.floor(r() * 256);
      b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
    } else if (op === 3) {
      const len = Math.floor(r() * 200);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
    } else if (op === 4) {
      const len = Math.floor(r() * 40);
      b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
    } else if (b.length) b[Math.min(at, b.length - 1)] = SPECIAL[Math.floor(r() * SPECIAL.length)];
  }
  return b;
}

/** Touches every accessor and edit; throws whatever they throw. */
function exercise(m: SipMessage): void {
  const steps: Array<() => unknown> = [
    () => m.via,
    () => m.vias.map((v) => [v.branch, v.rport, v.received, v.sentBy, v.toString()]),
    () => m.cseq,
    () => m.callId,
    () => [m.from.tag, m.from.uri.toString(), m.from.toString()],
    () => [m.to.tag, uriEquals(m.to.uri, m.to.uri)],
    () => m.maxForwards,
    () => m.routes.map((r) => r.uri.toString()),
    () => m.recordRoutes.length,
    () => m.contacts.map((c) => [c.expires, c.q, c.instance, c.regId, c.uri.toString()]),
    () => m.contactStar,
    () => m.contentType,
    () => m.expires,
    () => m.getHeaderValues('Allow'),
    () => m.headerEntries().length,
    () => (m instanceof SipRequest ? [m.uri.toString(), uriEquals(m.uri, m.uri.toString())] : 0),
    () => parseMessage(m.serialize(), { lenient: true }),
    () => {
      m.pushVia('SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz');
      m.addHeader('Record-Route', '<sip:192.0.2.1;lr>', { first: true });
      m.removeFirstValue('Route');
      m.decrementMaxForwards();
      m.setViaReceived('192.0.2.99', 5099);
      return parseMessage(m.serialize());
    },
  ];
  for (const s of steps) {
    try {
      s();
    } catch (e) {
      if (!(e instanceof SipParseError)) throw e;
    }
  }
}

function onlySipParseError(fn: () => void, input: Buffer): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SipParseError)) {
      assert.fail(
        `non-SipParseError ${String(e)} for input ${JSON.stringify(input.toString('latin1'))}\n${(e as Error).stack}`,
      );
    }
    assert.equal(typeof e.status, 'number');
  }
}

describe('fuzz', () => {
  test('datagram parse of 16,000 mutated messages throws only SipParseError', () => {
    const r = rng(0x4475);
    let parsed = 0;
    for (let i = 0; i < 16000; i++) {
      const input = mutate(corpus[i % corpus.length], r);
      onlySipParseError(() => {
        const m = parseMessage(input);
        parsed++;
        exercise(m);
      }, input);
      onlySipParseError(() => exercise(parseMessage(input, { lenient: true })), input);
    }
    assert.ok(
      parsed > 1000,
      `only ${parsed} mutated messages parsed: the mutations are too destructive to test much`,
    );
  });

  test('stream framing of 4,000 mutated streams throws only SipParseError', () => {
    const r = rng(0x5626);
    for (let i = 0; i < 4000; i++) {
      const a = corpus[i % corpus.length];
      const b = corpus[(i * 7 + 3) % corpus.length];
      const input = mutate(Buffer.concat([a, Buffer.from('\r\n\r\n'), b]), r);
      onlySipParseError(() => {
        const f = new StreamFramer({
          onMessage: (m) => onlySipParseError(() => exercise(parseMessage(m, { transport: 'stream' })), m),
        });
        let at = 0;
        while (at < input.length) {
          const n = 1 + Math.floor(r() * 300);
          f.push(input.subarray(at, at + n));
          at += n;
        }
      }, input);
    }
  });
});
