import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseUri,
  parseSipUri,
  uriEquals,
  SipUri,
  TelUri,
  AbsoluteUri,
  SipParseError,
  parseMessage,
  MAX_MESSAGE_SIZE,
  MAX_BODY_SIZE,
  MAX_HEADERS,
  MAX_HEADER_LENGTH,
  MAX_VIA_COUNT,
  parseNameAddr,
  NameAddr,
  parseContactValue,
  splitList,
} from './index';

describe('URI parsing', () => {
  test('sip URI parts', () => {
    const u = parseSipUri(
      'sips:alice:secret@[2001:db8::1]:5061;transport=tls;lr;maddr=239.255.255.1?subject=hi%20there&priority=urgent',
    );
    assert.equal(u.scheme, 'sips');
    assert.equal(u.user, 'alice');
    assert.equal(u.password, 'secret');
    assert.equal(u.host, '[2001:db8::1]');
    assert.equal(u.hostType, 'ipv6');
    assert.equal(u.hostname, '2001:db8::1');
    assert.equal(u.port, 5061);
    assert.equal(u.transport, 'tls');
    assert.ok(u.lr);
    assert.equal(u.maddr, '239.255.255.1');
    assert.deepEqual(u.headers, [
      ['subject', 'hi%20there'],
      ['priority', 'urgent'],
    ]);
    assert.equal(parseSipUri('sip:192.0.2.1').hostType, 'ipv4');
    assert.equal(parseSipUri('sip:999.0.2.1').hostType, 'name');
    assert.equal(parseSipUri('sip:a%40b@h').userDecoded, 'a@b');
  });

  test('tel and other schemes', () => {
    const t = parseUri('tel:+1-201-555-0123;phone-context=example.com');
    assert.ok(t instanceof TelUri);
    assert.equal(t.isGlobal, true);
    assert.equal(t.digits, '+12015550123');
    assert.equal(t.phoneContext, 'example.com');
    const a = parseUri('urn:service:sos');
    assert.ok(a instanceof AbsoluteUri);
    assert.equal(a.scheme, 'urn');
  });

  test('malformed URIs are bad_uri', () => {
    for (const s of [
      'sip:',
      'sip:user@',
      'sip:host:99999',
      'sip:host:',
      'sip:[::1',
      'sip:a b',
      'sip:%zz@host',
      'sip:host;=x',
      'sip:host?x',
      'nocolon',
      '1sip:x',
      'sip:[1.2.3.4]',
      'sip:h;p=%4',
      'sip:u:p%g1@h',
      'sip:h?a=%2',
      'sip:h;lr?a=b%zz',
      'tel:',
    ]) {
      assert.throws(
        () => parseUri(s),
        (e: unknown) => e instanceof SipParseError && e.code === 'bad_uri',
        s,
      );
    }
  });
});

describe('uriEquals (RFC 3261 §19.1.4 examples)', () => {
  const same = [
    ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'],
    ['sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on'],
    [
      'sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com',
      'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com',
    ],
    [
      'sip:alice@atlanta.com?subject=project%20x&priority=urgent',
      'sip:alice@atlanta.com?priority=urgent&subject=project%20x',
    ],
    ['tel:+1-201-555-0123', 'tel:+12015550123'],
  ];
  const different = [
    ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'],
    ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'],
    ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'],
    ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4'],
    ['sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;security=off'],
    ['sip:alice@atlanta.com', 'sips:alice@atlanta.com'],
    ['sip:alice@atlanta.com', 'tel:+1234'],
    ['tel:+1234;phone-context=a', 'tel:+1234'],
  ];
  for (const [a, b] of same)
    test(`${a} == ${b}`, () => {
      assert.ok(uriEquals(a, b));
      assert.ok(uriEquals(b, a));
    });
  for (const [a, b] of different)
    test(`${a} != ${b}`, () => {
      assert.ok(!uriEquals(a, b));
      assert.ok(!uriEquals(b, a));
    });
});

describe('name-addr, params and lists', () => {
  test('name-addr and addr-spec', () => {
    const n = parseNameAddr(
      '"Bob \\"B\\"" <sip:bob@b.example;user=phone>;tag=x1;+sip.instance="<urn:uuid:1>"',
      'to',
      NameAddr,
    );
    assert.equal(n.displayName, 'Bob "B"');
    assert.equal(n.tag, 'x1');
    assert.equal((n.uri as SipUri).param('user'), 'phone');
    const a = parseNameAddr('sip:bob@b.example;tag=9', 'to', NameAddr);
    assert.equal(a.tag, '9');
    assert.equal((a.uri as SipUri).params.size, 0);
    const c = parseContactValue(
      '<sip:u@1.2.3.4;ob>;expires=60;q=0.5;+sip.instance="<urn:uuid:abc>";reg-id=2',
    );
    assert.equal(c.expires, 60);
    assert.equal(c.q, 0.5);
    assert.equal(c.instance, '<urn:uuid:abc>');
    assert.equal(c.regId, 2);
    assert.ok((c.uri as SipUri).ob);
  });
  test('splitList keeps commas inside quotes and <>', () => {
    assert.deepEqual(splitList('"a, b" <sip:x@y>, <sip:z@w;p=1,2>', 'contact'), [
      '"a, b" <sip:x@y>',
      '<sip:z@w;p=1,2>',
    ]);
    assert.throws(() => splitList('a,,b', 'allow'), SipParseError);
    assert.throws(() => splitList('"open', 'to'), SipParseError);
  });
});

const base = (extra = '', body = '') =>
  `OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const code = (c: string, status?: number) => (e: unknown) =>
  e instanceof SipParseError && e.code === c && (status === undefined || e.status === status);

describe('limits', () => {
  test('message size', () => {
    assert.throws(
      () => parseMessage(Buffer.from(base('', 'x'.repeat(MAX_MESSAGE_SIZE)))),
      code('too_large', 513),
    );
    assert.throws(
      () => parseMessage(Buffer.from(base('', 'x'.repeat(MAX_BODY_SIZE + 1)))),
      code('too_large', 413),
    );
    assert.equal(parseMessage(Buffer.from(base('', 'x'.repeat(MAX_BODY_SIZE)))).body.length, MAX_BODY_SIZE);
  });
  test('header count', () => {
    const many = Array.from({ length: MAX_HEADERS + 1 }, (_, i) => `X-H${i}: v\r\n`).join('');
    assert.throws(() => parseMessage(Buffer.from(base(many))), code('too_many_headers', 513));
  });
  test('header length', () => {
    assert.throws(
      () => parseMessage(Buffer.from(base(`X-Long: ${'a'.repeat(MAX_HEADER_LENGTH)}\r\n`))),
      code('too_large', 513),
    );
  });
  test('Via count', () => {
    const vias = Array.from(
      { length: MAX_VIA_COUNT + 1 },
      (_, i) => `Via: SIP/2.0/UDP h${i};branch=z9hG4bK${i}\r\n`,
    ).join('');
    const m = parseMessage(Buffer.from(base(vias)));
    assert.throws(() => m.vias, code('too_large', 513));
  });
  test('other start-line and header errors', () => {
    assert.throws(() => parseMessage(Buffer.from('')), code('bad_start_line'));
    assert.throws(
      () => parseMessage(Buffer.from(base().replace('SIP/2.0\r\n', 'SIP/3.0\r\n'))),
      code('bad_version', 505),
    );
    assert.throws(() => parseMessage(Buffer.from(base('Bad Header: x\r\n'))), code('bad_header'));
    assert.throws(() => parseMessage(Buffer.from(base('Max-Forwards: x\r\n'))), code('bad_header'));
    assert.throws(
      () => parseMessage(Buffer.from(base().replace('CSeq: 1 OPTIONS', 'CSeq: 1'))),
      code('bad_header'),
    );
    assert.throws(
      () => parseMessage(Buffer.from(base().replace('Call-ID: c', 'Call-ID: '))),
      code('bad_header'),
    );
    assert.throws(() => parseMessage(Buffer.from('SIP/2.0 20 OK\r\n\r\n')), code('bad_start_line'));
  });
  test('tolerated: leading CRLFs, bare LF line ends, folded values, compact names', () => {
    const m = parseMessage(
      Buffer.from('\r\n\r\n' + base().replace(/\r\n/g, '\n').replace('To: <sip:a@b>', 't:\n   <sip:a@b>')),
    );
    assert.equal(m.to.uri.toString(), 'sip:a@b');
    assert.equal(m.body.length, 0);
  });
});
