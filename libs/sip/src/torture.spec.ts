/**
 * RFC 4475 / RFC 5118 conformance, driven by testdata/torture/INDEX.tsv: every
 * .sip file must have an INDEX row and an expectation here, and the expectation
 * must agree with the row's class (valid: accepted; invalid: rejected with the
 * status the RFC implies, or accepted where INDEX.tsv allows a liberal parser).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  parseMessage,
  SipParseError,
  SipRequest,
  SipResponse,
  SipUri,
  TelUri,
  AbsoluteUri,
  uriEquals,
  type SipParseErrorCode,
  type SipMessage,
} from './index';

const DIR = join(import.meta.dirname, '..', 'testdata', 'torture');

interface Row {
  name: string;
  section: string;
  cls: string;
  method: string;
  expected: string;
}
const rows: Row[] = readFileSync(join(DIR, 'INDEX.tsv'), 'utf8')
  .split('\n')
  .slice(1)
  .filter((l) => l.trim())
  .map((l) => {
    const [name, section, cls, method, expected] = l.split('\t');
    return { name, section, cls, method, expected };
  });
const details = new Map(
  readFileSync(join(DIR, 'DETAILS.tsv'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim())
    .map((l) => {
      const c = l.split('\t');
      return [c[0], { bytes: Number(c[2]), contentLength: c[6], bodyBytes: Number(c[7]) }] as const;
    }),
);

type Accept = { accept: (m: SipMessage, raw: Buffer) => void; liberal?: string };
type Reject = { reject: SipParseErrorCode; status: number; header?: string };
type Expect = Accept | Reject;

const req = (m: SipMessage): SipRequest => {
  assert.ok(m instanceof SipRequest, 'expected a request');
  return m;
};
const res = (m: SipMessage): SipResponse => {
  assert.ok(m instanceof SipResponse, 'expected a response');
  return m;
};
const sip = (u: unknown): SipUri => {
  assert.ok(u instanceof SipUri, `expected a SIP URI, got ${String(u)}`);
  return u;
};
const throwsParse = (fn: () => unknown, code: SipParseErrorCode) =>
  assert.throws(fn, (e: unknown) => e instanceof SipParseError && e.code === code);

const SDP_INVITE = (m: SipMessage, bodyLen: number) => {
  assert.equal(m.body.length, bodyLen);
  assert.ok(m.body.toString().startsWith('v=0'));
};

const EXPECT: Record<string, Expect> = {
  // ---------------------------------------------------------------- §3.1.1 valid
  wsinv: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'INVITE');
      const u = sip(r.uri);
      assert.equal(u.user, 'vivekg');
      assert.equal(u.host, 'chair-dnrc.example.com');
      assert.equal(u.params.get('unknownparam'), null);
      assert.equal(r.toTag, '1918181833n');
      assert.equal(sip(r.to.uri).user, 'vivekg');
      assert.equal(r.fromTag, '98asjd8');
      assert.equal(r.from.displayName, 'J Rosenberg \\"');
      assert.equal(sip(r.from.uri).user, 'jdrosen');
      assert.equal(r.maxForwards, 68);
      assert.equal(r.callId, 'wsinv.ndaksdj@192.0.2.1');
      assert.deepEqual(r.cseq, { seq: 9, method: 'INVITE' });
      assert.equal(r.via.protocol, 'SIP/2.0');
      assert.equal(r.via.transport, 'UDP');
      assert.equal(r.via.host, '192.0.2.2');
      assert.equal(r.via.branch, '390skdjuw');
      assert.equal(r.via.isRfc3261Branch, false);
      assert.equal(r.vias.length, 3);
      assert.equal(r.vias[1].transport, 'TCP');
      assert.equal(r.vias[1].host, 'spindle.example.com');
      assert.equal(r.vias[1].branch, 'z9hG4bK9ikj8');
      assert.equal(r.vias[2].host, '192.168.255.111');
      assert.equal(r.vias[2].branch, 'z9hG4bK30239');
      assert.equal(r.getHeader('Subject'), '');
      assert.equal(r.getHeader('s'), '');
      assert.equal(r.getHeader('NewFangledHeader'), 'newfangled value continued newfangled value');
      assert.equal(r.getHeader('UnknownHeaderWithUnusualValue'), ';;,,;;,;');
      assert.equal(r.routes.length, 1);
      assert.equal(sip(r.routes[0].uri).host, 'services.example.com');
      assert.ok(sip(r.routes[0].uri).lr);
      assert.equal(r.contacts.length, 1);
      assert.equal(r.contacts[0].displayName, 'Quoted string ""');
      assert.equal(r.contacts[0].params.get('newparam'), 'newvalue');
      assert.equal(r.contacts[0].params.get('secondparam'), null);
      assert.equal(r.contacts[0].q, 0.33);
      assert.equal(r.contentType, 'application/sdp');
      SDP_INVITE(r, 150);
    },
  },
  intmeth: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, "!interesting-Method0123456789_*+`.%indeed'~");
      const u = sip(r.uri);
      assert.equal(u.user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
      assert.equal(u.password, "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
      assert.equal(u.host, 'example.com');
      assert.equal(r.via.transport, 'TCP');
      assert.equal(r.via.branch, "z9hG4bK-.!%66*_+`'~");
      assert.equal(r.to.displayName, 'BEL:\x07 NUL:\x00 DEL:\x7f');
      assert.equal(sip(r.to.uri).user, "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*");
      assert.equal(sip(r.to.uri).password, null);
      assert.equal(r.from.displayName, "token1~` token2'+_ token3*%!.-");
      assert.equal(r.fromTag, "_token~1'+`*%!-.");
      assert.equal(r.from.params.get("fromParam''~+*_!.-%"), '"работающий"');
      assert.equal(r.callId, 'intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
      assert.deepEqual(r.cseq, { seq: 139122385, method: r.method });
      assert.equal(r.maxForwards, 255);
      assert.equal(r.getHeader("extensionHeader-!.%*+_`'~"), '\ufeff大停電');
      assert.equal(r.body.length, 0);
    },
  },
  esc01: {
    accept: (m) => {
      const r = req(m);
      const u = sip(r.uri);
      assert.equal(u.user, 'sips%3Auser%40example.com');
      assert.equal(u.userDecoded, 'sips:user@example.com');
      assert.equal(u.host, 'example.net');
      assert.equal(sip(r.to.uri).userDecoded, 'user');
      assert.ok(uriEquals(r.to.uri, 'sip:user@example.com'));
      assert.equal(sip(r.from.uri).userDecoded, 'I have spaces');
      assert.equal(r.fromTag, '938');
      assert.equal(r.callId, 'esc01.239409asdfakjkn23onasd0-3234');
      assert.equal(r.maxForwards, 87);
      assert.equal(r.contentType, 'application/sdp');
      const c = sip(r.contacts[0].uri);
      assert.equal(c.userDecoded, 'caller');
      assert.equal(c.params.get('%6C%72'), null); // "lr", escaped
      assert.equal(c.params.get('n%61me'), 'v%61lue%25%34%31');
      // name=value%41 (escaped '%' then "41"), not valueA
      assert.ok(uriEquals(c, 'sip:caller@host5.example.net;lr;name=value%2541'));
      assert.ok(!uriEquals(c, 'sip:caller@host5.example.net;lr;name=valueA'));
      SDP_INVITE(r, 150);
    },
  },
  escnull: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'REGISTER');
      assert.equal(sip(r.to.uri).userDecoded, 'null-\x00-null');
      assert.equal(r.contacts.length, 2);
      const [a, b] = r.contacts.map((c) => sip(c.uri));
      assert.equal(a.userDecoded, '\x00');
      assert.equal(b.userDecoded, '\x00\x00');
      assert.ok(!uriEquals(a, b));
      assert.equal(r.body.length, 0);
    },
  },
  esc02: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'RE%47IST%45R');
      assert.notEqual(r.method, 'REGISTER');
      assert.deepEqual(r.cseq, { seq: 29344, method: 'RE%47IST%45R' });
      assert.equal(r.to.displayName, '%Z%45');
      assert.equal(r.from.displayName, '%Z%45');
      assert.equal(r.via.branch, 'z9hG4bK209%fzsnel234');
      // "C%6Fntact" is an unknown header, not Contact
      assert.equal(r.contacts.length, 2);
      assert.deepEqual(
        r.contacts.map((c) => sip(c.uri).host),
        ['host1.example.com', 'host3.example.com'],
      );
      assert.equal(r.getHeader('C%6Fntact'), '<sip:alias2@host2.example.com>');
    },
  },
  lwsdisp: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'OPTIONS');
      assert.equal(r.from.displayName, 'caller');
      assert.equal(sip(r.from.uri).user, 'caller');
      assert.equal(r.fromTag, '323');
    },
  },
  longreq: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.vias.length, 34);
      assert.equal(r.via.host, 'sip33.example.com');
      assert.equal(r.via.branch, undefined);
      assert.equal(r.vias[33].host, 'host.example.com');
      assert.equal(r.vias[33].received, '192.0.2.5');
      assert.ok(r.vias[33].branch!.startsWith('verylonglong'));
      assert.ok(r.to.displayName!.startsWith('I have a user name of extreme'));
      assert.equal(sip(r.to.uri).port, 6000);
      assert.ok(r.fromTag!.startsWith('1298298298'));
      assert.ok(sip(r.from.uri).user!.startsWith('amazinglylongcallername'));
      assert.ok(r.callId.endsWith('longcallid'));
      assert.equal(r.contacts.length, 1);
      SDP_INVITE(r, 150);
    },
  },
  dblreq: {
    accept: (m, raw) => {
      const r = req(m);
      assert.equal(r.method, 'REGISTER');
      assert.equal(r.body.length, 0);
      assert.ok(raw.length > r.serialize().length);
      assert.ok(!r.serialize().toString().includes('INVITE'));
    },
  },
  semiuri: {
    accept: (m) => {
      const r = req(m);
      const u = sip(r.uri);
      assert.equal(u.user, 'user;par=u%40example.net');
      assert.equal(u.userDecoded, 'user;par=u@example.net');
      assert.equal(u.host, 'example.com');
      assert.equal(u.params.size, 0);
      assert.deepEqual(r.getHeaderValues('Accept'), [
        'application/sdp',
        'application/pkcs7-mime',
        'multipart/mixed',
        'multipart/signed',
        'message/sip',
        'message/sipfrag',
      ]);
    },
  },
  transports: {
    accept: (m) => {
      const r = req(m);
      assert.deepEqual(
        r.vias.map((v) => v.transport),
        ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP'],
      );
      assert.deepEqual(
        r.vias.map((v) => v.host),
        ['t1.example.com', 't2.example.com', 't3.example.com', 't4.example.com', 't5.example.com'],
      );
      assert.equal(r.callId, 'transports.kijh4akdnaqjkwendsasfdj');
    },
  },
  mpart01: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'MESSAGE');
      assert.equal(r.via.host, '127.0.0.1');
      assert.equal(r.via.port, 5070);
      assert.equal(r.via.rport, null);
      assert.equal(r.body.length, 553);
      assert.ok(r.body.includes(0));
      assert.equal(r.contentType, 'multipart/mixed;boundary=7a9cbec02ceef655');
      assert.equal(sip(r.routes[0].uri).port, 5080);
    },
  },
  unreason: {
    accept: (m) => {
      const r = res(m);
      assert.equal(r.status, 200);
      assert.equal(r.reason, '= 2**3 * 5**2 но сто девяносто девять - простое');
      assert.equal(r.toTag, '2229');
      assert.equal(r.body.length, 154);
    },
  },
  noreason: {
    accept: (m) => {
      const r = res(m);
      assert.equal(r.status, 100);
      assert.equal(r.reason, '');
      assert.equal(r.via.branch, 'z9hG4bK2398ndaoe');
    },
  },
  // ---------------------------------------------------------------- §3.1.2 invalid
  badinv01: { reject: 'bad_header', status: 400, header: 'via' },
  clerr: { reject: 'bad_content_length', status: 400 },
  ncl: { reject: 'bad_content_length', status: 400 },
  scalar02: { reject: 'bad_header', status: 400, header: 'cseq' },
  scalarlg: { reject: 'bad_header', status: 400, header: 'cseq' },
  quotbal: { reject: 'bad_header', status: 400, header: 'to' },
  ltgtruri: { reject: 'bad_uri', status: 400 },
  lwsruri: { reject: 'bad_start_line', status: 400 },
  lwsstart: {
    liberal: 'accept liberally',
    accept: (m) => {
      const r = req(m);
      assert.equal(r.uri.toString(), 'sip:user@example.com');
      // forwarded without the extra SP
      assert.ok(r.serialize().toString().startsWith('INVITE sip:user@example.com SIP/2.0\r\n'));
    },
  },
  trws: {
    liberal: 'accept liberally',
    accept: (m) => {
      const r = req(m);
      assert.equal(r.method, 'OPTIONS');
      assert.ok(r.serialize().toString().startsWith('OPTIONS sip:remote-target@example.com SIP/2.0\r\n'));
    },
  },
  escruri: { reject: 'bad_uri', status: 400 },
  baddate: {
    liberal: 'otherwise ignore Date',
    accept: (m) => {
      const r = req(m);
      assert.equal(r.getHeader('Date'), 'Fri, 01 Jan 2010 16:00:00 EST');
      SDP_INVITE(r, 150);
    },
  },
  regbadct: {
    liberal: 'respond 400 when the Contact is used: the registrar reads it',
    accept: (m) => {
      const r = req(m);
      throwsParse(() => r.contacts, 'bad_header');
    },
  },
  badaspec: { reject: 'bad_header', status: 400, header: 'to' },
  baddn: { reject: 'bad_header', status: 400, header: 'from' },
  badvers: { reject: 'bad_version', status: 505 },
  mismatch01: { reject: 'cseq_mismatch', status: 400 },
  mismatch02: { reject: 'cseq_mismatch', status: 501 },
  bigcode: { reject: 'bad_start_line', status: 400 },
  // ---------------------------------------------------------------- §3.2
  badbranch: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.via.branch, 'z9hG4bK');
      assert.equal(r.via.isRfc3261Branch, false);
    },
  },
  // ---------------------------------------------------------------- §3.3
  insuf: { reject: 'missing_header', status: 400 },
  unkscm: {
    accept: (m) => {
      const r = req(m);
      assert.ok(r.uri instanceof AbsoluteUri);
      assert.equal(r.uri.scheme, 'nobodyknowsthisscheme');
      assert.equal((r.uri as AbsoluteUri).opaque, 'totallyopaquecontent');
    },
  },
  novelsc: {
    accept: (m) => {
      const r = req(m);
      assert.ok(r.uri instanceof AbsoluteUri);
      assert.equal(r.uri.scheme, 'soap.beep');
      assert.equal((r.uri as AbsoluteUri).opaque, '//192.0.2.103:3002');
    },
  },
  unksm2: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.to.uri.scheme, 'isbn');
      assert.equal(r.from.uri.scheme, 'http');
      assert.equal(r.fromTag, '3234233');
      assert.equal(r.contacts[0].uri.scheme, 'name');
      assert.equal(r.to.sipUri, undefined);
    },
  },
  bext01: {
    accept: (m) => {
      const r = req(m);
      assert.deepEqual(r.getHeaderValues('Require'), ['nothingSupportsThis', 'nothingSupportsThisEither']);
      assert.deepEqual(r.getHeaderValues('Proxy-Require'), [
        'noProxiesSupportThis',
        'norDoAnyProxiesSupportThis',
      ]);
      assert.equal(r.via.transport, 'TLS');
    },
  },
  invut: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.contentType, 'application/unknownformat');
      assert.equal(r.body.length, 40);
    },
  },
  regaut01: {
    accept: (m) => {
      const r = req(m);
      assert.deepEqual(r.authorization, ['NoOneKnowsThisScheme opaque-data=here']);
      assert.equal(r.body.length, 0);
      // forwarded unchanged
      assert.ok(r.serialize().includes('Authorization: NoOneKnowsThisScheme opaque-data=here\r\n'));
    },
  },
  multi01: { reject: 'duplicate_header', status: 400 },
  mcl01: { reject: 'bad_content_length', status: 400 },
  bcast: {
    accept: (m) => {
      const r = res(m);
      assert.equal(r.vias.length, 2);
      assert.equal(r.vias[1].host, '255.255.255.255');
    },
  },
  zeromf: {
    accept: (m) => {
      assert.equal(req(m).maxForwards, 0);
    },
  },
  cparam01: {
    accept: (m) => {
      const c = req(m).contacts[0];
      const u = sip(c.uri);
      assert.equal(u.user, '+19725552222');
      assert.equal(u.params.size, 0);
      assert.equal(c.params.get('unknownparam'), null);
    },
  },
  cparam02: {
    accept: (m) => {
      const c = req(m).contacts[0];
      const u = sip(c.uri);
      assert.equal(u.params.get('unknownparam'), null);
      assert.equal(c.params.size, 0);
      assert.equal(u.toString(), 'sip:+19725552222@gw1.example.net;unknownparam');
    },
  },
  regescrt: {
    accept: (m) => {
      const u = sip(req(m).contacts[0].uri);
      assert.deepEqual(u.headers, [['Route', '%3Csip:sip.example.com%3E']]);
      assert.equal(u.toString(), 'sip:user@example.com?Route=%3Csip:sip.example.com%3E');
    },
  },
  sdp01: {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.getHeader('Accept'), 'text/nobodyKnowsThis');
      SDP_INVITE(r, 150);
    },
  },
  // ---------------------------------------------------------------- §3.4
  inv2543: {
    accept: (m, raw) => {
      const r = req(m);
      assert.equal(r.via.branch, undefined);
      assert.equal(r.fromTag, undefined);
      assert.equal(r.maxForwards, null);
      assert.equal(r.hasHeader('Content-Length'), false);
      assert.equal(r.body.length, raw.length - raw.indexOf('\r\n\r\n') - 4);
      assert.equal(sip(r.from.uri).params.get('user'), 'phone');
      assert.equal(sip(r.recordRoutes[0].uri).maddr, 'ss1.example.com');
      // written with a Content-Length for the next hop
      assert.equal(parseMessage(r.serialize(), { transport: 'stream' }).body.length, r.body.length);
    },
  },
  test: { reject: 'bad_start_line', status: 400 },
  // ---------------------------------------------------------------- RFC 5118
  'ipv6-good': {
    accept: (m) => {
      const r = req(m);
      const u = sip(r.uri);
      assert.equal(u.host, '[2001:db8::10]');
      assert.equal(u.hostType, 'ipv6');
      assert.equal(u.hostname, '2001:db8::10');
      assert.equal(u.port, null);
      assert.equal(r.via.host, '[2001:db8::9:1]');
      assert.equal(sip(r.contacts[0].uri).host, '[2001:db8::1]');
    },
  },
  'ipv6-bad': { reject: 'bad_uri', status: 400 },
  'port-ambiguous': {
    accept: (m) => {
      const u = sip(req(m).uri);
      assert.equal(u.host, '[2001:db8::10:5070]');
      assert.equal(u.port, null);
    },
  },
  'port-unambiguous': {
    accept: (m) => {
      const u = sip(req(m).uri);
      assert.equal(u.host, '[2001:db8::10]');
      assert.equal(u.port, 5070);
    },
  },
  'via-received-param-with-delim': {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.via.received, '[2001:db8::9:255]');
      assert.equal(r.via.branch, 'z9hG4bKas3-111');
      assert.equal(r.toTag, 'bd76ya');
    },
  },
  'via-received-param-no-delim': {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.via.received, '2001:db8::9:255');
      assert.equal(r.via.branch, 'z9hG4bKas3');
    },
  },
  'ipv6-in-sdp': {
    accept: (m) => {
      const r = req(m);
      assert.equal(sip(r.to.uri).host, '[2001:db8::10]');
      assert.equal(r.body.length, 251);
      assert.ok(r.body.toString().includes('IP6 2001:db8::20'));
    },
  },
  'mult-ip-in-header': {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.via.host, '[2001:db8::9:1]');
      assert.equal(r.via.port, 6050);
      assert.equal(r.vias[1].host, '192.0.2.1');
      assert.equal(r.vias[2].host, '[2001:db8::9:255]');
      assert.equal(r.vias[2].received, '192.0.2.200');
    },
  },
  'mult-ip-in-sdp': {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.body.length, 189);
      assert.ok(r.body.toString().includes('IP4 '));
      assert.ok(r.body.toString().includes('IP6 '));
    },
  },
  'ipv4-mapped-ipv6': {
    accept: (m) => {
      const r = req(m);
      assert.equal(r.via.host, '[::ffff:192.0.2.10]');
      assert.equal(r.via.port, 19823);
      assert.equal(r.vias[1].host, '[::ffff:192.0.2.2]');
      assert.equal(sip(r.contacts[0].uri).host, '[::ffff:192.0.2.2]');
      assert.equal(r.contacts[0].displayName, 'T. desk phone');
      assert.equal(r.body.length, 245);
    },
  },
  'ipv6-bug-abnf-3-colons': {
    accept: (m) => {
      const r = req(m);
      assert.equal(sip(r.uri).host, '[2001:db8:::192.0.2.1]');
      assert.equal(sip(r.to.uri).hostType, 'ipv6');
    },
  },
  'ipv6-correct-abnf-2-colons': {
    accept: (m) => {
      const r = req(m);
      assert.equal(sip(r.uri).host, '[2001:db8::192.0.2.1]');
      assert.ok(!(r.uri instanceof TelUri));
    },
  },
};

function isReject(e: Expect): e is Reject {
  return 'reject' in e;
}

describe('RFC 4475 / RFC 5118 torture messages', () => {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.sip'))
    .map((f) => f.slice(0, -4))
    .sort();

  test('every file has an INDEX.tsv row and an expectation; every row has a file', () => {
    const names = new Set(rows.map((r) => r.name));
    for (const f of files) {
      assert.ok(names.has(f), `${f}.sip has no INDEX.tsv row`);
      assert.ok(EXPECT[f], `${f}.sip has no expectation in torture.spec.ts`);
    }
    for (const r of rows) assert.ok(files.includes(r.name), `INDEX.tsv row ${r.name} has no file`);
    assert.equal(files.length, 62);
  });

  test('files are the byte-exact copies DETAILS.tsv describes', () => {
    for (const f of files) {
      const d = details.get(f);
      assert.ok(d, `${f} missing from DETAILS.tsv`);
      assert.equal(readFileSync(join(DIR, `${f}.sip`)).length, d.bytes, f);
    }
  });

  for (const row of rows) {
    test(`${row.name} (${row.section}, ${row.cls}): ${row.expected}`, () => {
      const exp = EXPECT[row.name];
      assert.ok(exp, `no expectation for ${row.name}`);
      const raw = readFileSync(join(DIR, `${row.name}.sip`));
      // the expectation must agree with the class INDEX.tsv gives
      if (row.cls === 'valid' || row.cls === 'application-oddity' || row.cls === 'transaction-oddity') {
        assert.ok(!isReject(exp), `${row.name} is ${row.cls}: must be accepted`);
      } else {
        if (!isReject(exp)) {
          assert.ok(exp.liberal, `${row.name} is ${row.cls}: accepting it needs a reason`);
          assert.match(
            row.expected,
            /liberal|otherwise ignore|respond 400/,
            `INDEX.tsv does not allow accepting ${row.name}`,
          );
        }
      }
      if (isReject(exp)) {
        // the status INDEX.tsv names, when it names one
        const named = /respond (\d{3})/.exec(row.expected)?.[1] ?? /\b(50[15])\b/.exec(row.expected)?.[1];
        if (named && row.cls !== 'semantically-invalid') assert.equal(exp.status, Number(named));
        if (/\b505\b/.test(row.expected)) assert.equal(exp.status, 505);
        if (row.name === 'mismatch02') assert.ok(/501/.test(row.expected));
        let caught: unknown;
        try {
          parseMessage(raw);
        } catch (e) {
          caught = e;
        }
        assert.ok(caught instanceof SipParseError, `${row.name} should be rejected, got ${String(caught)}`);
        assert.equal(caught.code, exp.reject, caught.message);
        assert.equal(caught.status, exp.status);
        if (exp.header) assert.equal(caught.header, exp.header);
        return;
      }
      const m = parseMessage(raw);
      const wantMethod = row.method.startsWith('response ') ? null : row.method;
      if (wantMethod) assert.equal((m as SipRequest).method, wantMethod);
      else assert.equal((m as SipResponse).status, Number(row.method.slice(9)));
      const d = details.get(row.name)!;
      if (d.contentLength !== '' && /^\d+$/.test(d.contentLength) && row.name !== 'dblreq') {
        assert.equal(m.body.length, Number(d.contentLength));
      }
      exp.accept(m, raw);
      // forwarding an untouched message keeps it intact
      const again = parseMessage(m.serialize(), { lenient: row.cls !== 'valid' });
      assert.equal(again.callId, m.callId);
      assert.deepEqual(again.cseq, m.cseq);
      assert.equal(again.via.branch, m.via.branch);
      assert.ok(again.body.equals(m.body));
    });
  }
});
