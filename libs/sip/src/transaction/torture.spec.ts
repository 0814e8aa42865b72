/**
 * The RFC 4475 / RFC 5118 torture messages through the transaction layer (UDP
 * and TCP framing), with a UAS-like TU: the layer never throws, never answers
 * a response, answers every request but ACK exactly once, and answers what the
 * parser rejects with an error status.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseMessage, type SipRequest, type SipResponse } from '../message';
import { FakeClock } from '../transport/fake-clock';
import { parseSip } from '../transport/framing';
import type { TransportUser } from '../transport/layer';
import type { SendCallback, SendTarget, Source } from '../transport/types';
import { TransactionLayer } from './layer';

type Msg = SipRequest | SipResponse;
const dir = new URL('../../testdata/torture/', import.meta.url);
const rows = readFileSync(new URL('INDEX.tsv', dir), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((l) => l.split('\t'))
  .map(([name, , cls, method]) => ({ name, cls, isResponse: method.startsWith('response') }));

const src: Source = {
  transport: 'udp',
  address: '192.0.2.7',
  port: 5060,
  localAddress: '192.0.2.1',
  localPort: 5060,
  connId: undefined,
};

function run(raw: Buffer) {
  const sent: Msg[] = [];
  let user!: TransportUser<Msg>;
  const transport = {
    attach: (u: TransportUser<Msg>) => (user = u),
    send: (data: Buffer, _t: SendTarget, cb?: SendCallback) => {
      // lenient: an error response copies the request's (possibly broken) headers
      sent.push(parseMessage(data, { lenient: true }));
      cb?.();
    },
  };
  const txl = new TransactionLayer({ transport, clock: new FakeClock() });
  const seen: string[] = [];
  txl.attach({
    onRequest: (req, tx) => {
      seen.push(req.method);
      // read what a proxy reads, then answer
      void req.from;
      void req.to;
      void req.contacts;
      void req.maxForwards;
      tx?.reply(200, undefined, { toTag: 'uas' });
    },
    onStrayResponse: (res) => seen.push(String(res.status)),
  });
  let msg: Msg | undefined;
  let error: Error | undefined;
  try {
    msg = parseSip(raw, false);
  } catch (e) {
    error = e as Error;
  }
  if (msg) user.onMessage(msg, src);
  else user.onParseError(raw, error!, src);
  return { sent, seen, parsed: msg !== undefined, error };
}

/** Rejected requests that lack what a response must copy (no From/Call-ID; no Via/CSeq). */
const UNANSWERABLE = new Set(['insuf', 'test']);

describe('torture corpus through the transaction layer', () => {
  for (const r of rows) {
    test(`${r.name} (${r.cls})`, () => {
      const raw = readFileSync(new URL(`${r.name}.sip`, dir));
      const { sent, seen, parsed, error } = run(raw);
      const statuses = sent.map((m) => (m.isRequest ? -1 : m.status));
      if (r.isResponse) {
        assert.deepEqual(statuses, [], 'a response is never answered');
        assert.equal(seen.length, parsed ? 1 : 0, 'a parsed response reaches the TU as stray');
      } else if (parsed) {
        assert.equal(seen.length, 1);
        assert.equal(statuses.length, 1, 'answered exactly once');
        // 200 from the TU, or the status of a header the TU read lazily and that failed
        assert.ok(statuses[0] === 200 || statuses[0] >= 400, String(statuses[0]));
      } else if (UNANSWERABLE.has(r.name)) {
        assert.deepEqual(statuses, []);
      } else {
        assert.deepEqual(statuses, [(error as { status?: number }).status ?? 400], error?.message);
      }
    });
  }
});
