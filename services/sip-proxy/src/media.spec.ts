import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { parseMessage, type SipRequest } from '@switchboard/sip';
import type { OfferRequest } from '@switchboard/proto/media';
import { MediaAnchor, type MediaApi } from './media';

const sdp =
  'v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';
const invite = () =>
  parseMessage(
    Buffer.from(
      `INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`,
    ),
  ) as SipRequest;

function fake(fail = false) {
  const calls: string[] = [];
  const offers: OfferRequest[] = [];
  const api: MediaApi = {
    offer: async (r) => {
      calls.push('offer');
      offers.push(r);
      if (fail) throw new Error('relay down');
      return { sdp: r.sdp.replace(/10\.0\.0\.5/g, '203.0.113.1').replace('4000', '30000'), warnings: [] };
    },
    answer: async (r) => (calls.push('answer'), { sdp: r.sdp, warnings: [] }),
    delete: async () => (calls.push('delete'), {}),
  };
  return { api, calls, offers };
}

test('anchors when either side is NATed or policy says always; never without a media proxy', () => {
  const { api } = fake();
  const log = pino({ level: 'silent' });
  assert.equal(new MediaAnchor(api, 'auto', log).shouldAnchor(false, false), false);
  assert.equal(new MediaAnchor(api, 'auto', log).shouldAnchor(true, false), true);
  assert.equal(new MediaAnchor(api, 'auto', log).shouldAnchor(false, false, true), true);
  assert.equal(new MediaAnchor(api, 'always', log).shouldAnchor(false, false), true);
  assert.equal(new MediaAnchor(api, 'never', log).shouldAnchor(true, true), false);
  assert.equal(new MediaAnchor(undefined, 'always', log).shouldAnchor(true, true), false);
});

test('the offer SDP is replaced by the relay rewrite (Content-Length follows); BYE ends it once', async () => {
  const f = fake();
  const m = new MediaAnchor(f.api, 'auto', pino({ level: 'silent' }));
  const req = invite();
  assert.equal(await m.offer(req, { callId: 'c1', fromTag: 'a', receivedFrom: '198.51.100.7:5060' }), true);
  const out = parseMessage(req.serialize());
  assert.match(out.body.toString(), /c=IN IP4 203\.0\.113\.1/);
  assert.equal(out.contentLength, out.body.length);
  assert.deepEqual(f.offers[0].flags, ['sip-source-address']);
  assert.equal(f.offers[0].receivedFrom, '198.51.100.7:5060');
  assert.equal(m.isAnchored('c1'), true);
  await m.end('c1');
  await m.end('c1');
  assert.deepEqual(f.calls, ['offer', 'delete']);
});

test('a relay failure leaves the SDP as it was and the call unanchored', async () => {
  const f = fake(true);
  const m = new MediaAnchor(f.api, 'always', pino({ level: 'silent' }));
  const req = invite();
  assert.equal(await m.offer(req, { callId: 'c1', fromTag: 'a', receivedFrom: '' }), false);
  assert.equal(req.body.toString(), sdp);
  assert.equal(m.isAnchored('c1'), false);
  await m.answer(req, { callId: 'c1', fromTag: 'a', toTag: 'b', receivedFrom: '' });
  assert.deepEqual(f.calls, ['offer'], 'no answer for an unanchored call');
});
