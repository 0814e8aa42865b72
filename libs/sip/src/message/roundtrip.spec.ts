/** Property tests: generated requests and responses survive serialize → parse field by field. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  createRequest,
  createResponse,
  parseMessage,
  NameAddr,
  Params,
  SipUri,
  Via,
  uriEquals,
  parseUri,
  type SipRequest,
  type SipResponse,
} from './index';

const alnum = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const chars = (set: string, min = 1, max = 12) =>
  fc.string({ unit: fc.constantFrom(...set.split('')), minLength: min, maxLength: max });
const token = chars(alnum + "-.!%*_+`'~");
const hostname = fc
  .array(chars('abcdefghijklmnopqrstuvwxyz0123456789', 1, 8), { minLength: 1, maxLength: 4 })
  .map((l) => l.join('.') + '.example');
const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const ipv6 = fc.ipV6().map((a) => `[${a}]`);
const host = fc.oneof(hostname, ipv4, ipv6);
const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null });
const escaped = fc
  .integer({ min: 0, max: 255 })
  .map((b) => '%' + b.toString(16).padStart(2, '0').toUpperCase());
const userPart = fc
  .array(fc.oneof(chars(alnum + "-_.!~*'()&=+$,;?/", 1, 4), escaped), { minLength: 1, maxLength: 5 })
  .map((l) => l.join(''));
const paramName = chars(alnum + "-_.!~*'()[]/:&+$", 1, 8);
const paramValue = fc.option(chars(alnum + "-_.!~*'()[]/:&+$", 1, 10), { nil: null });
const uriParams = fc
  .uniqueArray(fc.tuple(paramName, paramValue), { maxLength: 3, selector: ([n]) => n.toLowerCase() })
  .map((l) => new Params(l.map(([n, v]) => [n, v] as [string, string | null])));
const sipUri = fc
  .record({ sips: fc.boolean(), user: fc.option(userPart, { nil: null }), host, port, params: uriParams })
  .map(
    (r) =>
      new SipUri({
        scheme: r.sips ? 'sips' : 'sip',
        user: r.user,
        host: r.host,
        port: r.port,
        params: r.params,
      }),
  );
const display = fc.option(
  fc
    .string({ unit: fc.constantFrom(...(alnum + ' "\\,;:<>@\tü€').split('')), maxLength: 16 })
    .filter((s) => s.trim() === s),
  { nil: null },
);
const tagv = token;
const nameAddr = (tag: fc.Arbitrary<string | null>) =>
  fc.record({ uri: sipUri, display, tag }).map(({ uri, display, tag }) => {
    const p = new Params();
    if (tag !== null) p.set('tag', tag);
    return new NameAddr(uri, display, p);
  });
const via = fc
  .record({
    transport: fc.constantFrom('UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'),
    host,
    port,
    branch: token.map((b) => 'z9hG4bK' + b),
    rport: fc.option(fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }), { nil: undefined }),
    received: fc.option(ipv4, { nil: undefined }),
  })
  .map((r) => {
    const v = new Via(r.transport, r.host, r.port);
    v.params.set('branch', r.branch);
    if (r.rport !== undefined) v.params.set('rport', r.rport === null ? null : String(r.rport));
    if (r.received !== undefined) v.params.set('received', r.received);
    return v;
  });
const extraHeaders = fc.array(
  fc.tuple(
    chars(alnum + '-', 1, 10).map((n) => 'X-' + n),
    fc
      .string({ unit: fc.constantFrom(...(alnum + ' ,;:"<>=@/ü').split('')), maxLength: 30 })
      .map((s) => s.trim()),
  ),
  { maxLength: 4 },
);
const body = fc.option(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  { nil: undefined },
);

const requestArb = fc.record({
  method: fc.oneof(fc.constantFrom('INVITE', 'REGISTER', 'OPTIONS', 'BYE', 'MESSAGE', 'SUBSCRIBE'), token),
  uri: sipUri,
  vias: fc.array(via, { minLength: 1, maxLength: 4 }),
  from: nameAddr(tagv),
  to: nameAddr(fc.option(tagv, { nil: null })),
  callId: chars(alnum + '-.!%*_+`\'~()<>:\\"/[]?{}@', 1, 30),
  cseq: fc.integer({ min: 0, max: 0xffffffff }),
  maxForwards: fc.integer({ min: 0, max: 255 }),
  contact: fc.array(nameAddr(fc.constant(null)), { maxLength: 3 }),
  headers: extraHeaders,
  body,
});

function checkCommon(a: SipRequest | SipResponse, b: SipRequest | SipResponse) {
  assert.equal(b.callId, a.callId);
  assert.deepEqual(b.cseq, a.cseq);
  assert.equal(b.vias.length, a.vias.length);
  b.vias.forEach((v, i) => {
    const w = a.vias[i];
    assert.equal(v.transport, w.transport);
    assert.equal(v.host, w.host);
    assert.equal(v.port, w.port);
    assert.equal(v.branch, w.branch);
    assert.equal(v.rport, w.rport);
    assert.equal(v.received, w.received);
  });
  assert.equal(b.from.displayName, a.from.displayName);
  assert.ok(uriEquals(b.from.uri, a.from.uri));
  assert.equal(b.fromTag, a.fromTag);
  assert.equal(b.to.displayName, a.to.displayName);
  assert.ok(uriEquals(b.to.uri, a.to.uri));
  assert.equal(b.toTag, a.toTag);
  assert.ok(b.body.equals(a.body));
}

describe('round trip', () => {
  test('generated requests: parse(serialize(m)) equals m field by field', () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        const m = createRequest({
          method: r.method,
          uri: r.uri,
          via: r.vias,
          from: r.from,
          to: r.to,
          callId: r.callId,
          cseq: r.cseq,
          maxForwards: r.maxForwards,
          contact: r.contact,
          headers: r.headers,
          body: r.body,
          contentType: r.body ? 'application/octet-stream' : undefined,
        });
        const wire = m.serialize();
        for (const transport of ['datagram', 'stream'] as const) {
          const p = parseMessage(wire, { transport }) as SipRequest;
          assert.equal(p.method, r.method);
          assert.ok(uriEquals(p.uri, r.uri));
          assert.equal(p.uri.toString(), r.uri.toString());
          assert.equal(p.maxForwards, r.maxForwards);
          checkCommon(m, p);
          assert.equal(p.contacts.length, r.contact.length);
          p.contacts.forEach((c, i) => assert.ok(uriEquals(c.uri, r.contact[i].uri)));
          for (const [n, v] of r.headers) assert.ok(p.getHeaders(n).includes(v), n);
          // an untouched parsed message serializes to the same bytes
          assert.ok(p.serialize().equals(wire));
        }
      }),
      { numRuns: 300, seed: 4475 },
    );
  });

  test('generated responses to generated requests', () => {
    fc.assert(
      fc.property(requestArb, fc.integer({ min: 100, max: 699 }), tagv, body, (r, status, tag, b) => {
        const req = createRequest({
          method: r.method,
          uri: r.uri,
          via: r.vias,
          from: r.from,
          to: r.to,
          callId: r.callId,
          cseq: r.cseq,
        });
        const res = createResponse(parseMessage(req.serialize()) as SipRequest, status, undefined, {
          toTag: tag,
          body: b,
          contentType: b ? 'text/plain' : undefined,
        });
        const p = parseMessage(res.serialize()) as SipResponse;
        assert.equal(p.status, status);
        assert.equal(p.reason, res.reason);
        checkCommon(res, p);
        if (r.to.tag === undefined && status > 100) assert.equal(p.toTag, tag);
      }),
      { numRuns: 200, seed: 3261 },
    );
  });

  test('generated URIs: parse(toString(u)) equals u', () => {
    fc.assert(
      fc.property(sipUri, (u) => {
        const p = parseUri(u.toString());
        assert.ok(p instanceof SipUri);
        assert.equal(p.toString(), u.toString());
        assert.ok(uriEquals(p, u));
        assert.equal(p.host, u.host);
        assert.equal(p.port, u.port);
        assert.equal(p.user, u.user);
      }),
      { numRuns: 500, seed: 3966 },
    );
  });
});
