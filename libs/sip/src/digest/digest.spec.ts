import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  DigestParseError,
  DigestServer,
  answerChallenge,
  computeResponse,
  ha1,
  parseAuthHeader,
  parseChallenges,
  parseCredentials,
  quoteAuthParam as quote,
  type DigestHashName,
} from './index';

// RFC 2617 §3.5
const R2617 = {
  username: 'Mufasa',
  realm: 'testrealm@host.com',
  password: 'Circle Of Life',
  nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
  cnonce: '0a4f113b',
  opaque: '5ccc069c403ebaf9f0171e9517f40e41',
  uri: '/dir/index.html',
  response: '6629fae49393a05397450978507c4ef1',
};
// RFC 7616 §3.9.1
const R7616 = {
  username: 'Mufasa',
  realm: 'http-auth@example.org',
  password: 'Circle of Life',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
  uri: '/dir/index.html',
  md5: '8ca523f5e9506fed4657c9700eebdbec',
  sha256: '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1',
};

describe('digest computation: RFC worked examples', () => {
  test('RFC 2617 §3.5 (MD5, qop=auth)', () => {
    const r = computeResponse({
      algorithm: 'MD5',
      ha1: ha1(R2617.username, R2617.realm, R2617.password, 'MD5'),
      nonce: R2617.nonce,
      method: 'GET',
      uri: R2617.uri,
      qop: 'auth',
      nc: '00000001',
      cnonce: R2617.cnonce,
    });
    assert.equal(r, R2617.response);
  });

  test('RFC 7616 §3.9.1 MD5 and SHA-256', () => {
    for (const [alg, expected] of [
      ['MD5', R7616.md5],
      ['SHA-256', R7616.sha256],
    ] as [DigestHashName, string][]) {
      const r = computeResponse({
        algorithm: alg,
        ha1: ha1(R7616.username, R7616.realm, R7616.password, alg),
        nonce: R7616.nonce,
        method: 'GET',
        uri: R7616.uri,
        qop: 'auth',
        nc: '00000001',
        cnonce: R7616.cnonce,
      });
      assert.equal(r, expected, alg);
    }
  });

  test('RFC 2069 form (no qop) on the RFC 2617 inputs', () => {
    // KD(HA1, nonce:HA2), the value other implementations compute for these inputs
    const r = computeResponse({
      algorithm: 'MD5',
      ha1: ha1(R2617.username, R2617.realm, R2617.password),
      nonce: R2617.nonce,
      method: 'GET',
      uri: R2617.uri,
    });
    assert.equal(r, '670fd8c2df070c60b045671b8b24ff02');
  });

  test('ha1 uses the hash of the algorithm, ignoring -sess', () => {
    assert.equal(ha1('u', 'r', 'p', 'SHA-256').length, 64);
    assert.equal(ha1('u', 'r', 'p', 'SHA-256-sess'), ha1('u', 'r', 'p', 'SHA-256'));
    assert.equal(ha1('u', 'r', 'p', 'SHA-512-256').length, 64);
    assert.notEqual(ha1('u', 'r', 'p', 'SHA-512-256'), ha1('u', 'r', 'p', 'SHA-256'));
    assert.equal(ha1('u', 'r', 'p').length, 32);
  });
});

describe('credentials parsing', () => {
  test('RFC 2617 example with line folding', () => {
    const v =
      'Digest username="Mufasa",\r\n realm="testrealm@host.com",\r\n\tnonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n' +
      ' uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b",\r\n' +
      ' response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"';
    const c = parseCredentials(v);
    assert.equal(c.username, 'Mufasa');
    assert.equal(c.realm, R2617.realm);
    assert.equal(c.nonce, R2617.nonce);
    assert.equal(c.uri, R2617.uri);
    assert.equal(c.qop, 'auth');
    assert.equal(c.nc, '00000001');
    assert.equal(c.cnonce, R2617.cnonce);
    assert.equal(c.response, R2617.response);
    assert.equal(c.opaque, R2617.opaque);
    assert.equal(c.algorithm, undefined);
  });

  test('any order, case-insensitive names and scheme, spaces around =, quoted tokens', () => {
    const c = parseCredentials(
      'DIGEST  Response = "abc" ,URI="sip:bob@example.com;transport=tcp",NONCE="n",Realm="r", USERNAME="a\\"li\\\\ce" , algorithm=sha-256, QOP="auth", nc="0000000a", cnonce="x"',
    );
    assert.equal(c.username, 'a"li\\ce');
    assert.equal(c.uri, 'sip:bob@example.com;transport=tcp');
    assert.equal(c.response, 'abc');
    assert.equal(c.algorithm, 'sha-256');
    assert.equal(c.qop, 'auth');
    assert.equal(c.nc, '0000000a');
  });

  test('unquoted uri from sloppy UAs is tolerated', () => {
    const c = parseCredentials(
      'Digest username="u", realm="r", nonce="n", uri=sip:r@example.com, response="00"',
    );
    assert.equal(c.uri, 'sip:r@example.com');
  });

  test('malformed values throw DigestParseError naming the field', () => {
    const bad: [string, string | undefined][] = [
      ['Digest realm="r", nonce="n", uri="u", response="x"', 'username'],
      ['Digest username="u", realm="r", nonce="n", uri="u"', 'response'],
      ['Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, nc=00000001', 'cnonce'],
      ['Digest username="u", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c", nc=1', 'nc'],
      ['Digest username="u, realm="r"', undefined],
      ['Digest username="u", username="v", realm="r", nonce="n", uri="u", response="x"', 'username'],
      ['Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==', undefined],
      ['Digest username="u" realm="r"', undefined],
      ['Digest username="u",\r\nrealm="r"', undefined],
      ['', undefined],
    ];
    for (const [v, field] of bad) {
      assert.throws(
        () => parseCredentials(v),
        (e: unknown) =>
          e instanceof DigestParseError && e.kind === 'invalid_argument' && (!field || e.field === field),
        v,
      );
    }
  });

  test('quoted-strings: escapes at either end, non-ASCII kept; a bare value ends at any whitespace, only spaces and tabs separate', () => {
    const [p] = parseAuthHeader('Digest a="\\"x\\"", b="Zoë ☎", c=\tv1\t, e=""');
    assert.deepEqual(Object.fromEntries(p!.params), { a: '"x"', b: 'Zoë ☎', c: 'v1', e: '' });
    assert.deepEqual([...p!.quoted], ['a', 'b', 'e']);
    for (const bad of [
      'Digest a="x\\"',
      'Digest a="x\\',
      'Digëst a=1',
      'Digest a=1 b',
      'Digest d=v2\u00a0, e=1',
    ]) {
      assert.throws(() => parseAuthHeader(bad), DigestParseError, bad);
    }
  });

  test('parseAuthHeader splits several challenges in one value', () => {
    const all = parseAuthHeader('Digest realm="a", nonce="1", Basic realm="b", Digest realm="c", nonce="2"');
    assert.deepEqual(
      all.map((p) => [p.scheme, p.params.get('realm')]),
      [
        ['Digest', 'a'],
        ['Basic', 'b'],
        ['Digest', 'c'],
      ],
    );
    assert.deepEqual(
      parseChallenges(['Digest realm="a", nonce="1", Basic realm="b", Digest realm="c", nonce="2"']).map(
        (c) => c.realm,
      ),
      ['a', 'c'],
    );
  });
});

describe('client: answerChallenge', () => {
  const challenges7616 = [
    `Digest realm="${R7616.realm}", qop="auth, auth-int", algorithm=SHA-256, nonce="${R7616.nonce}", opaque="${R7616.opaque}"`,
    `Digest realm="${R7616.realm}", qop="auth, auth-int", algorithm=MD5, nonce="${R7616.nonce}", opaque="${R7616.opaque}"`,
  ];

  test('RFC 7616: picks SHA-256 over MD5 whatever the order, and reproduces the RFC response', () => {
    for (const order of [challenges7616, [...challenges7616].reverse()]) {
      const v = answerChallenge({
        challengeValue: order,
        method: 'GET',
        uri: R7616.uri,
        username: R7616.username,
        password: R7616.password,
        cnonce: R7616.cnonce,
        nc: 1,
      });
      const c = parseCredentials(v);
      assert.equal(c.response, R7616.sha256);
      assert.equal(c.algorithm, 'SHA-256');
      assert.equal(c.opaque, R7616.opaque);
      assert.equal(c.qop, 'auth');
      assert.equal(c.nc, '00000001');
      assert.equal(c.cnonce, R7616.cnonce);
    }
  });

  test('RFC 7616: MD5 when only MD5 is offered; or when only an MD5 HA1 is held', () => {
    const onlyMd5 = answerChallenge({
      challengeValue: challenges7616[1]!,
      method: 'GET',
      uri: R7616.uri,
      username: R7616.username,
      password: R7616.password,
      cnonce: R7616.cnonce,
      nc: 1,
    });
    assert.equal(parseCredentials(onlyMd5).response, R7616.md5);
    const withHa1 = answerChallenge({
      challengeValue: challenges7616,
      method: 'GET',
      uri: R7616.uri,
      username: R7616.username,
      ha1: { MD5: ha1(R7616.username, R7616.realm, R7616.password, 'MD5') },
      cnonce: R7616.cnonce,
      nc: 1,
    });
    assert.equal(parseCredentials(withHa1).response, R7616.md5);
  });

  test('RFC 2617 challenge (no algorithm, qop="auth,auth-int")', () => {
    const v = answerChallenge({
      challengeValue: `Digest realm="${R2617.realm}", qop="auth,auth-int", nonce="${R2617.nonce}", opaque="${R2617.opaque}"`,
      method: 'GET',
      uri: R2617.uri,
      username: R2617.username,
      password: R2617.password,
      cnonce: R2617.cnonce,
      nc: 1,
    });
    const c = parseCredentials(v);
    assert.equal(c.response, R2617.response);
    assert.equal(c.algorithm, undefined);
  });

  test('refuses when nothing usable is offered', () => {
    assert.throws(
      () =>
        answerChallenge({
          challengeValue: 'Digest realm="r", nonce="n", algorithm=SHA-1',
          method: 'REGISTER',
          uri: 'sip:r',
          username: 'u',
          password: 'p',
        }),
      DigestParseError,
    );
    assert.throws(
      () =>
        answerChallenge({
          challengeValue: 'Digest realm="r", nonce="n", algorithm=SHA-256',
          method: 'REGISTER',
          uri: 'sip:r',
          username: 'u',
          ha1: { MD5: 'x' },
        }),
      DigestParseError,
    );
  });
});

class FakeClock {
  constructor(public t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(sec: number): void {
    this.t += sec * 1000;
  }
}

describe('server: DigestServer', () => {
  const realm = 'sip.example.net';
  const user = 'alice';
  const password = 's3cret!';
  const store = {
    MD5: ha1(user, realm, password, 'MD5'),
    'SHA-256': ha1(user, realm, password, 'SHA-256'),
  };
  const uri = 'sip:sip.example.net';
  const setup = (opts: { maxTrackedNonces?: number } = {}) => {
    const clock = new FakeClock();
    const server = new DigestServer({ realm, secret: 'test-secret', nonceLifetimeSec: 300, clock, ...opts });
    return { clock, server };
  };
  const answer = (challenge: string | string[], nc = 1, pw = password, username = user) =>
    answerChallenge({
      challengeValue: challenge,
      method: 'REGISTER',
      uri,
      username,
      password: pw,
      nc,
      cnonce: 'cn' + nc,
    });
  const lookupHa1 = (u: string, r: string, alg: DigestHashName) =>
    u === user && r === realm ? store[alg as 'MD5' | 'SHA-256'] : undefined;

  test('challenge offers SHA-256 then MD5, qop="auth", one value each, same nonce', () => {
    const { server } = setup();
    const ch = server.challenge();
    assert.equal(ch.length, 2);
    const parsed = parseChallenges(ch);
    assert.deepEqual(
      parsed.map((c) => c.algorithm),
      ['SHA-256', 'MD5'],
    );
    for (const c of parsed) {
      assert.equal(c.realm, realm);
      assert.deepEqual(c.qop, ['auth']);
      assert.equal(c.stale, false);
    }
    assert.equal(parsed[0]!.nonce, parsed[1]!.nonce);
    assert.match(
      ch[0]!,
      /^Digest realm="sip\.example\.net", nonce="[A-Za-z0-9_-]+", algorithm=SHA-256, qop="auth"$/,
    );
    assert.equal(parseChallenges(server.challenge({ stale: true }))[0]!.stale, true);
    assert.notEqual(parseChallenges(server.challenge())[0]!.nonce, parsed[0]!.nonce);
  });

  test('a seeded challenge is the same for its seed within a bucket (a stateless 401 resent), and verifies', () => {
    const { server, clock } = setup(); // buckets of 1 s (a tenth of the lifetime, at most 1 s)
    clock.t = 1_700_000_020_200; // 200 ms into a bucket (they start at whole seconds)
    const nonceOf = (seed?: string) => parseChallenges(server.challenge({ seed }))[0]!.nonce;
    const a = nonceOf('branch-1');
    clock.advance(0.5);
    assert.equal(nonceOf('branch-1'), a, 'the retransmission half a second later gets the same nonce');
    assert.notEqual(nonceOf('branch-2'), a);
    assert.notEqual(nonceOf(), nonceOf(), 'unseeded nonces stay random');
    const other = new DigestServer({ realm, secret: 'other', nonceLifetimeSec: 300, clock });
    assert.notEqual(
      parseChallenges(other.challenge({ seed: 'branch-1' }))[0]!.nonce,
      a,
      'keyed by the secret',
    );
    const ch = server.challenge({ seed: 'branch-1' });
    assert.equal(server.verify({ credentials: answer(ch, 1), method: 'REGISTER', lookupHa1 }).ok, true);
    clock.advance(0.5); // the next bucket
    assert.notEqual(nonceOf('branch-1'), a);
    // counted as issued at its bucket's start: stale 300 s after that, not after the challenge
    clock.advance(298.7); // 299.9 s after the bucket's start
    assert.equal(server.verify({ credentials: answer(ch, 2), method: 'REGISTER', lookupHa1 }).ok, true);
    clock.advance(0.5);
    assert.deepEqual(server.verify({ credentials: answer(ch, 3), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'stale',
      username: user,
    });
  });

  test('seeded nonces past the tracking limit: only those older than what is still tracked turn stale', () => {
    // Every REGISTER of a stateless 401 gets its own seeded nonce. With buckets of 30 s the
    // eviction of the oldest tracked nonce marked its whole bucket stale, so once the limit was
    // reached every new nonce of the bucket failed (seen in bench/proxy: REGISTERs at 5,500/s
    // failed after 100,000).
    const { server, clock } = setup({ maxTrackedNonces: 10 });
    clock.t = 1_700_000_000_000;
    let oldest: string[] = [];
    for (let i = 0; i < 40; i++) {
      const ch = server.challenge({ seed: `branch-${i}` });
      if (i === 0) oldest = ch;
      clock.advance(0.001);
      assert.equal(
        server.verify({ credentials: answer(ch, 1), method: 'REGISTER', lookupHa1 }).ok,
        true,
        `REGISTER ${i}`,
      );
      clock.advance(0.2); // ten tracked nonces span two seconds
    }
    assert.equal(server.trackedNonces, 10);
    // The first nonce was evicted: its next use is refused as stale, never accepted again.
    assert.deepEqual(server.verify({ credentials: answer(oldest, 2), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'stale',
      username: user,
    });
  });

  test('round trip client ↔ server with SHA-256 and with MD5', () => {
    const { server } = setup();
    const ch = server.challenge();
    const sha = server.verify({
      credentials: answer(ch),
      method: 'REGISTER',
      requestUri: uri,
      ha1ByAlgorithm: store,
    });
    assert.deepEqual(sha, { ok: true, username: user, algorithm: 'SHA-256', realm });
    const md5 = server.verify({
      credentials: answer(server.challenge()[1]!),
      method: 'REGISTER',
      requestUri: uri,
      lookupHa1,
    });
    assert.deepEqual(md5, { ok: true, username: user, algorithm: 'MD5', realm });
  });

  test('the method is covered by the response', () => {
    const { server } = setup();
    const r = server.verify({
      credentials: answer(server.challenge()),
      method: 'INVITE',
      ha1ByAlgorithm: store,
    });
    assert.deepEqual(r, { ok: false, reason: 'bad_response', username: user });
  });

  test('nonce-count: increasing nc accepted, repeated or lower nc is a replay', () => {
    const { server } = setup();
    const ch = server.challenge();
    const v = (nc: number) => server.verify({ credentials: answer(ch, nc), method: 'REGISTER', lookupHa1 });
    assert.equal(v(1).ok, true);
    assert.deepEqual(v(1), { ok: false, reason: 'replay', username: user });
    assert.equal(v(2).ok, true);
    assert.equal(v(5).ok, true);
    assert.deepEqual(v(3), { ok: false, reason: 'replay', username: user });
    assert.deepEqual(v(5), { ok: false, reason: 'replay', username: user });
    assert.equal(v(6).ok, true);
  });

  test('wrong password and unknown user: distinct reasons for the log', () => {
    const { server } = setup();
    const ch = server.challenge();
    assert.deepEqual(server.verify({ credentials: answer(ch, 1, 'nope'), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'bad_response',
      username: user,
    });
    assert.deepEqual(
      server.verify({ credentials: answer(ch, 1, password, 'mallory'), method: 'REGISTER', lookupHa1 }),
      {
        ok: false,
        reason: 'unknown_user',
        username: 'mallory',
      },
    );
    // a failed attempt does not burn the nonce-count
    assert.equal(server.verify({ credentials: answer(ch, 1), method: 'REGISTER', lookupHa1 }).ok, true);
  });

  test('tampered, foreign and malformed nonces are bad_nonce; with a right response, only stale', () => {
    const { server, clock } = setup();
    const ch = server.challenge();
    const nonce = parseChallenges(ch)[0]!.nonce;
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    for (const bad of [
      flip(nonce, 3),
      flip(nonce, 20),
      flip(nonce, nonce.length - 2),
      nonce.slice(1),
      'abc',
      'a+b/',
    ]) {
      const forged = ch.map((c) => c.replace(nonce, bad));
      const wrong = server.verify({ credentials: answer(forged, 1, 'nope'), method: 'REGISTER', lookupHa1 });
      assert.deepEqual(wrong, { ok: false, reason: 'bad_nonce', username: user }, bad);
      // The client knows the password (RFC 7616 §3.3): it retries with a fresh nonce.
      const right = server.verify({ credentials: answer(forged), method: 'REGISTER', lookupHa1 });
      assert.deepEqual(right, { ok: false, reason: 'stale', username: user }, bad);
    }
    // a nonce made by a server with another secret (this one before a restart, or a peer proxy)
    const other = new DigestServer({ realm, secret: 'other', nonceLifetimeSec: 300, clock });
    const foreign = other.challenge();
    assert.deepEqual(
      server.verify({ credentials: answer(foreign, 1, 'nope'), method: 'REGISTER', lookupHa1 }),
      { ok: false, reason: 'bad_nonce', username: user },
    );
    assert.deepEqual(server.verify({ credentials: answer(foreign), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'stale',
      username: user,
    });
  });

  test('a nonce is bound to its realm', () => {
    const clock = new FakeClock();
    const server = new DigestServer({ secret: 'k', nonceLifetimeSec: 60, clock });
    const chA = server.challenge({ realm: 'a.example' });
    const credsA = answerChallenge({
      challengeValue: chA,
      method: 'REGISTER',
      uri,
      username: 'u',
      password: 'p',
    });
    const h = (r: string) => ({ 'SHA-256': ha1('u', r, 'p', 'SHA-256') });
    assert.equal(
      server.verify({ credentials: credsA, method: 'REGISTER', ha1ByAlgorithm: h('a.example') }).ok,
      true,
    );
    // the same nonce presented for realm b.example (response recomputed by a client that knows b's password)
    const forged = chA.map((c) => c.replace('a.example', 'b.example'));
    const credsB = answerChallenge({
      challengeValue: forged,
      method: 'REGISTER',
      uri,
      username: 'u',
      password: 'p',
    });
    // not valid for b.example: the client, who knows b's password, is told to take a fresh one
    assert.deepEqual(
      server.verify({ credentials: credsB, method: 'REGISTER', ha1ByAlgorithm: h('b.example') }),
      {
        ok: false,
        reason: 'stale',
        username: 'u',
      },
    );
    assert.deepEqual(
      server.verify({ credentials: credsB, method: 'REGISTER', ha1ByAlgorithm: h('c.example') }),
      { ok: false, reason: 'bad_nonce', username: 'u' },
    );
    assert.deepEqual(
      server.verify({
        credentials: credsB,
        method: 'REGISTER',
        realm: 'a.example',
        ha1ByAlgorithm: h('b.example'),
      }),
      { ok: false, reason: 'realm_mismatch', username: 'u' },
    );
  });

  test('expired nonce: stale with the right password, bad_response with a wrong one', () => {
    const { server, clock } = setup();
    const ch = server.challenge();
    clock.advance(299);
    assert.equal(server.verify({ credentials: answer(ch, 1), method: 'REGISTER', lookupHa1 }).ok, true);
    clock.advance(1);
    assert.deepEqual(server.verify({ credentials: answer(ch, 2), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'stale',
      username: user,
    });
    assert.deepEqual(server.verify({ credentials: answer(ch, 3, 'wrong'), method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'bad_response',
      username: user,
    });
  });

  test('uri mismatch and malformed credentials', () => {
    const { server } = setup();
    const creds = answer(server.challenge());
    assert.deepEqual(
      server.verify({ credentials: creds, method: 'REGISTER', requestUri: 'sip:other.example', lookupHa1 }),
      {
        ok: false,
        reason: 'uri_mismatch',
        username: user,
      },
    );
    assert.deepEqual(server.verify({ credentials: 'Digest garbage', method: 'REGISTER', lookupHa1 }), {
      ok: false,
      reason: 'malformed',
    });
    assert.deepEqual(
      server.verify({
        credentials: creds.replace('algorithm=SHA-256', 'algorithm=SHA-1'),
        method: 'REGISTER',
        lookupHa1,
      }),
      { ok: false, reason: 'malformed', username: user },
    );
  });

  test('RFC 2069 style (no qop) requests are accepted, and may reuse the nonce until it expires', () => {
    const { server, clock } = setup();
    const nonce = parseChallenges(server.challenge())[0]!.nonce;
    const response = computeResponse({ algorithm: 'MD5', ha1: store.MD5, nonce, method: 'REGISTER', uri });
    const creds = `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}"`;
    assert.equal(server.verify({ credentials: creds, method: 'REGISTER', lookupHa1 }).ok, true);
    assert.equal(server.verify({ credentials: creds, method: 'REGISTER', lookupHa1 }).ok, true);
    clock.advance(301);
    assert.equal(
      (server.verify({ credentials: creds, method: 'REGISTER', lookupHa1 }) as { reason: string }).reason,
      'stale',
    );
  });

  test('qop=auth-int covers the body', () => {
    const clock = new FakeClock();
    const server = new DigestServer({ realm, secret: 'k', nonceLifetimeSec: 60, clock, qop: ['auth-int'] });
    const ch = server.challenge();
    assert.deepEqual(parseChallenges(ch)[0]!.qop, ['auth-int']);
    const body = 'v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n';
    const creds = answerChallenge({
      challengeValue: ch,
      method: 'INVITE',
      uri,
      username: user,
      password,
      entityBody: body,
    });
    assert.equal(parseCredentials(creds).qop, 'auth-int');
    assert.equal(
      server.verify({ credentials: creds, method: 'INVITE', lookupHa1, entityBody: body }).ok,
      true,
    );
    const creds2 = answerChallenge({
      challengeValue: ch,
      method: 'INVITE',
      uri,
      username: user,
      password,
      entityBody: body,
      nc: 2,
    });
    assert.deepEqual(
      server.verify({ credentials: creds2, method: 'INVITE', lookupHa1, entityBody: body + 'x' }),
      {
        ok: false,
        reason: 'bad_response',
        username: user,
      },
    );
  });

  test('-sess algorithms and SHA-512-256 verify from the stored HA1', () => {
    const clock = new FakeClock();
    const server = new DigestServer({
      realm,
      secret: 'k',
      nonceLifetimeSec: 60,
      clock,
      algorithms: ['SHA-512-256'],
    });
    const ch = server.challenge();
    assert.match(ch[0]!, /algorithm=SHA-512-256/);
    const store512 = { 'SHA-512-256': ha1(user, realm, password, 'SHA-512-256') };
    const creds = answerChallenge({ challengeValue: ch, method: 'REGISTER', uri, username: user, password });
    assert.equal(
      server.verify({ credentials: creds, method: 'REGISTER', ha1ByAlgorithm: store512 }).ok,
      true,
    );
    const sess = answerChallenge({
      challengeValue: ch.map((c) => c.replace('SHA-512-256', 'SHA-512-256-sess')),
      method: 'REGISTER',
      uri,
      username: user,
      password,
      nc: 2,
    });
    assert.deepEqual(server.verify({ credentials: sess, method: 'REGISTER', ha1ByAlgorithm: store512 }), {
      ok: true,
      username: user,
      algorithm: 'SHA-512-256-sess',
      realm,
    });
  });

  test('the nonce-count map is bounded and forgets expired nonces', () => {
    const { server, clock } = setup({ maxTrackedNonces: 2 });
    const v = (ch: string[], nc: number) =>
      server.verify({ credentials: answer(ch, nc), method: 'REGISTER', lookupHa1 });
    const a = server.challenge();
    clock.advance(1);
    const b = server.challenge();
    clock.advance(1);
    const c = server.challenge();
    assert.equal(v(a, 1).ok, true);
    assert.equal(v(b, 1).ok, true);
    assert.equal(server.trackedNonces, 2);
    // a third live nonce evicts the oldest; the evicted nonce is then refused as stale (client re-challenges)
    assert.equal(v(c, 1).ok, true);
    assert.equal(server.trackedNonces, 2);
    assert.deepEqual(v(a, 2), { ok: false, reason: 'stale', username: user });
    assert.equal(v(b, 2).ok, true);
    // once expired, tracked nonces are swept when a new one arrives
    clock.advance(400);
    const d = server.challenge();
    assert.equal(v(d, 1).ok, true);
    assert.equal(server.trackedNonces, 1);
  });

  test('a tracked nonce does not keep the request it came in alive', () => {
    // 10,000 REGISTERs of ~4 KB: kept whole (the parsed nonce a slice of the request's text),
    // they would hold ~40 MB; the tracked nonces alone hold about 1 MB.
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { server } = setup({ maxTrackedNonces: 100_000 });
    const pad = 'X-Pad: ' + 'y'.repeat(4000) + '\r\n';
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 10_000; i++) {
      const head = `REGISTER ${uri} SIP/2.0\r\nCall-ID: ${i}\r\nAuthorization: `;
      // the request's text as the transport decodes it: one flat string, its header values slices of it
      const text = Buffer.from(`${head}${answer(server.challenge(), 1)}\r\n${pad}\r\n`).toString('latin1');
      const credentials = text.slice(head.length, text.indexOf('\r\n', head.length));
      assert.equal(server.verify({ credentials, method: 'REGISTER', lookupHa1 }).ok, true);
    }
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / 1048576;
    assert.equal(server.trackedNonces, 10_000);
    assert.ok(grown < 10, `the heap grew ${grown.toFixed(1)} MB`);
  });
});

describe('parser robustness (property)', () => {
  test('any input either parses or throws DigestParseError', async () => {
    const fc = (await import('fast-check')).default;
    const piece = fc.constantFrom(
      'Digest ',
      'username=',
      '"',
      '\\',
      ',',
      ' ',
      '\r\n ',
      '\n',
      '=',
      'a',
      'nc=00000001',
      'qop=auth',
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.array(piece, { maxLength: 40 }).map((a) => a.join('')),
        ),
        (s) => {
          try {
            parseCredentials(s);
          } catch (e) {
            if (!(e instanceof DigestParseError)) throw e;
          }
          try {
            parseChallenges(s);
          } catch (e) {
            if (!(e instanceof DigestParseError)) throw e;
          }
        },
      ),
      { numRuns: 500, seed: 42 },
    );
  });

  test('formatted credentials parse back to the same values', async () => {
    const fc = (await import('fast-check')).default;
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30 }), (username, realm) => {
        const v = answerChallenge({
          challengeValue: `Digest realm=${quote(realm)}, nonce="n", qop="auth"`,
          method: 'REGISTER',
          uri: 'sip:x',
          username,
          password: 'p',
          cnonce: 'c',
        });
        const c = parseCredentials(v);
        assert.equal(c.username, username);
        assert.equal(c.realm, realm);
      }),
      { numRuns: 300, seed: 7 },
    );
  });
});
