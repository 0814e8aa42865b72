/**
 * The event bus on Apache Kafka: publishing through the platform's own idempotent producer
 * (producer.ts: acks=all, a RecordBatch per partition in one Buffer), and through kafkajs
 * the admin and one consumer per subscription with manual commits after the handler,
 * compacted topics with cleanup.policy=compact, and readCompacted reading a topic up to its
 * high-water marks.
 */
import { randomUUID } from 'node:crypto';
import {
  Kafka,
  logLevel,
  type Admin,
  type Consumer,
  type ConsumerRunConfig,
  type KafkaMessage,
  type LogEntry,
} from 'kafkajs';
import type { Logger } from 'pino';
import { invalidArgument, unavailable } from '../errors';
import { KafkaProducer } from './producer';
import {
  type BatchSubscribeOptions,
  type GroupOptions,
  type EventBus,
  type EventMessage,
  type LagHook,
  type PublishMessage,
  type SubscribeOptions,
  type Subscription,
  type TopicOptions,
  retryDelay,
  sleep,
  storedOffset,
} from './types';

/**
 * Runs a Kafka admin call again while the broker answers with an error kafkajs calls retriable,
 * for up to timeoutMs (backing off from 100 ms to 2 s). On a new broker the first consumer group's
 * request creates `__consumer_offsets`, and for a moment the group coordinator answers
 * COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR; kafkajs's admin calls do not retry those.
 */
export async function whileRetriable<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let failures = 0; ; failures++) {
    try {
      return await fn();
    } catch (err) {
      const wait = retryDelay(failures, 100, 2_000);
      if ((err as { retriable?: unknown }).retriable !== true || Date.now() + wait > deadline) throw err;
      await sleep(wait);
    }
  }
}

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  logger?: Logger;
  onLag?: LagHook;
  /** Consumer group timings (ms). Small values make joins and failover quick. */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** Longest a fetch waits on the broker for new messages (ms). */
  maxWaitTimeMs?: number;
  /** Handler retry backoff: first delay and cap (ms). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Bound on joining a group and on readCompacted (ms). */
  readyTimeoutMs?: number;
}

const LEVEL: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

function kafkaLogCreator(logger: Logger) {
  return () =>
    ({ level, log }: LogEntry) => {
      const { message, ...extra } = log;
      logger[LEVEL[level] ?? 'info']({ kafka: extra }, message);
    };
}

function headersOf(m: KafkaMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
  }
  return out;
}

const toEvent = (topic: string, partition: number, m: KafkaMessage): EventMessage => ({
  topic,
  partition,
  offset: m.offset,
  key: m.key === null ? '' : m.key.toString('utf8'),
  value: m.value,
  headers: headersOf(m),
  timestamp: Number(m.timestamp),
});

/** Waits for the consumer's first group join, or fails on a crash or after ms. */
function joined(consumer: Consumer, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const offs: (() => void)[] = [];
    const done = (err?: Error) => {
      clearTimeout(timer);
      offs.forEach((off) => off());
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(unavailable(`${what}: no group join within ${ms} ms`)), ms);
    timer.unref();
    offs.push(consumer.on(consumer.events.GROUP_JOIN, () => done()));
    offs.push(
      consumer.on(consumer.events.CRASH, (e) => {
        if (!e.payload.restart)
          done(unavailable(`${what}: consumer crashed: ${e.payload.error.message}`, e.payload.error));
      }),
    );
  });
}

export class KafkaBus implements EventBus {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private producer: KafkaProducer | undefined;
  private admin: Promise<Admin> | undefined;
  private readonly ensured = new Set<string>();
  private readonly subs = new Set<KafkaSubscription>();

  constructor(private readonly opts: KafkaBusOptions) {
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      ...(opts.logger
        ? { logLevel: logLevel.WARN, logCreator: kafkaLogCreator(opts.logger) }
        : { logLevel: logLevel.NOTHING }),
      connectionTimeout: 3_000,
      retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2_000 },
    });
  }

  private getAdmin(): Promise<Admin> {
    this.admin ??= (async () => {
      const a = this.kafka.admin();
      await a.connect();
      return a;
    })();
    return this.admin;
  }

  private getProducer(): KafkaProducer {
    this.producer ??= new KafkaProducer({
      brokers: this.opts.brokers,
      clientId: this.opts.clientId,
      logger: this.opts.logger,
      connectTimeoutMs: 3_000,
    });
    return this.producer;
  }

  async ensureTopic(topic: string, opts: TopicOptions = {}): Promise<void> {
    const admin = await this.getAdmin();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          ...(opts.partitions ? { numPartitions: opts.partitions } : {}),
          configEntries: opts.compacted ? [{ name: 'cleanup.policy', value: 'compact' }] : [],
        },
      ],
    });
    this.ensured.add(topic);
  }

  async publish(topic: string, messages: PublishMessage[]): Promise<void> {
    if (messages.length === 0) return;
    // A topic nobody ensured is created with the broker's defaults.
    if (!this.ensured.has(topic)) await this.ensureTopic(topic);
    await this.getProducer().send(topic, messages);
  }

  subscribe(opts: SubscribeOptions): Promise<Subscription> {
    return this.consume(opts, { each: opts.handler });
  }

  subscribeBatch(opts: BatchSubscribeOptions): Promise<Subscription> {
    if (opts.maxBatch !== undefined && !(Number.isInteger(opts.maxBatch) && opts.maxBatch > 0))
      throw invalidArgument('maxBatch', 'a positive integer is required');
    if (opts.maxFetchBytes !== undefined && !(Number.isInteger(opts.maxFetchBytes) && opts.maxFetchBytes > 0))
      throw invalidArgument('maxFetchBytes', 'a positive integer is required');
    return this.consume(
      opts,
      { batch: opts.handler, maxBatch: opts.maxBatch ?? 500 },
      opts.maxWaitMs,
      opts.maxFetchBytes,
    );
  }

  private async consume(
    opts: GroupOptions,
    handler: Handler,
    maxWaitMs?: number,
    maxFetchBytes?: number,
  ): Promise<Subscription> {
    const consumer = this.kafka.consumer({
      groupId: opts.group,
      ...(maxFetchBytes
        ? { maxBytesPerPartition: maxFetchBytes, maxBytes: Math.max(maxFetchBytes, 10 * 1024 * 1024) }
        : {}),
      sessionTimeout: this.opts.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: this.opts.heartbeatIntervalMs ?? 1_000,
      rebalanceTimeout: this.opts.rebalanceTimeoutMs ?? 10_000,
      maxWaitTimeInMs: maxWaitMs ?? this.opts.maxWaitTimeMs ?? 500,
      allowAutoTopicCreation: false,
    });
    if (!this.ensured.has(opts.topic)) await this.ensureTopic(opts.topic);
    if (!opts.fromBeginning) await this.pinNewGroupToEnd(opts.group, opts.topic);
    const sub = new KafkaSubscription(consumer, opts, handler, this.opts, () => this.subs.delete(sub));
    this.subs.add(sub);
    try {
      await sub.start();
    } catch (e) {
      await sub.close();
      throw e;
    }
    return sub;
  }

  /**
   * A group with no committed offset on the topic gets the current end committed now, so
   * "start at the end" means the end when subscribe was called, not when the join finishes.
   */
  private async pinNewGroupToEnd(groupId: string, topic: string): Promise<void> {
    const admin = await this.getAdmin();
    const timeoutMs = this.opts.readyTimeoutMs ?? 30_000;
    const [committed] = await whileRetriable(
      () => admin.fetchOffsets({ groupId, topics: [topic] }),
      timeoutMs,
    );
    if (committed && committed.partitions.some((p) => p.offset !== '-1')) return;
    const ends = await whileRetriable(() => admin.fetchTopicOffsets(topic), timeoutMs);
    await admin
      .setOffsets({
        groupId,
        topic,
        partitions: ends.map((p) => ({ partition: p.partition, offset: p.high })),
      })
      .catch((err: unknown) =>
        this.opts.logger?.debug({ err, groupId, topic }, 'group is active; offsets left as they are'),
      );
  }

  async readCompacted(topic: string): Promise<Map<string, EventMessage>> {
    const admin = await this.getAdmin();
    const ends = await whileRetriable(
      () => admin.fetchTopicOffsets(topic),
      this.opts.readyTimeoutMs ?? 30_000,
    );
    // The last offset to read per partition; partitions with nothing left are done already.
    const pending = new Map<number, bigint>();
    for (const p of ends) if (BigInt(p.high) > BigInt(p.low)) pending.set(p.partition, BigInt(p.high) - 1n);
    const out = new Map<string, EventMessage>();
    if (pending.size === 0) return out;

    const group = `${this.opts.clientId}.read-compacted.${randomUUID()}`;
    const consumer = this.kafka.consumer({
      groupId: group,
      sessionTimeout: this.opts.sessionTimeoutMs ?? 10_000,
      heartbeatInterval: this.opts.heartbeatIntervalMs ?? 1_000,
      maxWaitTimeInMs: this.opts.maxWaitTimeMs ?? 500,
      allowAutoTopicCreation: false,
    });
    const ms = this.opts.readyTimeoutMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(
          () => reject(unavailable(`readCompacted ${topic}: not read to the end within ${ms} ms`)),
          ms,
        );
        consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              const last = pending.get(partition);
              if (last === undefined || BigInt(message.offset) > last) return;
              const m = toEvent(topic, partition, message);
              if (m.value === null) out.delete(m.key);
              else {
                out.delete(m.key); // keep the map in offset order of the latest values
                out.set(m.key, m);
              }
              if (BigInt(message.offset) === last) {
                pending.delete(partition);
                if (pending.size === 0) resolve();
              }
            },
          })
          .catch(reject);
      });
    } finally {
      clearTimeout(timer);
      await consumer.disconnect().catch(() => undefined);
      await admin.deleteGroups([group]).catch(() => undefined);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.subs].map((s) => s.close()));
    const [p, a] = [this.producer, this.admin];
    this.producer = this.admin = undefined;
    await Promise.all([
      p?.close().catch(() => undefined),
      a?.then((x) => x.disconnect()).catch(() => undefined),
    ]);
  }
}

/** A per-message handler, or a batch handler with its batch bound. */
type Handler =
  | { each: (m: EventMessage) => Promise<void>; batch?: undefined }
  | { batch: BatchSubscribeOptions['handler']; maxBatch: number; each?: undefined };

class KafkaSubscription implements Subscription {
  private readonly stop = new AbortController();
  /** Set once a message could not be finished before close: nothing after it may be handled or committed. */
  private halted = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly consumer: Consumer,
    private readonly sub: GroupOptions,
    private readonly handler: Handler,
    private readonly opts: KafkaBusOptions,
    private readonly onClosed: () => void,
  ) {}

  async start(): Promise<void> {
    const { consumer, sub, opts } = this;
    if (opts.onLag) {
      const hook = opts.onLag;
      consumer.on(consumer.events.END_BATCH_PROCESS, (e) =>
        hook({
          group: sub.group,
          topic: e.payload.topic,
          partition: e.payload.partition,
          lag: Number(e.payload.offsetLag),
        }),
      );
    }
    consumer.on(consumer.events.CRASH, (e) =>
      opts.logger?.error(
        { err: e.payload.error, topic: sub.topic, group: sub.group, restart: e.payload.restart },
        'kafka consumer crashed',
      ),
    );
    await consumer.connect();
    await consumer.subscribe({ topics: [sub.topic], fromBeginning: sub.fromBeginning ?? false });
    const ready = joined(consumer, opts.readyTimeoutMs ?? 30_000, `subscribe ${sub.topic} as ${sub.group}`);
    const running = consumer.run(
      this.handler.batch
        ? this.batchRun(this.handler.batch, this.handler.maxBatch)
        : this.eachRun(this.handler.each),
    );
    await Promise.all([running, ready]);
  }

  /**
   * Runs fn until it succeeds (retrying with backoff and heartbeats); false when the
   * subscription closed first: then nothing after it may be handled or committed.
   */
  private async untilDone(
    fn: () => Promise<void>,
    heartbeat: () => Promise<void>,
    log: object,
  ): Promise<boolean> {
    const { opts, sub } = this;
    for (let failures = 0; ; failures++) {
      if (this.stop.signal.aborted) {
        this.halted = true;
        return false;
      }
      try {
        await fn();
        return true;
      } catch (err) {
        opts.logger?.warn({ err, ...log, group: sub.group }, 'event handler failed; will redeliver');
        await sleep(
          retryDelay(failures, opts.retryInitialMs ?? 100, opts.retryMaxMs ?? 5_000),
          this.stop.signal,
        );
        await heartbeat().catch(() => undefined);
      }
    }
  }

  private eachRun(handler: (m: EventMessage) => Promise<void>): ConsumerRunConfig {
    return {
      autoCommit: false,
      eachMessage: async ({ topic, partition, message, heartbeat }) => {
        if (this.halted) return;
        const m = toEvent(topic, partition, message);
        if (!(await this.untilDone(() => handler(m), heartbeat, { topic, partition, offset: m.offset })))
          return;
        if (this.sub.commitOffsets !== false)
          await this.consumer.commitOffsets([
            { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
          ]);
      },
    };
  }

  /** eachBatch: the fetched batch in chunks of maxBatch; each chunk's offsets committed after its handler. */
  private batchRun(handler: BatchSubscribeOptions['handler'], maxBatch: number): ConsumerRunConfig {
    return {
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const { topic, partition } = batch;
        for (let at = 0; at < batch.messages.length; at += maxBatch) {
          if (this.halted || !isRunning() || isStale()) return;
          const chunk = batch.messages.slice(at, at + maxBatch);
          const msgs = chunk.map((m) => toEvent(topic, partition, m));
          const first = msgs[0].offset;
          let upTo: void | string = undefined;
          const ok = await this.untilDone(
            async () => {
              upTo = await handler(msgs);
            },
            heartbeat,
            { topic, partition, offset: first },
          );
          if (!ok) return;
          const last = chunk[chunk.length - 1].offset;
          if (this.sub.commitOffsets !== false)
            await this.consumer.commitOffsets([
              { topic, partition, offset: storedOffset(upTo, BigInt(last) + 1n).toString() },
            ]);
          resolveOffset(last);
          await heartbeat();
        }
      },
    };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort();
      await this.consumer.disconnect().catch((err: unknown) => {
        this.opts.logger?.warn({ err }, 'kafka consumer disconnect failed');
      });
      this.onClosed();
    })();
    return this.closing;
  }
}
