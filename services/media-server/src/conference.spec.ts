import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:dgram';
import { Conference, INPUT_DEPTH } from './conference';
import { decode, encode, type Law } from './g711';
import { MediaSession, Pacer, type TimerApi } from './media';
import { writeRtpHeader } from './rtp';
import { goertzel, tone } from './tone';

class FakeSocket extends EventEmitter {
  sent: Buffer[] = [];
  send(buf: Buffer, off: number, len: number) {
    this.sent.push(Buffer.from(buf.subarray(off, off + len)));
  }
  close() {}
}

function room() {
  let now = 0;
  let tick: (() => void) | undefined;
  const timers: TimerApi = { setInterval: (fn) => ((tick = fn), 1), clearInterval: () => (tick = undefined) };
  const pacer = new Pacer({ now: () => now }, 10, timers);
  const conf = new Conference('1', pacer);
  const member = (law: Law) => {
    const socket = new FakeSocket();
    const media = new MediaSession({
      socket: socket as unknown as Socket,
      port: 40000,
      law,
      payloadType: law === 'pcmu' ? 0 : 8,
      remote: { address: '127.0.0.1', port: 9 },
      pacer,
    });
    return { socket, media, law };
  };
  return { conf, pacer, member, step: (ms: number) => ((now += ms), tick?.()) };
}

const frame = (law: Law, pcm: Int16Array, i: number) => {
  const b = Buffer.alloc(172);
  writeRtpHeader(b, law === 'pcmu' ? 0 : 8, false, i, i * 160, 7);
  Buffer.from(encode(pcm.subarray(i * 160, (i + 1) * 160), law)).copy(b, 12);
  return b;
};

test('three participants: each hears the other two, never itself (PCMU and PCMA mixed)', () => {
  const { conf, member, step } = room();
  const ms = [member('pcmu'), member('pcma'), member('pcmu')];
  const hz = [400, 700, 1100];
  const tones = hz.map((f) => tone(f, 1000, 6000));
  for (const m of ms) assert.ok(conf.join(m.media));
  for (let i = 0; i < 50; i++) {
    ms.forEach((m, k) => m.media.receive(frame(m.law, tones[k], i), '127.0.0.1', 5000 + k));
    step(20);
  }
  ms.forEach((m, k) => {
    const heard = decode(Buffer.concat(m.socket.sent.map((p) => p.subarray(12))), m.law);
    assert.ok(m.socket.sent.length >= 49, `member ${k} got ${m.socket.sent.length} frames`);
    const power = hz.map((f) => goertzel(heard, f));
    for (let j = 0; j < 3; j++) {
      if (j === k)
        assert.ok(
          power[j] * 100 < Math.min(...power.filter((_, x) => x !== k)),
          `member ${k} hears itself: ${power}`,
        );
      else assert.ok(power[j] > 1000, `member ${k} misses ${hz[j]} Hz: ${power}`);
    }
  });
});

test('a muted participant is not heard; a pile-up keeps only the newest frames; leaving the last stops the mixer', () => {
  const { conf, member, step, pacer } = room();
  const a = member('pcmu');
  const b = member('pcmu');
  conf.join(a.media);
  conf.join(b.media);
  for (let i = 0; i < 10; i++) step(20); // past the join tone
  const start = b.socket.sent.length;
  assert.equal(conf.toggleMute(a.media), true);
  const t = tone(500, 200, 6000);
  for (let i = 0; i < 10; i++) {
    a.media.receive(frame('pcmu', t, i), '127.0.0.1', 5000);
    step(20);
  }
  const heardByB = decode(Buffer.concat(b.socket.sent.slice(start).map((p) => p.subarray(12))), 'pcmu');
  assert.ok(
    heardByB.every((x) => Math.abs(x) < 10),
    'muted participant leaked into the mix',
  );
  // ten frames arrive at once: only INPUT_DEPTH are kept
  conf.toggleMute(a.media);
  for (let i = 0; i < 10; i++) a.media.receive(frame('pcmu', t, i), '127.0.0.1', 5000);
  const before = b.socket.sent.length;
  for (let i = 0; i < INPUT_DEPTH + 3; i++) step(20);
  const after = b.socket.sent.slice(before).map((p) => decode(p.subarray(12), 'pcmu'));
  const loud = after.filter((f) => f.some((x) => Math.abs(x) > 1000)).length;
  assert.equal(loud, INPUT_DEPTH);
  conf.leave(a.media);
  conf.leave(b.media);
  assert.equal(conf.size, 0);
  assert.equal(pacer.size, 0);
});

test('join and leave tones: everyone hears 1500 Hz when someone joins, 900 Hz when someone leaves', () => {
  const { conf, member, step } = room();
  const a = member('pcmu');
  const b = member('pcmu');
  const heard = (m: typeof a, from: number) =>
    decode(Buffer.concat(m.socket.sent.slice(from).map((p) => p.subarray(12))), 'pcmu');
  conf.join(a.media);
  for (let i = 0; i < 10; i++) step(20);
  const before = a.socket.sent.length;
  conf.join(b.media);
  for (let i = 0; i < 10; i++) step(20);
  const joined = heard(a, before);
  assert.ok(goertzel(joined, 1500) > 100 * goertzel(joined, 900));
  const mark = a.socket.sent.length;
  conf.leave(b.media);
  for (let i = 0; i < 10; i++) step(20);
  const left = heard(a, mark);
  assert.ok(goertzel(left, 900) > 100 * goertzel(left, 1500));
  // after the tone, silence
  const tail = heard(a, a.socket.sent.length - 2);
  assert.ok(tail.every((x) => Math.abs(x) < 10));
});
