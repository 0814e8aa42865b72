import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '@switchboard/sdp';
import { answerSdp, negotiate } from './negotiate';

const offer = (m: string, extra = '') =>
  `v=0\r\no=a 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n${m}${extra}`;

test("the offerer's first acceptable codec wins; telephone-event taken with its payload type", () => {
  const n = negotiate(
    offer('m=audio 4000 RTP/AVP 18 8 0 96\r\na=rtpmap:18 G729/8000\r\na=rtpmap:96 telephone-event/8000\r\n'),
  )!;
  assert.equal(n.law, 'pcma');
  assert.equal(n.payloadType, 8);
  assert.equal(n.dtmfPayloadType, 96);
  assert.deepEqual(n.remote, { address: '192.0.2.1', port: 4000 });
  const a = parse(answerSdp(n, '198.51.100.7', 40002, 5));
  assert.equal(a.media.length, 1);
  assert.deepEqual(a.media[0].formats, ['8', '96']);
  assert.equal(a.media[0].port, 40002);
  assert.equal(a.connection?.address, '198.51.100.7');
  assert.equal(a.media[0].rtpmap(96)?.encoding, 'telephone-event');
});

test('a dynamic payload type mapped to PCMU is PCMU; no G.711 at all is no answer (488)', () => {
  const n = negotiate(offer('m=audio 4000 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n'))!;
  assert.equal(n.law, 'pcmu');
  assert.equal(n.payloadType, 97);
  assert.equal(n.dtmfPayloadType, undefined);
  assert.equal(negotiate(offer('m=audio 4000 RTP/AVP 18 9\r\na=rtpmap:18 G729/8000\r\n')), undefined);
  assert.equal(negotiate(offer('m=audio 4000 RTP/SAVP 0\r\n')), undefined);
  assert.throws(() => negotiate('garbage'));
});

test('video is rejected with port 0, audio after it accepted; the answer keeps the m= lines in order', () => {
  const n = negotiate(
    offer('m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 0\r\n'),
  )!;
  assert.equal(n.index, 1);
  const a = parse(answerSdp(n, '127.0.0.1', 40000, 1));
  assert.deepEqual(
    a.media.map((m) => [m.media, m.port]),
    [
      ['video', 0],
      ['audio', 40000],
    ],
  );
});
