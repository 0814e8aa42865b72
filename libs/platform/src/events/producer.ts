/**
 * The bus's Kafka producer: idempotent (a producer id from InitProducerId, a sequence per
 * partition), acks=all, one Produce request in flight, each partition's records encoded as
 * one RecordBatch in one Buffer (record-batch.ts). It speaks the few requests publishing
 * needs, in fixed versions every broker since Kafka 2.4 answers: Metadata v8,
 * InitProducerId v1, Produce v8. kafkajs (the admin and the consumers) stays for the rest.
 *
 * - Partitions: Java's murmur2 of the key, modulo the partition count (kafkajs's
 *   DefaultPartitioner and the Java client's choice for keyed records).
 * - Ordering: one Produce request at a time; publish calls made while one is in flight go
 *   together in the next, in call order; more than maxBatchBytes for a partition goes in
 *   consecutive requests.
 * - Retries: a lost connection, a timeout or a retriable broker error (leadership moved,
 *   not enough replicas) sends the same batches again with the same producer id and
 *   sequences, so the broker stores each once. A send that still fails rejects, and the
 *   next one starts under a new producer id (the old sequences are in doubt).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { unavailable } from '../errors';
import { partitionOf } from './partitioner';
import { BATCH_HEADER, recordBound, writeRecordBatch } from './record-batch';
import { type PublishMessage, retryDelay, sleep } from './types';

export interface KafkaProducerOptions {
  brokers: string[];
  clientId: string;
  logger?: Logger;
  connectTimeoutMs?: number;
  /** Bound on one request's answer; the broker's own Produce timeout is this too (ms). */
  requestTimeoutMs?: number;
  /** Attempts after the first before a send fails, and their backoff (ms). */
  retries?: number;
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Bound on one partition's batch in a request: below the broker's message.max.bytes (1,048,588). */
  maxBatchBytes?: number;
  /** Tests: this many Produce answers are dropped and their connection closed, as if lost. */
  loseProduceResponses?: number;
}

const API_PRODUCE = 0;
const API_METADATA = 3;
const API_INIT_PRODUCER_ID = 22;

/** Broker errors after which the same request may succeed (metadata refreshed first). */
const RETRIABLE = new Set([
  3, // UNKNOWN_TOPIC_OR_PARTITION
  5, // LEADER_NOT_AVAILABLE
  6, // NOT_LEADER_OR_FOLLOWER
  7, // REQUEST_TIMED_OUT
  13, // NETWORK_EXCEPTION
  14, // COORDINATOR_LOAD_IN_PROGRESS
  15, // COORDINATOR_NOT_AVAILABLE
  16, // NOT_COORDINATOR
  19, // NOT_ENOUGH_REPLICAS
  20, // NOT_ENOUGH_REPLICAS_AFTER_APPEND
  56, // KAFKA_STORAGE_ERROR
  74, // FENCED_LEADER_EPOCH
  75, // UNKNOWN_LEADER_EPOCH
]);
/** The batch is already stored: an earlier attempt of it got through. */
const DUPLICATE_SEQUENCE_NUMBER = 46;
/** Errors about the producer id's state: the next send starts under a new one. */
const PRODUCER_STATE = new Set([
  45, // OUT_OF_ORDER_SEQUENCE_NUMBER
  47, // INVALID_PRODUCER_EPOCH
  49, // INVALID_PRODUCER_ID_MAPPING
  59, // UNKNOWN_PRODUCER_ID
  90, // PRODUCER_FENCED
]);

class KafkaError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'KafkaError';
  }
}

/** Reads a response body (after the correlation id). */
class Reader {
  constructor(
    private readonly b: Buffer,
    public at: number,
  ) {}
  int8(): number {
    return this.b.readInt8(this.at++);
  }
  int16(): number {
    const v = this.b.readInt16BE(this.at);
    this.at += 2;
    return v;
  }
  int32(): number {
    const v = this.b.readInt32BE(this.at);
    this.at += 4;
    return v;
  }
  int64(): bigint {
    const v = this.b.readBigInt64BE(this.at);
    this.at += 8;
    return v;
  }
  string(): string | null {
    const n = this.int16();
    if (n < 0) return null;
    const s = this.b.toString('utf8', this.at, this.at + n);
    this.at += n;
    return s;
  }
  skipInt32Array(): void {
    const n = this.int32();
    if (n > 0) this.at += 4 * n;
  }
}

const int16 = (v: number) => {
  const b = Buffer.allocUnsafe(2);
  b.writeInt16BE(v);
  return b;
};
const int32 = (v: number) => {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(v);
  return b;
};
const str = (s: string) => {
  const body = Buffer.from(s, 'utf8');
  return Buffer.concat([int16(body.length), body]);
};

interface Waiter {
  resolve: (r: Reader) => void;
  reject: (e: Error) => void;
  apiKey: number;
}

/** One broker connection: requests framed with a correlation id, answers matched to them. */
class Connection {
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private acc: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  closed = false;

  private constructor(
    private readonly socket: net.Socket,
    private readonly clientId: Buffer,
    private readonly timeoutMs: number,
    private readonly lose: { produceAnswers: number },
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(unavailable(`kafka connection: ${e.message}`, e)));
    socket.on('close', () => this.fail(unavailable('kafka connection closed')));
  }

  static open(
    host: string,
    port: number,
    clientId: Buffer,
    connectTimeoutMs: number,
    timeoutMs: number,
    lose: { produceAnswers: number },
  ): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(unavailable(`kafka ${host}:${port}: no connection within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(unavailable(`kafka ${host}:${port}: ${e.message}`, e));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket, clientId, timeoutMs, lose));
      });
    });
  }

  /** Sends a request (header v1) whose body is parts; resolves with its answer. */
  request(apiKey: number, version: number, parts: Buffer[]): Promise<Reader> {
    if (this.closed) return Promise.reject(unavailable('kafka connection closed'));
    const id = this.nextId++;
    if (this.nextId > 0x7fffffff) this.nextId = 1;
    let size = 10 + this.clientId.length;
    for (const p of parts) size += p.length;
    const head = Buffer.allocUnsafe(14);
    head.writeInt32BE(size, 0);
    head.writeInt16BE(apiKey, 4);
    head.writeInt16BE(version, 6);
    head.writeInt32BE(id, 8);
    head.writeInt16BE(this.clientId.length, 12);
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, apiKey });
      this.armTimer();
      const s = this.socket;
      s.cork();
      s.write(head);
      s.write(this.clientId);
      for (const p of parts) s.write(p);
      s.uncork();
    });
  }

  private onData(d: Buffer): void {
    let b = this.acc ? Buffer.concat([this.acc, d]) : d;
    while (b.length >= 4) {
      const size = b.readInt32BE(0);
      if (b.length < 4 + size) break;
      const frame = b.subarray(4, 4 + size);
      b = b.subarray(4 + size);
      const id = frame.readInt32BE(0);
      const w = this.waiting.get(id);
      if (!w) continue;
      this.waiting.delete(id);
      clearTimeout(this.timer);
      this.timer = undefined;
      if (w.apiKey === API_PRODUCE && this.lose.produceAnswers > 0) {
        this.lose.produceAnswers--;
        this.waiting.set(id, w); // failed with the connection below
        this.fail(unavailable('kafka: Produce answer lost (test)'));
        return;
      }
      w.resolve(new Reader(frame, 4));
      if (this.closed) return;
    }
    this.acc = b.length > 0 ? b : undefined;
    if (this.waiting.size > 0) this.armTimer();
  }

  /** One timer for the oldest answer awaited: the connection fails when it runs out. */
  private armTimer(): void {
    this.timer ??= setTimeout(
      () => this.fail(unavailable(`kafka: no answer within ${this.timeoutMs} ms`)),
      this.timeoutMs,
    );
  }

  /** Closes the connection and fails every request waiting on it. */
  fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.socket.destroy();
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

interface TopicMeta {
  /** Leader node per partition (-1: none now). */
  leaders: number[];
}

/** One partition's records of a send, and how far they went. */
interface Part {
  topic: string;
  partition: number;
  msgs: PublishMessage[];
  done: number;
}

/** One partition's batch in a Produce request: its partition index, records length, RecordBatch. */
interface Batch {
  part: Part;
  count: number;
  data: Buffer;
}

interface Queued {
  topic: string;
  messages: PublishMessage[];
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class KafkaProducer {
  private readonly clientId: Buffer;
  private readonly brokers = new Map<number, { host: string; port: number }>();
  private readonly conns = new Map<number | string, Promise<Connection>>();
  private readonly topics = new Map<string, TopicMeta>();
  private readonly sequences = new Map<string, number>();
  private producer: { producerId: bigint; producerEpoch: number } | undefined;
  private queue: Queued[] = [];
  private draining: Promise<void> | undefined;
  private readonly lose: { produceAnswers: number };
  private closed = false;

  constructor(private readonly opts: KafkaProducerOptions) {
    this.clientId = Buffer.from(opts.clientId, 'utf8');
    this.lose = { produceAnswers: opts.loseProduceResponses ?? 0 };
  }

  /** Resolves when the broker acknowledged every message (acks=all). */
  send(topic: string, messages: PublishMessage[]): Promise<void> {
    if (this.closed) return Promise.reject(unavailable('kafka producer closed'));
    if (messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, messages, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const items = this.queue;
      this.queue = [];
      try {
        await this.produce(items);
        for (const q of items) q.resolve();
      } catch (e) {
        for (const q of items) q.reject(e);
      }
    }
    this.draining = undefined;
  }

  /** Waits for the sends in flight, then closes every connection. */
  async close(): Promise<void> {
    this.closed = true;
    await this.draining;
    const conns = [...this.conns.values()];
    this.conns.clear();
    await Promise.all(
      conns.map((c) => c.then((x) => x.fail(unavailable('kafka producer closed'))).catch(() => undefined)),
    );
  }

  private async produce(items: Queued[]): Promise<void> {
    // The partitions each topic's messages go to, in call order per partition.
    const parts = new Map<string, Part>();
    for (const q of items) {
      const n = (await this.topicMeta(q.topic)).leaders.length;
      for (const m of q.messages) {
        const partition = partitionOf(m.key, n);
        const id = `${q.topic}\0${partition}`;
        let p = parts.get(id);
        if (!p) parts.set(id, (p = { topic: q.topic, partition, msgs: [], done: 0 }));
        p.msgs.push(m);
      }
    }
    const open = [...parts.values()];
    try {
      while (open.length > 0) {
        await this.round(open);
        for (let i = open.length - 1; i >= 0; i--)
          if (open[i].done === open[i].msgs.length) open.splice(i, 1);
      }
    } catch (e) {
      if (!(e instanceof KafkaError) || PRODUCER_STATE.has(e.code)) {
        // Whether the last batches were stored is unknown: a new producer id for what comes next.
        this.producer = undefined;
        this.sequences.clear();
      }
      throw e;
    }
  }

  /** One Produce request per leader, a batch per open partition (up to maxBatchBytes), retried until stored. */
  private async round(open: Part[]): Promise<void> {
    const producer = await this.producerId();
    const max = this.opts.maxBatchBytes ?? 1_000_000;
    // Cut each partition's next batch and size one buffer for all of them.
    const cuts: Array<{ part: Part; to: number; bound: number }> = [];
    let total = 0;
    for (const part of open) {
      let bound = 8 + BATCH_HEADER;
      let to = part.done;
      while (to < part.msgs.length) {
        const r = recordBound(part.msgs[to]);
        if (bound + r > max && to > part.done) break;
        bound += r;
        to++;
      }
      cuts.push({ part, to, bound });
      total += bound;
    }
    const buf = Buffer.allocUnsafe(total);
    const now = Date.now();
    const pending: Batch[] = [];
    let at = 0;
    for (const { part, to } of cuts) {
      const seq = this.sequences.get(`${part.topic}\0${part.partition}`) ?? 0;
      const end = writeRecordBatch(buf, at + 8, part.msgs, part.done, to, producer, seq, now);
      buf.writeInt32BE(part.partition, at);
      buf.writeInt32BE(end - at - 8, at + 4);
      pending.push({ part, count: to - part.done, data: buf.subarray(at, end) });
      at = end;
    }

    const retries = this.opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      let lastError: Error | undefined;
      const byLeader = new Map<number, Batch[]>();
      for (const b of pending) {
        const leader = (await this.topicMeta(b.part.topic)).leaders[b.part.partition] ?? -1;
        if (leader < 0) {
          lastError = new KafkaError(5, `kafka: no leader for ${b.part.topic}/${b.part.partition}`);
          continue;
        }
        const list = byLeader.get(leader);
        if (list) list.push(b);
        else byLeader.set(leader, [b]);
      }
      const requests = [...byLeader];
      const answers = await Promise.allSettled(
        requests.map(([leader, batches]) => this.produceTo(leader, batches)),
      );
      answers.forEach((a, i) => {
        if (a.status === 'rejected')
          lastError = a.reason instanceof Error ? a.reason : new Error(String(a.reason));
        else {
          const batches = requests[i][1];
          for (const b of batches) {
            const code = a.value.get(`${b.part.topic}\0${b.part.partition}`) ?? {
              code: -1,
              message: 'no answer',
            };
            if (code.code === 0 || code.code === DUPLICATE_SEQUENCE_NUMBER) {
              const id = `${b.part.topic}\0${b.part.partition}`;
              this.sequences.set(id, ((this.sequences.get(id) ?? 0) + b.count) % 0x80000000);
              b.part.done += b.count;
              pending.splice(pending.indexOf(b), 1);
            } else {
              const err = new KafkaError(
                code.code,
                `kafka: Produce to ${b.part.topic}/${b.part.partition} failed: error ${code.code}${code.message ? ` (${code.message})` : ''}`,
              );
              if (!RETRIABLE.has(code.code)) throw err;
              lastError = err;
            }
          }
        }
      });
      if (pending.length === 0) return;
      if (attempt >= retries) {
        throw unavailable(
          `kafka: Produce failed after ${retries + 1} attempts: ${lastError?.message ?? 'no answer'}`,
          lastError,
        );
      }
      this.opts.logger?.warn({ err: lastError, attempt }, 'kafka produce failed; retrying');
      for (const b of pending) this.topics.delete(b.part.topic);
      await this.backoff(attempt);
    }
  }

  /** One Produce v8 request (acks=all); the error per partition of its answer. */
  private async produceTo(
    leader: number,
    batches: Batch[],
  ): Promise<Map<string, { code: number; message: string | null }>> {
    const conn = await this.connection(leader);
    const timeout = this.opts.requestTimeoutMs ?? 30_000;
    const byTopic = new Map<string, Batch[]>();
    for (const b of batches) {
      const list = byTopic.get(b.part.topic);
      if (list) list.push(b);
      else byTopic.set(b.part.topic, [b]);
    }
    const head = Buffer.allocUnsafe(12);
    head.writeInt16BE(-1, 0); // transactional_id: null
    head.writeInt16BE(-1, 2); // acks: all
    head.writeInt32BE(timeout, 4);
    head.writeInt32BE(byTopic.size, 8);
    const parts: Buffer[] = [head];
    for (const [topic, list] of byTopic) {
      parts.push(str(topic), int32(list.length));
      for (const b of list) parts.push(b.data);
    }
    const r = await conn.request(API_PRODUCE, 8, parts);
    const out = new Map<string, { code: number; message: string | null }>();
    for (let t = r.int32(); t > 0; t--) {
      const topic = r.string() ?? '';
      for (let p = r.int32(); p > 0; p--) {
        const partition = r.int32();
        const code = r.int16();
        r.at += 24; // base_offset, log_append_time_ms, log_start_offset
        for (let e = r.int32(); e > 0; e--) {
          r.int32();
          r.string();
        }
        const message = r.string();
        out.set(`${topic}\0${partition}`, { code, message });
      }
    }
    return out;
  }

  /** The idempotent producer id and epoch (InitProducerId v1, no transactional id). */
  private async producerId(): Promise<{ producerId: bigint; producerEpoch: number }> {
    if (this.producer) return this.producer;
    const retries = this.opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        const conn = await this.anyConnection();
        const r = await conn.request(API_INIT_PRODUCER_ID, 1, [int16(-1), int32(60_000)]);
        r.int32(); // throttle
        const code = r.int16();
        const producerId = r.int64();
        const producerEpoch = r.int16();
        if (code !== 0) throw new KafkaError(code, `kafka: InitProducerId failed: error ${code}`);
        this.sequences.clear();
        this.producer = { producerId, producerEpoch };
        return this.producer;
      } catch (e) {
        if ((e instanceof KafkaError && !RETRIABLE.has(e.code)) || attempt >= retries) throw e;
        await this.backoff(attempt);
      }
    }
  }

  /** The topic's partitions and leaders (Metadata v8), cached until a produce error. */
  private async topicMeta(topic: string): Promise<TopicMeta> {
    const known = this.topics.get(topic);
    if (known) return known;
    const retries = this.opts.retries ?? 5;
    for (let attempt = 0; ; attempt++) {
      let err: Error;
      try {
        const conn = await this.anyConnection();
        // topics [name], allow_auto_topic_creation false, no authorized operations
        const r = await conn.request(API_METADATA, 8, [int32(1), str(topic), Buffer.from([0, 0, 0])]);
        r.int32(); // throttle
        for (let n = r.int32(); n > 0; n--) {
          const node = r.int32();
          const host = r.string() ?? '';
          const port = r.int32();
          r.string(); // rack
          this.brokers.set(node, { host, port });
        }
        r.string(); // cluster id
        r.int32(); // controller
        let meta: TopicMeta | undefined;
        let code = 0;
        for (let t = r.int32(); t > 0; t--) {
          const tcode = r.int16();
          const name = r.string();
          r.int8(); // is_internal
          const leaders: number[] = [];
          for (let p = r.int32(); p > 0; p--) {
            r.int16(); // partition error
            const index = r.int32();
            leaders[index] = r.int32();
            r.int32(); // leader epoch
            r.skipInt32Array(); // replicas
            r.skipInt32Array(); // isr
            r.skipInt32Array(); // offline
          }
          r.int32(); // authorized operations
          if (name === topic) {
            code = tcode;
            if (tcode === 0 && leaders.length > 0) meta = { leaders };
          }
        }
        if (meta) {
          this.topics.set(topic, meta);
          return meta;
        }
        err = new KafkaError(code || 5, `kafka: no metadata for topic ${topic} (error ${code})`);
        if (!RETRIABLE.has(code) && code !== 0) throw err;
      } catch (e) {
        if (e instanceof KafkaError && !RETRIABLE.has(e.code)) throw e;
        err = e instanceof Error ? e : new Error(String(e));
      }
      if (attempt >= retries) throw unavailable(`kafka: no metadata for topic ${topic}`, err);
      await this.backoff(attempt);
    }
  }

  /** A connection to the given node (from the metadata), opened once and again after it failed. */
  private async connection(node: number): Promise<Connection> {
    const open = this.conns.get(node);
    if (open) {
      const c = await open.catch(() => undefined);
      if (c && !c.closed) return c;
      this.conns.delete(node);
    }
    const addr = this.brokers.get(node);
    if (!addr) {
      this.topics.clear(); // the next metadata answer names it
      throw new KafkaError(6, `kafka: broker ${node} not in the metadata`);
    }
    const c = this.dial(addr.host, addr.port);
    this.conns.set(node, c);
    return c;
  }

  /** Any live connection, else one to the first bootstrap broker that answers. */
  private async anyConnection(): Promise<Connection> {
    for (const p of this.conns.values()) {
      const c = await p.catch(() => undefined);
      if (c && !c.closed) return c;
    }
    let last: unknown;
    for (const b of this.opts.brokers) {
      const i = b.lastIndexOf(':');
      const host = b.slice(0, i).replace(/^\[|\]$/g, '');
      try {
        const c = await this.dial(host, Number(b.slice(i + 1)));
        this.conns.set(`bootstrap ${b}`, Promise.resolve(c));
        return c;
      } catch (e) {
        last = e;
      }
    }
    throw unavailable(`kafka: no broker of ${this.opts.brokers.join(', ')} answers`, last);
  }

  private backoff(attempt: number): Promise<void> {
    return sleep(retryDelay(attempt, this.opts.retryInitialMs ?? 100, this.opts.retryMaxMs ?? 2_000));
  }

  private dial(host: string, port: number): Promise<Connection> {
    return Connection.open(
      host,
      port,
      this.clientId,
      this.opts.connectTimeoutMs ?? 3_000,
      this.opts.requestTimeoutMs ?? 30_000,
      this.lose,
    );
  }
}
