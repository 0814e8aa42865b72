/** The event-log seam: publish/subscribe with keys, consumer groups and committed offsets. */

export interface EventMessage {
  topic: string;
  partition: number;
  /** Offset within the partition, as a decimal string (Kafka's int64). */
  offset: string;
  key: string;
  /** null is a tombstone on a compacted topic. */
  value: Buffer | null;
  headers: Record<string, string>;
  /** Publish time, ms since the epoch. */
  timestamp: number;
}

export interface PublishMessage {
  key: string;
  value: Buffer | string | null;
  headers?: Record<string, string>;
}

/** Where a subscription reads, as whom, and whether its position is stored. */
export interface GroupOptions {
  topic: string;
  group: string;
  /** Where a group with no committed offset starts: the oldest message (true) or the end (false, default). */
  fromBeginning?: boolean;
  /**
   * false: the group's position is kept in memory only, never stored (default true): no offset
   * commit per message or batch. For a group of one process's own whose handling is harmless to
   * repeat in order, e.g. a replica of the latest value per key that starts from a snapshot: a
   * new subscription of the group starts where fromBeginning says, and so may a Kafka member
   * whose group rebalanced (it lost its session): it handles again, in order, what came since
   * the subscription began.
   */
  commitOffsets?: boolean;
}

export interface SubscribeOptions extends GroupOptions {
  /**
   * Called once per message, in order per key. The offset is committed after it resolves;
   * when it throws the same message is delivered again (after a backoff) before any later one.
   */
  handler: (m: EventMessage) => Promise<void>;
}

export interface BatchSubscribeOptions extends GroupOptions {
  /** Most messages per handler call (default 500). */
  maxBatch?: number;
  /**
   * How long a fetch may wait for more messages to fill a batch (ms). Kafka: the broker's fetch
   * wait; embedded log: a batch smaller than maxBatch waits this long once for more (default 0).
   */
  maxWaitMs?: number;
  /**
   * Kafka: most bytes of messages one fetch returns per partition (default 1 MiB, kafkajs's). A
   * batch never spans two fetches, so this bounds a batch as maxBatch does. Embedded log: unused.
   */
  maxFetchBytes?: number;
  /**
   * Called with consecutive messages of one partition, in offset order (so in order per key).
   * Their offsets are committed after it resolves; when it throws, the same batch (from its
   * first message) is delivered again after a backoff, before any later message.
   *
   * It may resolve with an offset inside the batch: the messages from there on are still being
   * handled (a handler that stores its own position with its effects, and skips what that
   * position covers). That offset is committed instead, and the next batch follows the batch's
   * end at once; after a restart or a rebalance the group reads again from the committed offset.
   */
  handler: (msgs: EventMessage[]) => Promise<void | string>;
}

/** The offset a batch handler's answer lets the bus commit: `upTo` when before the batch's end `next`. */
export function storedOffset(upTo: void | string, next: bigint): bigint {
  return upTo !== undefined && BigInt(upTo) < next ? BigInt(upTo) : next;
}

export interface Subscription {
  /** Stops consuming; waits for the handler in flight (and commits it when it succeeded). */
  close(): Promise<void>;
}

export interface TopicOptions {
  /** Keep only the latest value per key (cleanup.policy=compact). */
  compacted?: boolean;
  /** Kafka partitions (the embedded log has one). */
  partitions?: number;
}

/** How far a group is behind the end of a partition, reported after each batch. */
export interface ConsumerLag {
  group: string;
  topic: string;
  partition: number;
  lag: number;
}
export type LagHook = (lag: ConsumerLag) => void;

export interface EventBus {
  readonly kind: 'kafka' | 'embedded';
  /** Resolves when every message is durable (acknowledged / committed). */
  publish(topic: string, messages: PublishMessage[]): Promise<void>;
  /** At-least-once delivery to one member of the group; resolves once consuming has started. */
  subscribe(opts: SubscribeOptions): Promise<Subscription>;
  /** Like subscribe, but the handler gets batches of one partition; offsets are committed per batch. */
  subscribeBatch(opts: BatchSubscribeOptions): Promise<Subscription>;
  /** The latest message per key, read from the beginning to the current end; tombstones remove keys. */
  readCompacted(topic: string): Promise<Map<string, EventMessage>>;
  /** Creates the topic when missing (idempotent). */
  ensureTopic(topic: string, opts?: TopicOptions): Promise<void>;
  /** Closes every subscription and connection of this bus (not the Db it was given). */
  close(): Promise<void>;
}

/** The retry delay after the n-th consecutive handler failure (0-based): doubling, capped. */
export function retryDelay(n: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(n, 20));
}

/** A sleep that ends early when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export const toBuffer = (v: Buffer | string | null): Buffer | null =>
  v === null ? null : Buffer.isBuffer(v) ? v : Buffer.from(v, 'utf8');
