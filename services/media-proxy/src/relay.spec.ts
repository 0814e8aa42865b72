import { test, describe, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { parseInterfaces, schedulingProblem } from './config';
import { LEARNING_WINDOW_MS, MediaRelay, type EndReason, type RelayEngine, type RelayOptions } from './relay';
import type { CallStats, OfferRequest, AnswerRequest } from '@switchboard/proto/media';
import { audioSdp, rtcpRR, rtpPacket, target, until, UdpPeer } from './testing';

const T0 = Date.UTC(2026, 0, 1);

/** A clock the test moves; it tells the relay (the native engine's thread reads time from a cell). */
class FakeClock {
  private v = T0;
  private readonly watchers: (() => void)[] = [];
  get t(): number {
    return this.v;
  }
  set t(x: number) {
    this.v = x;
    for (const w of this.watchers) w();
  }
  now = () => this.v;
  watch(changed: () => void): void {
    this.watchers.push(changed);
  }
}

/** Every test runs against both engines; the native one must have been built (no silent fallback here). */
const ENGINES: RelayEngine[] = ['native', 'js'];

interface Harness {
  relay: MediaRelay;
  clock: FakeClock;
  ended: { stats: CallStats; reason: EndReason }[];
}

const open: (MediaRelay | UdpPeer)[] = [];
afterEach(async () => {
  for (const x of open.splice(0)) {
    if (x instanceof MediaRelay) await x.close();
    else x.close();
  }
});

/** A relay on a random 200-port window of 20000-29999 (others' tests bind ephemeral ports above 32768). */
function makeHarness(over: Partial<RelayOptions> = {}): Harness {
  const clock = new FakeClock();
  const ended: Harness['ended'] = [];
  const base = 20000 + 200 * Math.floor(Math.random() * 49);
  const relay = new MediaRelay({
    interfaces: parseInterfaces('v4/127.0.0.1'),
    portMin: base,
    portMax: base + 199,
    quietPeriodMs: 30000,
    timeoutMs: 60000,
    holdTimeoutMs: 3600000,
    deleteGraceMs: 30000,
    clock,
    onEnded: (stats, reason) => ended.push({ stats, reason }),
    ...over,
  });
  open.push(relay);
  assert.equal(relay.engine, over.engine ?? 'native', 'the engine asked for runs');
  return { relay, clock, ended };
}

async function peer(address = '127.0.0.1'): Promise<UdpPeer> {
  const p = await UdpPeer.open(address);
  open.push(p);
  return p;
}

const offer = (o: Partial<OfferRequest> & { sdp: string }): OfferRequest => ({
  callId: 'call-1',
  fromTag: 'A',
  viaBranch: '',
  flags: [],
  replace: [],
  direction: [],
  receivedFrom: '',
  transportProtocol: '',
  ice: '',
  toTag: '',
  rtcpMux: [],
  ...o,
});
const answer = (o: Partial<AnswerRequest> & { sdp: string }): AnswerRequest => ({
  callId: 'call-1',
  fromTag: 'A',
  toTag: 'B',
  viaBranch: '',
  flags: [],
  replace: [],
  direction: [],
  receivedFrom: '',
  transportProtocol: '',
  ice: '',
  rtcpMux: [],
  ...o,
});

/** A call set up between peers a and b; returns where each must send. */
async function setup(h: Harness, a: UdpPeer, b: UdpPeer, flags: string[] = []) {
  const o = await h.relay.offer(offer({ sdp: audioSdp(a.address, a.port), flags }));
  const toRelayFromB = target(o.sdp);
  const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
  const toRelayFromA = target(ans.sdp);
  return { fromA: toRelayFromA, fromB: toRelayFromB, offerSdp: o.sdp, answerSdp: ans.sdp };
}

const seqOf = (b: Buffer) => b.readUInt16BE(2);
const rtpLeg = (s: CallStats, tag: string) =>
  s.legs.find((l) => l.tag === tag)!.streams.find((x) => !x.rtcp)!;
const rtcpLeg = (s: CallStats, tag: string) =>
  s.legs.find((l) => l.tag === tag)!.streams.find((x) => x.rtcp)!;

for (const engine of ENGINES) {
  describe(`engine: ${engine}`, () => {
    const harness = (over: Partial<RelayOptions> = {}) => makeHarness({ engine, ...over });

    describe('media relay', () => {
      test(
        'offer/answer rewrite the SDP to the relay, and RTP flows both ways',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA, fromB, offerSdp, answerSdp } = await setup(h, a, b);
          assert.equal(fromA.address, '127.0.0.1');
          assert.notEqual(fromA.port, a.port);
          assert.equal(fromA.port % 2, 0, 'RTP on an even port');
          assert.notEqual(fromA.port, fromB.port);
          assert.match(offerSdp, new RegExp(`a=rtcp:${fromB.port + 1} IN IP4 127.0.0.1`));
          assert.match(answerSdp, /a=rtpmap:0 PCMU\/8000/);

          await a.send(rtpPacket(1, 160, 0xaaaa), fromA);
          const atB = await b.next();
          assert.equal(seqOf(atB.msg), 1);
          assert.equal(atB.from.port, fromB.port, 'B hears the relay port it was given');
          await b.send(rtpPacket(7, 160, 0xbbbb), fromB);
          const atA = await a.next();
          assert.equal(seqOf(atA.msg), 7);
          assert.equal(atA.from.port, fromA.port);
          assert.equal(atA.msg.length, 172);

          const q = h.relay.query('call-1');
          assert.equal(rtpLeg(q, 'A').stats!.packets, 1);
          assert.equal(rtpLeg(q, 'B').stats!.bytes, 172);
          assert.equal(rtpLeg(q, 'A').lastPacket, Math.floor(T0 / 1000));
          assert.equal(h.relay.counters.packetsOut, 2);
        },
      );

      test(
        'latches onto the NATed source, not the private address in the SDP',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const o = await h.relay.offer(offer({ sdp: audioSdp('10.0.0.7', 4000) })); // A is behind NAT
          const fromB = target(o.sdp);
          const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
          const fromA = target(ans.sdp);
          // before A's first packet, B's media would go to 10.0.0.7:4000
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').latched, false);
          await a.send(rtpPacket(1, 160, 1), fromA);
          await b.next();
          await b.send(rtpPacket(2, 320, 2), fromB);
          const got = await a.next();
          assert.equal(seqOf(got.msg), 2);
          const leg = rtpLeg(h.relay.query('call-1'), 'A');
          assert.equal(leg.latched, true);
          assert.equal(leg.endpoint, `127.0.0.1:${a.port}`);
          assert.equal(leg.advertisedEndpoint, '10.0.0.7:4000');
        },
      );

      test(
        'strict-source drops and counts packets from another source once latched',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, intruder] = [await peer(), await peer(), await peer()];
          const { fromA } = await setup(h, a, b, ['strict-source']);
          await a.send(rtpPacket(1, 160, 1), fromA);
          assert.equal(seqOf((await b.next()).msg), 1);
          await intruder.send(rtpPacket(99, 160, 1), fromA);
          await a.send(rtpPacket(2, 320, 1), fromA);
          assert.equal(seqOf((await b.next()).msg), 2, 'the intruder packet was not relayed');
          assert.equal(h.relay.counters.dropped.strict_source, 1);
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').dropped, 1);
        },
      );

      test(
        'without strict-source another source is relayed but does not move the latch',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, other] = [await peer(), await peer(), await peer()];
          const { fromA } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 1), fromA);
          await b.next();
          await other.send(rtpPacket(50, 160, 1), fromA);
          assert.equal(seqOf((await b.next()).msg), 50);
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').endpoint, `127.0.0.1:${a.port}`);
          assert.equal(h.relay.counters.dropped.strict_source, 0);
        },
      );

      test(
        'asymmetric (latching off): media goes to the SDP address whatever the source',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, aOut] = [await peer(), await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b, ['asymmetric']);
          await aOut.send(rtpPacket(1, 160, 1), fromA); // A sends from another port than it receives on
          await b.next();
          await b.send(rtpPacket(2, 160, 2), fromB);
          assert.equal(seqOf((await a.next()).msg), 2, 'to the SDP address, not the source');
          assert.equal(aOut.queue.length, 0);
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').latched, false);
        },
      );

      test(
        'sip-source-address: the signalling source replaces a private SDP address',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const sdpA = audioSdp('192.168.1.20', a.port);
          const o = await h.relay.offer(
            offer({ sdp: sdpA, flags: ['sip-source-address'], receivedFrom: '127.0.0.1:5060' }),
          );
          await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').advertisedEndpoint, `127.0.0.1:${a.port}`);
          // B talks first: A is reachable before it sent anything
          await b.send(rtpPacket(9, 160, 2), target(o.sdp));
          assert.equal(seqOf((await a.next()).msg), 9);
        },
      );

      test(
        'no media for the timeout ends the call with reason "timeout"; hold stretches it',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 1), fromA);
          await b.next();
          h.clock.t += 59_000;
          h.relay.sweep();
          assert.equal(h.ended.length, 0);
          assert.equal(h.relay.activeCalls, 1);
          h.clock.t += 1_000;
          h.relay.sweep();
          assert.equal(h.ended.length, 1);
          assert.equal(h.ended[0]!.reason, 'timeout');
          assert.equal(h.ended[0]!.stats.callId, 'call-1');
          assert.equal(h.ended[0]!.stats.endReason, 'timeout');
          assert.equal(h.relay.activeCalls, 0);
          assert.equal(h.relay.counters.timeouts, 1);
          // Query still answers for the grace period
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').stats!.packets, 1);
          h.clock.t += 30_000;
          h.relay.sweep();
          assert.throws(() => h.relay.query('call-1'), /no call/);

          // an offer still ringing (no answer yet) is not ended by the media timeout
          await h.relay.offer(offer({ callId: 'ringing', sdp: audioSdp(a.address, a.port) }));
          h.clock.t += 120_000;
          h.relay.sweep();
          assert.equal(h.relay.activeCalls, 1);
          await h.relay.delete({ callId: 'ringing', fromTag: '', toTag: '', viaBranch: '', deleteDelay: 0 });

          // a call on hold (sendonly) gets the hold timeout
          const c2 = { callId: 'call-2' };
          await h.relay.offer(offer({ ...c2, sdp: audioSdp(a.address, a.port) }));
          await h.relay.answer(answer({ ...c2, sdp: audioSdp(b.address, b.port) }));
          await h.relay.offer(
            offer({
              ...c2,
              toTag: 'B',
              sdp: audioSdp(a.address, a.port, { direction: 'sendonly', sessionVersion: 2 }),
            }),
          );
          h.clock.t += 600_000;
          h.relay.sweep();
          assert.equal(h.relay.activeCalls, 1, 'held call survives the normal timeout');
          h.clock.t += 3_000_000;
          h.relay.sweep();
          assert.equal(h.relay.activeCalls, 0);
          assert.equal(h.ended.at(-1)!.reason, 'timeout');
        },
      );

      test(
        'a party whose UA vanished (silent for the timeout while the other talks on) ends the call',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 0xa), fromA);
          await b.next();
          let seq = 1;
          const bTalks = async () => {
            seq++;
            await b.send(rtpPacket(seq, seq * 160, 0xb), fromB);
            assert.equal(seqOf((await a.next()).msg), seq);
          };
          // B keeps talking, A (heard once at T0) says nothing more
          for (const step of [30_000, 29_000]) {
            h.clock.t += step;
            await bTalks();
            h.relay.sweep();
          }
          assert.equal(h.ended.length, 0, 'A silent for 59 s: still up');
          h.clock.t += 1_000;
          await bTalks();
          h.relay.sweep();
          assert.equal(h.ended.length, 1);
          assert.equal(h.ended[0]!.reason, 'timeout');
          assert.equal(h.relay.counters.timeouts, 1);

          // a party never heard from (one-way media) does not end the call this way
          const c2 = { callId: 'one-way' };
          const o2 = await h.relay.offer(offer({ ...c2, sdp: audioSdp(a.address, a.port) }));
          await h.relay.answer(answer({ ...c2, sdp: audioSdp(b.address, b.port) }));
          for (let i = 0; i < 4; i++) {
            h.clock.t += 30_000;
            seq++;
            await b.send(rtpPacket(seq, seq * 160, 0xb), target(o2.sdp));
            await a.next();
            h.relay.sweep();
          }
          assert.equal(h.relay.activeCalls, 1, 'two minutes of one-way media');
          await h.relay.delete({ callId: 'one-way', fromTag: '', toTag: '', viaBranch: '', deleteDelay: 0 });

          // nor does a party whose SDP says it does not send (recvonly)
          const c3 = { callId: 'recvonly' };
          const o3 = await h.relay.offer(offer({ ...c3, sdp: audioSdp(a.address, a.port) }));
          const ans3 = await h.relay.answer(
            answer({ ...c3, sdp: audioSdp(b.address, b.port, { direction: 'recvonly' }) }),
          );
          await b.send(rtpPacket(1, 160, 0xb), target(o3.sdp)); // a stray packet before it went quiet
          await a.next();
          for (let i = 0; i < 4; i++) {
            h.clock.t += 30_000;
            await a.send(rtpPacket(100 + i, 160 * i, 0xa), target(ans3.sdp));
            await b.next();
            h.relay.sweep();
          }
          assert.deepEqual(h.relay.callIds(10), ['recvonly'], 'two minutes of A talking to a recvonly B');
          assert.equal(h.relay.counters.timeouts, 1);
        },
      );

      test(
        'delete delay (ng "delete delay"): media flows on, then the call ends with reason "delete"',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA } = await setup(h, a, b);
          const stats = await h.relay.delete({
            callId: 'call-1',
            fromTag: '',
            toTag: '',
            viaBranch: '',
            deleteDelay: 5,
          });
          assert.equal(stats.endReason, '');
          assert.equal(h.ended.length, 0);
          h.clock.t += 4_000;
          h.relay.sweep();
          await a.send(rtpPacket(1, 160, 1), fromA);
          assert.equal(seqOf((await b.next()).msg), 1, 'still relaying during the delay');
          h.clock.t += 1_000;
          h.relay.sweep();
          assert.equal(h.ended.length, 1);
          assert.equal(h.ended[0]!.reason, 'delete');
          assert.equal(h.ended[0]!.stats.rtp!.packets, 1);
          assert.equal(h.relay.activeCalls, 0);
          await a.send(rtpPacket(2, 320, 1), fromA);
          await until(() => h.relay.counters.dropped.no_session === 1);
          assert.equal(b.queue.length, 0);
        },
      );

      test(
        'delete reports final stats; late packets to its ports are dropped and counted, never relayed',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 1), fromA);
          await b.next();
          const stats = await h.relay.delete({
            callId: 'call-1',
            fromTag: '',
            toTag: '',
            viaBranch: '',
            deleteDelay: 0,
          });
          assert.equal(stats.endReason, 'delete');
          assert.equal(stats.rtp!.packets, 1);
          assert.equal(h.ended.length, 1);
          assert.equal(h.ended[0]!.reason, 'delete');
          assert.equal(h.relay.activeCalls, 0);
          await a.send(rtpPacket(2, 320, 1), fromA);
          await until(() => h.relay.counters.dropped.no_session === 1);
          assert.equal(h.relay.counters.packetsOut, 1);
          assert.equal(b.queue.length, 0);
        },
      );

      test(
        'ports come in even/odd pairs and are reused only after the quiet period',
        { timeout: 10000 },
        async () => {
          const base = 20000 + 200 * Math.floor(Math.random() * 49);
          const h = harness({ portMin: base, portMax: base + 3, quietPeriodMs: 5000 }); // two pairs
          const relay = h.relay;
          const free = relay.portsFree;
          assert.equal(free, 4);
          await relay.offer(offer({ sdp: audioSdp('127.0.0.1', 5000) }));
          assert.equal(relay.portsInUse, 4);
          await assert.rejects(
            relay.offer(offer({ callId: 'other', sdp: audioSdp('127.0.0.1', 5000) })),
            /no free relay port/,
          );
          await relay.delete({ callId: 'call-1', fromTag: '', toTag: '', viaBranch: '', deleteDelay: 0 });
          await assert.rejects(
            relay.offer(offer({ callId: 'x', sdp: audioSdp('127.0.0.1', 5000) })),
            /no free relay port/,
            'quiet period',
          );
          h.clock.t += 5000;
          const o = await relay.offer(offer({ callId: 'x', sdp: audioSdp('127.0.0.1', 5000) }));
          assert.equal(target(o.sdp).port % 2, 0);
        },
      );

      test(
        'RTCP receiver reports are relayed and read into loss, jitter and RTT',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, aRtcp, bRtcp] = [await peer(), await peer(), await peer(), await peer()];
          // RTCP on explicit ports (a=rtcp is what the SDP helper leaves to port+1; use real sockets here)
          const sdpA = audioSdp(a.address, a.port).replace(
            'a=sendrecv',
            `a=rtcp:${aRtcp.port}\r\na=sendrecv`,
          );
          const sdpB = audioSdp(b.address, b.port).replace(
            'a=sendrecv',
            `a=rtcp:${bRtcp.port}\r\na=sendrecv`,
          );
          const o = await h.relay.offer(offer({ sdp: sdpA }));
          const ans = await h.relay.answer(answer({ sdp: sdpB }));
          const fromB = target(o.sdp);
          const fromA = target(ans.sdp);
          // B reports on A's stream: 25% lost, 10 cumulative, jitter 80 units (10 ms at 8 kHz); RTT 50 ms
          const lsr = ntp32(T0 - 150);
          const dlsr = Math.round(0.1 * 65536); // 100 ms held at B
          await bRtcp.send(
            rtcpRR(0xb, {
              ssrc: 0xa,
              fractionLost: 64,
              cumulativeLost: 10,
              highestSeq: 100,
              jitter: 80,
              lsr,
              dlsr,
            }),
            {
              address: fromB.address,
              port: fromB.port + 1,
            },
          );
          const got = await aRtcp.next();
          assert.equal(got.msg[1], 201);
          assert.equal(got.from.port, fromA.port + 1, 'RTCP leaves from the odd port');
          const leg = rtcpLeg(h.relay.query('call-1'), 'B');
          assert.equal(leg.lost, 10);
          assert.equal(leg.fractionLost, 0.25);
          assert.equal(leg.jitterMs, 10);
          assert.ok(Math.abs(leg.rttMs - 50) < 1, `rtt ${leg.rttMs}`);
          assert.equal(leg.stats!.packets, 1);
          assert.equal(h.relay.counters.rtcpIn, 1);
        },
      );

      test('sequence gaps count as loss before the relay', { timeout: 10000 }, async () => {
        const h = harness();
        const [a, b] = [await peer(), await peer()];
        const { fromA } = await setup(h, a, b);
        for (const seq of [65534, 65535, 2, 3]) await a.send(rtpPacket(seq, seq * 160, 5), fromA);
        for (let i = 0; i < 4; i++) await b.next();
        assert.equal(rtpLeg(h.relay.query('call-1'), 'A').lost, 2);
      });

      test(
        'rtcp-mux: RTCP shares the RTP port toward a party that negotiated it',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, aRtcp] = [await peer(), await peer(), await peer()];
          // A does not mux (RTCP to its own port); the relay offers mux to B, B accepts
          const sdpA = audioSdp(a.address, a.port).replace(
            'a=sendrecv',
            `a=rtcp:${aRtcp.port}\r\na=sendrecv`,
          );
          const o = await h.relay.offer(offer({ sdp: sdpA, rtcpMux: ['offer'] }));
          assert.match(o.sdp, /a=rtcp-mux/);
          const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port, { rtcpMux: true }) }));
          assert.doesNotMatch(ans.sdp, /a=rtcp-mux/, 'A did not offer mux: the answer to A has none');
          const fromB = target(o.sdp);
          const fromA = target(ans.sdp);
          await b.send(
            rtcpRR(0xb, {
              ssrc: 0xa,
              fractionLost: 0,
              cumulativeLost: 0,
              highestSeq: 1,
              jitter: 0,
              lsr: 0,
              dlsr: 0,
            }),
            fromB,
          );
          const atA = await aRtcp.next();
          assert.equal(atA.msg[1], 201);
          assert.equal(atA.from.port, fromA.port + 1);
          await aRtcp.send(
            rtcpRR(0xa, {
              ssrc: 0xb,
              fractionLost: 0,
              cumulativeLost: 3,
              highestSeq: 1,
              jitter: 0,
              lsr: 0,
              dlsr: 0,
            }),
            {
              address: fromA.address,
              port: fromA.port + 1,
            },
          );
          const atB = await b.next();
          assert.equal(atB.msg[1], 201, 'RTCP arrives on B’s RTP port');
          assert.equal(atB.from.port, fromB.port);
          await b.send(rtpPacket(1, 160, 0xb), fromB);
          assert.equal(seqOf((await a.next()).msg), 1);
        },
      );

      test(
        'a forked call: two branches, the answering one gets the media, a cancelled branch is deleted',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b1, b2] = [await peer(), await peer(), await peer()];
          const o1 = await h.relay.offer(offer({ viaBranch: 'z9hG4bK-1', sdp: audioSdp(a.address, a.port) }));
          const o2 = await h.relay.offer(offer({ viaBranch: 'z9hG4bK-2', sdp: audioSdp(a.address, a.port) }));
          assert.notEqual(target(o1.sdp).port, target(o2.sdp).port, 'each branch has its own ports');
          // early media from B1 (183), then B2 answers (200)
          const ans1 = await h.relay.answer(
            answer({ toTag: 'B1', viaBranch: 'z9hG4bK-1', sdp: audioSdp(b1.address, b1.port) }),
          );
          const ans2 = await h.relay.answer(
            answer({ toTag: 'B2', viaBranch: 'z9hG4bK-2', sdp: audioSdp(b2.address, b2.port) }),
          );
          assert.equal(target(ans1.sdp).port, target(ans2.sdp).port, 'A keeps one relay port');
          const fromA = target(ans2.sdp);
          await a.send(rtpPacket(1, 160, 1), fromA);
          assert.equal(seqOf((await b2.next()).msg), 1, 'the latest answer gets A’s media');
          await b1.send(rtpPacket(40, 160, 2), target(o1.sdp));
          assert.equal(seqOf((await a.next()).msg), 40);
          // the proxy cancels branch 1
          const after = await h.relay.delete({
            callId: 'call-1',
            fromTag: 'A',
            toTag: 'B1',
            viaBranch: '',
            deleteDelay: 0,
          });
          assert.equal(after.endReason, '');
          assert.equal(h.relay.activeCalls, 1);
          assert.equal(h.ended.length, 0);
          await b2.send(rtpPacket(41, 160, 3), target(o2.sdp));
          assert.equal(seqOf((await a.next()).msg), 41);
          await b1.send(rtpPacket(42, 160, 2), target(o1.sdp));
          await until(() => h.relay.counters.dropped.no_session === 1);
          const q = h.relay.query('call-1');
          assert.deepEqual(q.legs.map((l) => l.tag).sort(), ['A', 'B1', 'B2']);
          assert.equal(rtpLeg(q, 'B1').stats!.packets, 1, 'the deleted branch keeps its stats');
        },
      );

      test(
        're-INVITE with a new address (RFC 3665 3.7): media follows, stale packets do not re-latch',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, a2] = [await peer(), await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 0x1111), fromA);
          await b.next();
          // A moves: re-INVITE (offer with the to-tag) naming a2's address
          const re = await h.relay.offer(
            offer({ toTag: 'B', sdp: audioSdp(a2.address, a2.port, { sessionVersion: 2 }) }),
          );
          assert.equal(target(re.sdp).port, fromB.port, 'B keeps its relay port');
          const reAns = await h.relay.answer(
            answer({ sdp: audioSdp(b.address, b.port, { sessionVersion: 2 }) }),
          );
          assert.equal(target(reAns.sdp).port, fromA.port);
          // a late packet from the old address with the old SSRC does not steal the latch
          await a.send(rtpPacket(2, 320, 0x1111), fromA);
          assert.equal(seqOf((await b.next()).msg), 2);
          await b.send(rtpPacket(10, 160, 0x2222), fromB);
          assert.equal(seqOf((await a2.next()).msg), 10, 'B’s media goes to the new address');
          await a2.send(rtpPacket(100, 16000, 0x3333), fromA);
          assert.equal(seqOf((await b.next()).msg), 100);
          const leg = rtpLeg(h.relay.query('call-1'), 'A');
          assert.equal(leg.endpoint, `127.0.0.1:${a2.port}`);
          assert.equal(a.queue.length, 0);
        },
      );

      test(
        'a peer on the relay’s address at a port of its range that the relay does not hold is relayed, not taken for a loop',
        { timeout: 10000 },
        async () => {
          // The kernel's ephemeral ports (32768-60999) overlap the default range 30000-39999: a UA on the
          // relay's host may send from one of them. Only the ports the relay holds are its own.
          const base = 20000 + 200 * Math.floor(Math.random() * 49);
          const h = harness({ portMin: base, portMax: base + 199 });
          const a = await peer();
          const b = await UdpPeer.open('127.0.0.1', base + 198);
          open.push(b);
          const { fromA, fromB } = await setup(h, a, b);
          await b.send(rtpPacket(1, 160, 0xb0b), fromB);
          assert.equal(seqOf((await a.next()).msg), 1);
          await a.send(rtpPacket(2, 320, 0xa), fromA);
          assert.equal(seqOf((await b.next()).msg), 2);
          const leg = rtpLeg(h.relay.query('call-1'), 'B');
          assert.equal(leg.latched, true);
          assert.equal(leg.endpoint, `127.0.0.1:${b.port}`);
          assert.equal(Number(leg.dropped), 0);
          assert.equal(h.relay.counters.dropped.loop, 0);
        },
      );

      test(
        'an SDP that names one of the relay’s own ports gets nothing sent there: dropped as a loop, not relayed round and round',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const a = await peer();
          const o = await h.relay.offer(offer({ sdp: audioSdp(a.address, a.port) }));
          const fromA = target(o.sdp); // placeholder until the answer names the port A sends to
          // the answer names the relay's port facing A: B's media would be sent back into the relay
          const ans = await h.relay.answer(answer({ sdp: audioSdp('127.0.0.1', fromA.port) }));
          const toRelayFromA = target(ans.sdp);
          await a.send(rtpPacket(1, 160, 0xa), toRelayFromA);
          await until(() => h.relay.counters.dropped.loop >= 1);
          await new Promise((r) => setTimeout(r, 50));
          assert.equal(h.relay.counters.packetsOut, 0, 'nothing sent to the relay itself');
          assert.equal(h.relay.counters.packetsIn, 1, 'the one packet A sent, not a loop of it');
        },
      );

      test(
        'callee RTP before the answer, then the answer (SDP port not the NAT one), then RTP from the NAT port: latched there',
        { timeout: 10000 },
        async () => {
          // test-e2e/nat: baresip sends as soon as it has the offer; the proxy's Answer comes with the 200.
          const h = harness();
          const [a, b, bPrivate] = [await peer(), await peer(), await peer()];
          const o = await h.relay.offer(offer({ sdp: audioSdp(a.address, a.port) }));
          const fromB = target(o.sdp);
          // B's first packets come from the port its NAT chose (b), not the one in its SDP (bPrivate)
          await b.send(rtpPacket(1, 160, 0xb0b), fromB);
          assert.equal(seqOf((await a.next()).msg), 1, 'early media is relayed');
          const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, bPrivate.port) }));
          const fromA = target(ans.sdp);
          // right after the answer, A's media still goes to where B's packets came from
          await a.send(rtpPacket(10, 1600, 0xa), fromA);
          assert.equal(seqOf((await b.next()).msg), 10);
          // B goes on from the same NATed source with the same SSRC: that is its latch
          await b.send(rtpPacket(2, 320, 0xb0b), fromB);
          assert.equal(seqOf((await a.next()).msg), 2);
          await a.send(rtpPacket(11, 1760, 0xa), fromA);
          assert.equal(seqOf((await b.next()).msg), 11);
          const leg = rtpLeg(h.relay.query('call-1'), 'B');
          assert.equal(leg.latched, true);
          assert.equal(leg.endpoint, `127.0.0.1:${b.port}`);
          assert.equal(leg.advertisedEndpoint, `127.0.0.1:${bPrivate.port}`);
          assert.equal(bPrivate.queue.length, 0, 'nothing went to the SDP port');
        },
      );

      test(
        're-INVITE: the old source with the old SSRC latches again once the learning window is over',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, aPrivate] = [await peer(), await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 0x1111), fromA);
          await b.next();
          // A's re-INVITE names another port, but A (behind its NAT) keeps sending from the same binding
          await h.relay.offer(
            offer({ toTag: 'B', sdp: audioSdp(a.address, aPrivate.port, { sessionVersion: 2 }) }),
          );
          await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port, { sessionVersion: 2 }) }));
          await a.send(rtpPacket(2, 320, 0x1111), fromA);
          await b.next();
          await b.send(rtpPacket(20, 160, 0x2222), fromB);
          assert.equal(seqOf((await aPrivate.next()).msg), 20, 'within the window: the new SDP address');
          h.clock.t += LEARNING_WINDOW_MS;
          await a.send(rtpPacket(3, 480, 0x1111), fromA);
          await b.next();
          await b.send(rtpPacket(21, 320, 0x2222), fromB);
          assert.equal(seqOf((await a.next()).msg), 21, 'after it: latched to where A really is');
          assert.equal(rtpLeg(h.relay.query('call-1'), 'A').endpoint, `127.0.0.1:${a.port}`);
        },
      );

      test(
        'hold with c=0.0.0.0 stops media toward the holder; resume restores it',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b] = [await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b);
          await a.send(rtpPacket(1, 160, 1), fromA);
          await b.next();
          const hold = await h.relay.offer(
            offer({ toTag: 'B', sdp: audioSdp('0.0.0.0', a.port, { sessionVersion: 2 }) }),
          );
          assert.match(hold.sdp, /c=IN IP4 0\.0\.0\.0/, 'old-style hold is passed on');
          await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port, { sessionVersion: 2 }) }));
          await b.send(rtpPacket(5, 160, 2), fromB);
          await until(() => h.relay.counters.dropped.no_destination === 1);
          assert.equal(a.queue.length, 0);
          await h.relay.offer(offer({ toTag: 'B', sdp: audioSdp(a.address, a.port, { sessionVersion: 3 }) }));
          await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port, { sessionVersion: 3 }) }));
          await b.send(rtpPacket(6, 320, 2), fromB);
          assert.equal(seqOf((await a.next()).msg), 6);
        },
      );

      test(
        'a re-INVITE from the callee (offer with its from-tag) is answered by the caller',
        { timeout: 10000 },
        async () => {
          const h = harness();
          const [a, b, b2] = [await peer(), await peer(), await peer()];
          const { fromA, fromB } = await setup(h, a, b);
          const re = await h.relay.offer(
            offer({ fromTag: 'B', toTag: 'A', sdp: audioSdp(b2.address, b2.port, { sessionVersion: 2 }) }),
          );
          assert.equal(target(re.sdp).port, fromA.port, 'A is told its own relay port');
          const ans = await h.relay.answer(
            answer({ fromTag: 'B', toTag: 'A', sdp: audioSdp(a.address, a.port, { sessionVersion: 2 }) }),
          );
          assert.equal(target(ans.sdp).port, fromB.port);
          await a.send(rtpPacket(3, 160, 1), fromA);
          assert.equal(seqOf((await b2.next()).msg), 3);
        },
      );

      test('ICE attributes are stripped by default and kept on request', { timeout: 10000 }, async () => {
        const h = harness();
        const o = await h.relay.offer(offer({ sdp: audioSdp('127.0.0.1', 5000, { ice: true }) }));
        assert.doesNotMatch(o.sdp, /a=candidate|a=ice-ufrag/);
        const k = await h.relay.offer(
          offer({ callId: 'k', sdp: audioSdp('127.0.0.1', 5000, { ice: true }), ice: 'keep' }),
        );
        assert.match(k.sdp, /a=ice-ufrag/);
        await assert.rejects(
          h.relay.offer(offer({ callId: 'f', sdp: audioSdp('127.0.0.1', 5000), ice: 'force' })),
          /not supported/,
        );
      });

      test('bad requests are typed errors', { timeout: 10000 }, async () => {
        const h = harness();
        await assert.rejects(
          h.relay.offer(offer({ sdp: 'not sdp' })),
          (e: Error & { kind?: string }) => e.kind === 'invalid_argument',
        );
        await assert.rejects(
          h.relay.answer(answer({ callId: 'nope', sdp: audioSdp('127.0.0.1', 5000) })),
          (e: Error & { kind?: string }) => e.kind === 'not_found',
        );
        await assert.rejects(
          h.relay.offer(offer({ sdp: audioSdp('127.0.0.1', 5000), direction: ['mars'] })),
          /unknown interface/,
        );
        assert.equal(h.relay.activeCalls, 0, 'a failed first offer leaves no call behind');
      });
    });

    describe('IPv4/IPv6 bridging', () => {
      test('an IPv4 caller and an IPv6 callee talk through two interfaces', { timeout: 10000 }, async () => {
        const h = harness({ interfaces: parseInterfaces('v4/127.0.0.1,v6/::1') });
        const [a, b] = [await peer('127.0.0.1'), await peer('::1')];
        const o = await h.relay.offer(offer({ sdp: audioSdp(a.address, a.port), direction: ['v4', 'v6'] }));
        assert.match(o.sdp, /c=IN IP6 ::1/);
        const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
        assert.match(ans.sdp, /c=IN IP4 127\.0\.0\.1/);
        const fromB = target(o.sdp);
        const fromA = target(ans.sdp);
        await a.send(rtpPacket(1, 160, 1), fromA);
        const atB = await b.next();
        assert.equal(seqOf(atB.msg), 1);
        assert.equal(atB.from.address, '::1');
        await b.send(rtpPacket(2, 160, 2), fromB);
        const atA = await a.next();
        assert.equal(seqOf(atA.msg), 2);
        assert.equal(atA.from.address, '127.0.0.1');
        assert.equal(rtpLeg(h.relay.query('call-1'), 'B').endpoint, `[::1]:${b.port}`);
      });
    });

    describe('two interfaces (public and private)', () => {
      test(
        'each party is told and hears its own interface; the advertised address goes into SDP',
        { timeout: 10000 },
        async () => {
          // "external" binds 127.0.0.1 behind a 1:1 NAT (advertised 203.0.113.5); "internal" binds 127.0.0.2
          const h = harness({
            interfaces: parseInterfaces('external/127.0.0.1!203.0.113.5,internal/127.0.0.2'),
          });
          const [a, b] = [await peer('127.0.0.1'), await peer('127.0.0.2')];
          const o = await h.relay.offer(
            offer({ sdp: audioSdp(a.address, a.port), direction: ['external', 'internal'] }),
          );
          assert.match(o.sdp, /c=IN IP4 127\.0\.0\.2/, 'the internal party is told the internal address');
          const ans = await h.relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
          assert.match(ans.sdp, /c=IN IP4 203\.0\.113\.5/, 'the external party is told the advertised one');
          const fromB = target(o.sdp);
          const fromA = { address: '127.0.0.1', port: target(ans.sdp).port }; // what the 1:1 NAT does
          await a.send(rtpPacket(1, 160, 1), fromA);
          const atB = await b.next();
          assert.equal(seqOf(atB.msg), 1);
          assert.equal(atB.from.address, '127.0.0.2', 'B hears the internal interface');
          await b.send(rtpPacket(2, 160, 2), fromB);
          const atA = await a.next();
          assert.equal(seqOf(atA.msg), 2);
          assert.equal(atA.from.address, '127.0.0.1');
          const q = h.relay.query('call-1');
          assert.equal(rtpLeg(q, 'A').localAddress, '203.0.113.5');
          assert.equal(rtpLeg(q, 'B').localAddress, '127.0.0.2');
        },
      );
    });
  });
}

/** Middle 32 bits of the NTP time of a Unix ms time (what an SR carries and an RR echoes as LSR). */
function ntp32(ms: number): number {
  const secs = Math.floor(ms / 1000) + 2208988800;
  const frac = Math.floor(((ms % 1000) / 1000) * 65536);
  return (((secs & 0xffff) << 16) | frac) >>> 0;
}

test('hostOf: the address of a received-from value', async () => {
  const { hostOf } = await import('./relay');
  assert.equal(hostOf('192.0.2.1:5060'), '192.0.2.1');
  assert.equal(hostOf('192.0.2.1'), '192.0.2.1');
  assert.equal(hostOf('[2001:db8::1]:5060'), '2001:db8::1');
  assert.equal(hostOf('2001:db8::1'), '2001:db8::1');
  assert.equal(hostOf('::1'), '::1');
  assert.equal(hostOf('example.com:5060'), '');
});

test('native engine missing: the relay falls back to the JS engine, says why, and relays', async () => {
  const reasons: string[] = [];
  const base = 20000 + 200 * Math.floor(Math.random() * 49);
  const relay = new MediaRelay({
    interfaces: parseInterfaces('v4/127.0.0.1'),
    portMin: base,
    portMax: base + 199,
    quietPeriodMs: 30000,
    timeoutMs: 60000,
    holdTimeoutMs: 3600000,
    deleteGraceMs: 30000,
    engine: 'native',
    nativeAddon: '/nonexistent/relay.node',
    onEngineFallback: (r) => reasons.push(r),
  });
  open.push(relay);
  assert.equal(relay.engine, 'js');
  assert.equal(reasons.length, 1);
  assert.match(reasons[0]!, /relay\.node/);
  const [a, b] = [await peer(), await peer()];
  const o = await relay.offer(offer({ sdp: audioSdp(a.address, a.port) }));
  const ans = await relay.answer(answer({ sdp: audioSdp(b.address, b.port) }));
  await a.send(rtpPacket(7, 160, 1), target(ans.sdp));
  assert.equal(seqOf((await b.next()).msg), 7);
  assert.equal(relay.counters.packetsOut, 1);
  assert.ok(target(o.sdp).port >= base);
});

test('native engine: residence times (bench) count each relayed packet and reset when read', async () => {
  const h = makeHarness({ engine: 'native', measureResidence: true });
  const [a, b] = [await peer(), await peer()];
  const { fromA } = await setup(h, a, b);
  assert.deepEqual(h.relay.residence(false)?.packets, 0);
  await a.send(rtpPacket(1, 160, 1), fromA);
  await b.next();
  await a.send(rtpPacket(2, 320, 1), fromA);
  await b.next();
  const r = h.relay.residence(true)!;
  assert.equal(r.packets, 2);
  assert.ok(r.p50Ms > 0 && r.p50Ms <= r.p99Ms && r.p99Ms <= r.p999Ms);
  assert.ok(r.maxMs >= 0);
  assert.equal(h.relay.residence(false)!.packets, 0);
  assert.equal(makeHarness({ engine: 'js' }).relay.residence(false), undefined);
});

/** Each thread of this process as [policy, real-time priority] (/proc/self/task/N/stat, fields 41 and 40). */
function threadScheduling(): [number, number][] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3
    return [Number(f[41 - 3]), Number(f[40 - 3])];
  });
}
const SCHED_FIFO = 1;
const SCHED_BATCH = 3;
const count = (policy: number, prio: number) =>
  threadScheduling().filter(([p, r]) => p === policy && r === prio).length;

test('native engine: the relay thread takes the scheduling policy and priority asked for (rtpengine --scheduling, --priority)', () => {
  const failed: string[] = [];
  const onSchedulingFailed = (r: string) => failed.push(r);
  const batch = count(SCHED_BATCH, 0);
  makeHarness({ engine: 'native', scheduling: 'batch', priority: 0, onSchedulingFailed });
  assert.deepEqual(failed, []);
  assert.equal(count(SCHED_BATCH, 0), batch + 1, 'one more thread (the relay) runs SCHED_BATCH');

  const fifo = count(SCHED_FIFO, 7);
  makeHarness({ engine: 'native', scheduling: 'fifo', priority: 7, onSchedulingFailed });
  if (process.getuid?.() === 0) {
    assert.deepEqual(failed, []);
    assert.equal(count(SCHED_FIFO, 7), fifo + 1, 'the relay thread runs SCHED_FIFO at 7');
  } else assert.match(failed.pop() ?? '', /not permitted/i, 'without CAP_SYS_NICE: said, and the relay runs');

  // a priority the policy does not take: said, the thread left as it was
  makeHarness({ engine: 'native', scheduling: 'fifo', priority: 0, onSchedulingFailed });
  assert.match(failed.pop() ?? '', /priority out of its range/);
  assert.equal(count(SCHED_FIFO, 0), 0);
  // the JS engine has no thread to schedule
  makeHarness({ engine: 'js', scheduling: 'rr', priority: 5, onSchedulingFailed });
  assert.match(failed.pop() ?? '', /js engine/);
  assert.deepEqual(failed, []);
});

test('scheduling settings: a real-time policy needs a priority, the others take none', () => {
  assert.equal(schedulingProblem('default', 0), undefined);
  assert.equal(schedulingProblem('fifo', 50), undefined);
  assert.equal(schedulingProblem('batch', 0), undefined);
  assert.match(
    schedulingProblem('fifo', 0) ?? '',
    /SWITCHBOARD_MEDIA_PRIORITY: fifo needs a priority from 1 to 99/,
  );
  assert.match(schedulingProblem('rr', 0) ?? '', /rr needs/);
  assert.match(schedulingProblem('other', 10) ?? '', /10 is for fifo or rr; other takes 0/);
});
