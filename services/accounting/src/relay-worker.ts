/**
 * The accounting outbox relay on a worker thread (PostgreSQL + Kafka): kafkajs
 * (record batches, CRC32C in JavaScript) and the relay's outbox queries run off
 * the thread that answers RADIUS, on their own pg connections and Kafka producer.
 * It is the same platform OutboxRelay under the same lease, so durability and
 * order are those of the in-process relay: the RADIUS answer never waits for it.
 *
 * Main thread -> worker: { seq, keys, bodies } (a commit stored this outbox row: the relay
 * publishes its records without reading them back), 'drained', 'stop'.
 * Worker -> main thread: 'ready', { published: n }, 'drained', 'stopped', { error }.
 */
import { parentPort, type Worker, workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { createLogger, KafkaBus, openPgPool, startModuleWorker } from '@switchboard/platform';
import { OutboxBodyCache, OutboxRelay, type RelayOptions } from './relay';
import type { StoredGroup } from './writer';

export interface RelayWorkerData {
  databaseUrl: string;
  kafkaBrokers: string[];
  kafkaClientId: string;
  logLevel: string;
  relay: Omit<RelayOptions, 'logger' | 'onPublished'>;
}

/** A commit's outbox row, its records' keys and bodies (newline-joined), or a control word. */
type ToWorker = 'drained' | 'stop' | { seq: string; keys: string[]; bodies: string };
type FromWorker = 'ready' | 'drained' | 'stopped' | { published: number } | { error: string };

/** How long after an unexpected exit the worker is started again. */
const RESPAWN_MS = 1000;

/**
 * The main thread's handle on the relay worker: the in-process OutboxRelay's
 * notify/drained/stop. A worker that dies is started again (its rows wait in the
 * outbox meanwhile; the lease passes to the new one once the old one's expires).
 */
export class RelayThread {
  private worker!: Worker;
  private drainWaiters: (() => void)[] = [];
  private stopping: Promise<void> | undefined;
  private respawn: NodeJS.Timeout | undefined;
  private alive = false;

  private constructor(
    private readonly data: RelayWorkerData,
    private readonly onPublished: (n: number) => void,
    private readonly logger: Logger,
  ) {}

  /** Starts the worker; resolves once its relay runs (pg and Kafka connected), rejects if it cannot. */
  static async start(
    data: RelayWorkerData,
    opts: { logger: Logger; onPublished: (n: number) => void },
  ): Promise<RelayThread> {
    const t = new RelayThread(data, opts.onPublished, opts.logger);
    await t.spawn();
    return t;
  }

  private async spawn(): Promise<void> {
    const worker = startModuleWorker(import.meta.url, this.data);
    this.worker = worker;
    try {
      await new Promise<void>((resolve, reject) => {
        const onExit = (code: number) => reject(new Error(`relay worker exited (${code}) while starting`));
        worker.once('error', reject);
        worker.once('exit', onExit);
        worker.once('message', (m: FromWorker) => {
          worker.off('error', reject);
          worker.off('exit', onExit);
          if (m === 'ready') resolve();
          else
            reject(new Error(`relay worker: ${typeof m === 'object' && 'error' in m ? m.error : String(m)}`));
        });
      });
    } catch (e) {
      void worker.terminate();
      throw e;
    }
    this.alive = true;
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (err) => this.logger.error({ err }, 'accounting relay worker failed'));
    worker.on('exit', (code) => {
      this.alive = false;
      for (const w of this.drainWaiters.splice(0)) w();
      if (this.stopping) return;
      this.logger.error({ code }, 'accounting relay worker exited; starting it again');
      this.scheduleRespawn();
    });
  }

  private scheduleRespawn(): void {
    this.respawn = setTimeout(() => {
      this.respawn = undefined;
      if (this.stopping) return;
      this.spawn().catch((err: unknown) => {
        this.logger.error({ err }, 'accounting relay worker did not start; trying again');
        this.scheduleRespawn();
      });
    }, RESPAWN_MS);
  }

  private onMessage(m: FromWorker): void {
    if (m === 'drained') this.drainWaiters.shift()?.();
    else if (typeof m === 'object' && 'published' in m) this.onPublished(m.published);
    else if (typeof m === 'object' && 'error' in m)
      this.logger.error({ err: m.error }, 'accounting relay worker');
  }

  /** A commit stored this outbox row with these records: publish them. */
  stored(group: StoredGroup): void {
    // The bodies as one string: one copy to the worker, not one per record.
    if (this.alive) this.worker.postMessage(group satisfies ToWorker);
  }

  /** Resolves once the worker's relay found the outbox empty after this call (or the worker exited). */
  drained(): Promise<void> {
    if (!this.alive) return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.worker.postMessage('drained' satisfies ToWorker);
    });
  }

  /** Ends the thread at once, as a crash would (tests): it is started again. */
  async kill(): Promise<void> {
    await this.worker.terminate();
  }

  /** Stops the relay after its round in flight (as OutboxRelay.stop) and ends the thread. */
  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      clearTimeout(this.respawn);
      if (!this.alive) return resolve();
      const worker = this.worker;
      worker.once('exit', () => resolve());
      worker.on('message', (m: FromWorker) => {
        if (m === 'stopped') void worker.terminate();
      });
      worker.postMessage('stop' satisfies ToWorker);
    });
    return this.stopping;
  }
}

async function runWorker(data: RelayWorkerData): Promise<void> {
  const port = parentPort!;
  const logger = createLogger('accounting-relay', { level: data.logLevel, format: 'json' });
  const db = await openPgPool({ databaseUrl: data.databaseUrl, max: 2 });
  const bus = new KafkaBus({
    brokers: data.kafkaBrokers,
    clientId: `${data.kafkaClientId}-accounting-relay`,
    logger,
  });
  await bus.ensureTopic(data.relay.topic);
  // Counts go to the main thread's metric in one message per round.
  const cache = new OutboxBodyCache();
  const relay = new OutboxRelay(db, bus, {
    ...data.relay,
    cache,
    logger,
    onPublished: (n) => port.postMessage({ published: n } satisfies FromWorker),
  });
  relay.start();
  port.on('message', (m: ToWorker) => {
    if (typeof m === 'object') {
      cache.add(m.seq, { keys: m.keys, bodies: m.bodies.split('\n') });
      relay.notify();
    } else if (m === 'drained')
      void relay.drained().then(() => port.postMessage('drained' satisfies FromWorker));
    else if (m === 'stop') {
      void (async () => {
        await relay.stop();
        await bus.close().catch(() => undefined);
        await db.close().catch(() => undefined);
        port.postMessage('stopped' satisfies FromWorker);
      })();
    }
  });
  port.postMessage('ready' satisfies FromWorker);
}

if (parentPort && (workerData as RelayWorkerData | undefined)?.relay) {
  runWorker(workerData as RelayWorkerData).catch((err: unknown) => {
    parentPort!.postMessage({ error: err instanceof Error ? err.message : String(err) } satisfies FromWorker);
    process.exit(1);
  });
}
