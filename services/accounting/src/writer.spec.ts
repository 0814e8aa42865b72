/** RecordWriter's grouping, on a Queryable whose statements finish when the test says (a unit test; the SQL runs in the service tests and below). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { migrate, openDb, type QueryResult, type Queryable } from '@switchboard/platform';
import { buildRecord, recordId } from './record';
import { RecordWriter, type NewRecord, type StoredGroup } from './writer';

/** Each statement answers as the group commit does: its outbox row's seq and the ids already stored. */
function heldDb(alreadyStored: ReadonlySet<string> = new Set()) {
  const calls: { size: number; finish(): void }[] = [];
  const db: Queryable = {
    query: <T>(_sql: string, params?: unknown[]) =>
      new Promise<QueryResult<T>>((resolve) => {
        const ids = (params![0] as string).slice(1, -1).split(','); // the ids' array literal
        const duplicates = ids.filter((id) => alreadyStored.has(id));
        const seq = duplicates.length === ids.length ? null : String(calls.length + 1);
        calls.push({
          size: ids.length,
          finish: () => resolve({ rows: [{ seq, duplicates }] as T[], rowCount: 1 }),
        });
      }),
    exec: async () => undefined,
  };
  return { db, calls };
}

const rec = (i: number, sessionId?: string): NewRecord => {
  const id = recordId({ client: 'c', senderRecordId: `r${i}` });
  const record = buildRecord(
    { id, receivedAt: new Date(), client: 'c' },
    sessionId === undefined
      ? { 'Acct-Status-Type': 'Start' }
      : { 'Acct-Status-Type': 'Start', 'Acct-Session-Id': sessionId },
  );
  return { record, srcAddr: '127.0.0.1', srcPort: 1, identifier: i % 256, authenticator: '00' };
};
const tick = () => new Promise((r) => setImmediate(r));

test('a second group commit goes in flight only once parallelFrom records wait', async () => {
  const { db, calls } = heldDb();
  const w = new RecordWriter(db, { maxBatch: 500, concurrency: 2, maxQueued: 1000, parallelFrom: 16 });
  const done: Promise<unknown>[] = [];
  for (let i = 0; i < 5; i++) done.push(w.submit(rec(i)));
  await tick();
  assert.deepEqual(
    calls.map((c) => c.size),
    [5],
  );
  for (let i = 5; i < 15; i++) done.push(w.submit(rec(i)));
  await tick();
  assert.equal(calls.length, 1, '10 waiting: no second commit');
  for (let i = 15; i < 21; i++) done.push(w.submit(rec(i)));
  await tick();
  assert.deepEqual(
    calls.map((c) => c.size),
    [5, 16],
  );
  for (let i = 21; i < 24; i++) done.push(w.submit(rec(i)));
  calls[0].finish();
  await tick();
  assert.equal(calls.length, 2, 'one commit still in flight and 3 waiting: they wait for it');
  calls[1].finish();
  await tick();
  assert.deepEqual(
    calls.map((c) => c.size),
    [5, 16, 3],
  );
  calls[2].finish();
  assert.deepEqual(new Set(await Promise.all(done)), new Set(['stored']));
});

test('without parallelFrom, every queued record starts a commit while one is free', async () => {
  const { db, calls } = heldDb();
  const w = new RecordWriter(db, { maxBatch: 500, concurrency: 2, maxQueued: 1000 });
  const first = w.submit(rec(1));
  await tick();
  const second = w.submit(rec(2));
  await tick();
  assert.deepEqual(
    calls.map((c) => c.size),
    [1, 1],
  );
  for (const c of calls) c.finish();
  assert.deepEqual(await Promise.all([first, second]), ['stored', 'stored']);
});

test("a commit hands its outbox row's records to onStored in order, without those already stored", async () => {
  const dup = rec(2, 'call-2');
  const { db, calls } = heldDb(new Set([dup.record.id]));
  const groups: StoredGroup[] = [];
  const w = new RecordWriter(db, {
    maxBatch: 500,
    concurrency: 1,
    maxQueued: 1000,
    onStored: (g) => groups.push(g),
  });
  const done = [w.submit(rec(1, 'call-1')), w.submit(dup), w.submit(rec(3))];
  await tick();
  calls[0].finish();
  assert.deepEqual(await Promise.all(done), ['stored', 'duplicate', 'stored']);
  assert.equal(groups.length, 1);
  assert.equal(groups[0].seq, '1');
  assert.deepEqual(groups[0].keys, ['call-1', 'client:c']);
  assert.deepEqual(
    groups[0].bodies.split('\n').map((b) => (JSON.parse(b) as { sessionId: string | null }).sessionId),
    ['call-1', null],
  );

  // Only duplicates: no outbox row, nothing handed over.
  const again = w.submit(dup);
  await tick();
  calls[1].finish();
  assert.equal(await again, 'duplicate');
  assert.equal(groups.length, 1);
});

test('the statement stores text columns exactly, whatever they hold (PGlite)', async () => {
  const db = await openDb({ memory: true });
  try {
    await migrate(db, { schema: 'accounting', dir: join(import.meta.dirname, '..', 'migrations') });
    const w = new RecordWriter(db, { maxBatch: 10, concurrency: 1, maxQueued: 10 });
    const odd = ['a"b\\c', '{x,y}', ' NULL', 'NULL', '', 'é ☎', 'nul\0here'];
    const recs = odd.map((sid, i) => rec(100 + i, sid));
    recs[0].srcAddr = '::ffff:10.0.0.1';
    assert.deepEqual(
      await Promise.all(recs.map((r) => w.submit(r))),
      odd.map(() => 'stored'),
    );
    const rows = (
      await db.query<{ id: string; session_id: string; src_addr: string; body: string }>(
        'SELECT id, session_id, src_addr, body FROM accounting.records',
      )
    ).rows;
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const [i, r] of recs.entries()) {
      const row = byId.get(r.record.id)!;
      assert.equal(row.session_id, odd[i]!.replace('\0', '\ufffd'), JSON.stringify(odd[i]));
      assert.equal(row.src_addr, r.srcAddr);
      assert.deepEqual(JSON.parse(row.body), r.record);
    }
  } finally {
    await db.close();
  }
});
