/**
 * The fast paths of parseMessage (Call-ID, CSeq and Max-Forwards checked on the bytes;
 * top Via, From, To and one-value Route fields parsed in place in the decoded header
 * text) must answer exactly as the value-string paths they shortcut: folded lines,
 * non-ASCII bytes and error positions are the edges.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, SipParseError, SipRequest } from './index';

const LINES = [
  'INVITE sip:bob@example.com SIP/2.0',
  'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport',
  'Route: <sip:p1.example.com;lr>',
  'From: "Alice" <sip:alice@example.com>;tag=1',
  'To: "Bob" <sip:bob@[2001:db8::2]>', // '"', '>' and ']' after the headers above
  'Call-ID: c1@192.0.2.1',
  'CSeq: 7 INVITE',
  'Max-Forwards: 70',
  'Content-Length: 0',
];
/** The message with header `name` replaced by `line` (a whole line, folding allowed). */
function msg(name: string, line: string): Buffer {
  const out = LINES.map((l) => (l.startsWith(name + ':') ? line : l));
  return Buffer.from(out.join('\r\n') + '\r\n\r\n', 'utf8');
}
function code(b: Buffer): string {
  try {
    parseMessage(b);
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof SipParseError);
    return `${e.code} ${e.message}`;
  }
}

describe('in-place parsing matches the value-string parsers', () => {
  test('Call-ID: ASCII whitespace rejected; non-ASCII decided by the string check (NBSP is \\s)', () => {
    assert.match(code(msg('Call-ID', 'Call-ID: c1 @x')), /^bad_header/);
    assert.match(code(msg('Call-ID', 'Call-ID: c1\u00a0x')), /^bad_header call-id/);
    assert.equal(code(msg('Call-ID', 'Call-ID: c1\u00e9x')), 'ok');
    const m = parseMessage(msg('Call-ID', 'Call-ID: c1\u00e9x'));
    assert.equal(m.callId, 'c1\u00e9x');
  });

  test('CSeq: method compared by bytes, case-sensitive; folded value parsed unfolded', () => {
    assert.match(code(msg('CSeq', 'CSeq: 7 invite')), /^cseq_mismatch/);
    assert.match(code(msg('CSeq', 'CSeq: 7INVITE')), /^bad_header cseq: missing space/);
    assert.match(code(msg('CSeq', 'CSeq: 4294967296 INVITE')), /^bad_header cseq: sequence number over/);
    const m = parseMessage(msg('CSeq', 'CSeq: 7\r\n INVITE')) as SipRequest;
    assert.deepEqual(m.cseq, { seq: 7, method: 'INVITE' });
    assert.equal(m.cseq.method, m.method);
  });

  test('Max-Forwards: digits only, at most 10 of them', () => {
    assert.match(code(msg('Max-Forwards', 'Max-Forwards: 7a')), /^bad_header max-forwards: not a number/);
    assert.match(code(msg('Max-Forwards', 'Max-Forwards: 00000000070')), /not a number/);
    assert.equal(
      (parseMessage(msg('Max-Forwards', 'Max-Forwards: 0000000070')) as SipRequest).maxForwards,
      70,
    );
  });

  test('error positions are relative to the value, as in the string parsers', () => {
    assert.equal(
      code(msg('Via', 'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1 x')),
      'bad_header via: unexpected character at 43',
    );
    assert.equal(code(msg('To', 'To: <sip:bob@example.com> x')), 'bad_header to: unexpected character at 22');
    assert.equal(
      code(msg('From', 'From: <sip:a@example.com>;tag=1 x')),
      'bad_header from: unexpected character at 26',
    );
  });

  test('a value ends at its line: quotes, <> and [] do not run into a later header', () => {
    assert.match(
      code(msg('From', 'From: "Alice <sip:alice@example.com>;tag=1')),
      /unterminated quoted string/,
    );
    assert.match(code(msg('From', 'From: <sip:alice@example.com;tag=1')), /^bad_header from: unterminated </);
    assert.match(
      code(msg('Via', 'Via: SIP/2.0/UDP [2001:db8::1;branch=z9hG4bK1')),
      /^bad_header via: .*IPv6/,
    );
    const r = (v: string) => () => parseMessage(msg('Route', v)).routes;
    assert.throws(r('Route: "p1 <sip:p1.example.com;lr>'), /unterminated quoted string/);
    assert.throws(r('Route: <sip:p1.example.com;lr'), /unterminated </);
    const m = parseMessage(msg('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport'));
    assert.equal(m.via.port, null);
    assert.equal(m.via.rport, null);
  });

  test('Route: one value in place, lists and folded fields split as before', () => {
    const one = parseMessage(msg('Route', 'Route: <sip:p1.example.com;lr>\u000b'));
    assert.equal(one.routes.length, 1);
    assert.equal(String(one.routes[0]), '<sip:p1.example.com;lr>');
    const two = parseMessage(msg('Route', 'Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>'));
    assert.deepEqual(
      two.routes.map((r) => r.uriText),
      ['sip:p1.example.com;lr', 'sip:p2.example.com;lr'],
    );
    assert.throws(() => parseMessage(msg('Route', 'Route: \u000b')).routes, /empty list element/);
  });

  test('top Via: parameters checked in place, parsed on first use; branch before and after agree', () => {
    const cases: Array<[string, string | undefined]> = [
      ['Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport', 'z9hG4bK1'],
      ['Via: SIP/2.0/UDP 192.0.2.1;BRANCH=z9hG4bKA', 'z9hG4bKA'], // Params.get ignores the name's case
      ['Via: SIP/2.0/UDP 192.0.2.1;x;branch="q";branch=2', '"q"'], // the first, as written
      ['Via: SIP/2.0/UDP 192.0.2.1;branch', undefined], // no value
      ['Via: SIP/2.0/UDP 192.0.2.1;branches=1;bran=2', undefined],
      ['Via: SIP/2.0/UDP 192.0.2.1 ; branch = z9hG4bK3 , SIP/2.0/TCP h2', 'z9hG4bK3'],
      ['Via: SIP/2.0/UDP 192.0.2.1;branch=', 'err'],
    ];
    for (const [line, branch] of cases) {
      let m: SipRequest;
      try {
        m = parseMessage(msg('Via', line)) as SipRequest;
      } catch (e) {
        assert.ok(e instanceof SipParseError, line);
        assert.equal(branch, 'err', `${line}: ${String(e)}`);
        continue;
      }
      assert.notEqual(branch, 'err', line);
      const eager = m.vias[0]; // parsed from the value string, parameters at once
      assert.equal(m.via.branch, branch, line); // before the Params exist
      assert.equal(String(m.via), String(eager), line);
      assert.deepEqual(m.via.params.list, eager.params.list, line);
      assert.equal(m.via.branch, branch, line);
    }
    // parameters changed on the parsed Via: branch and text follow
    const m = parseMessage(msg('Via', 'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;rport')) as SipRequest;
    const c = m.via.clone();
    m.via.params.set('branch', 'z9hG4bK2');
    assert.equal(m.via.branch, 'z9hG4bK2');
    assert.equal(c.branch, 'z9hG4bK1');
    m.setViaReceived('198.51.100.1', 5070);
    assert.equal(String(m.via), 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2;rport=5070;received=198.51.100.1');
  });

  test('From/To checked in place, built on first use: the tags read before and after agree', () => {
    const cases: Array<[string, string | undefined]> = [
      ['From: "Alice" <sip:alice@example.com>;tag=1', '1'],
      ['From: <sip:alice@example.com>;TAG=Ab', 'Ab'], // Params.get ignores the name's case
      ['From: <sip:alice@example.com>;x=1;tag="q t";tag=2', '"q t"'], // the first, as written
      ['From: <sip:alice@example.com>;tag', undefined], // no value
      ['From: <sip:alice@example.com>;tags=1;ta=2', undefined],
      ['From: sip:alice@example.com ; tag = 9 ', '9'],
      ['From: <sip:alice@example.com>;tag=1,\r\n x', 'err'], // folded: parsed at once, and rejected
      ['From: Al\u00e9 <sip:alice@example.com>;tag=\u00e9', 'err'], // non-ASCII: the string path
      ['From: Al <sip:a@example.com>;tag=', 'err'],
    ];
    for (const [line, tag] of cases) {
      let m: SipRequest;
      try {
        m = parseMessage(msg('From', line)) as SipRequest;
      } catch (e) {
        assert.ok(e instanceof SipParseError, line);
        assert.equal(tag, 'err', `${line}: ${String(e)}`);
        continue;
      }
      assert.notEqual(tag, 'err', line);
      const early = m.fromTag; // before the NameAddr exists
      assert.equal(early, tag, line);
      assert.equal(m.from.tag, tag, line);
      assert.equal(m.fromTag, tag, line);
      const t = parseMessage(msg('To', line.replace(/^From/, 'To'))) as SipRequest;
      assert.equal(t.toTag, tag, line);
      assert.equal(t.to.tag, tag, line);
    }
    // an edit of the field drops the tag found by the check
    const m = parseMessage(msg('To', 'To: <sip:bob@example.com>;tag=a')) as SipRequest;
    assert.equal(m.toTag, 'a');
    m.setHeader('To', '<sip:bob@example.com>;tag=b');
    assert.equal(m.toTag, 'b');
    m.setHeader('From', '<sip:alice@example.com>');
    assert.equal(m.fromTag, undefined);
    // lenient: nothing checked, the tag comes from the parsed value
    assert.equal(
      parseMessage(msg('From', 'From: <sip:a@example.com>;tag=z'), { lenient: true }).fromTag,
      'z',
    );
  });
});

describe('edits on the header index match the same edits on field objects', () => {
  /** The same edits twice: on the parser's index, and after `fields` built the field objects. */
  function both(b: Buffer, edit: (m: SipRequest) => void): [SipRequest, SipRequest] {
    const a = parseMessage(b) as SipRequest;
    const c = parseMessage(b) as SipRequest;
    void c.fields; // the object path
    edit(a);
    edit(c);
    return [a, c];
  }
  function same(a: SipRequest, c: SipRequest): void {
    assert.equal(a.serialize().toString('latin1'), c.serialize().toString('latin1'));
    assert.deepEqual(a.headerEntries(), c.headerEntries());
    assert.deepEqual(
      a.vias.map((v) => v.toString()),
      c.vias.map((v) => v.toString()),
    );
    assert.deepEqual(
      a.routes.map((r) => r.toString()),
      c.routes.map((r) => r.toString()),
    );
    assert.deepEqual(
      a.recordRoutes.map((r) => r.toString()),
      c.recordRoutes.map((r) => r.toString()),
    );
    assert.equal(a.maxForwards, c.maxForwards);
    assert.equal(a.getHeader('X-Tag'), c.getHeader('X-Tag'));
  }
  const proxyEdits = (m: SipRequest) => {
    m.pushVia('SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKp1');
    m.addHeader('Record-Route', '<sip:203.0.113.5;lr>', { first: true });
    assert.ok(m.hasHeader('Route'));
    m.removeFirstValue('Route');
    m.decrementMaxForwards();
    m.uri = 'sip:bob@198.51.100.7:5062';
  };

  test('a proxy forward: Via and Record-Route on top, first Route removed, Max-Forwards down', () => {
    const [a, c] = both(msg('Route', 'Route: <sip:p1.example.com;lr>'), proxyEdits);
    same(a, c);
    assert.equal(a.routes.length, 0);
    assert.equal(a.vias.length, 2);
    assert.equal(a.via.branch, 'z9hG4bKp1');
    assert.equal(a.maxForwards, 69);
    assert.match(
      a.serialize().toString(),
      /^INVITE sip:bob@198\.51\.100\.7:5062 SIP\/2\.0\r\nRecord-Route: /,
    );
  });

  test('a Route list loses its first value; a Via added after the top one was removed', () => {
    const [a, c] = both(msg('Route', 'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>'), (m) => {
      proxyEdits(m);
      m.removeFirstValue('Via');
      m.pushVia('SIP/2.0/TCP 203.0.113.6;branch=z9hG4bKp2');
    });
    same(a, c);
    assert.deepEqual(
      a.routes.map((r) => r.uriText),
      ['sip:p2.example.com;lr'],
    );
    assert.deepEqual(
      a.vias.map((v) => v.branch),
      ['z9hG4bKp2', 'z9hG4bK1'],
    );
  });

  test('other headers: set, add at the end, replace every field of a name, remove', () => {
    const b = Buffer.from(
      msg('Route', 'Route: <sip:p1.example.com;lr>')
        .toString()
        .replace('Content-Length: 0', 'X-Tag: a\r\nx-tag: b\r\nContent-Length: 0'),
    );
    const [a, c] = both(b, (m) => {
      assert.equal(m.getHeader('x-TAG'), 'a');
      m.setHeader('X-Tag', 'c'); // replaces both fields, at the place of the first
      m.addHeader('X-Other', '1');
      m.addHeader('Max-Forwards', '5', { first: true });
      m.removeHeader('X-Other');
    });
    same(a, c);
    assert.deepEqual(a.getHeaders('x-tag'), ['c']);
    assert.deepEqual(a.getHeaders('max-forwards'), ['5', '70']);
  });

  test('an unedited message serializes to its own bytes; an edited one to new bytes', () => {
    const b = msg('Route', 'Route: <sip:p1.example.com;lr>');
    assert.deepEqual(parseMessage(b).serialize(), b);
    const m = parseMessage(b);
    m.removeFirstValue('Route');
    assert.equal(m.serialize().toString(), b.toString().replace('Route: <sip:p1.example.com;lr>\r\n', ''));
  });

  test('a Request-URI set as a string is parsed when read; whitespace is refused at once', () => {
    const m = parseMessage(msg('Route', 'Route: <sip:p1.example.com;lr>')) as SipRequest;
    m.uri = 'sip:carol@192.0.2.9:5070;transport=tcp';
    assert.equal(m.uriText, 'sip:carol@192.0.2.9:5070;transport=tcp');
    assert.equal((m.uri as { host: string }).host, '192.0.2.9');
    assert.throws(() => (m.uri = 'sip:carol@x\r\nX-Injected: 1'), /whitespace or control/);
    assert.throws(() => (m.uri = ''), /empty Request-URI/);
    m.uri = 'sip:[bad';
    assert.throws(() => m.uri, SipParseError);
  });
});
