/**
 * The `/api/v1` contract over real HTTP, against the portal started by the
 * target runner on PGlite in memory, with the embedded event log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPI } from 'openapi-types';
import { ha1 } from '@switchboard/sip';
import { TOPICS, type RoutingRecord, type SubscriberRecord } from '@switchboard/contracts';
import { ADMIN_TOKEN, startTestPortal, until, type TestPortal } from './test-support';

let p: TestPortal;
before(async () => {
  p = await startTestPortal();
});
after(async () => {
  await p?.stop();
});

const subscriberOf = (aor: string) =>
  until(
    async () => (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get(aor),
    `${aor} on the subscribers topic`,
  );

describe('authentication', () => {
  test('no token, a malformed header or an unknown token is 401 with a Bearer challenge', async () => {
    for (const token of [null, 'not-the-token']) {
      const r = await p.api('GET', '/api/v1/subscribers', undefined, token);
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'unauthenticated');
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const res = await fetch(`${p.url}/api/v1/subscribers`, {
      headers: { authorization: `Basic ${ADMIN_TOKEN}` },
    });
    assert.equal(res.status, 401);
  });

  test('an admin creates an API token, which works until it is revoked; only its hash is stored', async () => {
    const created = await p.api('POST', '/api/v1/tokens', { name: 'provisioning script' });
    assert.equal(created.status, 201);
    assert.match(created.body.token, /^sbt_/);
    assert.equal(created.body.role, 'admin');
    assert.equal((await p.api('GET', '/api/v1/subscribers', undefined, created.body.token)).status, 200);
    const stored = await p.db.query<{ token_hash: string }>(
      'SELECT token_hash FROM portal.api_tokens WHERE id = $1',
      [created.body.id],
    );
    assert.notEqual(stored.rows[0].token_hash, created.body.token);
    assert.ok(!JSON.stringify((await p.api('GET', '/api/v1/tokens')).body).includes(created.body.token));
    assert.equal((await p.api('DELETE', `/api/v1/tokens/${created.body.id}`)).status, 204);
    assert.equal((await p.api('GET', '/api/v1/subscribers', undefined, created.body.token)).status, 401);
  });
});

describe('subscribers', () => {
  test('POST creates a subscriber in the default domain: 201 with its aor, published with HA1 values only', async () => {
    const r = await p.api('POST', '/api/v1/subscribers', { username: 'alice', password: 'secret' });
    assert.equal(r.status, 201);
    assert.equal(r.body.aor, 'sip:alice@example.com');
    assert.equal(r.body.domain, 'example.com');
    assert.equal(r.body.enabled, true);
    assert.ok(!JSON.stringify(r.body).includes('secret'));
    const rec = await subscriberOf('sip:alice@example.com');
    assert.deepEqual(rec, {
      aor: 'sip:alice@example.com',
      username: 'alice',
      domain: 'example.com',
      ha1: ha1('alice', 'example.com', 'secret', 'MD5'),
      ha1Sha256: ha1('alice', 'example.com', 'secret', 'SHA-256'),
      enabled: true,
      privileges: [],
      aliases: [],
      forwarding: [],
      blockList: [],
      speedDials: [],
    });
    const row = await p.db.query('SELECT * FROM portal.subscribers WHERE id = $1', [r.body.id]);
    assert.ok(!JSON.stringify(row.rows[0]).includes('"secret"'), 'no plaintext password stored');
  });

  test('409 when the subscriber exists', async () => {
    await p.api('POST', '/api/v1/subscribers', { username: 'dup', password: 'secret' });
    const r = await p.api('POST', '/api/v1/subscribers', { username: 'dup', password: 'other-secret' });
    assert.equal(r.status, 409);
    assert.equal(r.body.error, 'already_exists');
  });

  test('400 naming the field for invalid bodies', async () => {
    const cases: [unknown, string][] = [
      [{ password: 'secret' }, 'username'],
      [{ username: 'bob' }, 'password'],
      [{ username: 'bo b', password: 'secret' }, 'username'],
      [{ username: 'bob', password: 'short' }, 'password'],
      [{ username: 'bob', password: 'secret', domain: 'not a domain' }, 'domain'],
      [{ username: 'bob', password: 'secret', domain: 'unknown.example' }, 'domain'],
      [{ username: 'bob', password: 'secret', email: 'nope' }, 'email'],
      [{ username: 'bob', password: 'secret', privileges: ['PSTN!'] }, 'privileges.0'],
      [{ username: 'bob', password: 'secret', color: 'red' }, 'color'],
      ['{"username": ', 'body'],
      [[1, 2], 'body'],
    ];
    for (const [body, field] of cases) {
      const r = await p.api('POST', '/api/v1/subscribers', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error, 'invalid_argument');
      assert.equal(r.body.field, field, JSON.stringify(body));
      assert.ok(r.body.message.length > 0);
    }
  });

  test('GET by id, PATCH and DELETE; a PATCH republishes, a DELETE tombstones the AoR', async () => {
    const c = await p.api('POST', '/api/v1/subscribers', {
      username: 'carol',
      password: 'secret',
      displayName: 'Carol',
      email: 'carol@example.com',
      webPassword: 'web-password',
      ratePlan: 'default',
      privileges: ['pstn'],
    });
    assert.equal(c.status, 201);
    assert.equal(c.body.hasWebPassword, true);
    const got = await p.api('GET', `/api/v1/subscribers/${c.body.id}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, c.body);

    const patched = await p.api('PATCH', `/api/v1/subscribers/${c.body.id}`, {
      password: 'new-secret',
      displayName: null,
      privileges: ['pstn', 'international'],
      enabled: false,
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.displayName, null);
    assert.deepEqual(patched.body.privileges, ['pstn', 'international']);
    const rec = await until(async () => {
      const r = (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get('sip:carol@example.com');
      return r && !r.enabled ? r : undefined;
    }, 'the PATCH published');
    assert.equal(rec.ha1, ha1('carol', 'example.com', 'new-secret', 'MD5'));
    assert.deepEqual(rec.privileges, ['pstn', 'international']);
    assert.equal(rec.displayName, undefined);
    assert.equal(rec.ratePlan, 'default');

    const bad = await p.api('PATCH', `/api/v1/subscribers/${c.body.id}`, { username: 'mallory' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'username');

    assert.equal((await p.api('DELETE', `/api/v1/subscribers/${c.body.id}`)).status, 204);
    assert.equal((await p.api('GET', `/api/v1/subscribers/${c.body.id}`)).status, 404);
    assert.equal((await p.api('DELETE', `/api/v1/subscribers/${c.body.id}`)).status, 404);
    await until(
      async () => !(await p.topic<SubscriberRecord>(TOPICS.subscribers)).has('sip:carol@example.com'),
      'the tombstone',
    );
  });

  test('unknown or malformed ids are 404', async () => {
    assert.equal(
      (await p.api('GET', '/api/v1/subscribers/00000000-0000-4000-8000-000000000000')).status,
      404,
    );
    assert.equal((await p.api('GET', '/api/v1/subscribers/not-an-id')).status, 404);
    assert.equal(
      (await p.api('PATCH', '/api/v1/subscribers/00000000-0000-4000-8000-000000000000', {})).status,
      404,
    );
  });

  test('list with search= and page=', async () => {
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await p.api('POST', '/api/v1/subscribers', { username: `page${i}`, password: 'secret' })).status,
        201,
      );
    }
    const all = await p.api('GET', '/api/v1/subscribers?search=page&pageSize=2');
    assert.equal(all.status, 200);
    assert.equal(all.body.total, 5);
    assert.deepEqual(
      all.body.items.map((s: { username: string }) => s.username),
      ['page0', 'page1'],
    );
    const third = await p.api('GET', '/api/v1/subscribers?search=page&pageSize=2&page=3');
    assert.deepEqual(
      third.body.items.map((s: { username: string }) => s.username),
      ['page4'],
    );
    assert.equal(third.body.page, 3);
    const one = await p.api('GET', '/api/v1/subscribers?search=PAGE3');
    assert.deepEqual(
      one.body.items.map((s: { aor: string }) => s.aor),
      ['sip:page3@example.com'],
    );
    // % and _ are literal in a search.
    assert.equal((await p.api('GET', '/api/v1/subscribers?search=%25')).body.total, 0);
    const bad = await p.api('GET', '/api/v1/subscribers?page=0');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'page');
  });
});

describe('domains, aliases and privileges', () => {
  test('a domain is published on routing; subscribers may then use it; it cannot go while it has subscribers', async () => {
    const d = await p.api('POST', '/api/v1/domains', { domain: 'Voip.Example.NET' });
    assert.equal(d.status, 201);
    assert.equal(d.body.domain, 'voip.example.net');
    assert.equal((await p.api('POST', '/api/v1/domains', { domain: 'voip.example.net' })).status, 409);
    const rec = await until(
      async () => (await p.topic<RoutingRecord>(TOPICS.routing)).get(`domain:${d.body.id}`),
      'the domain on routing',
    );
    assert.deepEqual(rec, { kind: 'domain', id: d.body.id, domain: 'voip.example.net' });

    const s = await p.api('POST', '/api/v1/subscribers', {
      username: 'dave',
      password: 'secret',
      domain: 'voip.example.net',
    });
    assert.equal(s.status, 201);
    assert.equal(s.body.aor, 'sip:dave@voip.example.net');
    const busy = await p.api('DELETE', `/api/v1/domains/${d.body.id}`);
    assert.equal(busy.status, 412);
    assert.equal((await p.api('DELETE', `/api/v1/subscribers/${s.body.id}`)).status, 204);
    assert.equal((await p.api('DELETE', `/api/v1/domains/${d.body.id}`)).status, 204);
    await until(
      async () => !(await p.topic(TOPICS.routing)).has(`domain:${d.body.id}`),
      'the domain tombstone',
    );

    const list = await p.api('GET', '/api/v1/domains');
    assert.ok(
      list.body.items.some((x: { domain: string }) => x.domain === 'example.com'),
      'the default domain exists',
    );
    const def = list.body.items.find((x: { domain: string }) => x.domain === 'example.com');
    assert.equal((await p.api('DELETE', `/api/v1/domains/${def.id}`)).status, 412);
  });

  test("aliases and DIDs are published in the subscriber's record; one AoR cannot be two things", async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'erin', password: 'secret' });
    const other = await p.api('POST', '/api/v1/subscribers', { username: 'frank', password: 'secret' });
    const a = await p.api('POST', '/api/v1/aliases', { subscriberId: s.body.id, username: 'sales' });
    assert.equal(a.status, 201);
    assert.equal(a.body.aor, 'sip:sales@example.com');
    const did = await p.api('POST', '/api/v1/aliases', {
      subscriberId: s.body.id,
      username: '+493012345',
      kind: 'did',
    });
    assert.equal(did.status, 201);
    assert.equal(did.body.kind, 'did');
    await until(async () => {
      const r = (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get('sip:erin@example.com');
      return r?.aliases?.length === 2 ? r : undefined;
    }, 'aliases published');
    assert.equal(
      (await p.api('POST', '/api/v1/aliases', { subscriberId: other.body.id, username: 'sales' })).status,
      409,
    );
    assert.equal(
      (await p.api('POST', '/api/v1/aliases', { subscriberId: other.body.id, username: 'erin' })).status,
      409,
    );
    assert.equal(
      (await p.api('POST', '/api/v1/subscribers', { username: 'sales', password: 'secret' })).status,
      409,
    );
    const noOwner = await p.api('POST', '/api/v1/aliases', {
      subscriberId: '00000000-0000-4000-8000-000000000000',
      username: 'x1',
    });
    assert.equal(noOwner.status, 400);
    assert.equal(noOwner.body.field, 'subscriberId');

    // Move the DID to frank: both records change.
    const moved = await p.api('PATCH', `/api/v1/aliases/${did.body.id}`, { subscriberId: other.body.id });
    assert.equal(moved.status, 200);
    await until(async () => {
      const t = await p.topic<SubscriberRecord>(TOPICS.subscribers);
      return (
        t.get('sip:frank@example.com')?.aliases?.includes('sip:+493012345@example.com') &&
        !t.get('sip:erin@example.com')?.aliases?.includes('sip:+493012345@example.com')
      );
    }, 'the DID moved');
    const listed = await p.api('GET', `/api/v1/aliases?subscriberId=${other.body.id}`);
    assert.deepEqual(
      listed.body.items.map((x: { aor: string }) => x.aor),
      ['sip:+493012345@example.com'],
    );
    assert.equal((await p.api('DELETE', `/api/v1/aliases/${a.body.id}`)).status, 204);
    await until(
      async () =>
        (await p.topic<SubscriberRecord>(TOPICS.subscribers)).get('sip:erin@example.com')?.aliases?.length ===
        0,
      'alias removed',
    );
  });

  test('privileges are granted and removed idempotently and published', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'grace', password: 'secret' });
    const g = await p.api('PUT', `/api/v1/subscribers/${s.body.id}/privileges/international`);
    assert.equal(g.status, 200);
    assert.deepEqual(g.body.privileges, ['international']);
    assert.deepEqual(
      (await p.api('PUT', `/api/v1/subscribers/${s.body.id}/privileges/international`)).body.privileges,
      ['international'],
    );
    await until(
      async () =>
        (await p.topic<SubscriberRecord>(TOPICS.subscribers))
          .get('sip:grace@example.com')
          ?.privileges.includes('international'),
      'privilege published',
    );
    const bad = await p.api('PUT', `/api/v1/subscribers/${s.body.id}/privileges/Not_Valid`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'privilege');
    const r = await p.api('DELETE', `/api/v1/subscribers/${s.body.id}/privileges/international`);
    assert.deepEqual(r.body.privileges, []);
    assert.deepEqual((await p.api('GET', `/api/v1/subscribers/${s.body.id}/privileges`)).body.privileges, []);
    const known = await p.api('GET', '/api/v1/privileges');
    assert.ok(known.body.items.some((x: { name: string }) => x.name === 'international'));
  });

  test('the audit log records who changed what', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'heidi', password: 'secret' });
    const log = await p.api('GET', '/api/v1/audit?pageSize=5');
    assert.equal(log.status, 200);
    const e = log.body.items.find((x: { entityId: string }) => x.entityId === s.body.id);
    assert.equal(e.actor, 'admin-token');
    assert.equal(e.action, 'create');
    assert.deepEqual(e.detail, { aor: 'sip:heidi@example.com' });
  });
});

describe('OpenAPI, registrations and metrics', () => {
  test('the OpenAPI document is public and lists every route the server answers', async () => {
    const doc = await p.api('GET', '/api/v1/openapi.json', undefined, null);
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.1.0');
    const ops: [string, string][] = [];
    for (const [path, item] of Object.entries(doc.body.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(item)) ops.push([method, path]);
    }
    for (const must of [
      ['post', '/api/v1/subscribers'],
      ['get', '/api/v1/subscribers'],
      ['get', '/api/v1/subscribers/{id}'],
      ['patch', '/api/v1/subscribers/{id}'],
      ['delete', '/api/v1/subscribers/{id}'],
      ['get', '/api/v1/registrations'],
      ['get', '/api/v1/openapi.json'],
    ]) {
      assert.ok(
        ops.some(([m, x]) => m === must[0] && x === must[1]),
        must.join(' '),
      );
    }
    // Every documented operation is served (an unknown route answers "no such route").
    const id = '00000000-0000-4000-8000-000000000000';
    for (const [method, path] of ops) {
      const r = await p.api(
        method.toUpperCase(),
        path.replace('{id}', id).replace('{privilege}', 'pstn'),
        undefined,
        null,
      );
      assert.notEqual(r.body?.message, 'no such route', `${method} ${path}`);
    }
    // And an undocumented one is not.
    assert.equal((await p.api('GET', '/api/v1/nothing-here')).body.message, 'no such route');
    // It is a valid OpenAPI 3.1 document (schema and $refs).
    await SwaggerParser.validate(structuredClone(doc.body) as OpenAPI.Document);
    const create = doc.body.paths['/api/v1/subscribers'].post;
    assert.deepEqual(create.requestBody.content['application/json'].schema.required, [
      'username',
      'password',
    ]);
  });

  test('registrations answer 503 naming the registrar when none is reachable', async () => {
    const r = await p.api('GET', '/api/v1/registrations');
    assert.equal(r.status, 503);
    assert.equal(r.body.error, 'unavailable');
    assert.match(r.body.message, /registrar/);
  });

  test('switchboard_http_requests_total counts by route pattern and status', async () => {
    await p.api('GET', '/api/v1/subscribers/00000000-0000-4000-8000-000000000001');
    await p.api('GET', '/api/v1/no/such/route/1');
    await p.api('GET', '/api/v1/no/such/route/2');
    const m = await p.metrics();
    assert.match(
      m,
      /switchboard_http_requests_total\{route="\/api\/v1\/subscribers\/:id",status="404"\} [1-9]/,
    );
    assert.match(m, /switchboard_http_requests_total\{route="\/api\/v1\/subscribers",status="201"\} [1-9]/);
    assert.match(m, /switchboard_http_requests_total\{route="unmatched",status="404"\} [2-9]/);
    assert.doesNotMatch(m, /no\/such\/route/);
  });
});

describe('web sessions, roles and ownership', () => {
  async function login(loginName: string, password: string) {
    const res = await fetch(`${p.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: loginName, password }),
    });
    const body = (await res.json()) as { role: string; csrfToken: string };
    const setCookie = res.headers.get('set-cookie') ?? '';
    return { status: res.status, body, setCookie, cookie: setCookie.split(';')[0] };
  }
  const withCookie = (cookie: string, method: string, path: string, body?: unknown, csrf?: string) =>
    fetch(`${p.url}${path}`, {
      method,
      headers: {
        cookie,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(csrf ? { 'x-csrf-token': csrf } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  test('an administrator web account signs in with an HttpOnly, Secure, SameSite cookie; changes need the CSRF token', async () => {
    assert.equal(
      (await p.api('POST', '/api/v1/users', { username: 'ops', password: 'ops-password' })).status,
      201,
    );
    assert.equal(
      (await p.api('POST', '/api/v1/users', { username: 'ops', password: 'ops-password' })).status,
      409,
    );
    assert.equal((await login('ops', 'wrong-password')).status, 401);
    const s = await login('ops', 'ops-password');
    assert.equal(s.status, 201);
    assert.equal(s.body.role, 'admin');
    assert.match(s.setCookie, /^sb_session=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Strict; Max-Age=\d+$/);
    assert.equal((await withCookie(s.cookie, 'GET', '/api/v1/subscribers')).status, 200);
    const noCsrf = await withCookie(s.cookie, 'POST', '/api/v1/subscribers', {
      username: 'viaweb',
      password: 'secret',
    });
    assert.equal(noCsrf.status, 403);
    assert.equal(((await noCsrf.json()) as { field: string }).field, 'X-CSRF-Token');
    const badCsrf = await withCookie(
      s.cookie,
      'POST',
      '/api/v1/subscribers',
      { username: 'viaweb', password: 'secret' },
      'x',
    );
    assert.equal(badCsrf.status, 403);
    const ok = await withCookie(
      s.cookie,
      'POST',
      '/api/v1/subscribers',
      { username: 'viaweb', password: 'secret' },
      s.body.csrfToken,
    );
    assert.equal(ok.status, 201);
    // Signed out: the cookie is dead.
    assert.equal(
      (await withCookie(s.cookie, 'DELETE', '/api/v1/session', undefined, s.body.csrfToken)).status,
      204,
    );
    assert.equal((await withCookie(s.cookie, 'GET', '/api/v1/subscribers')).status, 401);
  });

  test('failed logins lock the login name', async () => {
    assert.equal(
      (await p.api('POST', '/api/v1/users', { username: 'victim', password: 'victim-password' })).status,
      201,
    );
    for (let i = 0; i < 5; i++) assert.equal((await login('victim', `guess-${i}`)).status, 401);
    const locked = await login('victim', 'victim-password');
    assert.equal(locked.status, 429);
    assert.equal(locked.setCookie, '');
    // Unknown names answer as wrong passwords do.
    assert.equal((await login('nobody-here', 'whatever')).status, 401);
  });

  test("a subscriber's session reads and changes only its own account", async () => {
    const mine = await p.api('POST', '/api/v1/subscribers', {
      username: 'ivan',
      password: 'secret',
      webPassword: 'ivan-web-pw',
    });
    const other = await p.api('POST', '/api/v1/subscribers', {
      username: 'judy',
      password: 'secret',
      webPassword: 'judy-web-pw',
    });
    assert.equal((await login('ivan@example.com', 'judy-web-pw')).status, 401);
    const s = await login('sip:ivan@example.com', 'ivan-web-pw');
    assert.equal(s.status, 201);
    assert.equal(s.body.role, 'subscriber');
    const me = await withCookie(s.cookie, 'GET', '/api/v1/me');
    assert.equal(me.status, 200);
    assert.equal(((await me.json()) as { aor: string }).aor, 'sip:ivan@example.com');
    // Every administrator route refuses it, for its own id and for the others'.
    for (const id of [mine.body.id, other.body.id]) {
      assert.equal((await withCookie(s.cookie, 'GET', `/api/v1/subscribers/${id}`)).status, 403);
      assert.equal(
        (
          await withCookie(
            s.cookie,
            'PATCH',
            `/api/v1/subscribers/${id}`,
            { enabled: true },
            s.body.csrfToken,
          )
        ).status,
        403,
      );
      assert.equal(
        (await withCookie(s.cookie, 'DELETE', `/api/v1/subscribers/${id}`, undefined, s.body.csrfToken))
          .status,
        403,
      );
      assert.equal(
        (
          await withCookie(
            s.cookie,
            'PUT',
            `/api/v1/subscribers/${id}/privileges/international`,
            undefined,
            s.body.csrfToken,
          )
        ).status,
        403,
      );
    }
    for (const path of [
      '/api/v1/subscribers',
      '/api/v1/aliases',
      '/api/v1/tokens',
      '/api/v1/audit',
      '/api/v1/users',
    ]) {
      assert.equal((await withCookie(s.cookie, 'GET', path)).status, 403, path);
    }
    // Its own passwords: the web password needs the current one.
    const noCurrent = await withCookie(
      s.cookie,
      'PATCH',
      '/api/v1/me',
      { webPassword: 'ivan-new-pw' },
      s.body.csrfToken,
    );
    assert.equal(noCurrent.status, 400);
    assert.equal(((await noCurrent.json()) as { field: string }).field, 'currentWebPassword');
    const wrong = await withCookie(
      s.cookie,
      'PATCH',
      '/api/v1/me',
      { webPassword: 'ivan-new-pw', currentWebPassword: 'nope' },
      s.body.csrfToken,
    );
    assert.equal(wrong.status, 403);
    const changed = await withCookie(
      s.cookie,
      'PATCH',
      '/api/v1/me',
      { password: 'n3w-secret', webPassword: 'ivan-new-pw', currentWebPassword: 'ivan-web-pw' },
      s.body.csrfToken,
    );
    assert.equal(changed.status, 200);
    assert.equal((await login('ivan', 'ivan-new-pw')).status, 201);
    // An admin token has no "me".
    assert.equal((await p.api('GET', '/api/v1/me')).status, 403);
    // Removing the subscriber ends its sessions.
    assert.equal((await p.api('DELETE', `/api/v1/subscribers/${mine.body.id}`)).status, 204);
    assert.equal((await withCookie(s.cookie, 'GET', '/api/v1/me')).status, 401);
  });
});

describe('call features and routing entities', () => {
  const recordOf = async (aor: string) =>
    (await p.topic<Record<string, unknown>>(TOPICS.subscribers)).get(aor);

  test('forwarding rules, block lists and speed dials are published in the subscriber record', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'kim', password: 'secret' });
    const base = `/api/v1/subscribers/${s.body.id}`;
    const fwd = await p.api('POST', `${base}/forwarding`, {
      condition: 'no-answer',
      target: 'sip:voicemail@example.com',
    });
    assert.equal(fwd.status, 201);
    assert.equal(fwd.body.condition, 'no-answer');
    assert.equal(
      (await p.api('POST', `${base}/forwarding`, { condition: 'no-answer', target: '+4930123' })).status,
      409,
    );
    const bad = await p.api('POST', `${base}/forwarding`, { condition: 'always', target: 'not a target' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'target');
    assert.equal(
      (await p.api('POST', `${base}/blocklist`, { direction: 'incoming', pattern: '+1900*' })).status,
      201,
    );
    assert.equal(
      (await p.api('POST', `${base}/speed-dials`, { code: '1', target: 'sip:kim-home@example.com' })).status,
      201,
    );
    const rec = await until(async () => {
      const r = await recordOf('sip:kim@example.com');
      return (r?.speedDials as unknown[] | undefined)?.length ? r : undefined;
    }, 'features published');
    assert.deepEqual(rec.forwarding, [
      { condition: 'no-answer', target: 'sip:voicemail@example.com', timeout: 20 },
    ]);
    assert.deepEqual(rec.blockList, [{ direction: 'incoming', pattern: '+1900*', action: 'block' }]);
    assert.deepEqual(rec.speedDials, [{ code: '1', target: 'sip:kim-home@example.com' }]);

    const off = await p.api('PATCH', `${base}/forwarding/${fwd.body.id}`, { enabled: false, timeout: 30 });
    assert.equal(off.status, 200);
    assert.equal(off.body.timeout, 30);
    await until(
      async () => (await recordOf('sip:kim@example.com'))?.forwarding?.toString() === '',
      'disabled forward gone',
    );
    assert.equal((await p.api('GET', `${base}/forwarding`)).body.items.length, 1);
    assert.equal((await p.api('DELETE', `${base}/forwarding/${fwd.body.id}`)).status, 204);
    assert.equal((await p.api('GET', `${base}/forwarding/${fwd.body.id}`)).status, 404);
  });

  test('a subscriber manages its own features and no one else’s', async () => {
    const mine = await p.api('POST', '/api/v1/subscribers', {
      username: 'lee',
      password: 'secret',
      webPassword: 'lee-web-pw',
    });
    const other = await p.api('POST', '/api/v1/subscribers', { username: 'max', password: 'secret' });
    const theirs = await p.api('POST', `/api/v1/subscribers/${other.body.id}/speed-dials`, {
      code: '9',
      target: '+4930999',
    });
    const res = await fetch(`${p.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'lee@example.com', password: 'lee-web-pw' }),
    });
    const { csrfToken } = (await res.json()) as { csrfToken: string };
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
    const call = (method: string, path: string, body?: unknown) =>
      fetch(`${p.url}${path}`, {
        method,
        headers: {
          cookie,
          'x-csrf-token': csrfToken,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    assert.equal(
      (
        await call('POST', `/api/v1/subscribers/${mine.body.id}/speed-dials`, {
          code: '2',
          target: '+4930222',
        })
      ).status,
      201,
    );
    assert.equal((await call('GET', `/api/v1/subscribers/${mine.body.id}/speed-dials`)).status, 200);
    for (const [method, path] of [
      ['GET', `/api/v1/subscribers/${other.body.id}/speed-dials`],
      ['GET', `/api/v1/subscribers/${other.body.id}/speed-dials/${theirs.body.id}`],
      ['DELETE', `/api/v1/subscribers/${other.body.id}/speed-dials/${theirs.body.id}`],
      ['POST', `/api/v1/subscribers/${other.body.id}/forwarding`],
      ['GET', `/api/v1/subscribers/${other.body.id}/blocklist`],
    ]) {
      const body = method === 'POST' ? { condition: 'always', target: '+1555' } : undefined;
      assert.equal((await call(method, path, body)).status, 403, `${method} ${path}`);
    }
    // Its own id with the other's feature id finds nothing.
    assert.equal(
      (await call('DELETE', `/api/v1/subscribers/${mine.body.id}/speed-dials/${theirs.body.id}`)).status,
      404,
    );
    assert.equal(
      (await p.api('GET', `/api/v1/subscribers/${other.body.id}/speed-dials`)).body.items.length,
      1,
    );
    assert.equal((await call('GET', '/api/v1/gateways')).status, 403);
  });

  test('gateways, routes, trusted addresses and RADIUS clients are published on routing', async () => {
    const gw = await p.api('POST', '/api/v1/gateways', {
      name: 'carrier-a',
      address: 'gw.carrier.example:5060',
      transport: 'udp',
      strip: 1,
    });
    assert.equal(gw.status, 201);
    assert.equal(
      (await p.api('POST', '/api/v1/gateways', { name: 'carrier-a', address: '192.0.2.1' })).status,
      409,
    );
    const badRoute = await p.api('POST', '/api/v1/routes', {
      name: 'de',
      prefix: '+49',
      gatewayIds: [gw.body.id, '00000000-0000-4000-8000-000000000000'],
    });
    assert.equal(badRoute.status, 400);
    assert.equal(badRoute.body.field, 'gatewayIds.1');
    const rt = await p.api('POST', '/api/v1/routes', { name: 'de', prefix: '+49', gatewayIds: [gw.body.id] });
    assert.equal(rt.status, 201);
    const tr = await p.api('POST', '/api/v1/trusted-addresses', {
      cidr: '198.51.100.0/24',
      description: 'carrier-a media',
    });
    assert.equal(tr.status, 201);
    const badCidr = await p.api('POST', '/api/v1/trusted-addresses', { cidr: '198.51.100.0/33' });
    assert.equal(badCidr.status, 400);
    assert.equal(badCidr.body.field, 'cidr');
    const nas = await p.api('POST', '/api/v1/radius-clients', {
      name: 'proxy-1',
      cidr: '127.0.0.1',
      secret: 'radius-secret',
    });
    assert.equal(nas.status, 201);
    assert.equal(nas.body.secret, undefined);
    assert.equal(nas.body.secretSet, true);
    assert.ok(!JSON.stringify((await p.api('GET', '/api/v1/radius-clients')).body).includes('radius-secret'));

    const routing = await until(async () => {
      const t = await p.topic<Record<string, unknown>>(TOPICS.routing);
      return t.has(`radius-client:${nas.body.id}`) ? t : undefined;
    }, 'routing records');
    assert.deepEqual(routing.get(`gateway:${gw.body.id}`), {
      kind: 'gateway',
      id: gw.body.id,
      name: 'carrier-a',
      address: 'gw.carrier.example:5060',
      transport: 'udp',
      strip: 1,
    });
    assert.deepEqual(routing.get(`route:${rt.body.id}`), {
      kind: 'route',
      id: rt.body.id,
      name: 'de',
      prefix: '+49',
      gatewayIds: [gw.body.id],
    });
    assert.deepEqual(routing.get(`trusted:${tr.body.id}`), {
      kind: 'trusted',
      id: tr.body.id,
      cidr: '198.51.100.0/24',
      description: 'carrier-a media',
    });
    assert.equal(routing.get(`radius-client:${nas.body.id}`)?.secret, 'radius-secret');

    assert.equal((await p.api('DELETE', `/api/v1/gateways/${gw.body.id}`)).status, 412);
    const moved = await p.api('PATCH', `/api/v1/gateways/${gw.body.id}`, {
      address: '192.0.2.10',
      strip: null,
    });
    assert.equal(moved.status, 200);
    assert.equal(moved.body.strip, undefined);
    assert.equal((await p.api('DELETE', `/api/v1/routes/${rt.body.id}`)).status, 204);
    assert.equal((await p.api('DELETE', `/api/v1/gateways/${gw.body.id}`)).status, 204);
    await until(async () => {
      const t = await p.topic(TOPICS.routing);
      return !t.has(`gateway:${gw.body.id}`) && !t.has(`route:${rt.body.id}`);
    }, 'tombstones');
  });
});

describe('sign-up', () => {
  test('visitors sign up only in a domain an administrator opened', async () => {
    const d = await p.api('POST', '/api/v1/domains', { domain: 'signup.example' });
    const body = {
      username: 'newbie',
      password: 'secret',
      webPassword: 'newbie-web-pw',
      domain: 'signup.example',
    };
    const closed = await p.api('POST', '/api/v1/signup', body, null);
    assert.equal(closed.status, 403);
    assert.equal(closed.body.field, 'domain');
    assert.ok(!(await p.api('GET', '/api/v1/signup', undefined, null)).body.items.includes('signup.example'));
    const opened = await p.api('PATCH', `/api/v1/domains/${d.body.id}`, { openSignup: true });
    assert.equal(opened.body.openSignup, true);
    assert.ok((await p.api('GET', '/api/v1/signup', undefined, null)).body.items.includes('signup.example'));
    const r = await p.api('POST', '/api/v1/signup', body, null);
    assert.equal(r.status, 201);
    assert.equal(r.body.aor, 'sip:newbie@signup.example');
    assert.equal((await p.api('POST', '/api/v1/signup', body, null)).status, 409);
    const bad = await p.api('POST', '/api/v1/signup', { ...body, username: 'x y' }, null);
    assert.equal(bad.body.field, 'username');
    // Unknown domains are closed.
    assert.equal(
      (await p.api('POST', '/api/v1/signup', { ...body, domain: 'nowhere.example' }, null)).status,
      403,
    );
  });
});

describe('provisioning without a secret key', () => {
  test('a phone that needs the SIP password gets 412 when only HA1 values are kept', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'nokey', password: 'secret' });
    const d = await p.api('POST', `/api/v1/subscribers/${s.body.id}/devices`, {
      vendor: 'yealink',
      model: 'T46U',
      mac: '00:15:65:12:34:56',
    });
    assert.equal(d.status, 201);
    const r = await fetch(d.body.provisioningUrlWithToken);
    assert.equal(r.status, 412);
    assert.match(((await r.json()) as { message: string }).message, /SWITCHBOARD_PORTAL_SECRET_KEY/);
  });
});
