/**
 * Test support: the portal started by the target runner (as `npm start` does,
 * PGlite in memory unless DATABASE_URL is given), with a probe module in the
 * same process that hands the test the event bus and the database.
 */
import {
  defineService,
  processEnv,
  runTargets,
  type Db,
  type EventBus,
  type RunningProcess,
  type ServiceModule,
} from '@switchboard/platform';
import { decodeRecord } from '@switchboard/contracts';
import { portalService } from './main';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestPortal {
  proc: RunningProcess;
  url: string;
  bus: EventBus;
  db: Db;
  /** A JSON request with the admin token (or the given one; null for none). */
  api(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read answers loosely
  ): Promise<{ status: number; body: any; headers: Headers }>;
  /** The latest record per key of a compacted topic (tombstoned keys absent). */
  topic<T>(name: string): Promise<Map<string, T>>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export async function startTestPortal(
  env: Record<string, string> = {},
  extra: ServiceModule[] = [],
): Promise<TestPortal> {
  let bus: EventBus | undefined;
  let db: Db | undefined;
  const probe = defineService({
    name: 'test-probe',
    description: 'hands the test the bus and the database',
    configSpec: {},
    async start(ctx) {
      bus = await ctx.events();
      db = await ctx.db();
      return { stop: async () => {} };
    },
  });
  const proc = await runTargets([probe, ...extra, portalService as ServiceModule], {
    version: 'test',
    env: {
      SWITCHBOARD_LOG_LEVEL: processEnv().SWITCHBOARD_TEST_LOG_LEVEL ?? 'silent',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_DATA_DIR: ':memory:',
      SWITCHBOARD_PORTAL_HOST: '127.0.0.1',
      SWITCHBOARD_PORTAL_PORT: '0',
      SWITCHBOARD_ADMIN_TOKEN: ADMIN_TOKEN,
      SWITCHBOARD_SIP_DOMAIN: 'example.com',
      SWITCHBOARD_PORTAL_RELAY_POLL_MS: '50',
      // Nothing listens there (port 9, discard): registrations answer 503 unless a registrar runs in-process.
      SWITCHBOARD_PORTAL_REGISTRAR: '127.0.0.1:9',
      ...env,
    },
  });
  const url = proc.endpoints.find((e) => e.service === 'portal' && e.name === 'HTTP')!.url;
  return {
    proc,
    url,
    bus: bus!,
    db: db!,
    async api(method, path, body, token = ADMIN_TOKEN) {
      const headers: Record<string, string> = {};
      if (token !== null) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(url + path, {
        method,
        headers,
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    async topic<T>(name: string) {
      const out = new Map<string, T>();
      for (const [k, m] of await bus!.readCompacted(name)) {
        const v = decodeRecord<T>(m.value);
        if (v !== null) out.set(k, v);
      }
      return out;
    },
    metrics: () => fetch(`${proc.ops.url}/metrics`).then((r) => r.text()),
    stop: () => proc.stop(),
  };
}

/** Polls until check() is truthy (bounded), for effects that go through the outbox relay. */
export async function until<T>(
  check: () => Promise<T | undefined | false>,
  what: string,
  timeoutMs = 5000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
