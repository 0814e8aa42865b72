import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeHep, maskCredentials, Tracer, type TraceEntry } from './trace';

const invite = (callId: string, from = 'alice', to = 'bob') =>
  Buffer.from(
    `INVITE sip:${to}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:${from}@example.com>;tag=1\r\nTo: <sip:${to}@example.com>\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\n` +
      `Proxy-Authorization: Digest username="${from}", realm="example.com", nonce="n", uri="sip:${to}@example.com", response="0123456789abcdef", cnonce="c1", nc=00000001, qop=auth\r\nContent-Length: 0\r\n\r\n`,
  );
const ok = (callId: string) =>
  Buffer.from(
    `SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\nCall-ID: ${callId}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n`,
  );

function tracer(global = true, capacity = 100) {
  let now = 1_000_000;
  const t = new Tracer({
    capacity,
    retentionMs: 60_000,
    global,
    local: () => ({ address: '127.0.0.1', port: 5060 }),
    now: () => now,
  });
  const tap = (data: Buffer, dir: 'in' | 'out' = 'in') =>
    t.tap({ dir, data, transport: 'udp', address: '10.0.0.1', port: 5062, time: now++ });
  return { t, tap, advance: (ms: number) => (now += ms) };
}

test('stored messages are found by Call-ID, number and method; the summary is the first line', () => {
  const { t, tap } = tracer();
  tap(invite('c1'));
  tap(ok('c1'), 'out');
  tap(invite('c2', 'carol', 'dave'));
  assert.deepEqual(
    t.search({ callId: 'c1' }).map((e) => e.summary),
    ['INVITE sip:bob@example.com SIP/2.0', 'SIP/2.0 200 OK'],
  );
  assert.deepEqual(
    t.search({ number: 'dave' }).map((e) => e.callId),
    ['c2'],
  );
  assert.equal(t.search({ method: 'INVITE' }).length, 3, 'responses match by CSeq method');
});

test('the store is bounded and honours retention; nothing is stored when tracing is off', () => {
  const { t, tap, advance } = tracer(true, 2);
  tap(invite('a'));
  tap(invite('b'));
  tap(invite('c'));
  assert.deepEqual(
    t.search({}).map((e) => e.callId),
    ['b', 'c'],
  );
  advance(61_000);
  assert.equal(t.search({}).length, 0);
  const off = tracer(false);
  off.tap(invite('x'));
  assert.equal(off.t.search({}).length, 0);
  off.t.users.add('alice');
  off.tap(invite('y'));
  off.tap(invite('z', 'carol', 'dave'));
  assert.deepEqual(
    off.t.search({}).map((e) => e.callId),
    ['y'],
    'per-subscriber tracing',
  );
});

test('live followers get matching messages even when storing is off', () => {
  const { t, tap } = tracer(false);
  const got: TraceEntry[] = [];
  const stop = t.follow({ callId: 'c9' }, (e) => got.push(e));
  tap(invite('c8'));
  tap(invite('c9'));
  stop();
  tap(invite('c9'));
  assert.deepEqual(
    got.map((e) => e.callId),
    ['c9'],
  );
});

test('digest responses are masked for display', () => {
  const text = maskCredentials(invite('c1').toString());
  assert.ok(!text.includes('0123456789abcdef'));
  assert.ok(!text.includes('cnonce="c1"'));
  assert.match(text, /response="\*\*\*"/);
  assert.match(text, /username="alice"/);
});

test('HEPv3: header, length and chunks a collector can read back', () => {
  const data = invite('hep-1');
  const entry: TraceEntry = {
    time: 1_700_000_000_123,
    dir: 'in',
    transport: 'udp',
    address: '192.0.2.7',
    port: 5062,
    callId: 'hep-1',
    summary: '',
    data,
  };
  const hep = encodeHep(
    entry,
    { address: '127.0.0.1', port: 5060 },
    { host: '127.0.0.1', port: 9060, captureId: 2001 },
  );
  assert.equal(hep.toString('latin1', 0, 4), 'HEP3');
  assert.equal(hep.readUInt16BE(4), hep.length);
  const chunks = new Map<number, Buffer>();
  for (let i = 6; i < hep.length;) {
    const type = hep.readUInt16BE(i + 2);
    const len = hep.readUInt16BE(i + 4);
    chunks.set(type, hep.subarray(i + 6, i + len));
    i += len;
  }
  assert.deepEqual(
    [...chunks.get(0x0003)!],
    [192, 0, 2, 7],
    'source is the remote end for a received message',
  );
  assert.deepEqual([...chunks.get(0x0004)!], [127, 0, 0, 1]);
  assert.equal(chunks.get(0x0007)!.readUInt16BE(), 5062);
  assert.equal(chunks.get(0x0009)!.readUInt32BE(), 1_700_000_000);
  assert.equal(chunks.get(0x000a)!.readUInt32BE(), 123_000);
  assert.equal(chunks.get(0x000c)!.readUInt32BE(), 2001);
  assert.deepEqual(chunks.get(0x000f), data);
  assert.equal(chunks.get(0x0011)!.toString(), 'hep-1');
  const v6 = encodeHep(
    { ...entry, address: '2001:db8::7' },
    { address: '::1', port: 5060 },
    { host: '::1', port: 9060, captureId: 1 },
  );
  const src6 = v6.subarray(v6.indexOf(Buffer.from([0, 0, 0, 5, 0, 22])) + 6).subarray(0, 16);
  assert.equal(src6.toString('hex'), '20010db8000000000000000000000007');
});
