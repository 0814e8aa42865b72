// The binding store's group commit on embedded PostgreSQL (PGlite in memory), with the
// commit interval's clock and wait in the test's hands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { migrate, openPglite } from '@switchboard/platform';
import type { Binding } from './bindings';
import { createBindingStore } from './store';

const binding = (aor: string, expires: number): Binding => ({
  aor,
  contact: `${aor.replace('sip:', 'sip:c-')}:5062`,
  expires,
  callId: `call-${aor}`,
  cseq: 1,
  path: [],
  instanceId: '',
  regId: 0,
  userAgent: 'test',
  updatedAt: expires * 1000,
});

const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

test('group commit: writes within the commit interval share one batch, one after a quiet spell goes at once', async () => {
  const db = await openPglite();
  try {
    await migrate(db, { schema: 'registrar', dir: join(import.meta.dirname, '..', 'migrations') });
    let now = 1_000;
    const sleeps: number[] = [];
    let wake: (() => void) | undefined;
    const batches: string[][] = [];
    const store = createBindingStore(db, {
      minIntervalMs: 100,
      timers: {
        now: () => now,
        sleep: (ms) => {
          sleeps.push(ms);
          return new Promise<void>((r) => (wake = r));
        },
      },
      afterCommit: async (latest) => void batches.push([...latest.keys()]),
    });

    await store.save('sip:a@example.com', [binding('sip:a@example.com', 5000)]);
    assert.deepEqual(batches, [['sip:a@example.com']], 'the first write is committed at once');

    // Within the interval: queued until the interval since the last batch is over.
    now += 30;
    const b = store.save('sip:b@example.com', [binding('sip:b@example.com', 5000)]);
    await ticks(5);
    const c = store.save('sip:c@example.com', [binding('sip:c@example.com', 5000)]);
    const b2 = store.save('sip:b@example.com', [binding('sip:b@example.com', 6000)]);
    await ticks(20);
    assert.equal(batches.length, 1, 'nothing committed before the interval is over');
    assert.deepEqual(sleeps, [70], 'waits out the rest of the interval');
    wake!();
    await Promise.all([b, c, b2]);
    assert.deepEqual(batches[1], ['sip:b@example.com', 'sip:c@example.com'], 'one batch, latest per AoR');

    // After a quiet spell: at once, without waiting.
    now += 1_000;
    await store.save('sip:d@example.com', []);
    assert.deepEqual(batches[2], ['sip:d@example.com']);
    assert.equal(sleeps.length, 1);

    const rows = await store.loadAll();
    assert.deepEqual(
      [...rows.keys()].sort(),
      ['sip:a@example.com', 'sip:b@example.com', 'sip:c@example.com'],
      'committed: the empty set deleted its row (it had none)',
    );
    assert.equal(rows.get('sip:b@example.com')![0].expires, 6000, 'the later write of b won');

    // One batch that deletes a stored AoR and upserts others (one statement).
    now += 1_000;
    await Promise.all([
      store.save('sip:a@example.com', []),
      store.save('sip:e@example.com', [binding('sip:e@example.com', 7000)]),
      store.save('sip:c@example.com', [binding('sip:c@example.com', 7000)]),
    ]);
    assert.deepEqual(batches[3], ['sip:a@example.com', 'sip:e@example.com', 'sip:c@example.com']);
    const after = await store.loadAll();
    assert.deepEqual([...after.keys()].sort(), [
      'sip:b@example.com',
      'sip:c@example.com',
      'sip:e@example.com',
    ]);
    assert.equal(after.get('sip:c@example.com')![0].expires, 7000);
    await store.flush();
  } finally {
    await db.close();
  }
});

test('loadAll reads every AoR, in pages', async () => {
  const db = await openPglite();
  try {
    await migrate(db, { schema: 'registrar', dir: join(import.meta.dirname, '..', 'migrations') });
    // 4,500 AoRs: two whole pages of 2,000 and a part
    const aors = Array.from({ length: 4500 }, (_, i) => `sip:u${i}@example.com`);
    await db.query(
      `INSERT INTO registrar.aors (aor, bindings, next_expiry, updated_at)
       SELECT a, jsonb_build_array(jsonb_build_object('aor', a, 'expires', n)), n, 0
       FROM unnest($1::text[]) WITH ORDINALITY AS x(a, n)`,
      [aors],
    );
    const queries: string[] = [];
    const store = createBindingStore({
      ...db,
      query: (sql, params, o) => (queries.push(sql), db.query(sql, params, o)),
    });
    const all = await store.loadAll();
    assert.equal(all.size, 4500);
    for (const [i, a] of aors.entries()) assert.equal(all.get(a)?.[0].expires, i + 1, a);
    assert.equal(queries.length, 3);
  } finally {
    await db.close();
  }
});
