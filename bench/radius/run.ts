/**
 * RADIUS accounting benchmark: Accounting-Requests per second answered, and
 * response-time percentiles, Switchboard's accounting service against
 * FreeRADIUS 3 (Debian `freeradius`, `detail` module) in the same run, with the
 * same generator: RadiusClient sockets on loopback with a bounded window of
 * outstanding requests, Start/Stop pairs carrying Kamailio's SIP attributes and
 * Switchboard's vendor attributes.
 *
 *   npx tsx bench/radius/run.ts [--requests=20000] [--window=256] [--rounds=3] [--warmup=N]
 *     [--backend=pg|embedded] [--only=switchboard] [--profile=DIR] [--node-flags="FLAGS"]
 *     [--accounting.NAME=value]
 *
 * Each system first answers --warmup requests (default: as many as a round), not counted: V8
 * compiles Switchboard's hot paths, PostgreSQL's new backends fault in shared memory and the
 * broker's JIT warms up in the first tens of thousands of requests, and a round measures the
 * steady state an operator runs at (with a 2,000-request warm-up, Switchboard's first round was
 * its slowest in nearly every run: bench/RESULTS.md).
 *
 * --profile=DIR writes a V8 CPU profile of the Switchboard child to DIR (node --cpu-prof);
 * --only=switchboard skips FreeRADIUS (for profiling). --node-flags="..." adds node flags to the
 * Switchboard child, e.g. --trace-gc or --heapsnapshot-signal=SIGUSR2.
 * CPU per request: the whole process, its main thread, and its busiest other thread (the
 * outbox relay worker, kafkajs), then PostgreSQL's backends, then the Kafka broker's
 * process (all of it, idle work included; it shares the machine). bench/radius/publish.ts
 * measures the relay's Kafka publishing alone.
 *
 * Switchboard runs alone in a child process (services/accounting/src/child.ts):
 * --backend=pg (default) on the test PostgreSQL (a fresh database; fsync and
 * synchronous_commit as the server has them) and Kafka; --backend=embedded on
 * PGlite in a temporary directory and the embedded event log. A request counts
 * when its Accounting-Response arrived, i.e. when the record was committed.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Dictionary, RadiusClient, type RawAttribute } from '@switchboard/radius';
import { startFreeRadius } from '@switchboard/radius/testing';
import {
  freePort,
  testKafkaBrokers,
  testPostgresUrl,
  requirePostgres,
  requireKafka,
  uniqueName,
} from '@switchboard/platform/testing';
import { cliArgs, nodeFlags } from '../args';

const args = cliArgs();
const REQUESTS = Number(args.requests ?? 20000);
const WINDOW = Number(args.window ?? 256);
const ROUNDS = Number(args.rounds ?? 3);
const BACKEND = (args.backend ?? 'pg') as 'pg' | 'embedded';
const PROFILE_DIR = args.profile as string | undefined;
const ONLY_SWITCHBOARD = args.only === 'switchboard';
const WARMUP = Number(args.warmup ?? REQUESTS);
const SECRET = 'bench-secret';
const CHILD = fileURLToPath(new URL('../../services/accounting/src/child.ts', import.meta.url));
const dict = Dictionary.standard();

function requestAttributes(i: number): RawAttribute[] {
  const call = Math.floor(i / 2);
  const stop = i % 2 === 1;
  return dict.encodeAll([
    ['Acct-Status-Type', stop ? 'Stop' : 'Start'],
    ['Acct-Session-Id', `bench-${call}-${Math.random().toString(36).slice(2, 10)}@192.0.2.1`],
    ['Sip-Method', stop ? 'BYE' : 'INVITE'],
    ['Sip-Response-Code', 200],
    ['Sip-From-Tag', `ft${call}`],
    ['Sip-To-Tag', `tt${call}`],
    ['User-Name', `user${call % 1000}@example.com`],
    ['Calling-Station-Id', `sip:user${call % 1000}@example.com`],
    ['Called-Station-Id', `sip:+1555${String(call % 10000000).padStart(7, '0')}@example.com`],
    ['Sip-Translated-Request-URI', `sip:+1555${String(call % 10000000).padStart(7, '0')}@gw1.example.net`],
    ['Event-Timestamp', Math.floor(Date.now() / 1000)],
    ['NAS-IP-Address', '127.0.0.1'],
    ['Acct-Delay-Time', 0],
    ['Service-Type', 'Sip-Session'],
    ['Switchboard-Account', `acct-${call % 500}`],
    ['Switchboard-Gateway', 'gw1'],
    ['Switchboard-Source-Address', '192.0.2.10:5060'],
  ]);
}

interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  retransmissions: number;
}

/** Sends `n` Accounting-Requests with at most `window` outstanding; every one retransmitted until answered. */
async function load(port: number, n: number, window: number): Promise<LoadResult> {
  const perSocket = 200;
  const clients = await Promise.all(
    Array.from({ length: Math.ceil(window / perSocket) }, () =>
      RadiusClient.open({
        host: '127.0.0.1',
        port,
        secret: SECRET,
        initialTimeoutMs: 2000,
        maxTimeoutMs: 8000,
        maxAttempts: Infinity,
      }),
    ),
  );
  const latencies = new Float64Array(n);
  let next = 0;
  const started = performance.now();
  const worker = async (k: number) => {
    const client = clients[k % clients.length];
    while (next < n) {
      const i = next++;
      const attrs = requestAttributes(i);
      const t0 = performance.now();
      await client.accounting(attrs);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: window }, (_, k) => worker(k)));
  const seconds = (performance.now() - started) / 1000;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const retransmissions = clients.reduce((s, c) => s + c.retransmissions, 0);
  for (const c of clients) c.close();
  return {
    requests: n,
    seconds,
    perSecond: n / seconds,
    p50: pct(50),
    p99: pct(99),
    max: sorted[sorted.length - 1],
    retransmissions,
  };
}

/** CPU time (user + system, ms) a process has used so far, all its threads (Linux /proc; 100 ticks/s). */
function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
const sumCpu = (pids: number[]) => pids.reduce((n, p) => n + cpuMs(p), 0);

/** The local Kafka broker's processes (a JVM running kafka.Kafka), if any. */
function kafkaBrokerPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('\0kafka.Kafka\0')) out.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}
/** CPU time (ms) of a process's main thread alone (its tid is its pid). */
const mainThreadCpuMs = (pid: number): number => taskCpuMs(pid, pid);
function taskCpuMs(pid: number, tid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** CPU time (ms) of each thread of a process, by tid. */
function threadCpuMs(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) out.set(Number(t), taskCpuMs(pid, Number(t)));
  } catch {
    // the process is gone
  }
  return out;
}

/** Of the threads other than the main one, the CPU (ms) since `before` of the busiest (the relay worker). */
function busiestOtherThreadMs(pid: number, before: Map<number, number>): number {
  let max = 0;
  for (const [tid, ms] of threadCpuMs(pid)) if (tid !== pid) max = Math.max(max, ms - (before.get(tid) ?? 0));
  return max;
}

interface Commits {
  count: number;
  records: number;
  seconds: number;
}

async function startSwitchboard(): Promise<{
  port: number;
  pid: number;
  /** PostgreSQL backends serving the service's database (none for PGlite). */
  dbPids(): Promise<number[]>;
  stop(): Promise<void>;
  describe: string;
  commits(): Promise<Commits>;
}> {
  const env: Record<string, string> = {
    SWITCHBOARD_LOG_LEVEL: 'warn',
    SWITCHBOARD_LOG_FORMAT: 'json',
    SWITCHBOARD_OPS_HOST: '127.0.0.1',
    SWITCHBOARD_OPS_PORT: '0',
    SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
    SWITCHBOARD_ACCOUNTING_PORT: String(await freePort()),
    SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET}`,
    SWITCHBOARD_ACCOUNTING_TOPIC: uniqueName('bench_accounting'),
  };
  // Any SWITCHBOARD_ACCOUNTING_* setting given as --accounting.NAME=value (e.g. --accounting.WRITERS=4).
  for (const [k, v] of Object.entries(args))
    if (k.startsWith('accounting.')) env[`SWITCHBOARD_ACCOUNTING_${k.slice(11).toUpperCase()}`] = v;
  let cleanup: () => Promise<void>;
  let describe: string;
  let dbPids: () => Promise<number[]> = async () => [];
  if (BACKEND === 'pg') {
    await requirePostgres();
    await requireKafka();
    const base = testPostgresUrl();
    const name = uniqueName('bench_acct');
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: base });
      await c.connect();
      try {
        return await c.query(sql);
      } finally {
        await c.end();
      }
    };
    await admin(`CREATE DATABASE "${name}"`);
    const settings = await admin(
      'SELECT current_setting($$fsync$$) AS fsync, current_setting($$synchronous_commit$$) AS sc',
    );
    const url = new URL(base);
    url.pathname = `/${name}`;
    env.DATABASE_URL = url.toString();
    env.KAFKA_BROKERS = testKafkaBrokers().join(',');
    describe = `PostgreSQL (fsync=${settings.rows[0].fsync}, synchronous_commit=${settings.rows[0].sc}) + Kafka`;
    cleanup = async () => void (await admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
    dbPids = async () =>
      (await admin(`SELECT pid FROM pg_stat_activity WHERE datname = '${name}'`)).rows.map((r) =>
        Number(r.pid),
      );
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'bench-acct-'));
    env.SWITCHBOARD_DATA_DIR = dir;
    describe = 'PGlite on disk + embedded event log';
    cleanup = async () => rmSync(dir, { recursive: true, force: true });
  }
  const profile = [
    ...(PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : []),
    ...nodeFlags(args),
  ];
  const child: ChildProcess = spawn(
    process.execPath,
    [...profile, '--import', 'tsx', CHILD, JSON.stringify(env)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let metricsUrl = '';
  const port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`Switchboard accounting did not start:\n${out}`)), 60_000);
    child.stdout!.on('data', () => {
      const m = /READY udp:\/\/[^\s]+:(\d+) (\S*)/.exec(out);
      if (m) {
        clearTimeout(t);
        metricsUrl = m[2];
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (c) => reject(new Error(`Switchboard accounting exited (${c}):\n${out}`)));
  });
  return {
    port,
    pid: child.pid!,
    dbPids,
    describe,
    /** Group commits so far: count, mean batch size, mean commit time (ms). */
    async commits() {
      const text = await (await fetch(metricsUrl)).text();
      const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
      const count = num(/^switchboard_radius_commit_batch_size_count (\S+)/m);
      const records = num(/^switchboard_radius_commit_batch_size_sum (\S+)/m);
      const seconds = num(/^switchboard_radius_write_seconds_sum (\S+)/m);
      return { count, records, seconds };
    },
    async stop() {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
      await cleanup();
    },
  };
}

const fmt = (r: LoadResult) =>
  `${r.perSecond.toFixed(0).padStart(7)} req/s  p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${r.p99.toFixed(2).padStart(7)} ms  max ${r.max.toFixed(1).padStart(7)} ms  retransmissions ${r.retransmissions}`;
const median = (xs: LoadResult[]) =>
  [...xs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor((xs.length - 1) / 2)];

/** The generator's CPU per request since `from` (this process: the load is generated here, on one thread). */
function generatorCpu(from: NodeJS.CpuUsage): string {
  const d = process.cpuUsage(from);
  return ((d.user + d.system) / REQUESTS).toFixed(0);
}

/**
 * Before each round: the page cache's dirty pages written out (sync), so that neither system's round
 * pays for the other's deferred writes. FreeRADIUS's detail file is written without fsync, about 30 MB
 * a round of 30,000 requests, and the kernel wrote it back during Switchboard's next round, slowing
 * PostgreSQL's commit flushes (bench/RESULTS.md, 2026-11-29 14:10).
 */
function settle(): void {
  execFileSync('sync');
}

async function main() {
  console.log(
    `RADIUS accounting bench: ${REQUESTS} Accounting-Requests per round, window ${WINDOW}, ${ROUNDS} round(s), backend ${BACKEND}`,
  );
  const fr = ONLY_SWITCHBOARD
    ? undefined
    : await startFreeRadius({ port: await freePort(), secret: SECRET, threads: 4 });
  const sb = await startSwitchboard();
  if (fr)
    console.log(`FreeRADIUS: ${FREERADIUS_VERSION()} detail module (no fsync), 4 threads, port ${fr.port}`);
  console.log(`Switchboard: ${sb.describe}, port ${sb.port}`);
  try {
    if (WARMUP > 0) {
      if (fr) await load(fr.port, WARMUP, WINDOW);
      await load(sb.port, WARMUP, WINDOW);
      console.log(`warm-up: ${WARMUP} requests to each, not counted`);
    }
    const frs: LoadResult[] = [];
    const sbs: LoadResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      if (fr) {
        settle();
        const f0 = cpuMs(fr.process.pid!);
        const g0 = process.cpuUsage();
        const a = await load(fr.port, REQUESTS, WINDOW);
        const frCpu = ((cpuMs(fr.process.pid!) - f0) * 1000) / REQUESTS;
        console.log(
          `round ${r + 1} FreeRADIUS  ${fmt(a)}  cpu ${frCpu.toFixed(0)} µs/req  (generator ${generatorCpu(g0)} µs/req)`,
        );
        frs.push(a);
      }
      settle();
      const c0 = await sb.commits();
      const pids = await sb.dbPids();
      const s0 = cpuMs(sb.pid);
      const m0 = mainThreadCpuMs(sb.pid);
      const t0 = threadCpuMs(sb.pid);
      const d0 = sumCpu(pids);
      const kafka = BACKEND === 'pg' ? kafkaBrokerPids() : [];
      const k0 = sumCpu(kafka);
      const g0 = process.cpuUsage();
      const b = await load(sb.port, REQUESTS, WINDOW);
      const genCpu = generatorCpu(g0);
      const sbCpu = ((cpuMs(sb.pid) - s0) * 1000) / REQUESTS;
      const mainCpu = ((mainThreadCpuMs(sb.pid) - m0) * 1000) / REQUESTS;
      const relayCpu = (busiestOtherThreadMs(sb.pid, t0) * 1000) / REQUESTS;
      const dbCpu = ((sumCpu(pids) - d0) * 1000) / REQUESTS;
      const kafkaCpu = ((sumCpu(kafka) - k0) * 1000) / REQUESTS;
      const c1 = await sb.commits();
      const commits = c1.count - c0.count;
      console.log(
        `round ${r + 1} Switchboard ${fmt(b)}  cpu ${sbCpu.toFixed(0)} µs/req (main thread ${mainCpu.toFixed(0)}, busiest other thread ${relayCpu.toFixed(0)}) + PostgreSQL ${dbCpu.toFixed(0)} µs/req${kafka.length > 0 ? ` + Kafka broker ${kafkaCpu.toFixed(0)} µs/req` : ''}  (${commits} group commits, mean ${((c1.records - c0.records) / commits).toFixed(1)} records, ${(((c1.seconds - c0.seconds) / commits) * 1000).toFixed(1)} ms; generator ${genCpu} µs/req)`,
      );
      sbs.push(b);
    }
    const b = median(sbs);
    console.log('\nmedian round:');
    if (frs.length > 0) console.log(`FreeRADIUS   ${fmt(median(frs))}`);
    console.log(`Switchboard  ${fmt(b)}`);
    if (frs.length > 0)
      console.log(`ratio Switchboard/FreeRADIUS: ${(b.perSecond / median(frs).perSecond).toFixed(2)}`);
  } finally {
    await sb.stop();
    await fr?.stop();
  }
}

function FREERADIUS_VERSION(): string {
  return 'FreeRADIUS 3.2 (Debian)';
}

await main();
