/**
 * Test helpers for the accounting service: start it with a context built by
 * hand (a given Db and EventBus, a fresh metrics registry, a silent logger),
 * send with radclient, read metrics.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  loadConfig,
  platformSpec,
  type Db,
  type EventBus,
  type EventMessage,
  type RunningService,
  type ServiceContext,
} from '@switchboard/platform';
import { writeFreeRadiusDictionary } from '@switchboard/radius/testing';
import { accountingConfig, accountingService, ACCOUNTING_TOPIC } from './main';

export interface TestAccounting {
  port: number;
  /** The RADIUS authentication port, when SWITCHBOARD_ACCOUNTING_AUTH is on. */
  authPort?: number;
  metrics: Registry;
  svc: RunningService;
  stop(): Promise<void>;
}

export async function startTestAccounting(
  db: Db,
  bus: EventBus,
  env: Record<string, string> = {},
): Promise<TestAccounting> {
  const metrics = new Registry();
  const urls = new Map<string, string>();
  const config = loadConfig(accountingConfig, {
    SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
    SWITCHBOARD_ACCOUNTING_PORT: '0',
    SWITCHBOARD_ACCOUNTING_RELAY_POLL_MS: '50',
    ...env,
  });
  // Cast: the context may carry members this build's ServiceContext lacks (it is still growing).
  const ctx = {
    platform: loadConfig(platformSpec, {}),
    logger: pino({ level: 'silent' }),
    metrics,
    ops: { addReadinessCheck: () => undefined, addRoute: () => undefined },
    targets: ['accounting'],
    db: async () => db,
    events: async () => bus,
    endpoint: (name: string, u: string) => void urls.set(name, u),
    localEndpoint: () => undefined,
  } as unknown as ServiceContext;
  const svc = await accountingService.start(ctx, config);
  const portOf = (name: string) => {
    const u = urls.get(name);
    return u === undefined ? undefined : Number(/:(\d+)$/.exec(u)![1]);
  };
  return {
    port: portOf('RADIUS accounting')!,
    authPort: portOf('RADIUS authentication'),
    metrics,
    svc,
    stop: () => svc.stop(),
  };
}

/** The value of a counter (summed over the label sets that match `labels`). */
export async function metricValue(
  reg: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = reg.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) =>
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
    )
    .filter((v) => !('metricName' in v) || !String(v.metricName).endsWith('_bucket'))
    .reduce((n, v) => n + v.value, 0);
}

let dictDir: string | undefined;
/** A dictionary directory for radclient -D: FreeRADIUS's, plus Switchboard's SIP and vendor dictionaries. */
export function radclientDictionary(): string {
  dictDir ??= writeFreeRadiusDictionary(mkdtempSync(join(tmpdir(), 'radclient-dict-')));
  return dictDir;
}

export interface RadclientResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs radclient (freeradius-utils) with `input` as its attribute list(s); one try, `timeoutS` seconds. */
export function radclient(
  port: number,
  command: 'acct' | 'status',
  secret: string,
  input: string,
  timeoutS = 2,
  retries = 1,
): Promise<RadclientResult> {
  const dir = radclientDictionary();
  return new Promise((resolve, reject) => {
    const child = spawn('radclient', [
      '-D',
      dir,
      '-d',
      dir,
      '-x',
      '-r',
      String(retries),
      '-t',
      String(timeoutS),
      `127.0.0.1:${port}`,
      command,
      secret,
    ]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Collects what is published on the accounting topic (from the beginning) into an array. */
export async function collectAccounting(
  bus: EventBus,
  group: string,
  topic: string = ACCOUNTING_TOPIC,
): Promise<{ messages: EventMessage[]; close(): Promise<void> }> {
  const messages: EventMessage[] = [];
  const sub = await bus.subscribe({
    topic,
    group,
    fromBeginning: true,
    handler: async (m) => void messages.push(m),
  });
  return { messages, close: () => sub.close() };
}

export { until } from '@switchboard/platform/testing';

/** A fresh PostgreSQL database on the test server (the accounting schema has a fixed name); drop() removes it. */
export async function createTestDatabase(baseUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `acct_${randomBytes(6).toString('hex')}`;
  const run = async (sql: string) => {
    const c = new pg.Client({ connectionString: baseUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await run(`CREATE DATABASE "${name}"`);
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}
