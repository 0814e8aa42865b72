import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openPglite } from './pglite';
import type { Db } from './types';
import { FREEZE_AGE, startEmbeddedVacuum, vacuumOnce, vacuumPlan, type TableStats } from './vacuum';

const stats = (t: Partial<TableStats>): TableStats => ({
  schema: 'app',
  table: 'outbox',
  live: 0,
  dead: 0,
  modified: 0,
  ...t,
});

test("the plan follows autovacuum's default thresholds", () => {
  assert.deepEqual(vacuumPlan([stats({ live: 1000, dead: 250, modified: 150 })], 0), []);
  assert.deepEqual(vacuumPlan([stats({ live: 1000, dead: 251, modified: 0 })], 0), ['VACUUM "app"."outbox"']);
  assert.deepEqual(vacuumPlan([stats({ live: 1000, dead: 0, modified: 151 })], 0), [
    'ANALYZE "app"."outbox"',
  ]);
  assert.deepEqual(vacuumPlan([stats({ live: 0, dead: 51, modified: 51 })], 0), [
    'VACUUM (ANALYZE) "app"."outbox"',
  ]);
  assert.deepEqual(vacuumPlan([stats({ schema: 'a"b', table: 't', dead: 100 })], 0), ['VACUUM "a""b"."t"']);
  // Transaction IDs close to wraparound: the whole database, whatever the tables' counts.
  assert.deepEqual(vacuumPlan([stats({ dead: 1000 })], FREEZE_AGE + 1), ['VACUUM (ANALYZE)']);
});

const createOutbox = (db: Db) =>
  db.exec('CREATE SCHEMA app; CREATE TABLE app.outbox (seq bigserial PRIMARY KEY, body text NOT NULL)');

/** The outbox's counters, published first (a backend otherwise publishes them at most once a second). */
async function outboxStats(db: Db): Promise<{ dead: number; vacuumed: boolean }> {
  await db.query('SELECT pg_stat_force_next_flush()');
  const r = await db.query<{ dead: string; vacuumed: boolean }>(
    `SELECT n_dead_tup AS dead, last_vacuum IS NOT NULL AS vacuumed
     FROM pg_stat_user_tables WHERE relname = 'outbox'`,
  );
  return { dead: Number(r.rows[0].dead), vacuumed: r.rows[0].vacuumed };
}

/** Inserts `n` rows of 500 bytes and deletes all but the newest 10, `times` times: an outbox's life. */
async function churn(db: Db, n: number, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await db.query(`INSERT INTO app.outbox (body) SELECT repeat('x', 500) FROM generate_series(1, ${n})`);
    await db.query('DELETE FROM app.outbox WHERE seq <= (SELECT max(seq) - 10 FROM app.outbox)');
  }
}
const size = async (db: Db) =>
  Number((await db.query<{ s: string }>("SELECT pg_relation_size('app.outbox') AS s")).rows[0].s);

test("a vacuumed table's space is used again; without it the table grows by every row it held", async () => {
  const db = await openPglite();
  try {
    await createOutbox(db);
    await churn(db, 500, 10);
    const before = await size(db);
    assert.deepEqual(await vacuumOnce(db), ['VACUUM (ANALYZE) "app"."outbox"']);
    const dead = await db.query<{ dead: string }>(
      "SELECT n_dead_tup AS dead FROM pg_stat_user_tables WHERE relname = 'outbox'",
    );
    assert.equal(Number(dead.rows[0].dead), 0);
    await churn(db, 500, 4);
    await vacuumOnce(db);
    await churn(db, 500, 4);
    assert.ok((await size(db)) <= before, 'the rows deleted before each vacuum made room for the new ones');
    // And without a vacuum the same churn makes the table larger.
    await churn(db, 500, 10);
    assert.ok((await size(db)) > before, 'grew without a vacuum');
  } finally {
    await db.close();
  }
});

test('the embedded vacuum runs by itself every interval and stops', async () => {
  const db = await openPglite();
  try {
    await createOutbox(db);
    await churn(db, 200, 2);
    const deadTuples = async () => (await outboxStats(db)).dead;
    assert.ok((await deadTuples()) > 0);
    const vacuum = startEmbeddedVacuum(db, { intervalMs: 50 });
    const until = Date.now() + 10_000;
    while ((await deadTuples()) > 0 && Date.now() < until) await sleep(50);
    await vacuum.stop();
    assert.equal(await deadTuples(), 0);
  } finally {
    await db.close();
  }
});

test('the first round vacuums the whole database: what a run before a restart left, which the counters forgot', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-vacuum-'));
  try {
    const a = await openPglite({ dataDir: dir });
    await createOutbox(a);
    await churn(a, 200, 2);
    await a.close();
    const b = await openPglite({ dataDir: dir });
    try {
      const lastVacuum = () => outboxStats(b);
      // The counters start again at zero: by them alone nothing would be vacuumed.
      assert.deepEqual(await lastVacuum(), { dead: 0, vacuumed: false });
      assert.deepEqual(await vacuumOnce(b), []);
      const vacuum = startEmbeddedVacuum(b, { intervalMs: 50 });
      const until = Date.now() + 10_000;
      while (!(await lastVacuum()).vacuumed && Date.now() < until) await sleep(50);
      await vacuum.stop();
      assert.equal((await lastVacuum()).vacuumed, true);
    } finally {
      await b.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
