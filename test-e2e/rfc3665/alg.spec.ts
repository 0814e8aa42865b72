// RFC 3665 §3.5: a session through a SIP ALG. Our ALG is the proxy with media anchoring forced
// (SWITCHBOARD_SIP_MEDIA_RELAY=always) and the media proxy of the same process: it Record-Routes,
// rewrites c=/m= of the offer and of the answer to the relay's address and ports, and relays RTP.
// Alice is inside (a trusted address, 127.0.0.5: the ALG does not challenge her, as in the RFC),
// Bob outside on 127.0.0.1; the relay's interface is 127.0.0.9, so an SDP address tells who wrote it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import type { SipMessage, SipRequest, SipResponse } from '@switchboard/sip';
import { startPlatform, type RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { explain, ladder, pick, ua, waitFor } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
const INSIDE = '127.0.0.5'; // Alice's address, trusted by the ALG
const RELAY = '127.0.0.9'; // the media proxy's interface

/** The audio address of an SDP body: c= (session or media level) and the m=audio port. */
function audioOf(msg: SipMessage): { host: string; port: number } {
  const sdp = msg.body.toString();
  const c = /^c=IN IP4 (\S+)/m.exec(sdp);
  const m = /^m=audio (\d+) /m.exec(sdp);
  assert.ok(c && m, `an SDP with c= and m=audio: ${sdp}`);
  return { host: c[1], port: Number(m[1]) };
}

async function bound(host: string): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, host, r));
  return s;
}

/** An RTP packet (RFC 3550 header, PCMU, 20 ms of silence) with a marker sequence number. */
function rtp(seq: number, ssrc: number): Buffer {
  const b = Buffer.alloc(12 + 160, 0xff);
  b[0] = 0x80;
  b[1] = 0; // PT 0 (PCMU)
  b.writeUInt16BE(seq, 2);
  b.writeUInt32BE(seq * 160, 4);
  b.writeUInt32BE(ssrc, 8);
  return b;
}

/**
 * Send RTP from `from` to `to` until the packet with that sequence number arrives at `at`
 * (a few tries: the relay may drop a packet or two while it learns); resolves with where it came from.
 */
async function through(
  from: Socket,
  to: { host: string; port: number },
  at: Socket,
  ssrc: number,
): Promise<{ address: string; port: number; seq: number }> {
  for (let seq = 1; seq <= 10; seq++) {
    const got = new Promise<{ address: string; port: number; seq: number } | undefined>((resolve) => {
      const t = setTimeout(() => {
        at.off('message', on);
        resolve(undefined);
      }, 300);
      const on = (msg: Buffer, rinfo: { address: string; port: number }) => {
        if (msg.length < 12 || msg.readUInt32BE(8) !== ssrc || msg.readUInt16BE(2) !== seq) return;
        clearTimeout(t);
        at.off('message', on);
        resolve({ address: rinfo.address, port: rinfo.port, seq });
      };
      at.on('message', on);
    });
    from.send(rtp(seq, ssrc), to.port, to.host);
    const r = await got;
    if (r) return r;
  }
  throw new Error(`no RTP from ${JSON.stringify(from.address())} via ${to.host}:${to.port} arrived`);
}

describe('RFC 3665 §3.5 session through a SIP ALG', () => {
  let p: RunningPlatform;
  before(async () => {
    p = await startPlatform({
      subscribers: [ALICE, BOB],
      targets: ['registrar', 'media-proxy', 'sip-proxy'],
      env: {
        SWITCHBOARD_SIP_MEDIA_RELAY: 'always',
        SWITCHBOARD_SIP_TRUSTED: `${INSIDE}/32`,
        SWITCHBOARD_MEDIA_INTERFACES: `default/${RELAY}`,
        SWITCHBOARD_SIP_INVITE_TIMEOUT_MS: '5000',
      },
    });
  });
  after(() => p?.stop());

  test('3.5: the ALG Record-Routes, both SDPs point at its relay, and RTP goes through it both ways', async () => {
    const proxy = p.sip.udp;
    const rr = `<sip:${proxy.host}:${proxy.port};transport=udp;lr>`;
    // Where Alice's and Bob's media really are: sockets of the test, their ports in each SDP.
    const [aliceRtp, bobRtp] = await Promise.all([bound(INSIDE), bound('127.0.0.1')]);
    try {
      const bob = await ua('3.5-bob.xml', { keys: { rtp_port: bobRtp.address().port }, timeoutMs: 15_000 });
      const reg = await register({
        proxy,
        user: BOB.username,
        password: BOB.password,
        domain: p.domain,
        contact: `sip:bob@127.0.0.1:${bob.port}`,
        expires: 600,
      });
      assert.equal(reg.status, 200, `Bob's REGISTER: ${reg.status}`);
      const alice = await ua('3.5-alice.xml', {
        remote: proxy,
        keys: {
          user: ALICE.username,
          callee: BOB.username,
          dom: p.domain,
          rtp_port: aliceRtp.address().port,
        },
        args: ['-i', INSIDE],
        timeoutMs: 15_000,
      });

      // While the call is up (Alice hangs up 3 s after her ACK): RTP through the relay, each way.
      let media: { toBob: Awaited<ReturnType<typeof through>>; toAlice: Awaited<ReturnType<typeof through>> };
      let relayForAlice: { host: string; port: number };
      let relayForBob: { host: string; port: number };
      try {
        const ok = await waitFor<SipResponse>(alice, '< 200');
        const offer = await waitFor<SipRequest>(bob, '< INVITE');
        relayForAlice = audioOf(ok); // where Alice sends: the relay, as the ALG wrote Bob's answer
        relayForBob = audioOf(offer); // where Bob sends: the relay, as the ALG wrote Alice's offer
        media = {
          toBob: await through(aliceRtp, relayForAlice, bobRtp, 0xa11ce),
          toAlice: await through(bobRtp, relayForBob, aliceRtp, 0xb0b),
        };
      } catch (err) {
        alice.kill();
        bob.kill();
        throw err;
      }
      const [a, b] = await Promise.all([alice.done, bob.done]);
      const why = explain(a, b);
      // F1-F13: no challenge at the ALG; Alice's BYE through it.
      assert.deepEqual(
        ladder(a.log),
        ['> INVITE', '< 100', '< 180', '< 200', '> ACK', '> BYE', '< 200'],
        why,
      );
      assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '< BYE', '> 200'], why);
      assert.equal(a.result.successful, 1, why);
      assert.equal(b.result.successful, 1, why);

      // F2: the INVITE at Bob: the ALG's Via over Alice's (received/rport), its Record-Route, and an
      // offer naming the relay instead of Alice's address and port.
      const inv = pick<SipRequest>(b.log, '< INVITE');
      assert.deepEqual(inv.getHeaderValues('Record-Route'), [rr]);
      assert.equal(inv.vias.length, 2);
      assert.equal(inv.vias[0].port, proxy.port);
      assert.equal(inv.vias[1].host, INSIDE);
      assert.equal(inv.vias[1].received, INSIDE);
      assert.equal(inv.vias[1].rport, alice.port);
      const sent = audioOf(pick(a.log, '> INVITE'));
      assert.deepEqual(sent, { host: INSIDE, port: aliceRtp.address().port }, 'what Alice offered');
      assert.equal(relayForBob.host, RELAY, 'Bob is offered the relay, not Alice');
      assert.notEqual(relayForBob.port, sent.port);
      assert.doesNotMatch(inv.body.toString(), new RegExp(INSIDE.replace(/\./g, '\\.')), 'no trace of Alice');
      assert.deepEqual(audioOf(inv), relayForBob);

      // F6/F7: Bob answered with his own address; Alice gets the answer naming the relay, with the Record-Route.
      const answered = audioOf(pick(b.log, '> 200'));
      assert.deepEqual(answered, { host: '127.0.0.1', port: bobRtp.address().port }, 'what Bob answered');
      const ok = pick<SipResponse>(a.log, '< 200');
      assert.equal(relayForAlice.host, RELAY, 'Alice gets the relay, not Bob');
      assert.notEqual(relayForAlice.port, answered.port);
      assert.notEqual(relayForAlice.port, relayForBob.port, 'a port facing each side');
      assert.deepEqual(ok.getHeaderValues('Record-Route'), [rr]);
      assert.equal(ok.vias.length, 1);
      assert.equal(ok.via.received, INSIDE);
      assert.equal(ok.via.rport, alice.port);

      // The media: each side hears the other from the relay port it was given (symmetric RTP).
      assert.deepEqual(
        { address: media.toBob.address, port: media.toBob.port },
        { address: RELAY, port: relayForBob.port },
        'Alice → relay → Bob',
      );
      assert.deepEqual(
        { address: media.toAlice.address, port: media.toAlice.port },
        { address: RELAY, port: relayForAlice.port },
        'Bob → relay → Alice',
      );

      // F8-F13: ACK and BYE follow the Record-Route through the ALG to Bob.
      assert.deepEqual(pick(a.log, '> ACK').getHeaderValues('Route'), [rr]);
      assert.deepEqual(pick(a.log, '> BYE').getHeaderValues('Route'), [rr]);
      for (const entry of ['< ACK', '< BYE']) {
        const r = pick<SipRequest>(b.log, entry);
        assert.deepEqual(r.getHeaderValues('Route'), [], entry);
        assert.equal(r.vias.length, 2, entry);
        assert.equal(r.vias[0].port, proxy.port, entry);
      }
      assert.equal(pick<SipResponse>(a.log, '< 200', 1).cseq.method, 'BYE');
    } finally {
      aliceRtp.close();
      bobRtp.close();
    }
  });
});
