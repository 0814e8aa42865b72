/**
 * bench/proxy/registrar-path: the storage side of a REGISTER refresh as `npm start` runs it,
 * without SIP or gRPC: the registrar's Registry and group-committing store, the `location`
 * publish on the embedded event log and a proxy's location replica reading it back, all on
 * one PGlite on disk. Refreshes of BENCH_USERS AoRs at BENCH_RATE/s for BENCH_SECONDS; prints
 * the process CPU per refresh (user + system, all threads), the batches, and the statements
 * by text (their time includes waiting for PGlite's one connection).
 *
 * `node --import tsx bench/proxy/registrar-path.ts`
 * Env: BENCH_RATE (1000), BENCH_SECONDS (5), BENCH_USERS (1000), BENCH_COMMIT_MS (the
 * registrar's SWITCHBOARD_REGISTRAR_COMMIT_MS, default 50).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  migrate,
  openEmbeddedBus,
  openPglite,
  processEnv,
  type Db,
  type DbTx,
  Replica,
} from '@switchboard/platform';
import type { Binding } from '../../services/registrar/src/bindings';
import { LOCATION_TOPIC, locationRecords } from '../../services/registrar/src/main';
import { Registry } from '../../services/registrar/src/registry';
import { createBindingStore } from '../../services/registrar/src/store';

const env = processEnv();
const RATE = Number(env.BENCH_RATE ?? 1000);
const SECONDS = Number(env.BENCH_SECONDS ?? 5);
const USERS = Number(env.BENCH_USERS ?? 1000);
const COMMIT_MS = Number(env.BENCH_COMMIT_MS ?? 50);

const dir = mkdtempSync(join(tmpdir(), 'bench-registrar-path-'));
const pglite = await openPglite({ dataDir: dir });
const statements = new Map<string, { n: number; ms: number }>();
const timed =
  (query: DbTx['query']): DbTx['query'] =>
  async (sql, params) => {
    const t = performance.now();
    try {
      return await query(sql, params);
    } finally {
      const k = sql.replace(/\s+/g, ' ').trim().slice(0, 70);
      const s = statements.get(k) ?? { n: 0, ms: 0 };
      s.n++;
      s.ms += performance.now() - t;
      statements.set(k, s);
    }
  };
const db: Db = {
  ...pglite,
  query: timed(pglite.query.bind(pglite)) as Db['query'],
  transaction: (fn) => pglite.transaction((tx) => fn({ ...tx, query: timed(tx.query.bind(tx)) })),
};

await migrate(db, {
  schema: 'registrar',
  dir: join(import.meta.dirname, '../../services/registrar/migrations'),
});
const bus = await openEmbeddedBus({ db, onLag: () => {} });
await bus.ensureTopic(LOCATION_TOPIC, { compacted: true });
const batches: number[] = [];
// as services/registrar/src/main.ts publishes
const publish = (latest: Map<string, Binding[]>) => bus.publish(LOCATION_TOPIC, locationRecords(latest));
const store = createBindingStore(db, {
  afterCommit: publish,
  onBatch: (n) => batches.push(n),
  minIntervalMs: COMMIT_MS,
});
const registry = new Registry(
  store,
  { minExpires: 60, maxExpires: 3600, defaultExpires: 3600, maxContacts: 10, overflow: 'drop-oldest' },
  { now: Date.now },
  (a, b) => a === b,
);
const replica = new Replica<unknown>(LOCATION_TOPIC, 'bench-location');
let applied = 0;
replica.onChange = () => applied++;
await replica.start(bus);

let cseq = 1;
const refresh = (i: number) =>
  registry.register({
    aor: `sip:user${i}@example.com`,
    contacts: [{ uri: `sip:user${i}@127.0.0.1:5070`, expires: 3600 }],
    removeAll: false,
    callId: `bench-${i}@127.0.0.1`,
    cseq: cseq++,
    path: [],
    userAgent: 'bench',
  });
// every AoR registered once, then only refreshes are measured
await Promise.all(Array.from({ length: USERS }, (_, i) => refresh(i)));
await new Promise((r) => setTimeout(r, 500));
statements.clear();
batches.length = 0;
applied = 0;

const total = RATE * SECONDS;
const latency: number[] = [];
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let sent = 0;
await new Promise<void>((resolve) => {
  const tick = setInterval(() => {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
    for (; sent < due; sent++) {
      const s = performance.now();
      void refresh(sent % USERS).then(() => latency.push(performance.now() - s));
    }
    if (sent >= total) {
      clearInterval(tick);
      resolve();
    }
  }, 1);
});
while ((latency.length < total || applied < total) && performance.now() - t0 < SECONDS * 1000 + 30_000)
  await new Promise((r) => setTimeout(r, 5));
const cpu = process.cpuUsage(cpu0);
latency.sort((a, b) => a - b);
const q = (p: number) => latency[Math.min(latency.length - 1, Math.floor(p * latency.length))] ?? NaN;
console.log(
  `${total} refreshes at ${RATE}/s, commit interval ${COMMIT_MS} ms: ${latency.length} committed, ${applied} applied by the replica; ` +
    `CPU ${((cpu.user + cpu.system) / total).toFixed(0)} µs per refresh; commit latency p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms`,
);
console.log(
  `${batches.length} batches, mean ${(batches.reduce((a, b) => a + b, 0) / batches.length).toFixed(1)}, max ${Math.max(...batches)}`,
);
let n = 0;
for (const s of statements.values()) n += s.n;
console.log(`${n} statements (${(n / total).toFixed(2)} per refresh; BEGIN/COMMIT not counted):`);
for (const [k, s] of [...statements].sort((a, b) => b[1].ms - a[1].ms))
  console.log(`${String(s.n).padStart(7)} ${s.ms.toFixed(0).padStart(6)} ms  ${k}`);

await replica.stop();
await bus.close();
await store.flush();
await pglite.close();
rmSync(dir, { recursive: true, force: true });
