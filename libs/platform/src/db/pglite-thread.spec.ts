import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { openPglite } from './pglite';
import type { DbTx } from './types';

test('the database thread keeps what it wrote on disk across a close and a reopen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-pglite-thread-'));
  try {
    const a = await openPglite({ dataDir: dir });
    await a.exec('CREATE TABLE t (v text)');
    await a.transaction((tx) => tx.query('INSERT INTO t VALUES ($1)', ['kept']));
    await a.close();
    await assert.rejects(a.query('SELECT 1'), /embedded database closed/);
    const b = await openPglite({ dataDir: dir });
    assert.deepEqual((await b.query('SELECT v FROM t')).rows, [{ v: 'kept' }]);
    await b.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a new data directory is created on a thread of its own, and a failure to create it names it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-pglite-init-'));
  try {
    const db = await openPglite({ dataDir: join(dir, 'data') });
    assert.ok(existsSync(join(dir, 'data', 'PG_VERSION')));
    assert.deepEqual((await db.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
    await db.close();
    writeFileSync(join(dir, 'file'), '');
    await assert.rejects(openPglite({ dataDir: join(dir, 'file', 'data') }), (e: Error) => {
      assert.match(e.message, /embedded database: creating .*file\/data failed/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("shared_buffers is as set, on the database thread and on the caller's, and 32MB unless set", async () => {
  const setting = "SELECT current_setting('shared_buffers') AS v";
  for (const [opts, want] of [
    [{ sharedBuffersMb: 24 }, '24MB'],
    [{ thread: false }, '32MB'],
  ] as const) {
    const db = await openPglite(opts);
    try {
      assert.deepEqual((await db.query(setting)).rows, [{ v: want }], JSON.stringify(opts));
    } finally {
      await db.close();
    }
  }
});

test('statements run on another thread than the caller', async () => {
  const db = await openPglite();
  try {
    // pg_backend_pid is the same fake pid everywhere; the proof is the caller's loop staying free:
    // a statement that burns CPU for 300 ms leaves timers on this thread running meanwhile.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await db.query('SELECT count(*) FROM generate_series(1, 3000000)');
    clearInterval(timer);
    assert.ok(ticks >= 5, `the caller's timers ran ${ticks} times during the statement (thread ${threadId})`);
  } finally {
    await db.close();
  }
});

test('an open database does not keep the process alive, a statement in flight does', () => {
  const self = fileURLToPath(new URL('./pglite.ts', import.meta.url));
  const script = `
    const { openPglite } = await import(${JSON.stringify(self)});
    const db = await openPglite();
    const r = await db.query("SELECT pg_sleep(0.3), 'answered' AS v");
    console.log(r.rows[0].v);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.signal, null, `the process had to be killed: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'answered');
});

test(
  'a statement on a transaction that has ended is refused, not left waiting',
  { timeout: 10_000 },
  async () => {
    const db = await openPglite();
    try {
      let kept: DbTx | undefined;
      await db.transaction(async (tx) => {
        kept = tx;
        await tx.query('SELECT 1');
      });
      await assert.rejects(kept!.query('SELECT 2'), /transaction \d+ is not open/);
      assert.equal((await db.query<{ v: number }>('SELECT 3 AS v')).rows[0].v, 3);
    } finally {
      await db.close();
    }
  },
);
