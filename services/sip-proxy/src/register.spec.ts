import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DigestServer, answerChallenge } from '@switchboard/sip';
import { DomainError } from '@switchboard/platform';
import type { RegisterRequest, RegisterResponse } from '@switchboard/proto/registrar';
import { AbuseGuard } from './abuse';
import { Authenticator } from './auth';
import { Domains } from './domains';
import { RegistrarFront } from './register';
import { registerRequest, subscriber } from './test-helpers';

const NOW = 1_700_000_000_000;
const source = {
  transport: 'udp',
  address: '198.51.100.20',
  port: 40000,
  localAddress: '0.0.0.0',
  localPort: 5060,
  connId: undefined,
};

function setup(answer?: (r: RegisterRequest) => RegisterResponse | Promise<RegisterResponse>) {
  const subs = new Map([
    ['sip:alice@example.com', subscriber('alice', 'secret')],
    ['sip:bob@example.com', subscriber('bob', 'b0b')],
  ]);
  const guard = new AbuseGuard(
    { maxRequests: 1000, windowMs: 1000, blockMs: 1000 },
    { maxFailures: 3, windowMs: 60_000, banMs: 60_000 },
    () => NOW,
  );
  const digest = new DigestServer({ secret: 'k', nonceLifetimeSec: 300, clock: { now: () => NOW } });
  const failures: string[] = [];
  const auth = new Authenticator(digest, { byAor: (a) => subs.get(a) }, guard, (r) => failures.push(r));
  const calls: RegisterRequest[] = [];
  const front = new RegistrarFront(
    new Domains('example.com', []),
    auth,
    {
      register: async (r) => {
        calls.push(r);
        return answer
          ? answer(r)
          : {
              bindings: r.contacts.map((c) => ({
                aor: r.aor,
                contact: c.uri,
                expires: NOW / 1000 + (c.expires ?? 3600),
                q: c.q,
                callId: r.callId,
                cseq: r.cseq,
                path: [],
                instanceId: '',
                regId: 0,
                userAgent: '',
                updatedAt: NOW,
              })),
              minExpires: 0,
            };
      },
    },
    () => NOW,
  );
  return { front, calls, failures };
}

async function authorized(
  front: RegistrarFront,
  user: string,
  password: string,
  extra: Parameters<typeof registerRequest>[0] extends infer T ? Partial<T> : never = {},
) {
  const first = await front.handle(
    registerRequest({ user, contact: '<sip:x@10.0.0.5:5062>', ...extra }),
    source,
  );
  assert.equal(first.status, 401);
  const authorization = answerChallenge({
    challengeValue: first.getHeaders('WWW-Authenticate'),
    method: 'REGISTER',
    uri: 'sip:example.com',
    username: user,
    password,
  });
  return front.handle(
    registerRequest({ user, contact: '<sip:x@10.0.0.5:5062>', cseq: 2, authorization, ...extra }),
    source,
  );
}

test('no credentials: 401 offering SHA-256 then MD5, nothing stored (RFC 3665 2.1 first leg)', async () => {
  const { front, calls } = setup();
  const r = await front.handle(
    registerRequest({ user: 'alice', contact: '<sip:alice@10.0.0.5:5062>' }),
    source,
  );
  assert.equal(r.status, 401);
  const challenges = r.getHeaders('WWW-Authenticate');
  assert.equal(challenges.length, 2);
  assert.match(challenges[0], /algorithm=SHA-256/);
  assert.match(challenges[1], /algorithm=MD5/);
  assert.match(challenges[0], /realm="example.com"/);
  assert.ok(r.toTag, '401 carries a To tag');
  assert.equal(calls.length, 0);
});

test('valid credentials: the binding goes to the registrar with the source address, 200 lists contacts with expires', async () => {
  const { front, calls } = setup();
  const r = await authorized(front, 'alice', 'secret', {
    contact: '<sip:alice@10.0.0.5:5062>;q=0.5',
    expires: 600,
  });
  assert.equal(r.status, 200);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].aor, 'sip:alice@example.com');
  assert.deepEqual(calls[0].contacts[0], {
    uri: 'sip:alice@10.0.0.5:5062',
    expires: 600,
    q: 500,
    instanceId: '',
    regId: 0,
  });
  assert.deepEqual(calls[0].received, {
    address: '198.51.100.20',
    port: 40000,
    transport: 'udp',
    flowId: '',
    localSocket: 'udp:0.0.0.0:5060',
  });
  assert.deepEqual(r.getHeaders('Contact'), ['<sip:alice@10.0.0.5:5062>;expires=600;q=0.5']);
});

test('wrong password and unknown user get the same 401 again, never 200 (RFC 3665 2.5), then 403 once banned', async () => {
  const { front, calls, failures } = setup();
  const wrong = await authorized(front, 'alice', 'nope');
  const unknown = await authorized(front, 'mallory', 'x');
  assert.equal(wrong.status, 401);
  assert.equal(unknown.status, 401);
  assert.deepEqual(
    [wrong, unknown].map((r) => [r.reason, r.getHeaders('WWW-Authenticate').length]),
    [
      ['Unauthorized', 2],
      ['Unauthorized', 2],
    ],
  );
  assert.deepEqual(failures, ['bad_response', 'unknown_user']);
  for (let i = 0; i < 3; i++) await authorized(front, 'alice', 'nope');
  const banned = await authorized(front, 'alice', 'secret');
  assert.equal(banned.status, 403, 'the user is banned after repeated failures');
  assert.equal(calls.length, 0);
});

test('authenticating as one user to register another AoR is 403', async () => {
  const { front } = setup();
  const first = await front.handle(registerRequest({ user: 'bob', contact: '<sip:x@h>' }), source);
  const authorization = answerChallenge({
    challengeValue: first.getHeaders('WWW-Authenticate'),
    method: 'REGISTER',
    uri: 'sip:example.com',
    username: 'alice',
    password: 'secret',
  });
  const r = await front.handle(
    registerRequest({ user: 'bob', contact: '<sip:x@h>', cseq: 2, authorization }),
    source,
  );
  assert.equal(r.status, 403);
});

test('* needs Expires: 0 (400 otherwise); too brief is 423 with Min-Expires; out of order is 500', async () => {
  const star = setup();
  const bad = await authorized(star.front, 'alice', 'secret', { contact: '*', expires: 60 });
  assert.equal(bad.status, 400);
  const ok = await authorized(star.front, 'alice', 'secret', { contact: '*', expires: 0 });
  assert.equal(ok.status, 200);
  assert.equal(star.calls.at(-1)!.removeAll, true);

  const brief = setup(() => ({ bindings: [], minExpires: 60 }));
  const r423 = await authorized(brief.front, 'alice', 'secret', { expires: 10 });
  assert.equal(r423.status, 423);
  assert.equal(r423.getHeader('Min-Expires'), '60');

  const ooo = setup(() => {
    throw new DomainError('failed_precondition', 'old cseq');
  });
  assert.equal((await authorized(ooo.front, 'alice', 'secret')).status, 500);
});

test('a REGISTER for a foreign domain is refused', async () => {
  const { front } = setup();
  const r = await front.handle(
    registerRequest({ user: 'alice', domain: 'elsewhere.net', contact: '<sip:a@h>' }),
    source,
  );
  assert.equal(r.status, 403);
});
