import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DigestServer,
  answerChallenge,
  parseCredentials,
  parseMessage,
  type SipRequest,
} from '@switchboard/sip';
import { AbuseGuard } from './abuse';
import { Authenticator, authRealm, consumeCredentials } from './auth';
import { subscriber } from './test-helpers';

const NOW = 1_700_000_000_000;
const URI = 'sip:bob@biloxi.example.com';

function invite(proxyAuthorization: string[]): SipRequest {
  const lines = [
    `INVITE ${URI} SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK74bf9;rport',
    'Max-Forwards: 70',
    'From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl',
    `To: Bob <${URI}>`,
    'Call-ID: 3848276298220188511@atlanta.example.com',
    'CSeq: 3 INVITE',
    ...proxyAuthorization.map((v) => `Proxy-Authorization: ${v}`),
    'Content-Length: 0',
    '',
    '',
  ];
  return parseMessage(Buffer.from(lines.join('\r\n'))) as SipRequest;
}

function setup() {
  const subs = new Map([
    ['sip:alice@biloxi.example.com', subscriber('alice', 'secret', 'biloxi.example.com')],
  ]);
  const guard = new AbuseGuard(
    { maxRequests: 1000, windowMs: 1000, blockMs: 1000 },
    { maxFailures: 3, windowMs: 60_000, banMs: 60_000 },
    () => NOW,
  );
  // Two proxies, each with its own nonce secret (RFC 3665 §3.3: Proxy 1 atlanta, Proxy 2 biloxi).
  const digest = (secret: string) =>
    new DigestServer({ secret, nonceLifetimeSec: 300, algorithms: ['MD5'], clock: { now: () => NOW } });
  const atlanta = digest('atlanta');
  const biloxi = digest('biloxi');
  const auth = new Authenticator(biloxi, { byAor: (a) => subs.get(a) }, guard);
  const answer = (server: DigestServer, realm: string, password: string) =>
    answerChallenge({
      challengeValue: server.challenge({ realm }),
      method: 'INVITE',
      uri: URI,
      username: 'alice',
      password,
    });
  return { auth, atlanta, biloxi, answer };
}

test("consumeCredentials removes only the credentials of the proxy's realm; the others stay, in order (RFC 3261 §22.3)", () => {
  const { atlanta, biloxi, answer } = setup();
  const forAtlanta = answer(atlanta, 'atlanta.example.com', 'a');
  const forBiloxi = answer(biloxi, 'biloxi.example.com', 'b');
  const forChicago = answer(atlanta, 'chicago.example.com', 'c');
  const req = invite([forAtlanta, forBiloxi, forChicago]);
  consumeCredentials(req, 'atlanta.example.com');
  assert.deepEqual(req.proxyAuthorization, [forBiloxi, forChicago]);
  assert.match(req.serialize().toString(), /Proxy-Authorization: Digest username="alice", realm="biloxi/);
  consumeCredentials(req, 'biloxi.example.com');
  assert.deepEqual(req.proxyAuthorization, [forChicago]);
});

test('consumeCredentials leaves the request as it is when it holds nothing for the realm, and keeps values it cannot parse', () => {
  const { biloxi, answer } = setup();
  const forBiloxi = answer(biloxi, 'biloxi.example.com', 'b');
  const req = invite(['Digest garbage', forBiloxi]);
  const before = req.serialize().toString();
  consumeCredentials(req, 'atlanta.example.com');
  assert.equal(req.serialize().toString(), before);
  consumeCredentials(req, 'biloxi.example.com');
  assert.deepEqual(req.proxyAuthorization, ['Digest garbage']);
  assert.deepEqual(invite([]).proxyAuthorization, []);
});

test("a request carrying another proxy's credentials first is checked against the ones of our realm", () => {
  const { auth, atlanta, biloxi, answer } = setup();
  const forAtlanta = answer(atlanta, 'atlanta.example.com', 'whatever');
  const forBiloxi = answer(biloxi, 'biloxi.example.com', 'secret');
  const ok = auth.check(invite([forAtlanta, forBiloxi]), '192.0.2.1', 'biloxi.example.com');
  assert.equal(ok.ok, true);
  assert.equal(ok.ok && ok.subscriber.aor, 'sip:alice@biloxi.example.com');

  // Only another realm's credentials: a challenge in ours (not a failure counted against the source).
  const none = auth.check(invite([forAtlanta]), '192.0.2.1', 'biloxi.example.com');
  assert.equal(none.ok, false);
  if (!none.ok) {
    assert.equal(none.reason, 'no_credentials');
    assert.equal(none.response.status, 407);
    const challenge = none.response.getHeader('Proxy-Authenticate') ?? '';
    assert.match(challenge, /realm="biloxi\.example\.com"/);
  }
  assert.equal(parseCredentials(forAtlanta).realm, 'atlanta.example.com');
});

test('authRealm: our callers in their domain; other domains not challenged unless SWITCHBOARD_SIP_AUTH_FOREIGN=challenge, then in the called domain', () => {
  const base = {
    trusted: false,
    fromDomain: undefined,
    calledDomain: 'biloxi.example.com',
    defaultDomain: 'example.com',
    foreign: 'none' as const,
  };
  // A subscriber of ours (whatever it calls): its own domain's realm, and it must be that subscriber.
  assert.deepEqual(authRealm({ ...base, fromDomain: 'biloxi.example.com', calledDomain: undefined }), {
    realm: 'biloxi.example.com',
    local: true,
  });
  assert.deepEqual(authRealm({ ...base, fromDomain: 'example.com', foreign: 'challenge' }), {
    realm: 'example.com',
    local: true,
  });
  // Another domain's caller: let through by default (Kamailio's default config), challenged on request.
  assert.equal(authRealm(base), undefined);
  assert.deepEqual(authRealm({ ...base, foreign: 'challenge' }), {
    realm: 'biloxi.example.com',
    local: false,
  });
  // ... in the default domain when the Request-URI is not ours (then refused as a relay after it).
  assert.deepEqual(authRealm({ ...base, foreign: 'challenge', calledDomain: undefined }), {
    realm: 'example.com',
    local: false,
  });
  // Trusted peers and gateways are never challenged.
  assert.equal(authRealm({ ...base, trusted: true, foreign: 'challenge' }), undefined);
  assert.equal(authRealm({ ...base, trusted: true, fromDomain: 'example.com' }), undefined);
});

test('a replayed nonce-count with the right response is answered stale=true and counts toward no ban (a late retransmission, as Kamailio and OpenSIPS treat it)', () => {
  const { auth, biloxi, answer } = setup();
  const creds = answer(biloxi, 'biloxi.example.com', 'secret');
  assert.equal(auth.check(invite([creds]), '192.0.2.1', 'biloxi.example.com').ok, true);
  // The same request again, more times than the ban allows failures (3): each is a replay.
  for (let i = 0; i < 5; i++) {
    const again = auth.check(invite([creds]), '192.0.2.1', 'biloxi.example.com');
    assert.equal(again.ok, false);
    if (!again.ok) {
      assert.equal(again.reason, 'replay');
      assert.equal(again.response.status, 407);
      assert.match(again.response.getHeader('Proxy-Authenticate') ?? '', /stale=true/i);
    }
  }
  // Neither the user nor the source was banned: fresh credentials pass.
  const fresh = auth.check(
    invite([answer(biloxi, 'biloxi.example.com', 'secret')]),
    '192.0.2.1',
    'biloxi.example.com',
  );
  assert.equal(fresh.ok, true);
});

test('credentials for a nonce of this proxy before a restart (another secret) get stale=true, not a failure toward a ban', () => {
  const { auth, answer } = setup();
  const before = new DigestServer({
    secret: 'before the restart',
    nonceLifetimeSec: 300,
    algorithms: ['MD5'],
    clock: { now: () => NOW },
  });
  for (let i = 0; i < 5; i++) {
    const r = auth.check(
      invite([answer(before, 'biloxi.example.com', 'secret')]),
      '192.0.2.1',
      'biloxi.example.com',
    );
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, 'stale');
      assert.match(r.response.getHeader('Proxy-Authenticate') ?? '', /stale=true/i);
    }
  }
  // A wrong password with such a nonce is still a failure.
  const wrong = auth.check(
    invite([answer(before, 'biloxi.example.com', 'guess')]),
    '192.0.2.1',
    'biloxi.example.com',
  );
  assert.equal(!wrong.ok && wrong.reason, 'bad_nonce');
});
