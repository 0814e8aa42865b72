import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DomainError } from '@switchboard/platform';
import { isHold, listStreams, parse, rewriteMedia } from './index';

const fixture = (name: string) => readFileSync(new URL(`../testdata/${name}`, import.meta.url), 'utf8');
const RELAY = '198.51.100.10';

describe('rewriteMedia', () => {
  test('Yealink offer: session c=, m= port, a=rtcp added; everything else untouched; input unchanged', () => {
    const original = parse(fixture('yealink-t46-offer.sdp'));
    const text = original.toString();
    const out = rewriteMedia(original, { address: RELAY, family: 'IP4', ports: [{ rtp: 30000 }] });
    assert.equal(original.toString(), text, 'input must not change');
    const expected = text
      .replace('c=IN IP4 192.168.254.101', `c=IN IP4 ${RELAY}`)
      .replace('m=audio 11782 ', 'm=audio 30000 ')
      .replace('a=sendrecv\r\n', `a=sendrecv\r\na=rtcp:30001 IN IP4 ${RELAY}\r\n`);
    assert.equal(out.toString(), expected);
  });

  test('explicit RTCP port, existing a=rtcp updated in place, media-level c= rewritten, o= bumped', () => {
    const s = parse(fixture('linphone-ice-offer.sdp'));
    const out = rewriteMedia(s, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 31000, rtcp: 31501 }],
      bumpOrigin: true,
    });
    const m = out.media[0]!;
    assert.equal(m.port, 31000);
    assert.deepEqual(m.connection, { netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(out.connection, { netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(m.rtcp, { port: 31501, netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.equal(m.attributeValues('rtcp').length, 1);
    // a=rtcp keeps its place (just before the candidates)
    const lines = out.toString().split('\r\n');
    assert.equal(lines[lines.indexOf(`a=rtcp:31501 IN IP4 ${RELAY}`) + 1]!.startsWith('a=candidate:'), true);
    assert.equal(out.origin.sessionVersion, '757');
    assert.equal(out.origin.address, '192.168.1.197');
    // ICE kept unless asked
    assert.equal(m.iceCandidates.length, 6);
  });

  test('stripIce removes candidates and ufrag/pwd at both levels', () => {
    const out = rewriteMedia(parse(fixture('linphone-ice-offer.sdp')), {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 31000 }],
      stripIce: true,
    });
    assert.doesNotMatch(out.toString(), /a=(candidate|ice-ufrag|ice-pwd|ice-options)/);
    assert.match(out.toString(), /a=rtcp-xr:rcvr-rtt=all:10000/);
  });

  test('WebRTC offer toward a plain SIP phone: ICE stripped, rtcp-mux demuxed, o= version 64-bit safe', () => {
    const s = parse(fixture('chrome-offer.sdp'));
    s.origin = { ...s.origin, sessionVersion: '18446744073709551614' };
    const out = rewriteMedia(s, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 32000 }, { rtp: 32002, rtcp: 32003 }],
      stripIce: true,
      rtcpMux: 'demux',
      bumpOrigin: true,
    });
    assert.equal(out.origin.sessionVersion, '18446744073709551615');
    const [a, v] = out.media as [NonNullable<(typeof out.media)[0]>, NonNullable<(typeof out.media)[0]>];
    assert.equal(a.rtcpMux, false);
    assert.deepEqual(a.rtcp, { port: 32001, netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(v.rtcp, { port: 32003, netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.equal(a.iceCandidates.length, 0);
    assert.equal(a.iceUfrag, undefined);
    // DTLS and the rest of WebRTC signalling are kept verbatim
    assert.equal(a.fingerprints.length, 1);
    assert.equal(v.attributeValues('ssrc').length, 4);
    assert.equal(out.attribute('group'), 'BUNDLE 0 1');
    assert.equal(a.connection!.address, RELAY);
    // no session c= existed: none is added
    assert.equal(out.connection, undefined);
  });

  test('rtcp-mux keep / offer / accept', () => {
    const chrome = parse(fixture('chrome-offer.sdp'));
    const keep = rewriteMedia(chrome, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 33000 }, { rtp: 33002 }],
    });
    assert.equal(keep.media[0]!.rtcpMux, true);
    assert.equal(keep.media[0]!.rtcp!.port, 33000, 'muxed: RTCP on the RTP port');
    const accept = rewriteMedia(chrome, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 33000, rtcp: 33001 }, { rtp: 33002 }],
      rtcpMux: 'accept',
    });
    assert.equal(accept.media[0]!.rtcp!.port, 33000);
    const yealink = parse(fixture('yealink-t46-offer.sdp'));
    const offer = rewriteMedia(yealink, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 34000 }],
      rtcpMux: 'offer',
    });
    assert.equal(offer.media[0]!.rtcpMux, true);
    assert.equal(offer.media[0]!.rtcp!.port, 34001, 'fallback RTCP port for an answerer without mux');
    const kept = rewriteMedia(yealink, { address: RELAY, family: 'IP4', ports: [{ rtp: 34000 }] });
    assert.equal(kept.media[0]!.rtcpMux, false);
  });

  test('IPv4 to IPv6: session and media c=, a=rtcp in IP6', () => {
    const out = rewriteMedia(parse(fixture('baresip-offer.sdp')), {
      address: '2001:db8:ffff::10',
      family: 'IP6',
      ports: [{ rtp: 35000 }, { rtp: 35002 }],
    });
    assert.deepEqual(out.connection, { netType: 'IN', addrType: 'IP6', address: '2001:db8:ffff::10' });
    for (const m of out.media) {
      assert.equal(m.connection, undefined, 'inherits the session c=');
      assert.equal(m.rtcp!.addrType, 'IP6');
      assert.equal(m.rtcp!.address, '2001:db8:ffff::10');
    }
    assert.deepEqual(
      listStreams(out).map((s) => [s.address, s.port, s.rtcpPort]),
      [
        ['2001:db8:ffff::10', 35000, 35001],
        ['2001:db8:ffff::10', 35002, 35003],
      ],
    );
  });

  test('IPv6 answer to IPv4 relay; a rejected stream (port 0) stays rejected', () => {
    const out = rewriteMedia(parse(fixture('linphone-ipv6-answer.sdp')), {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 36000 }],
    });
    assert.deepEqual(out.connection, { netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(out.media[0]!.rtcp, { port: 36001, netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.equal(out.media[1]!.port, 0);
    assert.equal(
      out.media[1]!.lines.map((l) => `${l.type}=${l.value}`).join('|'),
      'm=video 0 RTP/AVP 103|a=rtpmap:103 VP8/90000',
    );
  });

  test('a live stream without a relay port is an error', () => {
    assert.throws(
      () =>
        rewriteMedia(parse(fixture('baresip-offer.sdp')), {
          address: RELAY,
          family: 'IP4',
          ports: [{ rtp: 1 }],
        }),
      (e: unknown) => e instanceof DomainError && e.kind === 'invalid_argument',
    );
  });

  test('hold with sendonly is kept as hold', () => {
    const s = parse(fixture('yealink-t46-hold.sdp'));
    assert.equal(isHold(s.media[0]!, s), true);
    const out = rewriteMedia(s, { address: RELAY, family: 'IP4', ports: [{ rtp: 37000 }], bumpOrigin: true });
    assert.equal(out.media[0]!.direction, 'sendonly');
    assert.equal(isHold(out.media[0]!, out), true);
    assert.equal(out.connection!.address, RELAY);
  });

  test('old-style hold (c=0.0.0.0) keeps the null address by default', () => {
    const s = parse(fixture('grandstream-hold-null.sdp'));
    assert.equal(isHold(s.media[0]!, s), true);
    assert.equal(
      isHold(s.media[0]!),
      false,
      'without the session, the media section alone has no c= and no direction',
    );
    const out = rewriteMedia(s, { address: RELAY, family: 'IP4', ports: [{ rtp: 38000 }] });
    assert.equal(out.connection!.address, '0.0.0.0');
    assert.equal(out.media[0]!.connection, undefined);
    assert.equal(out.media[0]!.port, 38000);
    assert.equal(out.media[0]!.direction, undefined);
    assert.equal(isHold(out.media[0]!, out), true);
    assert.deepEqual(out.media[0]!.rtcp, { port: 38001, netType: 'IN', addrType: 'IP4', address: '0.0.0.0' });
  });

  test('old-style hold with nullHold=direction: relay address, hold expressed as sendonly', () => {
    const s = parse(fixture('grandstream-hold-null.sdp'));
    const out = rewriteMedia(s, {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 38000 }],
      nullHold: 'direction',
    });
    assert.equal(out.connection!.address, RELAY);
    assert.equal(out.media[0]!.direction, 'sendonly');
    assert.equal(isHold(out.media[0]!, out), true);
  });

  test('one held stream among live ones (media-level c=0.0.0.0)', () => {
    const text = fixture('baresip-offer.sdp').replace(
      'm=video 10112 RTP/AVP 100 101\r\n',
      'm=video 10112 RTP/AVP 100 101\r\nc=IN IP4 0.0.0.0\r\n',
    );
    const out = rewriteMedia(parse(text), {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 39000 }, { rtp: 39002 }],
    });
    assert.deepEqual(
      listStreams(out).map((s) => [s.media, s.address, s.hold]),
      [
        ['audio', RELAY, false],
        ['video', '0.0.0.0', true],
      ],
    );
  });

  test('a multicast c= with TTL becomes a plain unicast relay address', () => {
    const out = rewriteMedia(parse(fixture('rfc4566-all-fields.sdp')), {
      address: RELAY,
      family: 'IP4',
      ports: [{ rtp: 40000 }, { rtp: 40002 }],
    });
    assert.deepEqual(out.connection, { netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(out.media[0]!.connection, { netType: 'IN', addrType: 'IP4', address: RELAY });
    assert.deepEqual(out.media[1]!.mediaLine.portCount, undefined);
    assert.equal(out.media[1]!.port, 40002);
  });
});

describe('isHold and listStreams', () => {
  test('directions: media overrides session', () => {
    const s = parse(fixture('rfc4566-all-fields.sdp'));
    // session a=recvonly: not a hold
    assert.equal(isHold(s.media[0]!, s), false);
    s.media[0]!.direction = 'inactive';
    assert.equal(isHold(s.media[0]!, s), true);
    s.direction = 'sendonly';
    assert.equal(isHold(s.media[1]!, s), true);
    s.media[1]!.direction = 'sendrecv';
    assert.equal(isHold(s.media[1]!, s), false);
  });

  test('listStreams on a Polycom offer and a Chrome offer', () => {
    assert.deepEqual(listStreams(parse(fixture('polycom-srtp-offer.sdp'))), [
      {
        index: 0,
        media: 'audio',
        proto: 'RTP/SAVP',
        address: '192.168.9.74',
        addrType: 'IP4',
        port: 49200,
        rtcpPort: 49201,
        rtcpAddress: '192.168.9.74',
        rtcpMux: false,
        direction: 'sendrecv',
        hold: false,
        rejected: false,
      },
    ]);
    const chrome = listStreams(parse(fixture('chrome-offer.sdp')));
    assert.deepEqual(
      chrome.map((s) => [s.media, s.address, s.port, s.rtcpPort, s.rtcpAddress, s.rtcpMux]),
      [
        ['audio', '203.0.113.7', 54609, 9, '0.0.0.0', true],
        ['video', '203.0.113.7', 54609, 9, '0.0.0.0', true],
      ],
    );
  });
});
