// RFC 3665 §3.6: a proxy started with SWITCHBOARD_PROXY_MODE=redirect answers INVITEs with 302 and
// the callee's contacts; the caller then calls the contact itself, with the SDP answer in the ACK.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipRequest, SipResponse } from '@switchboard/sip';
import { startPlatform, type RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { explain, ladder, pick, ua } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };

describe('RFC 3665 §3.6 redirect mode', () => {
  let p: RunningPlatform;
  before(async () => {
    p = await startPlatform({
      subscribers: [ALICE, BOB],
      targets: ['registrar', 'sip-proxy'],
      env: { SWITCHBOARD_PROXY_MODE: 'redirect' },
    });
  });
  after(() => p?.stop());

  test("3.6 successful session via redirect: 407, 302 with Bob's contact, then a direct call with SDP in the ACK", async () => {
    const proxy = p.sip.udp;
    const bob = await ua('3.6-bob.xml', { timeoutMs: 15_000 });
    const contact = `sip:bob@127.0.0.1:${bob.port}`;
    const reg = await register({
      proxy,
      user: BOB.username,
      password: BOB.password,
      domain: p.domain,
      contact,
    });
    assert.equal(reg.status, 200);
    const alice = await ua('3.6-alice.xml', {
      remote: proxy,
      keys: { user: ALICE.username, callee: BOB.username, dom: p.domain },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 15_000,
    });
    const [a, b] = await Promise.all([alice.done, bob.done]);
    const why = explain(a, b);
    assert.deepEqual(
      ladder(a.log),
      [
        '> INVITE',
        '< 407',
        '> ACK',
        '> INVITE',
        '< 302',
        '> ACK',
        '> INVITE',
        '< 180',
        '< 200',
        '> ACK',
        '> BYE',
        '< 200',
      ],
      why,
    );
    assert.deepEqual(ladder(b.log), ['< INVITE', '> 180', '> 200', '< ACK', '< BYE', '> 200'], why);
    assert.equal(a.result.successful, 1, why);
    assert.equal(b.result.successful, 1, why);

    assert.match(
      pick<SipResponse>(a.log, '< 407').getHeader('Proxy-Authenticate') ?? '',
      /^Digest realm="example\.com"/,
    );
    const moved = pick<SipResponse>(a.log, '< 302');
    assert.equal(moved.reason, 'Moved Temporarily');
    assert.deepEqual(moved.getHeaderValues('Contact'), [`<${contact}>`]);
    assert.ok(moved.toTag);
    assert.equal(moved.via.received, '127.0.0.1');
    assert.equal(moved.via.rport, alice.port);

    // The redirect server is out of the path: Bob sees Alice's own Via and no Record-Route.
    const inv = pick<SipRequest>(b.log, '< INVITE');
    assert.equal(inv.uriText, contact);
    assert.equal(inv.vias.length, 1);
    assert.equal(inv.via.port, alice.port);
    assert.deepEqual(inv.getHeaderValues('Record-Route'), []);
    assert.equal(inv.body.length, 0, 'the INVITE has no offer');
    assert.match(pick(b.log, '< ACK').body.toString(), /o=alice/, 'the answer is in the ACK');
  });
});
