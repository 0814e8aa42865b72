/**
 * Issue 7, done-when: "a re-INVITE with a new address keeps audio", through the platform as
 * `npm start` runs it with SWITCHBOARD_SIP_MEDIA_RELAY=always. Two scripted UAs on loopback
 * (SIP built with @switchboard/sip, RTP as real UDP datagrams sent and counted): Alice calls
 * Bob, audio flows both ways through the media proxy; then Alice moves to another address
 * (RFC 3665 3.7: new SIP socket, new RTP socket on 127.0.0.2) and re-INVITEs in the dialog;
 * the relay follows her to the new socket and nothing more goes to the old one; BYE ends the
 * call in the media proxy too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grpcClient } from '@switchboard/platform';
import { MediaProxyClient } from '@switchboard/proto/media';
import { createRequest, createResponse, newCallId, newTag } from '@switchboard/sip';
import { audioSdp, rtpPacket, target, UdpPeer } from '../../services/media-proxy/src/testing';
import { metricValue, startPlatform } from '../lib/platform';
import { ScriptedUa } from '../lib/scripted-ua';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
/** Where Alice moves to (loopback: all of 127/8 is local). */
const MOVED = '127.0.0.2';
const BURST = 5;

/** Poll `cond` until it holds or the deadline passes (then fail with `why()`: what was seen by then). */
async function until(
  cond: () => boolean | Promise<boolean>,
  why: () => string | Promise<string>,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${await why()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ssrcOf = (b: Buffer) => b.readUInt32BE(8);
/** RTP packets with `ssrc` a peer has received so far. */
const got = (peer: UdpPeer, ssrc: number) => peer.queue.filter((r) => ssrcOf(r.msg) === ssrc);

/** A talker: one SSRC, its sequence numbers and timestamps going on from burst to burst. */
function talker(ssrc: number) {
  let seq = 0;
  return {
    ssrc,
    async burst(from: UdpPeer, to: { address: string; port: number }) {
      for (let i = 0; i < BURST; i++) {
        seq++;
        await from.send(rtpPacket(seq, seq * 160, ssrc), to);
      }
    },
  };
}

/** The relay address an SDP body points at, checked to be the media proxy's. */
function relayTarget(sdp: string, who: string, not: number[]): { address: string; port: number } {
  const t = target(sdp);
  assert.equal(t.address, '127.0.0.1', `${who}: c= is the relay's address\n${sdp}`);
  assert.ok(t.port >= 30000 && t.port <= 39999, `${who}: m= port is a relay port (30000-39999)\n${sdp}`);
  assert.ok(!not.includes(t.port), `${who}: not a UA's own RTP port\n${sdp}`);
  return t;
}

const originVersion = (sdp: string) => Number(/^o=\S+ \S+ (\d+) /m.exec(sdp)?.[1]);

test('a re-INVITE with a new address keeps audio: the relay follows the caller to her new RTP socket (RFC 3665 3.7, relay always)', async () => {
  const p = await startPlatform({
    subscribers: [ALICE, BOB],
    env: { SWITCHBOARD_SIP_MEDIA_RELAY: 'always' },
  });
  const mediaUrl = p.proc.endpoints.find((e) => e.service === 'media-proxy' && e.name === 'gRPC')!.url;
  const media = grpcClient(MediaProxyClient, mediaUrl.replace('grpc://', ''), { deadlineMs: 3000 });
  const proxy = p.sip.udp;
  let callId = '';
  /** The relay's view of the call (for failure messages). */
  const relayState = () =>
    media.query({ callId, fromTag: '', toTag: '' }).then(
      (r) => JSON.stringify(r.stats),
      (e: unknown) => String(e),
    );
  const sockets: { close(): void }[] = [];
  const opened = async <T extends { close(): void }>(x: Promise<T>) => {
    const v = await x;
    sockets.push(v);
    return v;
  };
  try {
    // Each UA: a SIP socket and an RTP socket; Alice's moved UA is on another address.
    const aliceSip = await opened(ScriptedUa.open(proxy));
    const bobSip = await opened(ScriptedUa.open(proxy));
    const aliceMovedSip = await opened(ScriptedUa.open(proxy, MOVED));
    const aliceRtp = await opened(UdpPeer.open());
    const bobRtp = await opened(UdpPeer.open());
    const aliceMovedRtp = await opened(UdpPeer.open(MOVED));
    const uaPorts = [aliceRtp.port, bobRtp.port, aliceMovedRtp.port];
    const sipLog = () =>
      `alice: ${aliceSip.ladder()} | alice moved: ${aliceMovedSip.ladder()} | bob: ${bobSip.ladder()}`;

    // Bob registers from his SIP socket (digest auth).
    const reg = await bobSip.authenticated(
      {
        method: 'REGISTER',
        uri: `sip:${p.domain}`,
        from: `<sip:bob@${p.domain}>;tag=${newTag()}`,
        to: `<sip:bob@${p.domain}>`,
        callId: newCallId(),
        contact: [`<sip:bob@127.0.0.1:${bobSip.port}>`],
        headers: [['Expires', '600']],
      },
      1,
      BOB,
    );
    assert.equal(reg.status, 200, `REGISTER bob: ${reg.status} ${reg.reason}`);

    // ---- the call: INVITE (challenged, then with credentials) / 200 / ACK, real SDP on both sides
    callId = newCallId();
    const aliceTag = newTag();
    const bobTag = newTag();
    const from = `<sip:alice@${p.domain}>;tag=${aliceTag}`;
    const answerInvite = async (seq?: number) => {
      const inv = await bobSip.request('INVITE', seq);
      bobSip.send(
        createResponse(inv, 200, 'OK', {
          toTag: bobTag,
          headers: [['Contact', `<sip:bob@127.0.0.1:${bobSip.port}>`]],
          body: audioSdp('127.0.0.1', bobRtp.port),
          contentType: 'application/sdp',
        }),
      );
      return inv;
    };
    const bobGetsInvite = answerInvite();
    const ok = await aliceSip.authenticated(
      {
        method: 'INVITE',
        uri: `sip:bob@${p.domain}`,
        from,
        to: `<sip:bob@${p.domain}>`,
        callId,
        contact: [`<sip:alice@127.0.0.1:${aliceSip.port}>`],
        body: audioSdp('127.0.0.1', aliceRtp.port),
        contentType: 'application/sdp',
      },
      1,
      ALICE,
    );
    assert.equal(ok.status, 200, `INVITE: ${ok.status} ${ok.reason}; ${sipLog()}`);
    const inv = await bobGetsInvite;
    const inviteSeq = ok.cseq.seq;
    assert.equal(inv.callId, callId);
    assert.equal(ok.toTag, bobTag);
    // Alice's dialog: Bob's Contact is the remote target, the Record-Route (as received) the route set.
    const remoteTarget = ok.contacts[0]!.uri.toString();
    const routeSet = ok.getHeaderValues('Record-Route');
    assert.ok(routeSet.length > 0, 'the proxy record-routes the call');
    aliceSip.send(
      createRequest({
        method: 'ACK',
        uri: remoteTarget,
        via: [aliceSip.via()],
        route: routeSet,
        from,
        to: ok.getHeader('To')!,
        callId,
        cseq: inviteSeq,
      }),
    );
    await bobSip.request('ACK', inviteSeq);

    // Each side was given the relay, not the other UA.
    const toRelayFromBob = relayTarget(inv.body.toString(), 'the offer Bob got', uaPorts);
    const toRelayFromAlice = relayTarget(ok.body.toString(), 'the answer Alice got', uaPorts);
    assert.notEqual(toRelayFromBob.port, toRelayFromAlice.port);

    // ---- audio both ways, counted at the other end
    const alice = talker(0xa11ce);
    const bob = talker(0xb0b);
    await alice.burst(aliceRtp, toRelayFromAlice);
    await bob.burst(bobRtp, toRelayFromBob);
    await until(
      () => got(bobRtp, alice.ssrc).length === BURST && got(aliceRtp, bob.ssrc).length === BURST,
      async () =>
        `${BURST} packets each way: Bob got ${got(bobRtp, alice.ssrc).length} of Alice's, ` +
        `Alice ${got(aliceRtp, bob.ssrc).length} of Bob's; relay: ${await relayState()}`,
    );
    // Relayed from the port each side sends to (symmetric RTP): the media goes through the proxy.
    assert.ok(got(bobRtp, alice.ssrc).every((r) => r.from.port === toRelayFromBob.port));
    assert.ok(got(aliceRtp, bob.ssrc).every((r) => r.from.port === toRelayFromAlice.port));
    const beforeMove = aliceRtp.queue.length;

    // ---- Alice moves: re-INVITE in the dialog from her new address, new RTP socket, o= version + 1
    const reSeq = inviteSeq + 1;
    const reOfferSdp = audioSdp(MOVED, aliceMovedRtp.port, { sessionVersion: 2 });
    const bobGetsReInvite = answerInvite(reSeq);
    aliceMovedSip.send(
      createRequest({
        method: 'INVITE',
        uri: remoteTarget,
        via: [aliceMovedSip.via()],
        route: routeSet,
        from,
        to: ok.getHeader('To')!,
        callId,
        cseq: reSeq,
        contact: [`<sip:alice@${MOVED}:${aliceMovedSip.port}>`],
        body: reOfferSdp,
        contentType: 'application/sdp',
      }),
    );
    const reOk = await aliceMovedSip.finalResponse('INVITE', reSeq);
    assert.equal(reOk.status, 200, `re-INVITE: ${reOk.status} ${reOk.reason}; ${sipLog()}`);
    const reInv = await bobGetsReInvite;
    assert.equal(reInv.callId, callId);
    assert.equal(reInv.toTag, bobTag, 'the re-INVITE is in the dialog');
    assert.equal(reInv.fromTag, aliceTag);
    assert.equal(reInv.contacts[0]?.uri.toString(), `sip:alice@${MOVED}:${aliceMovedSip.port}`);
    // The proxy had the relay rewrite the re-offer too: Bob is not told about Alice's new socket.
    const reInvSdp = reInv.body.toString();
    assert.ok(!reInvSdp.includes(MOVED), `the re-offer Bob got names no address of Alice's\n${reInvSdp}`);
    const toRelayFromBob2 = relayTarget(reInvSdp, 'the re-offer Bob got', uaPorts);
    assert.ok(
      originVersion(reInvSdp) > originVersion(inv.body.toString()),
      `the re-offer's o= version went up (RFC 3264 §8)\n${inv.body.toString()}\n${reInvSdp}`,
    );
    const toRelayFromAlice2 = relayTarget(reOk.body.toString(), 'the re-answer Alice got', uaPorts);
    aliceMovedSip.send(
      createRequest({
        method: 'ACK',
        uri: remoteTarget,
        via: [aliceMovedSip.via()],
        route: routeSet,
        from,
        to: reOk.getHeader('To')!,
        callId,
        cseq: reSeq,
      }),
    );
    await bobSip.request('ACK', reSeq);

    // Bob talks first: before any packet from her new socket, his audio goes to the address of her re-offer.
    await bob.burst(bobRtp, toRelayFromBob2);
    await until(
      () => got(aliceMovedRtp, bob.ssrc).length === BURST,
      async () =>
        `Alice's new socket gets Bob's ${BURST} packets: got ${got(aliceMovedRtp, bob.ssrc).length}, ` +
        `the old one ${aliceRtp.queue.length - beforeMove}; relay: ${await relayState()}`,
    );
    // Alice talks from the new socket (a new SSRC: her UA restarted its stream there).
    const aliceMoved = talker(0xa11ce2);
    await aliceMoved.burst(aliceMovedRtp, toRelayFromAlice2);
    await until(
      () => got(bobRtp, aliceMoved.ssrc).length === BURST,
      async () =>
        `Bob gets Alice's ${BURST} packets from her new socket: got ${got(bobRtp, aliceMoved.ssrc).length}; ` +
        `relay: ${await relayState()}`,
    );
    await bob.burst(bobRtp, toRelayFromBob2);
    await until(
      () => got(aliceMovedRtp, bob.ssrc).length === 2 * BURST,
      async () =>
        `Alice's new socket gets Bob's next ${BURST} packets: got ${got(aliceMovedRtp, bob.ssrc).length - BURST}, ` +
        `the old one ${aliceRtp.queue.length - beforeMove}; relay: ${await relayState()}`,
    );
    // Every packet Bob sent after the move reached the new socket, and so none the old one.
    assert.equal(aliceRtp.queue.length, beforeMove, 'nothing more went to Alice’s old socket');
    assert.ok(got(aliceMovedRtp, bob.ssrc).every((r) => r.from.port === toRelayFromAlice2.port));
    const { stats } = await media.query({ callId, fromTag: '', toTag: '' });
    const aliceLeg = stats?.legs.find((l) => l.tag === aliceTag)?.streams.find((s) => !s.rtcp);
    assert.equal(aliceLeg?.endpoint, `${MOVED}:${aliceMovedRtp.port}`, JSON.stringify(stats?.legs));
    assert.equal(aliceLeg?.latched, true);

    // ---- BYE from where Alice is now: 200, and the call is gone from the media proxy
    const byeSeq = reSeq + 1;
    aliceMovedSip.send(
      createRequest({
        method: 'BYE',
        uri: remoteTarget,
        via: [aliceMovedSip.via()],
        route: routeSet,
        from,
        to: reOk.getHeader('To')!,
        callId,
        cseq: byeSeq,
      }),
    );
    const bye = await bobSip.request('BYE', byeSeq);
    bobSip.send(createResponse(bye, 200, 'OK'));
    const byeOk = await aliceMovedSip.finalResponse('BYE', byeSeq);
    assert.equal(byeOk.status, 200, `BYE: ${byeOk.status}; ${sipLog()}`);
    await until(
      async () => !(await media.list({ limit: 0 })).callIds.includes(callId),
      async () => `the media proxy no longer lists the call: ${await relayState()}`,
    );
    const ended = (await media.query({ callId, fromTag: '', toTag: '' })).stats;
    assert.equal(ended?.endReason, 'delete', JSON.stringify(ended));
    assert.equal(metricValue(await p.metrics(), 'switchboard_media_sessions_active'), 0);
    // Late audio to the call's relay port is dropped there, not relayed.
    const dropped = async () =>
      metricValue(await p.metrics(), 'switchboard_media_packets_dropped_total', 'reason="no_session"') ?? 0;
    const droppedBefore = await dropped();
    const afterBye = aliceMovedRtp.queue.length;
    await bob.burst(bobRtp, toRelayFromBob2);
    await until(
      async () => (await dropped()) >= droppedBefore + BURST,
      async () =>
        `the relay drops Bob's late packets: no_session ${droppedBefore} before, ${await dropped()} now`,
    );
    assert.equal(aliceMovedRtp.queue.length, afterBye, 'nothing relayed after the BYE');
  } finally {
    media.close();
    for (const x of sockets) x.close();
    await p.stop();
  }
});
