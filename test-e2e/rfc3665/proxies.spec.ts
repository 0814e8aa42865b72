// RFC 3665 §3.2, §3.3 and §3.4: sessions that involve more than one proxy, each proxy a platform as
// `npm start` runs it (target runner, embedded storage), on its own loopback address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  answerChallenge,
  parseCredentials,
  parseMessage,
  type SipRequest,
  type SipResponse,
} from '@switchboard/sip';
import { startPlatform, type RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { explain, freePort, ladder, pick, ua } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
const ATLANTA = 'atlanta.example.com';
const BILOXI = 'biloxi.example.com';
const rrOf = (p: { host: string; port: number }) => `<sip:${p.host}:${p.port};transport=udp;lr>`;
/** A proxy of the domain on its own loopback address. */
const env = (domain: string, host: string) => ({
  SWITCHBOARD_SIP_DOMAIN: domain,
  SWITCHBOARD_SIP_LISTEN: `udp:${host}:0`,
  SWITCHBOARD_SIP_INVITE_TIMEOUT_MS: '5000',
});

/** Bob's UA on 127.0.0.1:port registered with digest at Proxy 2 as his only binding. */
async function registerBob(proxy: { host: string; port: number }, port: number): Promise<void> {
  const res = await register({
    proxy,
    user: BOB.username,
    password: BOB.password,
    domain: BILOXI,
    contact: `sip:bob@127.0.0.1:${port}`,
    expires: 600,
  });
  assert.equal(res.status, 200, `Bob's REGISTER at Proxy 2: ${res.status}`);
}

describe('RFC 3665 §3 sessions through two proxies', () => {
  let atlanta: RunningPlatform; // Proxy 1: Alice's domain
  let biloxi: RunningPlatform; // Proxy 2: Bob's domain
  before(async () => {
    [atlanta, biloxi] = await Promise.all([
      startPlatform({
        subscribers: [ALICE],
        targets: ['registrar', 'sip-proxy'],
        env: env(ATLANTA, '127.0.0.1'),
      }),
      startPlatform({
        subscribers: [BOB],
        targets: ['registrar', 'sip-proxy'],
        env: env(BILOXI, '127.0.0.2'),
      }),
    ]);
  });
  after(async () => {
    await Promise.all([atlanta?.stop(), biloxi?.stop()]);
  });

  let ackAtBob: { ack: SipRequest; vias: string[] } | undefined;

  /** Bob's SIPp UAS, registered with digest at Proxy 2 as his only binding. */
  async function bobAtBiloxi(scenario: string) {
    const bob = await ua(scenario, { timeoutMs: 15_000 });
    await registerBob(biloxi.sip.udp, bob.port);
    return bob;
  }

  test('3.2 through two proxies: Proxy 1 challenges Alice and relays to Proxy 2, both Record-Route, BYE from Bob goes back through both', async () => {
    const p1 = atlanta.sip.udp;
    const p2 = biloxi.sip.udp;
    const bob = await bobAtBiloxi('3.2-bob.xml');
    // Bob's domain is written as Proxy 2's address: there is no DNS for biloxi.example.com on loopback,
    // and Proxy 2 serves a Request-URI holding its own address in its default domain (biloxi).
    const alice = await ua('3.2-alice.xml', {
      remote: p1,
      keys: { user: ALICE.username, dom: ATLANTA, callee: BOB.username, callee_dom: `${p2.host}:${p2.port}` },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 15_000,
    });
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '< 200', '> ACK', '< BYE', '> 200'],
      why,
    );
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '> BYE', '< 200'], why);

    // Proxy 1 challenged Alice (407 in its realm); Proxy 2 did not challenge a caller of another domain.
    const challenge = pick<SipResponse>(a.log, '< 407');
    assert.match(challenge.getHeader('Proxy-Authenticate') ?? '', new RegExp(`realm="${ATLANTA}"`));

    // The INVITE at Bob: three Vias (Proxy 2, Proxy 1, Alice), both proxies recorded the route.
    const inv = pick<SipRequest>(b.log, '< INVITE');
    assert.equal(inv.uriText, `sip:bob@127.0.0.1:${bob.port}`);
    assert.deepEqual(
      inv.vias.map((v) => `${v.host}:${v.port}`),
      [`${p2.host}:${p2.port}`, `${p1.host}:${p1.port}`, `127.0.0.1:${alice.port}`],
      why,
    );
    assert.deepEqual(inv.getHeaderValues('Record-Route'), [rrOf(p2), rrOf(p1)]);
    assert.equal(inv.maxForwards, 68);
    assert.equal(inv.getHeader('Proxy-Authorization'), undefined);

    // Alice's 200 carries both Record-Routes; her ACK routes through both proxies in order.
    assert.deepEqual(pick<SipResponse>(a.log, '< 200').getHeaderValues('Record-Route'), [rrOf(p2), rrOf(p1)]);
    assert.deepEqual(pick(a.log, '> ACK', 1).getHeaderValues('Route'), [rrOf(p1), rrOf(p2)]);
    const ack = pick<SipRequest>(b.log, '< ACK');
    ackAtBob = { ack, vias: [`${p2.host}:${p2.port}`, `${p1.host}:${p1.port}`, `127.0.0.1:${alice.port}`] };
    assert.deepEqual(ack.getHeaderValues('Route'), []);

    // Bob hangs up: his BYE routes through Proxy 2 then Proxy 1 (the reversed route set) to Alice.
    assert.deepEqual(pick(b.log, '> BYE').getHeaderValues('Route'), [rrOf(p2), rrOf(p1)]);
    const bye = pick<SipRequest>(a.log, '< BYE');
    assert.match(bye.uriText, new RegExp(`^sip:alice@127\\.0\\.0\\.1:${alice.port}`));
    assert.deepEqual(
      bye.vias.map((v) => `${v.host}:${v.port}`),
      [`${p1.host}:${p1.port}`, `${p2.host}:${p2.port}`, `127.0.0.1:${bob.port}`],
    );
    assert.deepEqual(bye.getHeaderValues('Route'), []);
    assert.equal(pick<SipResponse>(b.log, '< 200').cseq.method, 'BYE');
  });

  test('3.2: the ACK for the 2xx crosses each proxy once (Vias of Proxy 2, Proxy 1, Alice)', () => {
    assert.ok(ackAtBob, 'the 3.2 call ran');
    assert.deepEqual(
      ackAtBob.ack.vias.map((v) => `${v.host}:${v.port}`),
      ackAtBob.vias,
      ackAtBob.ack.toString(),
    );
  });

  test('3.4 with proxy failure: the primary proxy never answers, Alice retransmits, then fails over to the secondary and the call completes', async () => {
    // Alice's primary proxy is out of service: a loopback address and port nothing listens on.
    const dead = { host: '127.0.0.3', port: await freePort() };
    const second = biloxi.sip.udp;
    // Alice has credentials in Proxy 2's domain too (RFC 3665 §3.4); Bob is registered there.
    await biloxi.addSubscribers([ALICE]);
    const bob = await bobAtBiloxi('3.1-bob.xml');
    const alice = await ua('3.4-alice.xml', {
      remote: dead,
      keys: {
        user: ALICE.username,
        callee: BOB.username,
        dom: BILOXI,
        proxy2_host: second.host,
        proxy2_port: second.port,
      },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 20_000,
    });
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    const seen = ladder(a.log);
    // F1-F7: the INVITE and its retransmissions to the dead proxy, never answered.
    const toDead = seen.findIndex((e) => e !== '> INVITE');
    assert.ok(toDead >= 3, `the INVITE was retransmitted to the dead proxy: ${why}`);
    assert.deepEqual(
      seen.slice(toDead - 1),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '< 200', '> ACK', '> BYE', '< 200'],
      why,
    );
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
    const first = pick<SipRequest>(a.log, '> INVITE');
    const failover = pick<SipRequest>(a.log, '> INVITE', toDead - 1);
    for (let k = 1; k < toDead - 1; k++)
      assert.equal(pick<SipRequest>(a.log, '> INVITE', k).via.branch, first.via.branch, 'retransmissions');
    assert.notEqual(failover.via.branch, first.via.branch, 'a new transaction to the second proxy');
    assert.equal(failover.callId, first.callId);
    // The secondary proxy handled the call as in 3.1: its 407, its Record-Route.
    const inv = pick<SipRequest>(b.log, '< INVITE');
    assert.deepEqual(inv.getHeaderValues('Record-Route'), [rrOf(second)]);
    assert.equal(inv.vias[0].port, second.port);
    assert.match(
      pick<SipResponse>(a.log, '< 407').getHeader('Proxy-Authenticate') ?? '',
      new RegExp(`realm="${BILOXI}"`),
    );
  });
});

describe('RFC 3665 §3.3 session with multiple proxy authentication', () => {
  // Alice has credentials in both domains, with a password of each (RFC 3665 §3.3).
  const ALICE_AT_BILOXI = { username: 'alice', password: 'al1ce-at-Biloxi' };
  let atlanta: RunningPlatform; // Proxy 1: Alice's domain
  let biloxi: RunningPlatform; // Proxy 2: Bob's domain, challenging callers of other domains
  before(async () => {
    [atlanta, biloxi] = await Promise.all([
      // Proxy 1 stores the SIP messages it sees: the test reads its legs with Proxy 2 (F6-F9, F13).
      startPlatform({
        subscribers: [ALICE],
        targets: ['registrar', 'sip-proxy'],
        env: { ...env(ATLANTA, '127.0.0.1'), SWITCHBOARD_SIP_TRACE: 'true' },
      }),
      startPlatform({
        subscribers: [BOB, ALICE_AT_BILOXI],
        targets: ['registrar', 'sip-proxy'],
        env: { ...env(BILOXI, '127.0.0.2'), SWITCHBOARD_SIP_AUTH_FOREIGN: 'challenge' },
      }),
    ]);
  });
  after(async () => {
    await Promise.all([atlanta?.stop(), biloxi?.stop()]);
  });

  test('3.3: Proxy 1 and Proxy 2 each challenge Alice, Proxy 1 relays the second 407, and each consumes only the credentials of its realm', async () => {
    const p1 = atlanta.sip.udp;
    const p2 = biloxi.sip.udp;
    const bob = await ua('3.2-bob.xml', { timeoutMs: 20_000 });
    await registerBob(p2, bob.port);
    const keys = {
      user: ALICE.username,
      dom: ATLANTA,
      callee: BOB.username,
      callee_dom: `${p2.host}:${p2.port}`,
    };
    const ruri = `sip:${BOB.username}@${p2.host}:${p2.port}`;

    // F1-F10: two challenges, the second from Proxy 2 relayed by Proxy 1.
    const first = await ua('3.3-alice.xml', {
      remote: p1,
      keys,
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 10_000,
    });
    const a1 = await first.done;
    assert.deepEqual(
      ladder(a1.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 407', '> ACK'],
      explain(a1),
    );
    assert.equal(a1.result.successful, 1, explain(a1));
    const f2 = pick<SipResponse>(a1.log, '< 407');
    const f9 = pick<SipResponse>(a1.log, '< 407', 1);
    const realms = (r: SipResponse) =>
      r.getHeaders('Proxy-Authenticate').map((v) => /realm="([^"]+)"/.exec(v)?.[1]);
    assert.deepEqual(realms(f2), [ATLANTA, ATLANTA], 'Proxy 1 challenges (MD5, SHA-256)');
    assert.equal(f2.via.received, '127.0.0.1');
    assert.equal(f2.via.rport, first.port);
    // F9: Proxy 2's challenge, as Proxy 2 sent it: its realm only, its To tag, only Alice's Via left.
    assert.deepEqual(realms(f9), [BILOXI, BILOXI], 'Proxy 1 relays the 407 without adding or dropping');
    assert.equal(f9.cseq.seq, 2);
    assert.equal(f9.vias.length, 1);
    assert.notEqual(f9.toTag, f2.toTag);
    const f4 = pick<SipRequest>(a1.log, '> INVITE', 1);
    assert.equal(f4.proxyAuthorization.length, 1);
    const atlantaCreds = parseCredentials(f4.proxyAuthorization[0]);
    assert.equal(atlantaCreds.realm, ATLANTA);

    // F11: Alice's INVITE with credentials for both realms: Proxy 1's nonce again (the next nonce
    // count, as a UA that caches credentials does), and an answer to Proxy 2's challenge.
    const pa1 = answerChallenge({
      challengeValue: f2
        .getHeaders('Proxy-Authenticate')
        .filter((v) => v.includes(`algorithm=${atlantaCreds.algorithm ?? 'MD5'}`)),
      method: 'INVITE',
      uri: ruri,
      username: ALICE.username,
      password: ALICE.password,
      nc: parseInt(atlantaCreds.nc ?? '1', 16) + 1,
    });
    const pa2 = answerChallenge({
      challengeValue: f9.getHeaders('Proxy-Authenticate'),
      method: 'INVITE',
      uri: ruri,
      username: ALICE_AT_BILOXI.username,
      password: ALICE_AT_BILOXI.password,
    });
    const sent = pick<SipRequest>(a1.log, '> INVITE');
    const again = await ua('3.3-alice-both.xml', {
      remote: p1,
      port: first.port,
      keys: { ...keys, ftag: sent.fromTag ?? '', pa1, pa2 },
      args: ['-cid_str', sent.callId],
      timeoutMs: 15_000,
    });
    const [a2, b] = await Promise.all([again.done, bob.done]);
    const why = explain(a1, a2, b);
    assert.deepEqual(ladder(a2.log), ['> INVITE', '< 100', '< 180', '< 200', '> ACK', '< BYE', '> 200'], why);
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '> BYE', '< 200'], why);
    assert.equal(a2.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
    const f11 = pick<SipRequest>(a2.log, '> INVITE');
    assert.equal(f11.callId, sent.callId);
    assert.deepEqual(
      f11.proxyAuthorization.map((v) => parseCredentials(v).realm),
      [ATLANTA, BILOXI],
    );

    // Proxy 1's side of it, from its SIP trace: F6 went to Proxy 2 without credentials; F7, Proxy 2's
    // 407, is what Alice got in F9 (challenges as they were); F13 carried Proxy 2's credentials only.
    const trace = (await (
      await fetch(`${atlanta.proc.ops.url}/sip/trace?callId=${encodeURIComponent(sent.callId)}`)
    ).json()) as { messages: { dir: 'in' | 'out'; peer: string; message: string }[] };
    const withP2 = trace.messages
      .filter((m) => m.peer === `${p2.host}:${p2.port}`)
      .map((m) => ({ dir: m.dir, msg: parseMessage(Buffer.from(m.message)) }));
    const toP2 = (cseq: number) => {
      const r = withP2.find(
        (m) =>
          m.dir === 'out' &&
          m.msg.isRequest &&
          (m.msg as SipRequest).method === 'INVITE' &&
          m.msg.cseq.seq === cseq,
      );
      assert.ok(
        r,
        `Proxy 1 sent Proxy 2 the INVITE of CSeq ${cseq}: ${JSON.stringify(trace.messages.map((m) => m.peer))}`,
      );
      return r.msg as SipRequest;
    };
    assert.deepEqual(toP2(2).proxyAuthorization, [], 'F6: Proxy 1 took its credentials');
    const f7 = withP2.find(
      (m) => m.dir === 'in' && !m.msg.isRequest && (m.msg as SipResponse).status === 407,
    );
    assert.ok(f7, "Proxy 2's 407 reached Proxy 1");
    assert.deepEqual(f9.getHeaders('Proxy-Authenticate'), f7.msg.getHeaders('Proxy-Authenticate'));
    assert.equal(f9.toTag, f7.msg.toTag);
    const f13 = toP2(3);
    assert.deepEqual(
      f13.proxyAuthorization.map((v) => parseCredentials(v).realm),
      [BILOXI],
      "F13: Proxy 2's credentials passed on, Proxy 1's taken",
    );
    assert.equal(parseCredentials(f13.proxyAuthorization[0]).nonce, parseCredentials(pa2).nonce);

    // F15: at Bob, neither credential is left (each proxy took its own, Proxy 1 passed Proxy 2's on),
    // and the call went through both proxies, both Record-Routing.
    const inv = pick<SipRequest>(b.log, '< INVITE');
    assert.equal(inv.cseq.seq, 3);
    assert.deepEqual(inv.proxyAuthorization, []);
    assert.deepEqual(
      inv.vias.map((v) => `${v.host}:${v.port}`),
      [`${p2.host}:${p2.port}`, `${p1.host}:${p1.port}`, `127.0.0.1:${first.port}`],
      why,
    );
    assert.deepEqual(inv.getHeaderValues('Record-Route'), [rrOf(p2), rrOf(p1)]);
    assert.deepEqual(pick<SipResponse>(a2.log, '< 200').getHeaderValues('Record-Route'), [
      rrOf(p2),
      rrOf(p1),
    ]);
    assert.deepEqual(pick(a2.log, '> ACK').getHeaderValues('Route'), [rrOf(p1), rrOf(p2)]);

    // Bob hangs up: his BYE goes back through Proxy 2 and Proxy 1, not challenged (in the dialog).
    assert.deepEqual(pick(b.log, '> BYE').getHeaderValues('Route'), [rrOf(p2), rrOf(p1)]);
    const bye = pick<SipRequest>(a2.log, '< BYE');
    assert.deepEqual(
      bye.vias.map((v) => `${v.host}:${v.port}`),
      [`${p1.host}:${p1.port}`, `${p2.host}:${p2.port}`, `127.0.0.1:${bob.port}`],
    );
  });

  test("3.3: Proxy 2 does not let another domain's caller in with wrong credentials for its realm", async () => {
    const p2 = biloxi.sip.udp;
    // Alice goes to Proxy 2 directly and answers its challenge with her atlanta password: a fresh 407.
    const alice = await ua('3.3-alice.xml', {
      remote: p2,
      keys: { user: ALICE.username, dom: ATLANTA, callee: BOB.username, callee_dom: `${p2.host}:${p2.port}` },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 10_000,
    });
    const a = await alice.done;
    assert.deepEqual(ladder(a.log), ['> INVITE', '< 407', '> ACK', '> INVITE', '< 407', '> ACK'], explain(a));
    assert.equal(
      parseCredentials(pick<SipRequest>(a.log, '> INVITE', 1).proxyAuthorization[0]).realm,
      BILOXI,
    );
    const again = pick<SipResponse>(a.log, '< 407', 1);
    assert.match(again.getHeader('Proxy-Authenticate') ?? '', /realm="biloxi\.example\.com"/);
    assert.doesNotMatch(again.getHeader('Proxy-Authenticate') ?? '', /stale/);
  });
});
