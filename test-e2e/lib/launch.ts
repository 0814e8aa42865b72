/**
 * Starts the whole platform as child processes of the `switchboard` CLI, the
 * two ways an operator runs it:
 *
 * - `oneProcess`: `switchboard start --target=all` (what `npm start` runs),
 *   embedded storage on disk in a temporary data directory;
 * - `separateProcesses`: one `switchboard start --target=<service>` process per
 *   service, on real PostgreSQL (a fresh database per run) and real Kafka
 *   (run-unique topics, groups and SIP domain where the services let them be named).
 *
 * Every port is ephemeral on loopback; each child prints where it listens and
 * the launcher reads that. Used by test-e2e/whole and bench/soak.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { processEnv } from '@switchboard/platform';
import { createTestKafka } from '@switchboard/platform/testing';

const ROOT = new URL('../../', import.meta.url).pathname;
const CLI = join(ROOT, 'bin/switchboard.js');

/** The services in the order they are started (dependencies first). */
export const SERVICE_NAMES = [
  'registrar',
  'media-proxy',
  'accounting',
  'rating',
  'media-server',
  'sip-proxy',
  'portal',
] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

export interface Endpoint {
  service: string;
  name: string;
  url: string;
}

export interface SwitchboardProcess {
  /** `all` or the service name. */
  target: string;
  pid: number;
  /** Ops base URL (…/metrics, /healthz, /sip/trace). */
  ops: string;
  endpoints: Endpoint[];
  /** Resident set size from /proc, bytes (undefined once exited). */
  rss(): number | undefined;
  /** The last lines the process wrote (diagnostics). */
  output(): string;
  stop(): Promise<void>;
}

export interface LaunchedPlatform {
  mode: 'one-process' | 'separate-processes';
  /** Unique per run: used in the SIP domain, topics, groups and Call-IDs. */
  runId: string;
  domain: string;
  adminToken: string;
  /** Portal HTTP base URL. */
  portal: string;
  /** The proxy's UDP address. */
  sip: { host: string; port: number };
  /** Ops base URL of the process that runs each service. */
  ops: Record<ServiceName, string>;
  processes: SwitchboardProcess[];
  /** The URL a service printed for one of its endpoints, e.g. ('rating', 'gRPC'). */
  endpoint(service: ServiceName, name: string): string;
  /** The last output of every process (for assertion messages). */
  output(): string;
  stop(): Promise<void>;
}

export interface LaunchOptions {
  /** Extra environment for every process (overrides the defaults). */
  env?: Record<string, string>;
  /** Log level of the children (default warn; SWITCHBOARD_TEST_LOG_LEVEL overrides). */
  logLevel?: string;
  /** How long a process may take to start (default 60 s). */
  startTimeoutMs?: number;
}

const TAIL = 8000;

/** Environment every child gets: only PATH and HOME from ours, plus the given settings. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: processEnv().PATH, HOME: processEnv().HOME, ...env };
}

/** Parse one line of `switchboard start`'s endpoint list: `  <service> <name...>   <url>`. */
export function parseEndpointLine(line: string): Endpoint | undefined {
  const m = /^ {2}(\S+) (.+?)\s+(\S+:\/\/\S+|sip:\S+|default=\S+)$/.exec(line);
  return m ? { service: m[1], name: m[2].trim(), url: m[3] } : undefined;
}

/** Start `switchboard start --target=<target>` and wait until it says it started. */
export function spawnSwitchboard(
  target: string,
  env: Record<string, string>,
  startTimeoutMs = 60_000,
): Promise<SwitchboardProcess> {
  const child: ChildProcess = spawn(process.execPath, [CLI, 'start', `--target=${target}`], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const append = (d: Buffer) => {
    out = (out + d.toString()).slice(-TAIL);
  };
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', () => {
      exited = true;
      resolve();
    }),
  );
  child.stderr!.on('data', append);
  return new Promise<SwitchboardProcess>((resolve, reject) => {
    const endpoints: Endpoint[] = [];
    let buffered = '';
    let ops: string | undefined;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchboard --target=${target} did not start within ${startTimeoutMs} ms:\n${out}`));
    }, startTimeoutMs);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(
        new Error(`switchboard --target=${target} exited (${code ?? signal}) before it started:\n${out}`),
      );
    };
    child.once('exit', onExit);
    child.stdout!.on('data', (d: Buffer) => {
      append(d);
      if (ops !== undefined) return;
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const e = parseEndpointLine(line);
        if (e?.service === 'ops' && e.name === 'healthz') ops = e.url.replace(/\/healthz$/, '');
        else if (e && e.service !== 'ops') endpoints.push(e);
        if (line.startsWith('Press Ctrl-C') && ops === undefined) ops = '';
      }
      if (ops === undefined) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      const pid = child.pid!;
      resolve({
        target,
        pid,
        ops,
        endpoints,
        rss: () => {
          if (exited) return undefined;
          try {
            const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
            return m ? Number(m[1]) * 1024 : undefined;
          } catch {
            return undefined;
          }
        },
        output: () => out,
        stop: async () => {
          if (exited) return;
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exit;
          clearTimeout(killer);
        },
      });
    });
  });
}

/** host and port of an endpoint URL such as grpc://127.0.0.1:5005 or sip:127.0.0.1:5060;transport=udp. */
export function hostPort(url: string): { host: string; port: number; text: string } {
  const m = /^(?:[a-z]+:\/\/|sip:)(\[[^\]]+\]|[^:/;]+):(\d+)/.exec(url);
  if (!m) throw new Error(`no host:port in ${url}`);
  return { host: m[1], port: Number(m[2]), text: `${m[1]}:${m[2]}` };
}

function endpoint(procs: SwitchboardProcess[], service: string, name: string): string {
  for (const p of procs) {
    const e = p.endpoints.find((x) => x.service === service && x.name === name);
    if (e) return e.url;
  }
  throw new Error(`no ${service} ${name} endpoint among ${procs.map((p) => p.target).join(', ')}`);
}

/** Settings shared by both ways: every port ephemeral on loopback. */
function baseEnv(
  runId: string,
  domain: string,
  adminToken: string,
  o: LaunchOptions,
): Record<string, string> {
  return {
    SWITCHBOARD_LOG_LEVEL: processEnv().SWITCHBOARD_TEST_LOG_LEVEL ?? o.logLevel ?? 'warn',
    SWITCHBOARD_LOG_FORMAT: 'json',
    SWITCHBOARD_OPS_HOST: '127.0.0.1',
    SWITCHBOARD_OPS_PORT: '0',
    SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
    SWITCHBOARD_MEDIA_GRPC_PORT: '0',
    SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
    SWITCHBOARD_ACCOUNTING_PORT: '0',
    SWITCHBOARD_RATING_GRPC_PORT: '0',
    SWITCHBOARD_MEDIASERVER_SIP_PORT: '0',
    SWITCHBOARD_MEDIASERVER_GRPC_PORT: '0',
    SWITCHBOARD_SIP_LISTEN: 'udp:127.0.0.1:0',
    SWITCHBOARD_SIP_DOMAIN: domain,
    SWITCHBOARD_PORTAL_HOST: '127.0.0.1',
    SWITCHBOARD_PORTAL_PORT: '0',
    SWITCHBOARD_ADMIN_TOKEN: adminToken,
    SWITCHBOARD_KAFKA_CLIENT_ID: `sb-${runId}`,
    ...o.env,
  };
}

function newRun() {
  const runId = randomBytes(4).toString('hex');
  return { runId, domain: `run${runId}.test`, adminToken: `admin-${randomBytes(12).toString('hex')}` };
}

const outputOf = (procs: SwitchboardProcess[]) =>
  procs.map((p) => `--- ${p.target} (pid ${p.pid})\n${p.output().slice(-3000)}`).join('\n');

/** `switchboard start --target=all` on embedded storage in a temporary data directory. */
export async function oneProcess(o: LaunchOptions = {}): Promise<LaunchedPlatform> {
  const { runId, domain, adminToken } = newRun();
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-whole-'));
  let proc: SwitchboardProcess;
  try {
    proc = await spawnSwitchboard(
      'all',
      { ...baseEnv(runId, domain, adminToken, o), SWITCHBOARD_DATA_DIR: dataDir },
      o.startTimeoutMs,
    );
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const ops = Object.fromEntries(SERVICE_NAMES.map((s) => [s, proc.ops])) as Record<ServiceName, string>;
  return {
    mode: 'one-process',
    runId,
    domain,
    adminToken,
    portal: endpoint([proc], 'portal', 'HTTP'),
    sip: hostPort(endpoint([proc], 'sip-proxy', 'SIP udp')),
    ops,
    processes: [proc],
    endpoint: (service, name) => endpoint([proc], service, name),
    output: () => outputOf([proc]),
    stop: async () => {
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** PostgreSQL server the separate processes use (a fresh database on it per run). */
export const POSTGRES_URL =
  processEnv().SWITCHBOARD_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const KAFKA_BROKERS = processEnv().SWITCHBOARD_TEST_KAFKA_BROKERS ?? '127.0.0.1:9092';

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: POSTGRES_URL });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * One process per service on PostgreSQL and Kafka. The services find each
 * other by the addresses the earlier ones printed: registrar, media proxy,
 * accounting and rating first, then the media server, the proxy and the portal.
 */
export async function separateProcesses(o: LaunchOptions = {}): Promise<LaunchedPlatform> {
  const { runId, domain, adminToken } = newRun();
  const dbName = `sb_whole_${runId}`;
  await admin((c) => c.query(`CREATE DATABASE "${dbName}"`));
  const dbUrl = new URL(POSTGRES_URL);
  dbUrl.pathname = `/${dbName}`;
  const env = {
    ...baseEnv(runId, domain, adminToken, o),
    DATABASE_URL: dbUrl.toString(),
    KAFKA_BROKERS,
    // Run-unique topics and groups where the services let them be named; the
    // compacted subscribers/location topics are shared, keyed by this run's domain.
    SWITCHBOARD_ACCOUNTING_TOPIC: `accounting-${runId}`,
    SWITCHBOARD_RATING_ACCOUNTING_TOPIC: `accounting-${runId}`,
    SWITCHBOARD_RATING_CDRS_TOPIC: `cdrs-${runId}`,
    SWITCHBOARD_RATING_EVENTS_TOPIC: `rating-events-${runId}`,
    SWITCHBOARD_RATING_GROUP: `rating-${runId}`,
    ...o.env,
  };
  const procs: SwitchboardProcess[] = [];
  const dropDb = () =>
    admin((c) => c.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`)).catch(() => undefined);
  /** The run's own topics go with it (the shared compacted ones stay). */
  const dropTopics = async () => {
    const kafka = createTestKafka(`sb-whole-${runId}`, KAFKA_BROKERS.split(','));
    const a = kafka.admin();
    try {
      await a.connect();
      const mine = (await a.listTopics()).filter((t) => t.endsWith(`-${runId}`));
      if (mine.length) await a.deleteTopics({ topics: mine, timeout: 10_000 });
    } catch {
      // best effort: a leftover topic of a finished run harms no later one
    } finally {
      await a.disconnect().catch(() => undefined);
    }
  };
  const stopAll = async () => {
    // The edge first, storage owners last (the reverse of start).
    for (const p of [...procs].reverse()) await p.stop();
    await dropDb();
    await dropTopics();
  };
  const start = async (targets: ServiceName[], extra: (s: ServiceName) => Record<string, string>) => {
    const started = await Promise.allSettled(
      targets.map((t) => spawnSwitchboard(t, { ...env, ...extra(t) }, o.startTimeoutMs)),
    );
    for (const s of started) if (s.status === 'fulfilled') procs.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  };
  try {
    await start(['registrar', 'media-proxy', 'accounting', 'rating'], () => ({}));
    const registrar = hostPort(endpoint(procs, 'registrar', 'gRPC')).text;
    const media = hostPort(endpoint(procs, 'media-proxy', 'gRPC')).text;
    const radius = hostPort(endpoint(procs, 'accounting', 'RADIUS accounting')).text;
    const rating = hostPort(endpoint(procs, 'rating', 'gRPC')).text;
    await start(['media-server', 'sip-proxy', 'portal'], (s): Record<string, string> =>
      s === 'media-server'
        ? { SWITCHBOARD_MEDIASERVER_REGISTRAR: registrar }
        : s === 'sip-proxy'
          ? {
              SWITCHBOARD_SIP_REGISTRAR: registrar,
              SWITCHBOARD_SIP_MEDIA_PROXY: media,
              SWITCHBOARD_SIP_RADIUS: radius,
              SWITCHBOARD_SIP_RATING: rating,
            }
          : { SWITCHBOARD_PORTAL_REGISTRAR: registrar, SWITCHBOARD_PORTAL_RATING: rating },
    );
  } catch (err) {
    const out = outputOf(procs);
    await stopAll();
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${out}`, { cause: err });
  }
  const opsOf = (s: ServiceName) => procs.find((p) => p.target === s)!.ops;
  return {
    mode: 'separate-processes',
    runId,
    domain,
    adminToken,
    portal: endpoint(procs, 'portal', 'HTTP'),
    sip: hostPort(endpoint(procs, 'sip-proxy', 'SIP udp')),
    ops: Object.fromEntries(SERVICE_NAMES.map((s) => [s, opsOf(s)])) as Record<ServiceName, string>,
    processes: procs,
    endpoint: (service, name) => endpoint(procs, service, name),
    output: () => outputOf(procs),
    stop: stopAll,
  };
}
