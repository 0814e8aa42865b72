import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { SdpParseError, parse, serialize } from './index';

const dir = new URL('../testdata/', import.meta.url);
const fixture = (name: string) => readFileSync(new URL(name, dir), 'utf8');
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.sdp'));

describe('round trip on real SDPs', () => {
  test('there are fixtures, written with CRLF', () => {
    assert.ok(fixtures.length >= 8, fixtures.join(','));
    for (const f of fixtures) assert.ok(!/[^\r]\n/.test(fixture(f)), `${f} must use CRLF`);
  });
  for (const f of fixtures) {
    test(`serialize(parse(x)) === x: ${f}`, () => {
      const text = fixture(f);
      assert.equal(serialize(parse(text)), text);
      assert.equal(parse(text).toString(), text);
    });
    test(`LF-only input gives the CRLF original: ${f}`, () => {
      const text = fixture(f);
      assert.equal(serialize(parse(text.replace(/\r\n/g, '\n'))), text);
    });
  }
});

describe('typed accessors', () => {
  test('RFC 4566 fields: origin, session name, i/u/e/p, c with TTL, b, t/r, z, k', () => {
    const s = parse(fixture('rfc4566-all-fields.sdp'));
    assert.equal(s.version, 0);
    assert.deepEqual(s.origin, {
      username: 'jdoe',
      sessionId: '2890844526',
      sessionVersion: '2890842807',
      netType: 'IN',
      addrType: 'IP4',
      address: '10.47.16.5',
    });
    assert.equal(s.name, 'SDP Seminar');
    assert.equal(s.info, 'A Seminar on the session description protocol');
    assert.equal(s.uri, 'http://www.example.com/seminars/sdp.pdf');
    assert.deepEqual(s.emails, ['j.doe@example.com (Jane Doe)']);
    assert.deepEqual(s.phones, ['+1 617 555-6011']);
    assert.deepEqual(s.connection, { netType: 'IN', addrType: 'IP4', address: '224.2.17.12', ttl: 127 });
    assert.deepEqual(s.bandwidths, [{ type: 'CT', value: 128 }]);
    assert.deepEqual(s.timings, [
      { start: '2873397496', stop: '2873404696', repeats: ['604800 3600 0 90000', '7d 1h 0 25h'] },
    ]);
    assert.equal(s.zone, '2882844526 -1h 2898848070 0');
    assert.equal(s.key, 'prompt');
    assert.equal(s.direction, 'recvonly');
    assert.equal(s.media.length, 2);
    const [audio, video] = s.media as [NonNullable<(typeof s.media)[0]>, NonNullable<(typeof s.media)[0]>];
    assert.equal(audio.info, 'audio track');
    assert.deepEqual(audio.connection, {
      netType: 'IN',
      addrType: 'IP4',
      address: '224.2.17.12',
      ttl: 127,
      count: 3,
    });
    assert.deepEqual(audio.bandwidths, [{ type: 'AS', value: 64 }]);
    assert.deepEqual(video.mediaLine, {
      media: 'video',
      port: 51372,
      portCount: 2,
      proto: 'RTP/AVP',
      formats: ['99'],
    });
    assert.deepEqual(video.rtpmap(99), { payloadType: 99, encoding: 'h263-1998', clockRate: 90000 });
    assert.equal(video.connection, undefined);
  });

  test('rtpmap / fmtp per payload type, ptime, direction', () => {
    const s = parse(fixture('yealink-t46-offer.sdp'));
    const m = s.media[0]!;
    assert.deepEqual(m.formats, ['0', '8', '18', '9', '101']);
    assert.deepEqual(m.rtpmap(18), { payloadType: 18, encoding: 'G729', clockRate: 8000 });
    assert.equal(m.fmtp(18), 'annexb=no');
    assert.equal(m.fmtp('101'), '0-15');
    assert.equal(m.fmtp(0), undefined);
    assert.equal(m.ptime, 20);
    assert.equal(m.direction, 'sendrecv');
    assert.deepEqual([...m.rtpmaps.keys()], [0, 8, 18, 9, 101]);
    const opus = parse(fixture('baresip-offer.sdp')).media[0]!.rtpmap(96);
    assert.deepEqual(opus, { payloadType: 96, encoding: 'opus', clockRate: 48000, channels: 2 });
  });

  test('session-level direction and crypto (Polycom)', () => {
    const s = parse(fixture('polycom-srtp-offer.sdp'));
    assert.equal(s.direction, 'sendrecv');
    assert.equal(s.media[0]!.direction, undefined);
    assert.deepEqual(s.media[0]!.crypto, [
      '1 AES_CM_128_HMAC_SHA1_80 inline:tMuyik1Aiiq9p4DQVHhAASSWDEP7K7wo0cICOn39',
    ]);
    assert.equal(s.media[0]!.proto, 'RTP/SAVP');
  });

  test('a=rtcp (RFC 3605) with and without address', () => {
    assert.deepEqual(parse(fixture('linphone-ice-offer.sdp')).media[0]!.rtcp, { port: 7255 });
    assert.deepEqual(parse(fixture('chrome-offer.sdp')).media[0]!.rtcp, {
      port: 9,
      netType: 'IN',
      addrType: 'IP4',
      address: '0.0.0.0',
    });
    assert.deepEqual(parse(fixture('linphone-ipv6-answer.sdp')).media[0]!.rtcp, {
      port: 7079,
      netType: 'IN',
      addrType: 'IP6',
      address: '2001:db8::1f',
    });
    assert.equal(parse(fixture('yealink-t46-offer.sdp')).media[0]!.rtcp, undefined);
  });

  test('WebRTC: ICE, fingerprint, rtcp-mux, BUNDLE, extmap, ssrc', () => {
    const s = parse(fixture('chrome-offer.sdp'));
    assert.equal(s.attribute('group'), 'BUNDLE 0 1');
    assert.equal(s.hasAttribute('extmap-allow-mixed'), true);
    assert.equal(s.attribute('extmap-allow-mixed'), '');
    const [a, v] = s.media as [NonNullable<(typeof s.media)[0]>, NonNullable<(typeof s.media)[0]>];
    assert.equal(a.rtcpMux, true);
    assert.equal(a.mid, '0');
    assert.equal(v.mid, '1');
    assert.equal(a.iceUfrag, 'Oyef');
    assert.equal(a.icePwd, '7Bk1uRq6h9bMhZXTrHrE1Qd9');
    assert.deepEqual(a.iceOptions, ['trickle']);
    assert.equal(a.iceCandidates.length, 4);
    assert.equal(
      a.iceCandidates[2],
      '842163049 1 udp 1685987071 203.0.113.7 54609 typ srflx raddr 192.168.1.34 rport 54610 generation 0 network-id 2 network-cost 10',
    );
    assert.equal(a.fingerprints.length, 1);
    assert.match(a.fingerprints[0]!, /^sha-256 49:66:/);
    assert.equal(a.attributeValues('extmap').length, 4);
    assert.equal(v.attributeValues('ssrc').length, 4);
    assert.equal(v.attribute('ssrc-group'), 'FID 2231627014 632943048');
    assert.equal(v.fmtp(97), 'apt=96');
    assert.equal(v.isRtp, true);
  });

  test('stripIce removes ICE at both levels and nothing else', () => {
    const s = parse(fixture('linphone-ice-offer.sdp'));
    const before = s.toString().split('\r\n');
    s.stripIce();
    const after = s.toString().split('\r\n');
    assert.equal(s.iceUfrag, undefined);
    assert.equal(s.icePwd, undefined);
    assert.equal(s.media[0]!.iceCandidates.length, 0);
    assert.deepEqual(
      before.filter((l) => !/^a=(candidate|ice-ufrag|ice-pwd):/.test(l)),
      after,
    );
  });

  test('setters keep line positions; new lines go where RFC 4566 puts them', () => {
    const s = parse(fixture('yealink-t46-offer.sdp'));
    const m = s.media[0]!;
    m.port = 40000;
    m.rtcp = { port: 40001, netType: 'IN', addrType: 'IP4', address: '198.51.100.1' };
    m.connection = { netType: 'IN', addrType: 'IP4', address: '198.51.100.1' };
    m.direction = 'inactive';
    s.origin = { ...s.origin, sessionVersion: '20023' };
    const lines = s.toString().split('\r\n');
    assert.equal(lines[1], 'o=- 20022 20023 IN IP4 192.168.254.101');
    const mi = lines.indexOf('m=audio 40000 RTP/AVP 0 8 18 9 101');
    assert.ok(mi > 0);
    assert.equal(lines[mi + 1], 'c=IN IP4 198.51.100.1');
    assert.equal(lines.at(-3), 'a=inactive');
    assert.equal(lines.at(-2), 'a=rtcp:40001 IN IP4 198.51.100.1');
    // set again: replaced in place, not duplicated
    m.rtcp = { port: 40003 };
    m.direction = 'sendrecv';
    assert.deepEqual(m.attributeValues('rtcp'), ['40003']);
    assert.equal(m.attributes.filter((a) => a.name === 'sendrecv' || a.name === 'inactive').length, 1);
    assert.equal(
      m.removeAttribute('rtpmap', (v) => v?.startsWith('18 ') ?? false),
      1,
    );
    assert.equal(m.rtpmap(18), undefined);
  });

  test('unknown line types are kept verbatim and in place', () => {
    const text =
      'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=video 6000 RTP/AVP 96\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=0100000001\r\nf=v/2/4///a///\r\n';
    const s = parse(text);
    assert.equal(s.toString(), text);
    s.media[0]!.addAttribute('rtcp-mux');
    assert.match(s.toString(), /a=rtpmap:96 PS\/90000\r\na=rtcp-mux\r\ny=0100000001\r\n/);
  });

  test('clone is deep', () => {
    const s = parse(fixture('cisco-spa-offer.sdp'));
    const c = s.clone();
    c.media[0]!.port = 1;
    c.connection = { netType: 'IN', addrType: 'IP4', address: '192.0.2.9' };
    assert.equal(s.media[0]!.port, 16418);
    assert.equal(s.connection!.address, '192.168.0.20');
  });

  test('malformed input: typed error with the line number', () => {
    const cases: [string, number | undefined][] = [
      ['', undefined],
      ['o=- 1 1 IN IP4 192.0.2.1\r\n', 1],
      ['v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n', 1],
      ['v=0\r\no=- 1 IN IP4 192.0.2.1\r\n', 2],
      ['v=0\r\no=- x 1 IN IP4 192.0.2.1\r\n', 2],
      ['v=0\r\ns=-\r\n', undefined],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nhello\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 70000 RTP/AVP 0\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nm=audio 4000\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\nc=IN IP4 224.2.1.1/x\r\n', 3],
      ['v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n' + 'a=x\r\n'.repeat(20_000), undefined],
    ];
    for (const [text, line] of cases) {
      assert.throws(
        () => parse(text),
        (e: unknown) => e instanceof SdpParseError && e.kind === 'invalid_argument' && e.line === line,
        JSON.stringify(text.slice(0, 60)),
      );
    }
  });
});

describe('parser robustness (property)', () => {
  test('any input either parses or throws SdpParseError; parsed input round-trips', async () => {
    const fc = (await import('fast-check')).default;
    const line = fc.oneof(
      fc.constantFrom(
        'v=0',
        'o=- 1 2 IN IP4 192.0.2.1',
        's=-',
        'c=IN IP4 192.0.2.1',
        'c=IN IP6 ::1/2',
        't=0 0',
        'm=audio 4000 RTP/AVP 0 8',
        'm=video 0 RTP/AVP 96',
        'a=rtpmap:0 PCMU/8000',
        'a=rtcp:4001 IN IP4 192.0.2.1',
        'a=sendonly',
        'a=rtcp-mux',
        'b=AS:64',
        'y=0100000001',
        '',
      ),
      fc.string({ maxLength: 30 }),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 25 }), fc.boolean(), (lines, crlf) => {
        const text = lines.join(crlf ? '\r\n' : '\n');
        let s;
        try {
          s = parse(text);
        } catch (e) {
          if (!(e instanceof SdpParseError)) throw e;
          return;
        }
        const out = serialize(s);
        assert.equal(serialize(parse(out)), out);
        for (const m of s.media) {
          void m.rtpmaps;
          void m.rtcp;
          void m.direction;
        }
      }),
      { numRuns: 500, seed: 11 },
    );
  });
});
