/**
 * The accounting outbox on PostgreSQL: one row per group commit (migration 003), rows
 * left in the per-record outbox by an older version carried over in order, and rows the
 * relay has no cached bodies for read back from accounting.records in their order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openDb, type Db } from '@switchboard/platform';
import { requirePostgres, testPostgresUrl } from '@switchboard/platform/testing';
import { buildRecord, recordId } from './record';
import { accountingOutbox, OutboxBodyCache } from './relay';
import { createTestDatabase } from './test-support';
import { RecordWriter, type StoredGroup } from './writer';

const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');

const newRecord = (i: number, sessionId: string | undefined) => {
  const id = recordId({ client: 'nas', senderRecordId: `outbox-${i}` });
  const record = buildRecord(
    { id, receivedAt: new Date(), client: 'nas' },
    sessionId === undefined
      ? { 'Acct-Status-Type': 'Accounting-On' }
      : { 'Acct-Status-Type': 'Start', 'Acct-Session-Id': sessionId },
  );
  return { record, srcAddr: '127.0.0.1', srcPort: 1000 + i, identifier: i, authenticator: 'ab' };
};

describe('accounting outbox (PostgreSQL)', () => {
  let testDb: { url: string; drop(): Promise<void> };
  let db: Db;
  let oldMigrations: string;

  before(async () => {
    await requirePostgres();
    testDb = await createTestDatabase(testPostgresUrl());
    db = await openDb({ databaseUrl: testDb.url });
    oldMigrations = mkdtempSync(join(tmpdir(), 'accounting-migrations-'));
    for (const f of ['001_accounting.sql', '002_client_message_authenticator.sql'])
      cpSync(join(MIGRATIONS, f), join(oldMigrations, f));
  });
  after(async () => {
    await db?.close();
    await testDb?.drop();
    if (oldMigrations) rmSync(oldMigrations, { recursive: true, force: true });
  });

  test('rows of the per-record outbox become one row at the upgrade, published in their order', async () => {
    await migrate(db, { schema: 'accounting', dir: oldMigrations });
    // As the version before 003 stored them: a record and its outbox row each (seq order 2, 0, 1).
    const recs = [newRecord(2, 'call-2'), newRecord(0, 'call-0'), newRecord(1, undefined)];
    for (const r of recs) {
      await db.query(
        `INSERT INTO accounting.records (id, received_at, client, src_addr, src_port, identifier, authenticator, status_type, session_id, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          r.record.id,
          r.record.receivedAt,
          r.record.client,
          r.srcAddr,
          r.srcPort,
          r.identifier,
          r.authenticator,
          r.record.statusType,
          r.record.sessionId,
          JSON.stringify(r.record),
        ],
      );
      await db.query('INSERT INTO accounting.outbox (record_id, key) VALUES ($1, $2)', [
        r.record.id,
        r.record.sessionId ?? `client:${r.record.client}`,
      ]);
    }
    await migrate(db, { schema: 'accounting', dir: MIGRATIONS });
    const rows = await db.query<{ ids: string[] }>('SELECT record_ids::text[] AS ids FROM accounting.outbox');
    assert.deepEqual(
      rows.rows.map((r) => r.ids),
      [recs.map((r) => r.record.id)],
    );

    // Read back (no cached bodies): keys and bodies in the row's order, the row's seq on each.
    const store = accountingOutbox(db, 'accounting');
    const out = await store.fetch(100);
    assert.deepEqual(
      out.map((o) => o.key),
      ['call-2', 'call-0', 'client:nas'],
    );
    assert.deepEqual(
      out.map((o) => (JSON.parse(o.value!) as { id: string }).id),
      recs.map((r) => r.record.id),
    );
    assert.equal(new Set(out.map((o) => o.seq)).size, 1);
    await store.remove(out.map((o) => o.seq));
    assert.deepEqual(await store.fetch(100), []);
  });

  test('a commit writes one row; fetch takes whole rows up to the limit, cached or read back', async () => {
    const groups: StoredGroup[] = [];
    const writer = new RecordWriter(db, {
      maxBatch: 3,
      concurrency: 1,
      maxQueued: 100,
      onStored: (g) => groups.push(g),
    });
    // Three commits of 3, 3 and 1 records (one a duplicate of an earlier record: not in any row).
    const recs = Array.from({ length: 6 }, (_, i) => newRecord(10 + i, `c-${10 + i}`));
    await Promise.all(recs.map((r) => writer.submit(r)));
    assert.equal(await writer.submit(newRecord(10, 'c-10')), 'duplicate');
    await writer.submit(newRecord(16, 'c-16'));
    assert.deepEqual(
      groups.map((g) => g.keys),
      [['c-10', 'c-11', 'c-12'], ['c-13', 'c-14', 'c-15'], ['c-16']],
    );
    const count = await db.query<{ n: string }>('SELECT count(*) AS n FROM accounting.outbox');
    assert.equal(count.rows[0].n, '3');

    // The second row's bodies cached, the others read back.
    const cache = new OutboxBodyCache();
    cache.add(groups[1].seq, {
      keys: groups[1].keys,
      bodies: groups[1].bodies.split('\n').map((b) => `${b} `),
    });
    const store = accountingOutbox(db, 'accounting', cache);
    const first = await store.fetch(5);
    assert.deepEqual(
      first.map((o) => o.key),
      ['c-10', 'c-11', 'c-12'],
      'whole rows only: 3 + 3 records do not fit in 5',
    );
    assert.deepEqual(
      first.map((o) => o.value),
      groups[0].bodies.split('\n'),
    );
    await store.remove(first.map((o) => o.seq));
    const rest = await store.fetch(1);
    assert.deepEqual(
      rest.map((o) => o.key),
      ['c-13', 'c-14', 'c-15'],
      'at least one row, even larger than the limit',
    );
    assert.ok(
      rest.every((o) => o.value!.endsWith(' ')),
      'the cached bodies',
    );
    await store.remove(rest.map((o) => o.seq));
    assert.deepEqual(
      (await store.fetch(100)).map((o) => o.key),
      ['c-16'],
    );
  });
});
