import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DigestServer, answerChallenge, parseMessage, type SipRequest } from '@switchboard/sip';
import { DomainError, Replica } from '@switchboard/platform';
import type {
  RegisterBatchRequest,
  RegisterBatchResponse,
  RegisterRequest,
  RegisterResponse,
  RegisterResult,
} from '@switchboard/proto/registrar';
import { AbuseGuard } from './abuse';
import { Authenticator } from './auth';
import { Domains } from './domains';
import { RegisterBatcher, RegistrarFront, showsBindings } from './register';
import { encodeRecord, type LocationRecord } from '@switchboard/contracts';
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

/** What the registrar stores for a request's contacts (each one binding). */
const binding = (r: RegisterRequest) =>
  r.contacts.map((c) => ({
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
  }));

function setup(
  answer?: (r: RegisterRequest) => RegisterResponse | Promise<RegisterResponse>,
  caughtUp?: ConstructorParameters<typeof RegistrarFront>[4],
) {
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
        return answer ? answer(r) : { bindings: binding(r), minExpires: 0 };
      },
    },
    () => NOW,
    caughtUp,
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

test("the 200 goes once this proxy's location replica shows the bindings (read your writes), or after the bound", async () => {
  const location = new Replica<LocationRecord>('location', 'test');
  const events: string[] = [];
  let stored: ReturnType<typeof binding> = [];
  const { front } = setup(
    (r) => {
      stored = binding(r);
      return { bindings: stored, minExpires: 0 };
    },
    (aor, bindings) =>
      location
        .when(aor, (rec) => showsBindings(rec?.bindings ?? [], bindings), 300)
        .then((ok) => events.push(`replica ${ok ? 'caught up' : 'timed out'}`)),
  );
  const answered = authorized(front, 'alice', 'secret').then((r) => events.push(`answered ${r.status}`));
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(events, [], 'no answer while the replica lacks the binding');
  // an older record of the AoR changes nothing; the one with the registered binding does
  const apply = (bindings: typeof stored) =>
    location.apply({
      key: 'sip:alice@example.com',
      value: Buffer.from(encodeRecord({ aor: 'sip:alice@example.com', bindings })),
    });
  apply([]);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(events, []);
  apply(stored);
  await answered;
  assert.deepEqual(events, ['replica caught up', 'answered 200']);
  // a replica that never shows it (another contact): the 200 goes after the bound all the same
  events.length = 0;
  const second = await authorized(front, 'alice', 'secret', { contact: '<sip:y@10.0.0.6:5062>' });
  assert.equal(second.status, 200);
  assert.deepEqual(events, ['replica timed out']);
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

test('statelessChallenge: the 401 handle() gives a REGISTER without credentials; nothing for the others', async () => {
  const { front, calls, failures } = setup();
  const r = front.statelessChallenge(registerRequest({ user: 'alice', contact: '<sip:a@10.0.0.5>' }));
  assert.equal(r?.status, 401);
  assert.equal(r.getHeaders('WWW-Authenticate').length, 2);
  assert.match(r.getHeaders('WWW-Authenticate')[0], /realm="example.com"/);
  assert.ok(r.toTag);
  // With credentials (even wrong ones: the guard must count them), handle() decides.
  const authorization = answerChallenge({
    challengeValue: r.getHeaders('WWW-Authenticate'),
    method: 'REGISTER',
    uri: 'sip:example.com',
    username: 'alice',
    password: 'wrong',
  });
  const withCreds = registerRequest({ user: 'alice', contact: '<sip:a@h>', cseq: 2, authorization });
  assert.equal(front.statelessChallenge(withCreds), undefined);
  // A foreign domain gets its 403 from handle().
  assert.equal(
    front.statelessChallenge(
      registerRequest({ user: 'alice', domain: 'elsewhere.net', contact: '<sip:a@h>' }),
    ),
    undefined,
  );
  assert.equal(calls.length, 0);
  assert.deepEqual(failures, []);
});

test('statelessChallenge: a retransmission gets the same bytes (no transaction keeps them); another request does not', () => {
  const { front } = setup();
  const first = registerRequest({ user: 'alice', contact: '<sip:a@10.0.0.5>' });
  const a = front.statelessChallenge(first)!;
  const b = front.statelessChallenge(parseMessage(first.serialize()) as SipRequest)!; // the retransmission
  assert.deepEqual(b.serialize(), a.serialize());
  // the next REGISTER of the same client: another branch and CSeq
  const other = front.statelessChallenge(registerRequest({ user: 'alice', contact: '<sip:a@h>', cseq: 2 }))!;
  assert.notEqual(other.toTag, a.toTag);
  assert.notEqual(other.getHeaders('WWW-Authenticate')[0], a.getHeaders('WWW-Authenticate')[0]);
});

// The front's Register calls coalesced into RegisterBatch calls (RegisterBatcher).

const req = (aor: string, cseq = 1): RegisterRequest => ({
  aor,
  contacts: [{ uri: `sip:x@192.0.2.${cseq}`, expires: 600, instanceId: '', regId: 0 }],
  removeAll: false,
  callId: `c-${aor}`,
  cseq,
  path: [],
  userAgent: '',
});

/** A fake registrar answering each item with `item` (a RegisterResult); records every batch. */
function batchApi(
  item: (r: RegisterRequest) => RegisterResult = (r) => ({
    response: { bindings: binding(r), minExpires: 0 },
  }),
) {
  const batches: RegisterRequest[][] = [];
  return {
    batches,
    registerBatch: async (b: RegisterBatchRequest): Promise<RegisterBatchResponse> => {
      batches.push(b.requests);
      return { results: b.requests.map(item) };
    },
  };
}

const turn = () => new Promise<void>((r) => setImmediate(r));

test('batcher: the Register calls of one event-loop turn go in one RegisterBatch, each caller gets its own item', async () => {
  const api = batchApi((r) =>
    r.aor.startsWith('sip:ooo')
      ? { error: { code: 9, message: 'old cseq', field: '' } }
      : r.aor.startsWith('sip:bad')
        ? { error: { code: 3, message: 'aor is required', field: 'aor' } }
        : r.aor.startsWith('sip:brief')
          ? { response: { bindings: [], minExpires: 60 } }
          : { response: { bindings: binding(r), minExpires: 0 } },
  );
  const sizes: number[] = [];
  const b = new RegisterBatcher(api, { onBatch: (n) => sizes.push(n) });
  const out = [
    'sip:a@example.com',
    'sip:ooo@example.com',
    'sip:brief@example.com',
    'sip:bad@example.com',
    'sip:c@example.com',
  ].map((aor) =>
    b.register(req(aor)).then(
      (r) => r,
      (e: unknown) => e,
    ),
  );
  const [a, ooo, brief, bad, c] = await Promise.all(out);
  assert.equal(api.batches.length, 1);
  assert.deepEqual(
    api.batches[0].map((r) => r.aor),
    [
      'sip:a@example.com',
      'sip:ooo@example.com',
      'sip:brief@example.com',
      'sip:bad@example.com',
      'sip:c@example.com',
    ],
    'in the order of the calls',
  );
  assert.deepEqual(sizes, [5]);
  assert.equal((a as RegisterResponse).bindings[0].aor, 'sip:a@example.com');
  assert.equal((c as RegisterResponse).bindings[0].aor, 'sip:c@example.com');
  assert.deepEqual(brief, { bindings: [], minExpires: 60 });
  assert.ok(ooo instanceof DomainError && ooo.kind === 'failed_precondition', String(ooo));
  assert.ok(
    bad instanceof DomainError && bad.kind === 'invalid_argument' && bad.field === 'aor',
    String(bad),
  );

  // The next turn starts the next batch.
  await b.register(req('sip:d@example.com'));
  assert.deepEqual(sizes, [5, 1]);
});

test('batcher: at most maxBatch items per call, a full batch goes at once', async () => {
  const api = batchApi();
  const b = new RegisterBatcher(api, { maxBatch: 2 });
  const all = Promise.all([1, 2, 3, 4, 5].map((i) => b.register(req(`sip:u${i}@example.com`))));
  assert.deepEqual(
    api.batches.map((x) => x.length),
    [2, 2],
    'two full batches sent before the turn ends',
  );
  await turn();
  assert.deepEqual(
    api.batches.map((x) => x.length),
    [2, 2, 1],
  );
  assert.deepEqual(
    (await all).map((r) => r.bindings[0].aor),
    [1, 2, 3, 4, 5].map((i) => `sip:u${i}@example.com`),
  );
});

test('batcher: a failed call fails every item with its error; an UNAVAILABLE item is retried, then fails', async () => {
  const down = new RegisterBatcher({
    registerBatch: async () => {
      throw new DomainError('deadline_exceeded', 'deadline');
    },
  });
  const both = await Promise.all(
    [req('sip:a@example.com'), req('sip:b@example.com')].map((r) =>
      down.register(r).catch((e: unknown) => e),
    ),
  );
  assert.ok(both.every((e) => e instanceof DomainError && e.kind === 'deadline_exceeded'));

  let failures = 1;
  const flaky = batchApi((r) =>
    r.aor === 'sip:flaky@example.com' && failures-- > 0
      ? { error: { code: 14, message: 'could not store', field: '' } }
      : { response: { bindings: binding(r), minExpires: 0 } },
  );
  const b = new RegisterBatcher(flaky, { backoffMs: 0 });
  const r = await b.register(req('sip:flaky@example.com'));
  assert.equal(r.bindings[0].aor, 'sip:flaky@example.com');
  assert.equal(flaky.batches.length, 2, 'retried once');

  const dead = batchApi(() => ({ error: { code: 14, message: 'could not store', field: '' } }));
  const e = await new RegisterBatcher(dead, { backoffMs: 0, retries: 2 })
    .register(req('sip:x@example.com'))
    .catch((err: unknown) => err);
  assert.ok(e instanceof DomainError && e.kind === 'unavailable');
  assert.equal(dead.batches.length, 3, 'three attempts in all');

  const short = await new RegisterBatcher({ registerBatch: async () => ({ results: [] }) })
    .register(req('sip:x@example.com'))
    .catch((err: unknown) => err);
  assert.ok(short instanceof DomainError && short.kind === 'internal', 'a result missing is an error');
});

test('batcher behind the front: concurrent REGISTERs share a call and get the SIP answers single calls gave', async () => {
  const subs = new Map(
    ['alice', 'bob', 'carol', 'dave'].map((u): [string, ReturnType<typeof subscriber>] => [
      `sip:${u}@example.com`,
      subscriber(u, 'pw'),
    ]),
  );
  const guard = new AbuseGuard(
    { maxRequests: 1000, windowMs: 1000, blockMs: 1000 },
    { maxFailures: 3, windowMs: 60_000, banMs: 60_000 },
    () => NOW,
  );
  const digest = new DigestServer({ secret: 'k', nonceLifetimeSec: 300, clock: { now: () => NOW } });
  const auth = new Authenticator(digest, { byAor: (a) => subs.get(a) }, guard, () => {});
  const api = batchApi((r) => {
    switch (r.aor) {
      case 'sip:bob@example.com':
        return { error: { code: 9, message: 'old cseq', field: '' } }; // FAILED_PRECONDITION
      case 'sip:carol@example.com':
        return { error: { code: 7, message: 'too many contacts', field: '' } }; // PERMISSION_DENIED
      case 'sip:dave@example.com':
        return { response: { bindings: [], minExpires: 60 } };
      default:
        return { response: { bindings: binding(r), minExpires: 0 } };
    }
  });
  const front = new RegistrarFront(new Domains('example.com', []), auth, new RegisterBatcher(api), () => NOW);
  const signed = async (user: string) => {
    const first = await front.handle(registerRequest({ user, contact: '<sip:x@10.0.0.5:5062>' }), source);
    const authorization = answerChallenge({
      challengeValue: first.getHeaders('WWW-Authenticate'),
      method: 'REGISTER',
      uri: 'sip:example.com',
      username: user,
      password: 'pw',
    });
    return registerRequest({ user, contact: '<sip:x@10.0.0.5:5062>', cseq: 2, authorization, expires: 600 });
  };
  const users = ['alice', 'bob', 'carol', 'dave'];
  const requests = await Promise.all(users.map(signed));
  assert.equal(api.batches.length, 0, 'the challenges did not reach the registrar');
  const answers = await Promise.all(requests.map((r) => front.handle(r, source)));
  assert.deepEqual(
    api.batches.map((b) => b.map((r) => r.aor)),
    [users.map((u) => `sip:${u}@example.com`)],
  );
  assert.deepEqual(
    answers.map((a) => [a.status, a.reason]),
    [
      [200, 'OK'],
      [500, 'Out Of Order REGISTER'],
      [403, 'Too Many Contacts'],
      [423, 'Interval Too Brief'],
    ],
  );
  assert.deepEqual(answers[0].getHeaders('Contact'), ['<sip:x@10.0.0.5:5062>;expires=600']);
  assert.equal(answers[3].getHeader('Min-Expires'), '60');

  const down = new RegistrarFront(
    new Domains('example.com', []),
    auth,
    new RegisterBatcher({
      registerBatch: async () => {
        throw new DomainError('unavailable', 'no registrar');
      },
    }),
    () => NOW,
  );
  const r503 = await down.handle(await signed('alice'), source);
  assert.deepEqual([r503.status, r503.getHeader('Retry-After')], [503, '5']);
});
