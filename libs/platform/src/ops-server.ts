import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';

/** A readiness check: resolves true when the dependency is usable. */
export type ReadinessCheck = () => Promise<boolean> | boolean;

export interface OpsServer {
  readonly port: number;
  readonly url: string;
  /** Register a dependency that must be ready for /readyz to answer 200. */
  addReadinessCheck(name: string, check: ReadinessCheck): void;
  /** While draining, /readyz answers 503 so load balancers stop sending work. */
  setDraining(draining: boolean): void;
  /** Serve a service's own operator endpoint on the ops port (e.g. the proxy's /sip/trace). */
  addRoute(path: string, handler: OpsHandler): void;
  close(): Promise<void>;
}

export type OpsHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

const CHECK_TIMEOUT_MS = 2000;

async function runCheck(check: ReadinessCheck): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([Promise.resolve().then(check), timeout]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The ops HTTP server every process runs: GET /metrics, /healthz, /readyz. */
export async function startOpsServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  logger: Logger;
}): Promise<OpsServer> {
  const checks = new Map<string, ReadinessCheck>();
  const routes = new Map<string, OpsHandler>();
  let draining = false;
  const readyGauge = new Gauge({
    name: 'switchboard_dependency_ready',
    help: 'Whether a dependency of this process is ready (1) or not (0), as of the last /readyz or scrape',
    labelNames: ['dependency'],
    registers: [opts.registry],
  });

  async function readiness(): Promise<{ ready: boolean; checks: Record<string, boolean> }> {
    const results: Record<string, boolean> = {};
    await Promise.all(
      [...checks].map(async ([name, check]) => {
        results[name] = await runCheck(check);
        readyGauge.set({ dependency: name }, results[name] ? 1 : 0);
      }),
    );
    return { ready: !draining && Object.values(results).every(Boolean), checks: results };
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://ops');
    const path = url.pathname;
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const route = routes.get(path);
    if (route) return route(req, res, url);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    if (path === '/healthz') return send(200, 'application/json', JSON.stringify({ status: 'ok' }) + '\n');
    if (path === '/readyz') {
      readiness().then(
        (r) => send(r.ready ? 200 : 503, 'application/json', JSON.stringify({ ...r, draining }) + '\n'),
        () => send(503, 'application/json', '{"ready":false}\n'),
      );
      return;
    }
    if (path === '/metrics') {
      readiness()
        .then(() => opts.registry.metrics())
        .then(
          (text) => send(200, opts.registry.contentType, text),
          (e: Error) => {
            opts.logger.error({ err: e }, 'metrics collection failed');
            send(500, 'text/plain', 'metrics collection failed\n');
          },
        );
      return;
    }
    send(404, 'text/plain', 'not found: try /metrics, /healthz or /readyz\n');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = opts.host === '0.0.0.0' || opts.host === '::' ? '127.0.0.1' : opts.host;
  return {
    port,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`,
    addReadinessCheck: (name, check) => void checks.set(name, check),
    setDraining: (d) => void (draining = d),
    addRoute: (p, h) => void routes.set(p, h),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
