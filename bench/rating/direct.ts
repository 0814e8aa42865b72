// Times the engine statement by statement on a fresh PostgreSQL database, without Kafka:
//   npx tsx bench/rating/direct.ts            one record at a time
//   BATCH=1000 npx tsx bench/rating/direct.ts handleAccountingBatch
//   BATCH=5000 SLICE=500 ...                 batches of 5000 records written in slices of 500
//   ASYNC_COMMIT=1 ...                        with synchronous_commit=off
//   EXPLAIN=10 ...                            EXPLAIN ANALYZE of the 10th write of a batch (in a savepoint, rolled back, then run)
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { migrate, openDb, processEnv } from '@switchboard/platform';
import { testPostgresUrl } from '@switchboard/platform/testing';
import { RatingEngine } from '../../services/rating/src/engine';
import { startRecord, stopRecord, SAMPLE_RATES } from '../../services/rating/src/testing';
const name = `rating_direct_${randomBytes(4).toString('hex')}`;
const admin = new pg.Client({ connectionString: testPostgresUrl() });
await admin.connect();
await admin.query(`CREATE DATABASE "${name}"`);
const url = new URL(testPostgresUrl());
url.pathname = `/${name}`;
if (processEnv().ASYNC_COMMIT) url.searchParams.set('options', '-c synchronous_commit=off');
const db = await openDb({ databaseUrl: url.toString() });
await migrate(db, { schema: 'rating', dir: join(import.meta.dirname, '../../services/rating/migrations') });
let pubs = 0;
let writes = 0;
const times = new Map<string, [number, number]>();
const orig = db.query.bind(db);
(db as { query: typeof db.query }).query = (async (sql: string, params?: unknown[]) => {
  const t0 = performance.now();
  try {
    return await orig(sql, params);
  } finally {
    const k = sql.trim().slice(0, 40).replace(/\s+/g, ' ');
    const v = times.get(k) ?? [0, 0];
    v[0]++;
    v[1] += performance.now() - t0;
    times.set(k, v);
  }
}) as typeof db.query;
const origTx = db.transaction.bind(db);
(db as { transaction: typeof db.transaction }).transaction = ((fn: (tx: unknown) => Promise<unknown>) =>
  origTx(async (tx) => {
    const q = tx.query.bind(tx);
    (tx as { query: typeof tx.query }).query = (async (sql: string, params?: unknown[]) => {
      if (sql.trim().startsWith('WITH') && ++writes === Number(processEnv().EXPLAIN ?? 0)) {
        await q('SAVEPOINT x');
        const plan = await q<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, WAL) ${sql}`, params);
        console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
        await q('ROLLBACK TO SAVEPOINT x');
      }
      const t0 = performance.now();
      try {
        return await q(sql, params);
      } finally {
        const k = `tx ${sql.trim().slice(0, 40).replace(/\s+/g, ' ')}`;
        const v = times.get(k) ?? [0, 0];
        v[0]++;
        v[1] += performance.now() - t0;
        times.set(k, v);
      }
    }) as typeof tx.query;
    return fn(tx);
  })) as typeof db.transaction;
const e = new RatingEngine({
  db,
  now: Date.now,
  publish: async (c) => void (pubs += c.length),
  maxCallSeconds: 3600,
  reservationGraceSeconds: 60,
  batchSlice: processEnv().SLICE ? Number(processEnv().SLICE) : undefined,
});
await e.importPlan(
  { planId: 'std', effectiveFrom: 0, currency: 'EUR', timezone: 'UTC', holidays: [] },
  SAMPLE_RATES,
  '',
  'x',
);
for (let a = 0; a < 100; a++) {
  await e.upsertAccount({
    account: `sip:u${a}@x`,
    prepaid: true,
    currency: 'EUR',
    creditLimitMicros: null,
    planId: 'std',
    blocked: false,
  });
}
const N = 1000;
let q = 0;
const tq = performance.now();
for (let i = 0; i < 500; i++) await db.query('select 1');
q = (performance.now() - tq) / 500;
const t1 = performance.now();
const BATCH = Number(processEnv().BATCH ?? 0);
const recs = [];
for (let i = 0; i < N * (BATCH ? 20 : 1); i++) {
  const c = {
    callId: `d${i}`,
    account: `sip:u${i % 100}@x`,
    callee: '4930123456',
    answeredAt: Date.now() - 100000,
    duration: 60,
  };
  recs.push(startRecord(c), stopRecord(c));
}
if (BATCH)
  for (let i = 0; i < recs.length; i += BATCH) await e.handleAccountingBatch(recs.slice(i, i + BATCH));
else for (const r of recs) await e.handleAccounting(r);
const s = (performance.now() - t1) / 1000;
await e.flush();
for (let a = 0; a < 100; a++)
  await e.adjust({ account: `sip:u${a}@x`, kind: 'topup', amountMicros: 1e12, actor: 'x', reason: 'x' });
const ta = performance.now();
for (let i = 0; i < 500; i++)
  await e.authorize({ account: `sip:u${i % 100}@x`, callee: '4930123456', callId: `auth${i}` });
const sa = (performance.now() - ta) / 500;
const tb = performance.now();
await Promise.all(
  Array.from({ length: 500 }, (_, i) =>
    e.authorize({ account: `sip:u${i % 100}@x`, callee: '4930123456', callId: `bauth${i}` }),
  ),
);
const sb = (performance.now() - tb) / 1000;
console.log(`authorize sequential: ${sa.toFixed(2)} ms each; 500 at once: ${(500 / sb).toFixed(0)}/s`);
console.log(
  `select 1: ${q.toFixed(3)} ms; direct${BATCH ? ` in batches of ${BATCH}` : ''}: ${(recs.length / 2 / s).toFixed(0)} calls/s (${((s * 1000) / recs.length).toFixed(3)} ms per record), published ${pubs}`,
);
for (const [k, [n, ms]] of times)
  if (n >= (BATCH ? 10 : 100)) console.log(`${(ms / n).toFixed(2)} ms x ${n}  ${k}`);
await db.close();
await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
await admin.end();
