import { join } from 'node:path';
import type { Logger } from 'pino';
import { Gauge } from 'prom-client';
import { loadConfig, platformSpec, processEnv, type ConfigSpec, type PlatformConfig } from './config';
import { createLogger, serviceLogger } from './logging';
import { createMetricsRegistry, markService } from './metrics';
import { startOpsServer, type OpsServer } from './ops-server';
import { orderByDependencies, type RunningService, type ServiceModule } from './service';
import { openDb, startEmbeddedVacuum, type Db } from './db';
import { openEventBus, type EventBus } from './events';

type Env = Record<string, string | undefined>;

/** SWITCHBOARD_DATA_DIR value that keeps embedded storage in memory (tests). */
export const MEMORY_DATA_DIR = ':memory:';

export interface RunningProcess {
  readonly ops: OpsServer;
  readonly logger: Logger;
  readonly endpoints: ReadonlyArray<{ service: string; name: string; url: string }>;
  /** Stop in reverse start order, then close events and storage. Safe to call twice. */
  stop(): Promise<void>;
}

/** Memoize an async opener; remember the opened value so shutdown can close it. */
function lazy<T>(open: () => Promise<T>): { get: () => Promise<T>; opened: () => Promise<T> | undefined } {
  let p: Promise<T> | undefined;
  return { get: () => (p ??= open()), opened: () => p };
}

/**
 * Start a set of services in one process, in dependency order, with one ops
 * port. All config (platform and every service's) is validated before anything
 * starts, so a bad value stops start-up with a message naming the variable.
 */
export async function runTargets(
  modules: readonly ServiceModule[],
  opts: { version: string; env?: Env; processName?: string },
): Promise<RunningProcess> {
  const env = opts.env ?? processEnv();
  const platform: PlatformConfig = loadConfig(platformSpec, env);
  const configs = new Map(modules.map((m) => [m.name, loadConfig(m.configSpec as ConfigSpec, env)]));
  const ordered = orderByDependencies(modules);
  const names = ordered.map((m) => m.name);

  const logger = createLogger(opts.processName ?? 'switchboard', {
    level: platform.logLevel,
    format: platform.logPretty,
  });
  const metrics = createMetricsRegistry();
  const ops = await startOpsServer({
    host: platform.opsHost,
    port: platform.opsPort,
    registry: metrics,
    logger,
  });

  let vacuum: { stop(): Promise<void> } | undefined;
  const db = lazy<Db>(async () => {
    const memory = platform.dataDir === MEMORY_DATA_DIR;
    const d = await openDb({
      databaseUrl: platform.databaseUrl,
      dataDir: join(platform.dataDir, 'pglite'),
      memory,
      thread: platform.embeddedDbThread,
      sharedBuffersMb: platform.embeddedDbBuffersMb,
    });
    ops.addReadinessCheck('database', async () => (await d.query('select 1')).rowCount === 1);
    if (d.kind === 'pglite' && platform.embeddedDbVacuumS > 0)
      vacuum = startEmbeddedVacuum(d, { intervalMs: platform.embeddedDbVacuumS * 1000, logger });
    return d;
  });
  const events = lazy<EventBus>(async () => {
    const lag = new Gauge({
      name: 'switchboard_kafka_consumer_lag',
      help: 'Messages a consumer group is behind the end of a topic (embedded log or Kafka)',
      labelNames: ['topic', 'group'],
      registers: [metrics],
    });
    const perPartition = new Map<string, number>();
    return openEventBus({
      kafkaBrokers: platform.kafkaBrokers,
      db: await db.get(),
      clientId: platform.kafkaClientId,
      logger,
      retentionMs: platform.embeddedLogRetentionHours * 3600 * 1000,
      onLag: ({ topic, group, partition, lag: n }) => {
        perPartition.set(`${topic}\0${group}\0${partition}`, n);
        let sum = 0;
        for (const [k, v] of perPartition) if (k.startsWith(`${topic}\0${group}\0`)) sum += v;
        lag.set({ topic, group }, sum);
      },
    });
  });

  const endpoints: { service: string; name: string; url: string }[] = [
    { service: 'ops', name: 'metrics', url: `${ops.url}/metrics` },
  ];
  const running: { name: string; svc: RunningService }[] = [];
  let stopping: Promise<void> | undefined;

  const stop = () =>
    (stopping ??= (async () => {
      ops.setDraining(true);
      for (const { name, svc } of running.reverse()) {
        try {
          await svc.stop();
          logger.info({ service: name }, 'service stopped');
        } catch (err) {
          logger.error({ service: name, err }, 'service failed to stop cleanly');
        }
      }
      const bus = events.opened();
      if (bus) await (await bus).close();
      const d = db.opened();
      await vacuum?.stop();
      if (d) await (await d).close();
      await ops.close();
      logger.info('stopped');
    })());

  try {
    for (const m of ordered) {
      markService(metrics, opts.version, m.name);
      const svc = await m.start(
        {
          platform,
          logger: serviceLogger(logger, m.name),
          metrics,
          ops,
          targets: names,
          db: db.get,
          events: events.get,
          endpoint: (name, url) => void endpoints.push({ service: m.name, name, url }),
          localEndpoint: (service, name) =>
            endpoints.find((e) => e.service === service && e.name === name)?.url,
        },
        configs.get(m.name)!,
      );
      running.push({ name: m.name, svc });
      logger.info({ service: m.name }, 'service started');
    }
  } catch (err) {
    logger.error({ err }, 'start-up failed; stopping what started');
    await stop();
    throw err;
  }
  return { ops, logger, endpoints, stop };
}

/** Stop on SIGINT/SIGTERM (drain, close storage, exit 0); a second signal exits at once. */
export function stopOnSignals(
  proc: RunningProcess,
  timeoutMs: number,
  exit: (code: number) => void = process.exit,
): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      proc.logger.warn({ signal: sig }, 'second signal: exiting now');
      return exit(1);
    }
    signalled = true;
    proc.logger.info({ signal: sig }, 'stopping: draining and closing storage');
    const timer = setTimeout(() => {
      proc.logger.error({ timeoutMs }, 'stop took too long; exiting');
      exit(1);
    }, timeoutMs);
    timer.unref();
    proc.stop().then(
      () => exit(0),
      (err) => {
        proc.logger.error({ err }, 'stop failed');
        exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
