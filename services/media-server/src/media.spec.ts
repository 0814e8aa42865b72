import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import { MediaSession, Pacer, Recorder, type TimerApi } from './media';
import { encode } from './g711';
import { parseRtp, telephoneEvent, TelephoneEventDetector, writeRtpHeader, type RtpHeader } from './rtp';
import { tone } from './tone';

class FakeSocket extends EventEmitter {
  sent: Buffer[] = [];
  ports: number[] = [];
  closed = false;
  send(buf: Buffer, off: number, len: number, port: number) {
    this.sent.push(Buffer.from(buf.subarray(off, off + len)));
    this.ports.push(port);
  }
  close() {
    this.closed = true;
  }
}

function setup() {
  let now = 1000;
  let tick: (() => void) | undefined;
  const timers: TimerApi = {
    setInterval: (fn) => ((tick = fn), 1),
    clearInterval: () => (tick = undefined),
  };
  const clock = { now: () => now };
  const pacer = new Pacer(clock, 10, timers);
  const socket = new FakeSocket();
  const digits: string[] = [];
  const s = new MediaSession({
    socket: socket as unknown as Socket,
    port: 40000,
    law: 'pcmu',
    payloadType: 0,
    dtmfPayloadType: 101,
    remote: { address: '127.0.0.1', port: 50000 },
    pacer,
    latch: true,
    onDigit: (d) => digits.push(d),
  });
  const advance = (ms: number) => {
    now += ms;
    tick?.();
  };
  return { s, socket, pacer, advance, digits, running: () => tick !== undefined };
}

const hdr = (): RtpHeader => ({
  payloadType: 0,
  marker: false,
  seq: 0,
  timestamp: 0,
  ssrc: 0,
  payloadStart: 0,
  payloadEnd: 0,
});

test('playout: one 20 ms packet per frame, seq +1, timestamp +160, marker on the first, then done', async () => {
  const { s, socket, advance, running } = setup();
  const audio = encode(tone(440, 1000), 'pcmu'); // 50 frames
  const done = s.play(audio);
  assert.equal(socket.sent.length, 1); // the first frame goes at once
  for (let i = 0; i < 200 && running(); i++) advance(7); // irregular ticks
  assert.equal(await done, true);
  assert.equal(socket.sent.length, 50);
  const h = hdr();
  const first = hdr();
  parseRtp(socket.sent[0], first);
  assert.equal(first.marker, true);
  for (let i = 1; i < 50; i++) {
    assert.ok(parseRtp(socket.sent[i], h));
    assert.equal(h.marker, false);
    assert.equal(h.seq, (first.seq + i) & 0xffff);
    assert.equal(h.timestamp, (first.timestamp + 160 * i) >>> 0);
    assert.equal(h.ssrc, first.ssrc);
    assert.equal(h.payloadEnd - h.payloadStart, 160);
  }
  assert.deepEqual(socket.sent[3].subarray(12), Buffer.from(audio.subarray(480, 640)));
});

test('playout follows the clock: ten minutes of ragged ticks send exactly 30000 frames, none early', () => {
  const { s, socket, advance } = setup();
  const audio = new Uint8Array(160 * 40000).fill(0xff);
  void s.play(audio);
  let elapsed = 0;
  const steps = [9, 11, 10, 13, 7, 10, 30, 1];
  for (let i = 0; elapsed < 600_000; i++) {
    const step = Math.min(steps[i % steps.length], 600_000 - elapsed);
    advance(step);
    elapsed += step;
    assert.ok(socket.sent.length <= Math.floor(elapsed / 20) + 1, `early at ${elapsed}`);
  }
  assert.equal(socket.sent.length, 30001); // frames due at 0, 20, ..., 600000
});

test('a stalled loop skips overdue frames instead of bursting them, timestamps stay on the timeline', () => {
  const { s, socket, advance } = setup();
  void s.play(new Uint8Array(160 * 100).fill(0xff));
  advance(1000); // 50 frames due at once
  assert.equal(socket.sent.length, 1 + 5);
  const a = hdr();
  const b = hdr();
  parseRtp(socket.sent[0], a);
  parseRtp(socket.sent[socket.sent.length - 1], b);
  assert.equal((b.timestamp - a.timestamp) >>> 0, 50 * 160);
});

test('receive: RFC 4733 digits once per event, audio recorded by timestamp with reordering and loss', () => {
  const { s, digits } = setup();
  const pkt = (pt: number, seq: number, ts: number, payload: Buffer | Uint8Array) => {
    const b = Buffer.alloc(12 + payload.length);
    writeRtpHeader(b, pt, false, seq, ts, 1234);
    b.set(payload, 12);
    return b;
  };
  // digit 5: start, update, three end packets, same timestamp; then digit #
  for (const [end, dur] of [
    [false, 160],
    [false, 320],
    [true, 480],
    [true, 480],
    [true, 480],
  ] as const)
    s.receive(pkt(101, 1, 8000, telephoneEvent('5', end, dur)), '127.0.0.1', 6000);
  s.receive(pkt(101, 2, 9600, telephoneEvent('#', true, 400)), '127.0.0.1', 6000);
  assert.deepEqual(digits, ['5', '#']);

  const rec = s.startRecording(8000 * 5);
  const frames = [0, 1, 2, 3, 4, 5].map((i) => encode(tone(440, 20, 4000 + i), 'pcmu'));
  const base = 0xffffff00; // wraps around 2^32 during the recording
  for (const i of [0, 2, 1, 3, 5])
    s.receive(pkt(0, 10 + i, (base + i * 160) >>> 0, frames[i]), '127.0.0.1', 6000);
  const r = s.stopRecording()!;
  assert.equal(r, rec);
  assert.equal(r.samples.length, 6 * 160);
  assert.equal(r.packets, 5);
  assert.ok(
    r.samples.subarray(4 * 160, 5 * 160).every((x) => x === 0),
    'lost frame is silence',
  );
  assert.notEqual(r.samples[2 * 160 + 10], 0);
  assert.deepEqual(s.remoteAddress, { address: '127.0.0.1', port: 6000 }, 'latched');
});

test('latching: not to a source port 0 (unanswerable), then to the first real source', () => {
  const { s } = setup();
  const b = Buffer.alloc(12 + 160);
  writeRtpHeader(b, 0, false, 1, 160, 77);
  s.receive(b, '127.0.0.1', 0);
  assert.deepEqual(s.remoteAddress, { address: '127.0.0.1', port: 50000 }, 'still the SDP address');
  s.receive(b, '127.0.0.1', 6002);
  assert.deepEqual(s.remoteAddress, { address: '127.0.0.1', port: 6002 }, 'latched');
});

test('recorder: a new SSRC continues after what was recorded; stops at the maximum', () => {
  const r = new Recorder('pcma', 480);
  const frame = Buffer.alloc(12 + 160, 0xd5);
  r.write(frame, 12, 172, 1000, 1);
  r.write(frame, 12, 172, 99999, 2);
  assert.equal(r.samples.length, 320);
  r.write(frame, 12, 172, 99999 + 160, 2);
  r.write(frame, 12, 172, 99999 + 320, 2);
  assert.equal(r.samples.length, 480);
  assert.equal(r.full, true);
});

test('telephone-event detector ignores short payloads and unknown events', () => {
  const got: string[] = [];
  const d = new TelephoneEventDetector((x) => got.push(x));
  d.receive(Buffer.from([1, 0x80]), 0, 2, 5);
  d.receive(Buffer.from([16, 0x80, 0, 10]), 0, 4, 6);
  d.receive(Buffer.from([11, 0x80, 0, 10]), 0, 4, 7);
  assert.deepEqual(got, ['#']);
});

test('in-band DTMF when telephone-event was not negotiated', () => {
  let now = 0;
  const pacer = new Pacer({ now: () => now }, 10, { setInterval: () => 1, clearInterval: () => {} });
  const digits: string[] = [];
  const s = new MediaSession({
    socket: new FakeSocket() as unknown as Socket,
    port: 40000,
    law: 'pcma',
    payloadType: 8,
    remote: { address: '127.0.0.1', port: 9 },
    pacer,
    inbandDtmf: true,
    onDigit: (d) => digits.push(d),
  });
  const pcm = new Int16Array(160 * 12);
  pcm.set(tone([852, 1477], 100, 6000), 0); // 9
  pcm.set(tone([941, 1336], 100, 6000), 160 * 7); // 0
  const g = encode(pcm, 'pcma');
  for (let i = 0; i < 12; i++) {
    const b = Buffer.alloc(172);
    writeRtpHeader(b, 8, false, i, i * 160, 1);
    b.set(g.subarray(i * 160, (i + 1) * 160), 12);
    s.receive(b, '127.0.0.1', 5000);
    now += 20;
  }
  assert.deepEqual(digits, ['9', '0']);
});

test('RTCP: a sender report with SDES CNAME to RTP port + 1, counts and timestamps matching the stream', () => {
  let now = 5000;
  const pacer = new Pacer({ now: () => now }, 10, { setInterval: () => 1, clearInterval: () => {} });
  const rtp = new FakeSocket();
  const rtcp = new FakeSocket();
  const s = new MediaSession({
    socket: rtp as unknown as Socket,
    rtcp: rtcp as unknown as Socket,
    rtcpIntervalMs: 0,
    wallClock: () => 1_700_000_000_250,
    port: 40000,
    law: 'pcmu',
    payloadType: 0,
    remote: { address: '127.0.0.1', port: 50000 },
    pacer,
  });
  assert.equal(s.sendReport(), undefined, 'no report before any RTP');
  void s.play(new Uint8Array(160 * 10).fill(0xff));
  for (let i = 0; i < 12; i++) {
    now += 20;
    pacer.tick();
  }
  const sr = s.sendReport()!;
  const first = hdr();
  parseRtp(rtp.sent[0], first);
  assert.equal(sr[1], 200);
  assert.equal((sr.readUInt16BE(2) + 1) * 4, 28);
  assert.equal(sr.readUInt32BE(4), first.ssrc);
  assert.equal(sr.readUInt32BE(8), 1_700_000_000 + 2_208_988_800);
  assert.equal(sr.readUInt32BE(12), 0x40000000); // .25 s
  assert.equal((sr.readUInt32BE(16) - first.timestamp) >>> 0, 240 * 8); // 240 ms after the first packet
  assert.equal(sr.readUInt32BE(20), 10);
  assert.equal(sr.readUInt32BE(24), 1600);
  assert.equal(sr[29], 202);
  assert.equal(28 + (sr.readUInt16BE(30) + 1) * 4, sr.length);
  assert.equal(sr.readUInt32BE(32), first.ssrc);
  assert.equal(sr[36], 1);
  assert.equal(sr.toString('ascii', 38, 38 + sr[37]), 'switchboard-media-server');
  assert.deepEqual(rtcp.ports, [50001]);
  s.close();
  assert.equal(rtcp.sent.length, 2, 'a last report on close');
});
