import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseMessage,
  createResponse,
  createRequest,
  SipParseError,
  SipRequest,
  SipResponse,
  SipUri,
  Via,
  newBranch,
  newTag,
  newCallId,
} from './index';
import { MAX_PARAMS } from './limits';

const INVITE = [
  'INVITE sip:bob@biloxi.example.com SIP/2.0',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKold',
  'Max-Forwards: 70',
  'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
  'To: Bob <sip:bob@biloxi.example.com>',
  'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
  'Contact: <sip:alice@pc33.atlanta.example.com>',
  'Content-Type: application/sdp',
  'Content-Length: 5',
  '',
  'v=0\r\n',
].join('\r\n');

const req = () => parseMessage(Buffer.from(INVITE)) as SipRequest;

describe('parseMessage', () => {
  test('request fields', () => {
    const m = req();
    assert.ok(m instanceof SipRequest);
    assert.equal(m.method, 'INVITE');
    const u = m.uri as SipUri;
    assert.equal(u.user, 'bob');
    assert.equal(u.host, 'biloxi.example.com');
    assert.equal(m.via.branch, 'z9hG4bK776asdhds');
    assert.equal(m.via.host, 'pc33.atlanta.example.com');
    assert.equal(m.via.port, 5062);
    assert.equal(m.via.rport, null);
    assert.equal(m.via.transport, 'UDP');
    assert.equal(m.vias.length, 2);
    assert.equal(m.vias[1].transport, 'TCP');
    assert.deepEqual(m.cseq, { seq: 314159, method: 'INVITE' });
    assert.equal(m.callId, 'a84b4c76e66710@pc33.atlanta.example.com');
    assert.equal(m.fromTag, '1928301774');
    assert.equal(m.from.displayName, 'Alice A.');
    assert.equal(m.toTag, undefined);
    assert.equal(m.to.displayName, 'Bob');
    assert.equal(m.maxForwards, 70);
    assert.equal(m.routes.length, 2);
    assert.equal((m.routes[0].uri as SipUri).host, 'p1.example.com');
    assert.equal(m.contacts.length, 1);
    assert.equal(m.body.toString(), 'v=0\r\n');
    assert.equal(m.getHeader('content-type'), 'application/sdp');
    assert.equal(m.getHeader('c'), 'application/sdp');
  });

  test('body longer than Content-Length on a datagram is cut; shorter is an error', () => {
    const m = parseMessage(Buffer.from(INVITE + 'extra'));
    assert.equal(m.body.length, 5);
    const short = INVITE.replace('Content-Length: 5', 'Content-Length: 40');
    assert.throws(
      () => parseMessage(Buffer.from(short)),
      (e: unknown) => e instanceof SipParseError && e.code === 'bad_content_length',
    );
  });

  test('missing Content-Length: rest of datagram; error on a stream', () => {
    const noCl = INVITE.replace('Content-Length: 5\r\n', '');
    assert.equal(parseMessage(Buffer.from(noCl)).body.toString(), 'v=0\r\n');
    assert.throws(
      () => parseMessage(Buffer.from(noCl), { transport: 'stream' }),
      (e: unknown) => e instanceof SipParseError && e.code === 'missing_header',
    );
  });

  test('response', () => {
    const r = parseMessage(
      Buffer.from(
        'SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
      ),
    );
    assert.ok(r instanceof SipResponse);
    assert.equal(r.status, 180);
    assert.equal(r.reason, 'Ringing');
    assert.equal(r.toTag, '2');
  });
});

describe('serialize', () => {
  test('untouched message is byte-identical', () => {
    const m = req();
    assert.equal(m.serialize().toString('latin1'), INVITE);
  });

  test('proxy edits: Via on top, Record-Route, first Route removed, Max-Forwards, R-URI', () => {
    const m = req();
    const b = newBranch();
    m.pushVia(new Via('UDP', 'proxy.example.com', 5060, undefined).toString() + ';branch=' + b);
    m.addHeader('Record-Route', '<sip:proxy.example.com;lr>', { first: true });
    assert.equal(m.removeFirstValue('Route'), '<sip:p1.example.com;lr>');
    m.decrementMaxForwards();
    m.uri = 'sip:bob@192.0.2.4:5060';
    const out = parseMessage(m.serialize()) as SipRequest;
    assert.equal(out.via.branch, b);
    assert.equal(out.vias.length, 3);
    assert.equal(out.vias[1].branch, 'z9hG4bK776asdhds');
    assert.equal(out.routes.length, 1);
    assert.equal((out.routes[0].uri as SipUri).host, 'p2.example.com');
    assert.equal(out.recordRoutes.length, 1);
    assert.equal(out.maxForwards, 69);
    assert.equal(out.uri.toString(), 'sip:bob@192.0.2.4:5060');
    assert.equal(out.body.toString(), 'v=0\r\n');
    assert.equal(out.getHeader('Content-Length'), '5');
  });

  test('edits refuse header injection', () => {
    const m = req();
    assert.throws(() => m.addHeader('X-A', 'v\r\nVia: SIP/2.0/UDP evil'), SipParseError);
    assert.throws(() => m.addHeader('Bad Name', 'v'), SipParseError);
    assert.throws(() => m.addHeader('X-B:', 'v'), SipParseError);
  });

  test('setBody recomputes Content-Length', () => {
    const m = req();
    m.setBody('hello world', 'text/plain');
    const out = parseMessage(m.serialize());
    assert.equal(out.body.toString(), 'hello world');
    assert.equal(out.getHeader('content-length'), '11');
    assert.equal(out.contentType, 'text/plain');
  });
});

describe('builders', () => {
  test('createResponse copies Via/From/To/Call-ID/CSeq (RFC 3261 §8.2.6)', () => {
    const m = req();
    const r = createResponse(m, 200, undefined, { toTag: 'abc' });
    assert.equal(r.reason, 'OK');
    const p = parseMessage(r.serialize()) as SipResponse;
    assert.equal(p.status, 200);
    assert.equal(p.vias.length, 2);
    assert.equal(p.via.branch, 'z9hG4bK776asdhds');
    assert.equal(p.fromTag, '1928301774');
    assert.equal(p.toTag, 'abc');
    assert.equal(p.callId, m.callId);
    assert.deepEqual(p.cseq, m.cseq);
    assert.equal(p.body.length, 0);
  });

  test('createResponse adds the To tag to the request To as it came, with or without angle brackets', () => {
    for (const [to, want] of [
      ['sip:bob@biloxi.example.com;transport=udp', 'sip:bob@biloxi.example.com;transport=udp;tag=abc'],
      [
        '"Bob B." <sip:bob@biloxi.example.com;lr>;x=1',
        '"Bob B." <sip:bob@biloxi.example.com;lr>;x=1;tag=abc',
      ],
    ] as const) {
      const m = parseMessage(
        Buffer.from(
          'OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n' +
            `From: <sip:a@h>;tag=1\r\nTo: ${to}\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`,
        ),
      ) as SipRequest;
      const p = parseMessage(createResponse(m, 200, undefined, { toTag: 'abc' }).serialize()) as SipResponse;
      assert.equal(p.getHeader('To'), want);
      assert.equal(p.toTag, 'abc');
      assert.equal(p.to.uri.toString(), m.to.uri.toString());
    }
  });

  test('createRequest round-trips', () => {
    const r = createRequest({
      method: 'OPTIONS',
      uri: 'sip:carol@chicago.example.com',
      via: ['SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport'],
      from: '<sip:alice@atlanta.example.com>;tag=88',
      to: '<sip:carol@chicago.example.com>',
      callId: 'cid1',
      cseq: 7,
    });
    const p = parseMessage(r.serialize()) as SipRequest;
    assert.equal(p.method, 'OPTIONS');
    assert.deepEqual(p.cseq, { seq: 7, method: 'OPTIONS' });
    assert.equal(p.maxForwards, 70);
    assert.equal(p.via.rport, null);
    assert.equal(p.getHeader('Content-Length'), '0');
  });

  test('serialized messages kept side by side in shared slabs stay whole and their own', () => {
    // ~600 bytes each: 400 of them fill several 64 KiB slabs; one body of 20 KB gets its own Buffer
    const out: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      const r = createRequest({
        method: 'MESSAGE',
        uri: `sip:u${i}@example.com`,
        via: [`SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK${i}`],
        from: '<sip:a@example.com>;tag=1',
        to: `<sip:u${i}@example.com>`,
        callId: `call-${i}`,
        cseq: i + 1,
        body: i === 200 ? 'x'.repeat(20_000) : `hello ${i} ${'é'.repeat(i % 7)}`,
        contentType: 'text/plain',
      });
      out.push(r.serialize());
    }
    for (let i = 0; i < 400; i++) {
      const p = parseMessage(out[i]) as SipRequest;
      assert.equal(p.callId, `call-${i}`);
      assert.equal(p.cseq.seq, i + 1);
      assert.equal(
        p.body.toString('utf8'),
        i === 200 ? 'x'.repeat(20_000) : `hello ${i} ${'é'.repeat(i % 7)}`,
      );
    }
  });

  test('tags, branches and Call-IDs are random hex of their length, never repeated across pool refills', () => {
    const seen = new Set<string>();
    // 3,000 of each draw 78 KB: the 4 KiB pool is refilled many times over, mid-value too.
    for (let i = 0; i < 3000; i++) {
      const t = newTag();
      const b = newBranch();
      const c = newCallId('example.com');
      assert.match(t, /^[0-9a-f]{12}$/);
      assert.match(b, /^z9hG4bK[0-9a-f]{16}$/);
      assert.match(c, /^[0-9a-f]{24}@example\.com$/);
      for (const v of [t, b, c]) {
        assert.ok(!seen.has(v), `repeated: ${v}`);
        seen.add(v);
      }
    }
    assert.match(newCallId(), /^[0-9a-f]{24}$/);
  });
});

describe('header names and list values', () => {
  const withHeader = (line: string) =>
    Buffer.from(
      [
        'OPTIONS sip:bob@example.com SIP/2.0',
        'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1',
        'From: <sip:a@example.com>;tag=1',
        'To: <sip:bob@example.com>',
        'Call-ID: c1',
        'CSeq: 1 OPTIONS',
        line,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );

  test('every known name, full and compact, in any case; near misses stay other headers', () => {
    const known: Array<[string, string]> = [
      ['Max-Forwards', 'max-forwards'],
      ['mAX-fORWARDS', 'max-forwards'],
      ['Record-Route', 'record-route'],
      ['RECORD-ROUTE', 'record-route'],
      ['Content-Type', 'content-type'],
      ['c', 'content-type'],
      ['m', 'contact'],
      ['Session-Expires', 'session-expires'],
      ['x', 'session-expires'],
      ['Proxy-Authorization', 'proxy-authorization'],
      ['P-Asserted-Identity', 'p-asserted-identity'],
      ['Allow-Events', 'allow-events'],
      ['u', 'allow-events'],
    ];
    for (const [name, key] of known) {
      const m = parseMessage(withHeader(`${name}: v1`), { lenient: true });
      const f = m.fields.find((x) => x.name === name);
      assert.ok(f, name);
      assert.equal(f.key, key, name);
    }
    // prefixes, extensions and neighbours of known names are other headers, kept under their own key
    for (const name of [
      'Max-Forward',
      'Max-Forwardsx',
      'Contacts',
      'Content',
      'Co',
      'Rout',
      'Routes',
      'X-Via',
      'Via2',
      'ma',
    ]) {
      const m = parseMessage(withHeader(`${name}: v2`));
      assert.equal(m.getHeader(name), 'v2', name);
      const f = m.fields.find((x) => x.name === name);
      assert.ok(f, name);
      assert.equal(f.key, name.toLowerCase(), name);
    }
    // a known name's own accessor is not fooled by a longer name that starts with it
    const m = parseMessage(withHeader('Max-Forwards-Extra: 3')) as SipRequest;
    assert.equal(m.maxForwards, null);
  });

  test('header parameters: order kept past the first two, at most MAX_PARAMS', () => {
    const many = (k: number) => Array.from({ length: k }, (_, i) => `;p${i}=${i}`).join('');
    const m = parseMessage(withHeader(`Contact: <sip:a@example.com>${many(5)}`)) as SipRequest;
    assert.deepEqual(m.contacts[0].params.list, [
      ['p0', '0'],
      ['p1', '1'],
      ['p2', '2'],
      ['p3', '3'],
      ['p4', '4'],
    ]);
    assert.equal(
      (parseMessage(withHeader(`Contact: <sip:a@example.com>${many(MAX_PARAMS)}`)) as SipRequest).contacts[0]
        .params.size,
      MAX_PARAMS,
    );
    assert.throws(
      () =>
        (parseMessage(withHeader(`Contact: <sip:a@example.com>${many(MAX_PARAMS + 1)}`)) as SipRequest)
          .contacts,
      (e: unknown) => e instanceof SipParseError && e.code === 'too_large',
    );
    // the top Via's parameters, two and one
    const v = parseMessage(withHeader('Route: <sip:p.example.com;lr>')).via;
    assert.deepEqual(v.params.list, [['branch', 'z9hG4bK1']]);
  });

  test('Route fields: one value in place, several values, commas inside quotes and <>', () => {
    const routes = (line: string) =>
      (parseMessage(withHeader(line)) as SipRequest).routes.map((r) => [
        r.displayName,
        (r.uri as SipUri).host,
        r.params.toString(),
      ]);
    assert.deepEqual(routes('Route: <sip:p1.example.com;lr>'), [[null, 'p1.example.com', '']]);
    assert.deepEqual(routes('Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>;x=1'), [
      [null, 'p1.example.com', ''],
      [null, 'p2.example.com', ';x=1'],
    ]);
    assert.deepEqual(routes('Route: "a, b" <sip:u,v@p1.example.com>;x="1,2"'), [
      ['a, b', 'p1.example.com', ';x="1,2"'],
    ]);
    assert.deepEqual(routes('Route: sip:p1.example.com, sip:p2.example.com'), [
      [null, 'p1.example.com', ''],
      [null, 'p2.example.com', ''],
    ]);
    // several fields, in order, the one-value ones parsed in place and the list split
    assert.deepEqual(
      routes(
        'Route: <sip:a.example.com>\r\nRoute: <sip:b.example.com>\r\nRoute: <sip:c.example.com>, <sip:d.example.com>',
      ).map((r) => r[1]),
      ['a.example.com', 'b.example.com', 'c.example.com', 'd.example.com'],
    );
    assert.throws(
      () => routes('Route: <sip:p1.example.com>, '),
      (e: unknown) => e instanceof SipParseError && /empty list element/.test(e.message),
    );
    assert.throws(
      () => routes('Route: <sip:p1.example.com'),
      (e: unknown) => e instanceof SipParseError && /unterminated </.test(e.message),
    );
  });
});
