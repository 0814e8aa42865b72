// RFC 3665 §3: session flows through the proxy as `npm start` runs it. Alice and Bob are
// subscribers; Bob is a SIPp UAS registered at its port, Alice a SIPp UAC that answers 407s.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createResponse, parseMessage, type SipRequest, type SipResponse } from '@switchboard/sip';
import { startPlatform, type RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { explain, ladder, pick, ua, type Logged, type UaRun } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
const CAROL = { username: 'carol', password: 'car0l-Secret' }; // a subscriber with no binding
const BRANCH_TIMEOUT_MS = 1000;

describe('RFC 3665 §3 sessions through the proxy', () => {
  let p: RunningPlatform;
  let proxy: { host: string; port: number };
  let rr = '';
  before(async () => {
    p = await startPlatform({
      subscribers: [ALICE, BOB, CAROL],
      targets: ['registrar', 'sip-proxy'],
      env: {
        SWITCHBOARD_SIP_BRANCH_TIMEOUT_MS: String(BRANCH_TIMEOUT_MS),
        SWITCHBOARD_SIP_INVITE_TIMEOUT_MS: '5000',
      },
    });
    proxy = p.sip.udp;
    rr = `<sip:${proxy.host}:${proxy.port};transport=udp;lr>`;
  });
  after(() => p?.stop());

  let bobContact: string | undefined;
  /** Bob's SIPp UAS, registered (with digest) at its own port, as his only binding. */
  async function callee(scenario: string) {
    const bob = await ua(scenario, { timeoutMs: 15_000 });
    const reg = (contact: string, expires: number) =>
      register({ proxy, user: BOB.username, password: BOB.password, domain: p.domain, contact, expires });
    if (bobContact)
      assert.equal((await reg(bobContact, 0)).status, 200, "the previous flow's binding removed");
    bobContact = `sip:bob@127.0.0.1:${bob.port}`;
    const res = await reg(bobContact, 600);
    assert.equal(res.status, 200, `Bob's REGISTER: ${res.status}`);
    assert.equal(res.getHeaderValues('Contact').length, 1);
    return bob;
  }
  const caller = (scenario: string, callee = 'bob') =>
    ua(scenario, {
      remote: proxy,
      keys: { user: ALICE.username, callee, dom: p.domain },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 15_000,
    });

  /** The first legs every flow shares: INVITE, 407 from the proxy, ACK, INVITE with credentials. */
  function assertChallengeLeg(alice: UaRun, alicePort: number) {
    const challenge = pick<SipResponse>(alice.log, '< 407');
    assert.match(
      challenge.getHeader('Proxy-Authenticate') ?? '',
      /^Digest realm="example\.com", nonce="[^"]+"/,
    );
    assert.equal(challenge.getHeader('WWW-Authenticate'), undefined);
    assert.ok(challenge.toTag);
    assert.equal(challenge.vias.length, 1);
    assert.equal(challenge.via.received, '127.0.0.1');
    assert.equal(challenge.via.rport, alicePort);
    assert.match(pick(alice.log, '> INVITE', 1).getHeader('Proxy-Authorization') ?? '', /username="alice"/);
  }

  /** The INVITE as Bob gets it: the proxy's Via on top of Alice's (received/rport), Record-Route, no credentials. */
  function assertForwardedInvite(bobLog: Logged[], bobPort: number, alicePort: number) {
    const inv = pick<SipRequest>(bobLog, '< INVITE');
    assert.equal(inv.uriText, `sip:bob@127.0.0.1:${bobPort}`);
    assert.equal(inv.vias.length, 2);
    assert.equal(inv.vias[0].host, proxy.host);
    assert.equal(inv.vias[0].port, proxy.port);
    assert.match(inv.vias[0].branch ?? '', /^z9hG4bK/);
    assert.equal(inv.vias[1].port, alicePort);
    assert.equal(inv.vias[1].received, '127.0.0.1');
    assert.equal(inv.vias[1].rport, alicePort);
    assert.deepEqual(inv.getHeaderValues('Record-Route'), [rr]);
    assert.equal(inv.maxForwards, 69);
    assert.equal(inv.getHeader('Proxy-Authorization'), undefined, 'our credentials are not passed on');
    assert.equal(inv.cseq.seq, 2);
    return inv;
  }

  test('3.1 successful session: 407 then the call; ACK and BYE follow the Record-Route', async () => {
    const bob = await callee('3.1-bob.xml');
    const alice = await caller('3.1-alice.xml');
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '< 200', '> ACK', '> BYE', '< 200'],
      why,
    );
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '< BYE', '> 200'], why);
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
    assertChallengeLeg(a, alice.port);
    assertForwardedInvite(b.log, bob.port, alice.port);

    // Alice sees Bob's answers with the Record-Route and only her own Via.
    for (const entry of ['< 180', '< 200']) {
      const r = pick<SipResponse>(a.log, entry);
      assert.deepEqual(r.getHeaderValues('Record-Route'), [rr], entry);
      assert.equal(r.vias.length, 1, entry);
      assert.equal(r.via.rport, alice.port, entry);
    }
    assert.match(pick(a.log, '< 200').body.toString(), /o=bob/);
    // Alice's ACK and BYE carry the route set; the proxy removes itself and forwards to Bob's Contact.
    assert.deepEqual(pick(a.log, '> ACK', 1).getHeaderValues('Route'), [rr]);
    assert.deepEqual(pick(a.log, '> BYE').getHeaderValues('Route'), [rr]);
    for (const entry of ['< ACK', '< BYE']) {
      const r = pick<SipRequest>(b.log, entry);
      // SIPp's [next_url] is Bob's Contact without its parameters.
      assert.equal(
        r.uriText,
        pick<SipRequest>(a.log, entry.replace('<', '>'), entry === '< ACK' ? 1 : 0).uriText,
        entry,
      );
      assert.match(r.uriText, new RegExp(`^sip:bob@127\\.0\\.0\\.1:${bob.port}`), entry);
      assert.deepEqual(r.getHeaderValues('Route'), [], entry);
      assert.equal(r.vias.length, 2, entry);
      assert.equal(r.vias[0].port, proxy.port, entry);
    }
    const byeOk = pick<SipResponse>(a.log, '< 200', 1);
    assert.equal(byeOk.cseq.method, 'BYE');
  });

  test('3.1 with the BYE retransmitted after its 200: the proxy answers it from its transaction (the same 200)', async () => {
    const bob = await callee('3.1-bob.xml');
    const alice = await caller('3.1-alice-bye-again.xml');
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    const seen = ladder(a.log);
    assert.deepEqual(
      seen.slice(0, 10),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '< 200', '> ACK', '> BYE', '< 200'],
      why,
    );
    // SIPp takes each repeated 200 for a retransmission and answers it with its BYE again: pairs, never a 500.
    const rest = seen.slice(10);
    assert.ok(rest.length >= 2, why);
    rest.forEach((e, i) => assert.equal(e, i % 2 === 0 ? '> BYE' : '< 200', why));
    assert.equal(pick(a.log, '> BYE', 1).via.branch, pick(a.log, '> BYE').via.branch, 'a retransmission');
    const [first, again] = [pick<SipResponse>(a.log, '< 200', 1), pick<SipResponse>(a.log, '< 200', 2)];
    assert.equal(again.cseq.method, 'BYE');
    assert.equal(again.toTag, first.toTag);
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '< BYE', '> 200'], why);
  });

  test("3.1 with Alice's ACK late: Bob's 200 retransmissions reach her through the proxy after the call is answered", async () => {
    const bob = await callee('3.1-bob.xml');
    const alice = await caller('3.1-alice-late-ack.xml');
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    // Bob's SIPp sends its 200 again every 500 ms until the ACK: at 0.5 and 1.0 s of Alice's 1.2 s.
    const okToBob = ladder(b.log).filter((e) => e === '> 200').length;
    assert.ok(okToBob >= 3, `Bob sent his 200 at least three times before the BYE's: ${why}`);
    const invite = pick<SipResponse>(a.log, '< 200');
    const copies = a.log
      .filter((m) => m.dir === 'recv' && !m.msg.isRequest)
      .map((m) => m.msg as SipResponse)
      .filter((r) => r.status === 200 && r.cseq.method === 'INVITE');
    assert.ok(copies.length >= 2, `the proxy forwarded the retransmitted 200s to Alice: ${why}`);
    for (const r of copies) {
      assert.equal(r.toTag, invite.toTag, why);
      assert.deepEqual(r.getHeaderValues('Record-Route'), [rr], why);
      assert.equal(r.vias.length, 1, why);
    }
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
  });

  test('3.7 re-INVITE after an IP address change: from her new address Alice re-INVITEs in the dialog through the proxy', async () => {
    const bob = await callee('3.7-bob.xml');
    const before = await (await caller('3.7-alice.xml')).done;
    assert.deepEqual(
      ladder(before.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '< 200', '> ACK'],
      explain(before),
    );
    const ok = pick<SipResponse>(before.log, '< 200');
    // The dialog as Alice holds it; her UA moves to 127.0.0.7 and carries on with it.
    const moved = await ua('3.7-alice-moved.xml', {
      remote: proxy,
      keys: {
        user: ALICE.username,
        callee: 'bob',
        dom: p.domain,
        ftag: ok.fromTag ?? '',
        ttag: ok.toTag ?? '',
        target: ok.contacts[0].uri.toString(),
        route: ok.getHeaderValues('Record-Route').join(', '),
      },
      // SIPp matches responses to its call by Call-ID: the dialog's, verbatim.
      args: ['-i', '127.0.0.7', '-cid_str', ok.callId],
      timeoutMs: 15_000,
    });
    const [m, b] = await Promise.all([moved.done, bob.done]);
    const why = explain(before, m, b);
    assert.deepEqual(
      ladder(m.log).filter((e) => e !== '< 100'),
      ['> INVITE', '< 200', '> ACK', '> BYE', '< 200'],
      why,
    );
    assert.equal(m.result.successful, 1, why);
    assert.deepEqual(
      ladder(b.log),
      ['< INVITE', '> 180', '> 200', '< ACK', '< INVITE', '> 200', '< ACK', '< BYE', '> 200'],
      why,
    );
    const reinvite = pick<SipRequest>(b.log, '< INVITE', 1);
    assert.equal(reinvite.toTag, ok.toTag, 'in the dialog');
    assert.equal(reinvite.vias.length, 2);
    assert.equal(reinvite.vias[0].port, proxy.port, 'through the proxy (the Record-Route)');
    assert.equal(reinvite.vias[1].host, '127.0.0.7');
    assert.equal(reinvite.vias[1].rport, moved.port);
    assert.deepEqual(reinvite.getHeaderValues('Route'), []);
    assert.equal(reinvite.contacts[0].uri.toString(), `sip:alice@127.0.0.7:${moved.port}`);
    assert.match(reinvite.body.toString(), /c=IN IP4 127\.0\.0\.7/);
    const answer = pick<SipResponse>(m.log, '< 200');
    assert.equal(answer.cseq.seq, 3);
    assert.equal(answer.via.received, '127.0.0.7');
  });

  test('3.8 no answer: Alice cancels while Bob rings; CANCEL goes on hop by hop, 487 comes back', async () => {
    const bob = await callee('3.8-bob.xml');
    const alice = await caller('3.8-alice.xml');
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '> CANCEL', '< 200', '< 487', '> ACK'],
      why,
    );
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '< CANCEL', '> 200', '> 487', '< ACK'], why);
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
    assertChallengeLeg(a, alice.port);
    const inv = assertForwardedInvite(b.log, bob.port, alice.port);
    // The proxy's CANCEL matches its INVITE branch (RFC 3261 §9.1) and so does its ACK for the 487 (§17.1.1.3).
    const cancel = pick<SipRequest>(b.log, '< CANCEL');
    assert.equal(cancel.vias.length, 1);
    assert.equal(cancel.via.branch, inv.vias[0].branch);
    assert.equal(cancel.uriText, inv.uriText);
    assert.equal(cancel.cseq.seq, inv.cseq.seq);
    const ack = pick<SipRequest>(b.log, '< ACK');
    assert.equal(ack.via.branch, inv.vias[0].branch);
    // Alice's CANCEL is answered by the proxy itself; the 487 is Bob's.
    assert.equal(pick<SipResponse>(a.log, '< 200').cseq.method, 'CANCEL');
    const terminated = pick<SipResponse>(a.log, '< 487');
    assert.equal(terminated.cseq.method, 'INVITE');
    assert.equal(terminated.vias.length, 1);
    assert.equal(terminated.toTag, pick<SipResponse>(a.log, '< 180').toTag);
  });

  test('3.8 with a second contact that never answers: the CANCEL still ends the call with 487, not 408; its late 180 gets a CANCEL', async () => {
    const bob = await callee('3.8-bob.xml');
    const silent = createSocket('udp4'); // a phone that swallows everything (until the end)
    const heard: SipRequest[] = [];
    silent.on('message', (m) => heard.push(parseMessage(m) as SipRequest));
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    const dead = `sip:bob@127.0.0.1:${silent.address().port}`;
    try {
      const res = await register({
        proxy,
        user: BOB.username,
        password: BOB.password,
        domain: p.domain,
        contact: dead,
      });
      assert.equal(res.getHeaderValues('Contact').length, 2);
      const alice = await caller('3.8-alice.xml');
      const [a, b] = await Promise.all([alice.done, bob.done]);
      const why = explain(a, b);
      assert.deepEqual(
        ladder(a.log),
        ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 180', '> CANCEL', '< 200', '< 487', '> ACK'],
        why,
      );
      assert.equal(a.result.successful, 1, why);
      // The call is over for Alice. The silent phone now rings (§9.1: a CANCEL waits for a provisional):
      // the proxy, which had counted that branch as a 487, sends it its CANCEL.
      const invite = heard.find((m) => m.method === 'INVITE');
      assert.ok(invite, 'the second contact was sent the INVITE');
      const ringing = createResponse(invite, 180, 'Ringing', { toTag: 'late' }).serialize();
      silent.send(ringing, proxy.port, proxy.host);
      const deadline = Date.now() + 3000;
      while (!heard.some((m) => m.method === 'CANCEL') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      const cancel = heard.find((m) => m.method === 'CANCEL');
      assert.ok(cancel, `a CANCEL for the late 180: ${JSON.stringify(heard.map((m) => m.method))}`);
      assert.equal(cancel.via.branch, invite.via.branch);
      assert.equal(cancel.callId, invite.callId);
    } finally {
      await register({
        proxy,
        user: BOB.username,
        password: BOB.password,
        domain: p.domain,
        contact: dead,
        expires: 0,
      });
      silent.close();
    }
  });

  test('3.9 busy: Bob answers 486; the proxy ACKs it and relays 486 to Alice', async () => {
    const bob = await callee('3.9-bob.xml');
    const alice = await caller('3.9-alice.xml');
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 486', '> ACK'],
      why,
    );
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 486', '< ACK'], why);
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);
    assertChallengeLeg(a, alice.port);
    const inv = assertForwardedInvite(b.log, bob.port, alice.port);
    assert.equal(
      pick<SipRequest>(b.log, '< ACK').via.branch,
      inv.vias[0].branch,
      'hop-by-hop ACK from the proxy',
    );
    const busy = pick<SipResponse>(a.log, '< 486');
    assert.equal(busy.reason, 'Busy Here');
    assert.equal(busy.vias.length, 1);
    assert.equal(busy.via.rport, alice.port);
  });

  test('3.10 no response from the UA: the proxy retransmits, gives up after fr_timer and answers 408', async () => {
    const bob = await callee('3.10-bob.xml');
    const alice = await caller('3.10-alice.xml');
    const a = await alice.done;
    const b = await bob.done;
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      ['> INVITE', '< 407', '> ACK', '> INVITE', '< 100', '< 408', '> ACK'],
      why,
    );
    assert.equal(a.result.successful, 1, why);
    assertChallengeLeg(a, alice.port);
    assertForwardedInvite(b.log, bob.port, alice.port);
    const seen = ladder(b.log);
    assert.ok(
      seen.length >= 2 && seen.every((e) => e === '< INVITE'),
      `Bob sees the INVITE retransmitted: ${JSON.stringify(seen)}`,
    );
    const timeout = pick<SipResponse>(a.log, '< 408');
    assert.equal(timeout.vias.length, 1);
    assert.ok(timeout.toTag);
  });

  test('3.11 temporarily unavailable: a subscriber with no binding gets 480 from the proxy', async () => {
    const alice = await caller('3.11-alice.xml', CAROL.username);
    const a = await alice.done;
    assert.deepEqual(ladder(a.log), ['> INVITE', '< 407', '> ACK', '> INVITE', '< 480', '> ACK'], explain(a));
    assert.equal(a.result.successful, 1, explain(a));
    assertChallengeLeg(a, alice.port);
    const unavailable = pick<SipResponse>(a.log, '< 480');
    assert.equal(unavailable.reason, 'Temporarily Unavailable');
    assert.equal(unavailable.via.rport, alice.port);
    assert.ok(unavailable.toTag);
  });
});
