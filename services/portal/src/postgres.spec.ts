/**
 * The portal on real PostgreSQL (DATABASE_URL), in a database of its own:
 * the API, concurrent creates racing on the unique AoR, and start-up
 * republishing after a restart on the same database.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { TOPICS, type SubscriberRecord } from '@switchboard/contracts';
import { ha1 } from '@switchboard/sip';
import { requirePostgres, testPostgresUrl } from '@switchboard/platform/testing';
import { startTestPortal, until, type TestPortal } from './test-support';

const name = `portal_${randomBytes(5).toString('hex')}`;
let url: string;

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: testPostgresUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

before(async () => {
  await requirePostgres();
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  const u = new URL(testPostgresUrl());
  u.pathname = `/${name}`;
  url = u.toString();
});
after(async () => {
  await admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
});

test('on PostgreSQL: CRUD, a race of creates gives one 201 and 409s, and a restart republishes everything', async () => {
  let p: TestPortal | undefined = await startTestPortal({ DATABASE_URL: url });
  try {
    assert.equal(p.db.kind, 'pg');
    const r = await p.api('POST', '/api/v1/subscribers', {
      username: 'alice',
      password: 'secret',
      privileges: ['pstn'],
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.aor, 'sip:alice@example.com');
    const tables = await p.db.query<{ table_schema: string }>(
      "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = 'subscribers'",
    );
    assert.deepEqual(
      tables.rows.map((x) => x.table_schema),
      ['portal'],
    );

    const racers = await Promise.all(
      Array.from({ length: 8 }, () =>
        p!.api('POST', '/api/v1/subscribers', { username: 'race', password: 'secret' }),
      ),
    );
    assert.deepEqual(racers.map((x) => x.status).sort(), [201, 409, 409, 409, 409, 409, 409, 409]);

    const patched = await p.api('PATCH', `/api/v1/subscribers/${r.body.id}`, { password: 'changed-secret' });
    assert.equal(patched.status, 200);
    const list = await p.api('GET', '/api/v1/subscribers?search=a');
    assert.deepEqual(
      list.body.items.map((s: { username: string }) => s.username),
      ['alice', 'race'],
    );
    await until(
      async () =>
        (await p!.topic<SubscriberRecord>(TOPICS.subscribers)).get('sip:alice@example.com')?.ha1 ===
        ha1('alice', 'example.com', 'changed-secret', 'MD5'),
      'the new HA1 published',
    );
    await p.stop();
    p = undefined;

    // The records are queued again at start-up and published before the API answers.
    p = await startTestPortal({ DATABASE_URL: url });
    const m = await p.metrics();
    assert.match(m, /switchboard_portal_published_total\{topic="subscribers"\} 2\b/);
    assert.match(m, /switchboard_portal_published_total\{topic="routing"\} 1\b/);
    const t = await p.topic<SubscriberRecord>(TOPICS.subscribers);
    assert.deepEqual([...t.keys()].sort(), ['sip:alice@example.com', 'sip:race@example.com']);
    assert.equal((await p.db.query('SELECT 1 FROM portal.outbox')).rowCount, 0);
  } finally {
    await p?.stop();
  }
});
