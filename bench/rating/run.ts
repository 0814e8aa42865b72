/**
 * Rating benchmark, from one run:
 *
 * 1. the tariff alone: calls rated per second by `rateCall` (longest-prefix
 *    trie over --destinations random prefixes, periods, increments), in process;
 * 2. end to end: --calls Start/Stop pairs (as the accounting service publishes
 *    them) preloaded on a fresh `accounting` topic on real Kafka, then the
 *    rating service started alone in a child process
 *    (services/rating/src/child.ts, PostgreSQL + Kafka) and timed until every
 *    CDR row is in a fresh PostgreSQL database: correlated, rated, debited;
 * 3. Authorize latency over gRPC at each of --rate requests/s (open loop, one
 *    new call id per request, so each one reserves credit) for --seconds; then
 *    at the last rate while the service stores --calls more calls published
 *    meanwhile (Authorize during ingest);
 * 4. the engine fed --batch-calls calls in batches of --batch records
 *    (handleAccountingBatch, in this process, same database, service stopped,
 *    no Kafka): the engine alone, beside the service consuming batches from
 *    Kafka (EventBus.subscribeBatch) in 2;
 * 5. the limit, measured in the same run: every CDR row of 2 and 4 COPYed
 *    (psql \copy) into a table of the same shape.
 *
 *   npx tsx bench/rating/run.ts [--calls=5000] [--batch-calls=20000] [--batch=1000] [--destinations=20000]
 *                               [--rate=1000,250] [--seconds=10] [--profile=DIR] [--node-flags="FLAGS"]
 *
 * CGRateS (the obvious peer) is not installed on this machine: no side-by-side run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { DomainError, grpcClient, KafkaBus, migrate, openDb, processEnv } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { RatingClient } from '@switchboard/proto/rating';
import { RatingEngine } from '@switchboard/rating';
import { importPlan } from '../../services/rating/src/csv';
import { rateCall, PlanBook } from '../../services/rating/src/tariff';
import { startRecord, stopRecord } from '../../services/rating/src/testing';
import { cliArgs, nodeFlags } from '../args';

const args = cliArgs();
const CALLS = Number(args.calls ?? 5000);
const DESTINATIONS = Number(args.destinations ?? 20000);
const RATES = String(args.rate ?? '1000,250')
  .split(',')
  .map(Number)
  .filter((r) => r > 0);
const SECONDS = Number(args.seconds ?? 10);
const ACCOUNTS = 1000;
const BATCH_CALLS = Number(args['batch-calls'] ?? 20000);
const BATCH = Number(args.batch ?? 1000);
const CHILD = join(import.meta.dirname, '../../services/rating/src/child.ts');
/**
 * --profile=DIR: the service child writes a V8 CPU profile (--cpu-prof) into DIR when it stops.
 * --node-flags="...": more node flags for the child, e.g. --trace-gc.
 */
const PROFILE = [
  ...(args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : []),
  ...nodeFlags(args),
];
const T0 = Date.parse('2026-11-25T10:00:00Z');

// mulberry32: a seeded generator, so every run rates the same plan and numbers
let seed = 42;
function rnd(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 10)).join('');

function planCsv(): string {
  const lines = [
    'prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds',
  ];
  const seen = new Set<string>();
  while (seen.size < DESTINATIONS) {
    const p = String(1 + Math.floor(rnd() * 9)) + digits(1 + Math.floor(rnd() * 5));
    if (seen.has(p)) continue;
    seen.add(p);
    const inc = ['1/1', '60/60', '30/6'][seen.size % 3];
    lines.push(`${p},Dest ${p},XX,,0.01,0.0${1 + (seen.size % 9)},0,${inc},0`);
    if (seen.size % 4 === 0) lines.push(`${p},Dest ${p},XX,peak,0.01,0.1${seen.size % 9},0,${inc},0`);
  }
  return lines.join('\n') + '\n';
}
const PERIODS = 'name,days,from,to\npeak,mon-fri,08:00,18:00\n';
const meta = (effectiveFrom: number) => ({
  planId: 'bench',
  effectiveFrom,
  currency: 'EUR',
  timezone: 'Europe/Berlin',
  holidays: [],
});

/** CPU seconds (user + system) so far of the service process, and per pid of every postgres process and of the Kafka broker (Linux /proc). */
interface CpuSample {
  service: number;
  postgres: Map<string, number>;
  kafka: Map<string, number>;
}
function cpuNow(servicePid: number): CpuSample {
  const secs = (pid: string) => {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
    } catch {
      return 0; // gone meanwhile
    }
  };
  const out: CpuSample = { service: secs(String(servicePid)), postgres: new Map(), kafka: new Map() };
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmd.startsWith('postgres') || cmd.includes('/bin/postgres')) out.postgres.set(pid, secs(pid));
    else if (cmd.includes('kafka.Kafka')) out.kafka.set(pid, secs(pid));
  }
  return out;
}

/** CPU seconds between two samples: a process that exited meanwhile is left out, one started meanwhile counts whole. */
function cpuBetween(a: CpuSample, b: CpuSample): Record<'service' | 'postgres' | 'kafka', number> {
  const sum = (x: Map<string, number>, y: Map<string, number>) =>
    [...y].reduce((t, [pid, v]) => t + v - (x.get(pid) ?? 0), 0);
  return {
    service: b.service - a.service,
    postgres: sum(a.postgres, b.postgres),
    kafka: sum(a.kafka, b.kafka),
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function tariffOnly(csv: string) {
  const r = await importPlan(meta(0), csv, PERIODS);
  if (!r.ok) throw new Error(r.errors.join('\n'));
  const book = new PlanBook();
  book.add(r.version);
  const numbers = Array.from({ length: 100_000 }, () => String(1 + Math.floor(rnd() * 9)) + digits(10));
  const N = 1_000_000;
  let sum = 0;
  for (let i = 0; i < 100_000; i++)
    sum += rateCall(book, {
      planId: 'bench',
      callee: numbers[i],
      onNet: false,
      answeredAt: T0 + i * 997,
      durationSeconds: i % 600,
    }).priceMicros;
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    sum += rateCall(book, {
      planId: 'bench',
      callee: numbers[i % numbers.length],
      onNet: false,
      answeredAt: T0 + i * 997,
      durationSeconds: i % 600,
    }).priceMicros;
  }
  const s = (performance.now() - t) / 1000;
  return { perSecond: N / s, checksum: sum };
}

async function main() {
  await requirePostgres();
  await requireKafka();
  const csv = planCsv();
  const tariff = await tariffOnly(csv);
  console.log(
    `tariff: ${fmt(tariff.perSecond)} calls rated/s (${DESTINATIONS} destinations, Europe/Berlin periods)`,
  );

  const dbName = `rating_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testPostgresUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  const url = new URL(testPostgresUrl());
  url.pathname = `/${dbName}`;
  const topics = {
    accounting: uniqueName('bench_accounting'),
    cdrs: uniqueName('bench_cdrs'),
    media: uniqueName('bench_media'),
  };
  const tmp = mkdtempSync(join(tmpdir(), 'rating-bench-'));
  let stopChild: (() => Promise<void>) | undefined;
  let closeBus: (() => Promise<void>) | undefined;
  const db = await openDb({ databaseUrl: url.toString() });
  try {
    // seed plan and accounts directly (the service loads them at start)
    await migrate(db, {
      schema: 'rating',
      dir: join(import.meta.dirname, '../../services/rating/migrations'),
    });
    const seedEngine = new RatingEngine({
      db,
      now: Date.now,
      publish: async () => undefined,
      maxCallSeconds: 3600,
      reservationGraceSeconds: 60,
    });
    const imp = await seedEngine.importPlan(meta(Date.parse('2026-01-01T00:00:00Z')), csv, PERIODS, 'bench');
    if (!imp.ok) throw new Error(imp.errors.join('\n'));
    for (let a = 0; a < ACCOUNTS; a++) {
      const account = `sip:u${a}@bench.example`;
      await seedEngine.upsertAccount({
        account,
        prepaid: true,
        currency: 'EUR',
        creditLimitMicros: null,
        planId: 'bench',
        blocked: false,
      });
      await seedEngine.adjust({
        account,
        kind: 'topup',
        amountMicros: 1_000_000_000_000,
        actor: 'bench',
        reason: 'seed',
      });
    }

    // preload the accounting topic
    const bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: uniqueName('rating-bench') });
    closeBus = () => bus.close();
    await bus.ensureTopic(topics.accounting);
    const numbers = Array.from({ length: 1000 }, () => String(1 + Math.floor(rnd() * 9)) + digits(10));
    /** Call j of a run: its account, callee, answer time and duration follow from j. */
    const benchCall = (prefix: string, j: number) => ({
      callId: `${prefix}-${j}-${dbName}`,
      account: `sip:u${j % ACCOUNTS}@bench.example`,
      callee: numbers[j % numbers.length],
      answeredAt: T0 + j * 100,
      duration: 1 + (j % 300),
    });
    /** Start/Stop pairs of calls [from, to) on the accounting topic, 2,000 calls a publish. */
    const publishCalls = async (from: number, to: number) => {
      for (let i = from; i < to; i += 2000) {
        const batch = [];
        for (let j = i; j < Math.min(to, i + 2000); j++) {
          const c = benchCall('bench', j);
          batch.push(startRecord(c), stopRecord(c));
        }
        await bus.publish(
          topics.accounting,
          batch.map((r) => ({ key: r.sessionId!, value: JSON.stringify(r) })),
        );
      }
    };
    await publishCalls(0, CALLS);
    console.log(`preloaded ${fmt(CALLS)} Start/Stop pairs on ${topics.accounting}`);

    const started = performance.now();
    const child = spawn(process.execPath, [...PROFILE, '--import', 'tsx', CHILD], {
      env: {
        ...processEnv(),
        SWITCHBOARD_OPS_PORT: '0',
        SWITCHBOARD_OPS_HOST: '127.0.0.1',
        SWITCHBOARD_RATING_GRPC_PORT: '0',
        SWITCHBOARD_LOG_LEVEL: 'warn',
        DATABASE_URL: url.toString(),
        KAFKA_BROKERS: testKafkaBrokers().join(','),
        SWITCHBOARD_KAFKA_CLIENT_ID: uniqueName('rating-bench'),
        SWITCHBOARD_RATING_ACCOUNTING_TOPIC: topics.accounting,
        SWITCHBOARD_RATING_CDRS_TOPIC: topics.cdrs,
        SWITCHBOARD_RATING_MEDIA_TOPIC: topics.media,
        SWITCHBOARD_RATING_GROUP: uniqueName('rating'),
        SWITCHBOARD_RATING_MAX_CALL_SECONDS: '3600',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    stopChild = async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    };
    const endpoints = await new Promise<{ grpc: string; ops: string }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('ready '));
        if (line) resolve(JSON.parse(line.slice(6)) as { grpc: string; ops: string });
      });
      child.once('exit', (code) => reject(new Error(`rating exited (${code}) before it started`)));
    });
    const count = async () =>
      Number((await db.query<{ n: string }>('SELECT count(*)::text AS n FROM rating.cdrs')).rows[0].n);
    // CPU seconds spent while the CDRs are being made (from the first poll that sees one): the
    // service process, every PostgreSQL process, the Kafka broker
    // Polled through the consumer's stored position (committed with the CDRs it made; one row), not by
    // counting rating.cdrs: a count every 200 ms scanned the growing table and its CPU was counted as
    // the pipeline's. Each pair is two records, so a position p means p / 2 CDRs (Start, Stop adjacent).
    const position = async () =>
      Number(
        (
          await db.query<{ n: string }>(
            'SELECT coalesce(sum(next_offset), 0)::text AS n FROM rating.consumed_offsets',
          )
        ).rows[0].n,
      );
    let from: { n: number; cpu: CpuSample } | undefined;
    let n = 0;
    for (;;) {
      n = Math.floor((await position()) / 2);
      if (n > 0 && !from) from = { n, cpu: cpuNow(child.pid!) };
      if (n >= CALLS) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // when the last CDR was committed (to the poll's 10 ms)
    const doneAt = Date.now();
    const cpuEnd = cpuNow(child.pid!);
    n = await count();
    if (n !== CALLS) throw new Error(`end to end: ${n} CDRs stored, expected ${CALLS}`);
    const wall = (performance.now() - started) / 1000;
    const span = await db.query<{ first: string; last: string }>(
      "SELECT min((cdr->>'ratedAt')::timestamptz)::text AS first, max((cdr->>'ratedAt')::timestamptz)::text AS last FROM rating.cdrs",
    );
    // from the first CDR's rating (its slice being built) to the last one's commit; rated-to-rated
    // (the figure before) left out the last slice's write, which with slices of 1,000 CDRs is a twentieth
    const busy = (doneAt - Date.parse(span.rows[0].first)) / 1000;
    const e2e = CALLS / busy;
    const rated = (CALLS - 1) / ((Date.parse(span.rows[0].last) - Date.parse(span.rows[0].first)) / 1000);
    console.log(
      `end to end: ${fmt(e2e)} CDRs/s from the first CDR rated to the last one committed (${fmt(CALLS)} in ${busy.toFixed(2)} s; first to last rated ${fmt(rated)}/s; ${wall.toFixed(2)} s with start-up and group join)`,
    );
    if (from && n > from.n) {
      const used = cpuBetween(from.cpu, cpuEnd);
      const per = (k: keyof typeof used) => `${fmt((used[k] * 1e6) / (n - from.n))} µs`;
      console.log(
        `end to end, CPU per CDR (${fmt(n - from.n)} CDRs): service ${per('service')}, PostgreSQL ${per('postgres')}, Kafka broker ${per('kafka')}`,
      );
    }

    // Authorize at RATE/s, open loop
    const grpcUrl = endpoints.grpc;
    const client = grpcClient(RatingClient, grpcUrl, {
      deadlineMs: 5000,
      // as the service: no channelz call tracking (CPU on every call)
      channelOptions: { 'grpc.enable_channelz': 0 },
    });
    for (let i = 0; i < 200; i++)
      await client.authorize({
        account: `sip:u${i % ACCOUNTS}@bench.example`,
        callee: numbers[i % 1000],
        callId: `warm-${i}`,
      });
    /** Authorize at `rate`/s for `seconds`, open loop, each request a new call id; prints what it measured. */
    const authorizeAt = async (rate: number, seconds: number, label: string) => {
      const lat: number[] = [];
      let denied = 0;
      let errors = 0;
      const errorKinds = new Map<string, number>();
      const total = rate * seconds;
      const inflight: Promise<void>[] = [];
      const cpu0 = { client: process.cpuUsage(), server: cpuNow(child.pid!).service };
      const t0 = performance.now();
      let lateMax = 0;
      for (let i = 0; i < total; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const s = performance.now();
        lateMax = Math.max(lateMax, s - due);
        inflight.push(
          client
            .authorize({
              account: `sip:u${i % ACCOUNTS}@bench.example`,
              callee: numbers[i % 1000],
              callId: `auth-${label}-${rate}-${i}`,
            })
            .then((r) => {
              if (!r.allowed) denied++;
              lat.push(performance.now() - s);
            })
            .catch((e: unknown) => {
              errors++;
              // grpc-js appends per-call timings to a deadline message ("after 5.1s,LB pick: ..."): leave them out
              const k = (e instanceof DomainError ? `${e.kind}: ${e.message}` : String(e)).replace(
                / after .*/,
                '',
              );
              errorKinds.set(k, (errorKinds.get(k) ?? 0) + 1);
            }),
        );
      }
      const sentIn = (performance.now() - t0) / 1000;
      await Promise.all(inflight);
      const achieved = total / ((performance.now() - t0) / 1000);
      const clientCpu = process.cpuUsage(cpu0.client);
      const serverCpu = cpuNow(child.pid!).service - cpu0.server;
      lat.sort((a, b) => a - b);
      if (!lat.length) {
        console.log(`${label}: offered ${rate}/s for ${seconds} s: every request failed (${errors} errors)`);
        return;
      }
      console.log(
        `${label}: ${fmt(achieved)} req/s offered ${rate}/s for ${seconds} s: p50 ${pct(lat, 50).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms, max ${lat[lat.length - 1].toFixed(2)} ms; ${denied} denied, ${errors} errors`,
      );
      console.log(
        `  sent in ${sentIn.toFixed(2)} s (latest send ${fmt(lateMax)} ms after its due time); CPU per request: client (this process) ${fmt((clientCpu.user + clientCpu.system) / total)} µs, service ${fmt((serverCpu * 1e6) / total)} µs`,
      );
      for (const [k, n] of errorKinds) console.log(`  ${n} x ${k}`);
    };
    for (const rate of RATES) await authorizeAt(rate, SECONDS, 'authorize');

    // Authorize while the service stores CDRs: as many calls again published (the service starts
    // on them at once), then Authorize at the last rate while it works through them. Publishing
    // first: this process's publishing would otherwise delay its own requests and answers.
    if (RATES.length) {
      await publishCalls(CALLS, 2 * CALLS);
      const ingest = (async () => {
        while ((await position()) < 4 * CALLS) await new Promise((r) => setTimeout(r, 10));
        return performance.now();
      })();
      const during = performance.now();
      await authorizeAt(RATES[RATES.length - 1], SECONDS, 'authorize during ingest');
      const ingested = await ingest;
      console.log(
        `  the ${fmt(CALLS)} more calls were stored ${((ingested - during) / 1000).toFixed(2)} s after the requests began`,
      );
    }
    client.close();
    await stopChild();

    // the engine with batches, as a bus delivering batches would run it (in this process, no Kafka)
    const engine = new RatingEngine({
      db,
      now: Date.now,
      publish: async () => undefined,
      maxCallSeconds: 3600,
      reservationGraceSeconds: 60,
    });
    await engine.loadPlans();
    const recs = [];
    for (let j = 0; j < BATCH_CALLS; j++) {
      // as the topic holds them: Starts and Stops interleaved, a Stop some records after its Start
      recs.push(startRecord(benchCall('batch', j)));
      if (j >= 100) recs.push(stopRecord(benchCall('batch', j - 100)));
    }
    for (let k = Math.max(0, BATCH_CALLS - 100); k < BATCH_CALLS; k++) {
      recs.push(stopRecord(benchCall('batch', k)));
    }
    const tb = performance.now();
    for (let i = 0; i < recs.length; i += BATCH) await engine.handleAccountingBatch(recs.slice(i, i + BATCH));
    const batchSeconds = (performance.now() - tb) / 1000;
    const batched = BATCH_CALLS / batchSeconds;
    const stored = Number(
      (
        await db.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM rating.cdrs WHERE call_id LIKE 'batch-%'",
        )
      ).rows[0].n,
    );
    if (stored !== BATCH_CALLS) throw new Error(`batched: ${stored} CDRs stored, expected ${BATCH_CALLS}`);
    console.log(
      `engine, batches of ${BATCH} records: ${fmt(batched)} CDRs/s (${fmt(BATCH_CALLS)} calls in ${batchSeconds.toFixed(2)} s; stored, debited, outbox not published)`,
    );

    // the COPY limit: the same rows into a table of the same shape
    await db.query('CREATE TABLE rating.cdrs_copy (LIKE rating.cdrs INCLUDING ALL)');
    const file = join(tmp, 'cdrs.csv');
    const out = spawnSync('psql', [url.toString(), '-q', '-c', `\\copy rating.cdrs TO '${file}' csv`], {
      encoding: 'utf8',
    });
    if (out.status !== 0) throw new Error(out.stderr);
    const tc = performance.now();
    const cin = spawnSync(
      'psql',
      [url.toString(), '-q', '-c', `\\copy rating.cdrs_copy FROM '${file}' csv`],
      { encoding: 'utf8' },
    );
    if (cin.status !== 0) throw new Error(cin.stderr);
    const copySeconds = (performance.now() - tc) / 1000;
    // the calls of 2 (twice with Authorize during ingest) and of 4
    const rows = (RATES.length ? 2 : 1) * CALLS + BATCH_CALLS;
    const copyRate = rows / copySeconds;
    console.log(
      `COPY limit: ${fmt(copyRate)} rows/s (${fmt(rows)} rows in ${copySeconds.toFixed(3)} s, psql process start included)`,
    );
    console.log(
      `ratio end to end / COPY: ${(e2e / copyRate).toFixed(3)}; batched engine / COPY: ${(batched / copyRate).toFixed(3)}`,
    );

    console.log(
      `load average: ${(await import('node:os'))
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
    );
  } finally {
    await stopChild?.();
    await closeBus?.();
    await db.close();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
