// A call whose media stops is ended by the proxy (like Kamailio with rtpengine's timeout and the dialog module):
// the media proxy publishes a `timeout` on media-events, the proxy sends BYE to both sides and accounts the Stop.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipRequest } from '@switchboard/sip';
import { metricValue, startPlatform, type RunningPlatform } from '../lib/platform';
import { explain, pick } from '../rfc3665/lib';
import { call, finalResponse, phone } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };

let p: RunningPlatform;
before(async () => {
  p = await startPlatform({
    subscribers: [ALICE, BOB],
    env: { SWITCHBOARD_SIP_MEDIA_RELAY: 'always', SWITCHBOARD_MEDIA_TIMEOUT_MS: '1500' },
  });
});
after(() => p?.stop());

test('a relayed call with no RTP is ended by the proxy with a BYE to both sides after the media timeout', async () => {
  const bob = await phone(p, BOB, 'answer.xml');
  const started = Date.now();
  // Neither SIPp UA sends RTP; Alice would talk for 20 s.
  const alice = await call(p, ALICE, 'bob', 20_000, 30_000);
  const b = await bob.done;
  assert.equal(finalResponse(alice).status, 200, explain(alice, b));
  assert.match(pick<SipRequest>(alice.log, '< BYE').getHeader('Reason') ?? '', /Media timeout/);
  assert.match(pick<SipRequest>(b.log, '< BYE').getHeader('Reason') ?? '', /Media timeout/);
  assert.ok(Date.now() - started < 15_000, 'ended well before the caller hung up');
  assert.equal(metricValue(await p.metrics(), 'switchboard_calls_cut_total'), 1);
});
