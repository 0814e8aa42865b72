/**
 * The embedded event log: Kafka's publish/subscribe/offset semantics kept in the Db
 * (PGlite on disk for `npm start`, or PostgreSQL). One partition per topic; offsets are
 * dense per topic and handed out under the topic row's lock, so they follow commit order.
 * A group's committed offset lives in eventlog.consumer_offsets together with a lease
 * naming the one member that consumes; other members of the group stand by.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Db } from '../db/types';
import { migrate } from '../db/migrate';
import { invalidArgument } from '../errors';
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
  toBuffer,
} from './types';

export interface EmbeddedBusOptions {
  db: Db;
  logger?: Logger;
  onLag?: LagHook;
  /** How often an idle member looks for messages published by another process (ms). */
  pollMs?: number;
  /** Messages fetched per round. */
  batchSize?: number;
  /** How long a member holds its group's partition without renewing (ms). */
  leaseMs?: number;
  /** Handler retry backoff: first delay and cap (ms). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Compact a compacted topic after this many messages published through this bus (default 1000; 0 = never). */
  compactEvery?: number;
  /**
   * How long messages of a topic that is not compacted are kept (ms; default 7 days, Kafka's
   * log.retention.hours; 0 = for good). Checked every minute, and once at start.
   */
  retentionMs?: number;
}

export const DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000;
const RETENTION_CHECK_MS = 60_000;

export const EVENTLOG_SCHEMA = 'eventlog';
const MIGRATIONS = fileURLToPath(new URL('./migrations', import.meta.url));
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
const PARTITION = 0;
/** Rows per query when reading a compacted topic whole. */
const READ_PAGE = 2000;

/** In-process wake-ups, shared by every bus on the same Db: publish wakes the topic's subscribers. */
const wakers = new WeakMap<Db, EventEmitter>();
function wakerOf(db: Db): EventEmitter {
  let w = wakers.get(db);
  if (!w) {
    w = new EventEmitter();
    w.setMaxListeners(0);
    wakers.set(db, w);
  }
  return w;
}

/** Most messages, and most value bytes, a topic's tail keeps (past either it drops its oldest down to half). */
const TAIL_MESSAGES = 4_096;
const TAIL_BYTES = 4 * 1024 * 1024;

/**
 * The latest messages published to one topic by this process, as published, so that a
 * subscriber that keeps up gets them without reading back the rows just written. Only on
 * PGlite: its data directory belongs to one process, so every message of the log is
 * published here. The tail holds offsets [start, start + length) with no gap; a publish
 * that does not continue it starts it again. Whatever it does not cover is read from the Db.
 */
export class TopicTail {
  private msgs: EventMessage[] = [];
  /** The offset of msgs[0]. */
  private start = 0n;
  private bytes = 0;

  /** Adds messages published at offsets first, first + 1, ... */
  append(first: bigint, msgs: EventMessage[]): void {
    if (first !== this.start + BigInt(this.msgs.length)) {
      this.msgs = [];
      this.bytes = 0;
      this.start = first;
    }
    for (const m of msgs) {
      this.msgs.push(m);
      this.bytes += m.value?.length ?? 0;
    }
    if (this.msgs.length > TAIL_MESSAGES || this.bytes > TAIL_BYTES) {
      // down to half of each bound, the oldest first
      let drop = 0;
      while (this.msgs.length - drop > TAIL_MESSAGES / 2 || this.bytes > TAIL_BYTES / 2)
        this.bytes -= this.msgs[drop++].value?.length ?? 0;
      this.start += BigInt(drop);
      this.msgs = this.msgs.slice(drop);
    }
  }

  /** The offset after the newest message held; undefined when none is. */
  end(): bigint | undefined {
    return this.msgs.length === 0 ? undefined : this.start + BigInt(this.msgs.length);
  }

  /**
   * Up to limit messages from offset `from` on (copies: a handler may keep or change them);
   * undefined when the tail does not hold the message at `from` (the Db has it, or nothing
   * was published after it yet).
   */
  read(from: bigint, limit: number): EventMessage[] | undefined {
    if (from < this.start || from >= this.start + BigInt(this.msgs.length)) return undefined;
    const i = Number(from - this.start);
    return this.msgs.slice(i, i + limit).map((m) => ({
      ...m,
      value: m.value === null ? null : Buffer.from(m.value),
      headers: { ...m.headers },
    }));
  }
}

/**
 * The tails of the topics of one PGlite Db, shared by every bus on it: only of topics that a
 * subscriber here reads (the first one creates it), so a topic nobody reads in this process
 * keeps nothing in memory.
 */
const tails = new WeakMap<Db, Map<string, TopicTail>>();
function tailOf(db: Db, topic: string, create: boolean): TopicTail | undefined {
  if (db.kind !== 'pglite') return undefined;
  let byTopic = tails.get(db);
  if (!byTopic) {
    if (!create) return undefined;
    tails.set(db, (byTopic = new Map()));
  }
  let t = byTopic.get(topic);
  if (!t && create) byTopic.set(topic, (t = new TopicTail()));
  return t;
}

/** The topic's tail in this process, if it keeps one (for tests). */
export const heldTail = (db: Db, topic: string): TopicTail | undefined => tailOf(db, topic, false);

interface EventRow {
  topic: string;
  partition: number;
  offset: string;
  key: string;
  value: Buffer | null;
  headers: Record<string, string> | null;
  ts: string;
}
const toMessage = (r: EventRow): EventMessage => ({
  topic: r.topic,
  partition: r.partition,
  offset: String(r.offset),
  key: r.key,
  value: r.value === null ? null : Buffer.from(r.value),
  headers: r.headers ?? {},
  timestamp: Number(r.ts),
});

const checkTopic = (topic: string) => {
  if (!TOPIC_NAME.test(topic)) throw invalidArgument('topic', `bad topic name ${JSON.stringify(topic)}`);
};

/** Creates the eventlog schema when missing and opens the bus on db. */
export async function openEmbeddedBus(opts: EmbeddedBusOptions): Promise<EmbeddedBus> {
  await migrate(opts.db, { schema: EVENTLOG_SCHEMA, dir: MIGRATIONS });
  if (opts.db.kind === 'pglite') {
    // A PGlite data directory belongs to one process: leases left by a killed one are void.
    await opts.db.query(
      `UPDATE eventlog.consumer_offsets SET owner = NULL, lease_until = NULL WHERE owner IS NOT NULL`,
    );
  }
  return new EmbeddedBus(opts);
}

export class EmbeddedBus implements EventBus {
  readonly kind = 'embedded' as const;
  private readonly subs = new Set<EmbeddedSubscription>();
  private readonly waker: EventEmitter;
  private closed = false;
  private readonly compactedTopic = new Map<string, boolean>();
  /**
   * Per compacted topic: messages this bus published since it last compacted it, the first
   * one's offset (undefined when none), and the rounds so far.
   */
  private readonly compaction = new Map<string, { published: number; from?: bigint; rounds: number }>();
  private compacting: Promise<void> = Promise.resolve();

  private readonly retention: NodeJS.Timeout | undefined;
  private expiring: Promise<void> = Promise.resolve();

  constructor(private readonly opts: EmbeddedBusOptions) {
    this.waker = wakerOf(opts.db);
    const keep = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    if (keep > 0) {
      const expire = () =>
        (this.expiring = this.expiring
          .then(() => this.expire(Date.now() - keep))
          .then(
            (n) =>
              void (n > 0 && this.opts.logger?.debug({ messages: n }, 'event log: expired messages deleted')),
            (err: unknown) => this.opts.logger?.warn({ err }, 'event log: deleting expired messages failed'),
          ));
      this.retention = setInterval(expire, RETENTION_CHECK_MS).unref();
      expire();
    }
  }

  /**
   * Deletes the messages published before `before` (ms since the epoch) from every topic that
   * is not compacted (Kafka's time-based retention). Per topic it reads the oldest messages
   * up to the first one to keep, by offset. Returns how many went.
   */
  async expire(before: number): Promise<number> {
    // Per topic, the first offset to keep: the oldest message not expired (an index scan from the
    // oldest offset that stops there), or the next offset when all are.
    const topics = await this.opts.db.query<{ topic: string; keep: string }>(
      `SELECT t.name AS topic, coalesce(
         (SELECT k."offset" FROM eventlog.events k
          WHERE k.topic = t.name AND k.partition = ${PARTITION} AND k.ts >= $1 ORDER BY k."offset" LIMIT 1),
         t.next_offset)::text AS keep
       FROM eventlog.topics t WHERE NOT t.compacted`,
      [String(before)],
    );
    let deleted = 0;
    for (const { topic, keep } of topics.rows) {
      const r = await this.opts.db.query(
        `DELETE FROM eventlog.events WHERE topic = $1 AND partition = ${PARTITION} AND "offset" < $2`,
        [topic, keep],
      );
      deleted += r.rowCount;
    }
    return deleted;
  }

  /**
   * A topic asked for as compacted is compacted from then on, even when a publish or a subscriber
   * created it first: retention never applies to it (its messages are state, kept by key).
   */
  async ensureTopic(topic: string, opts: TopicOptions = {}): Promise<void> {
    checkTopic(topic);
    await this.opts.db.query(
      `INSERT INTO eventlog.topics (name, compacted) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET compacted = true WHERE EXCLUDED.compacted AND NOT eventlog.topics.compacted`,
      [topic, opts.compacted ?? false],
    );
    if (opts.compacted) this.compactedTopic.set(topic, true);
  }

  async publish(topic: string, messages: PublishMessage[]): Promise<void> {
    checkTopic(topic);
    if (messages.length === 0) return;
    // One statement, atomic by itself: the topic row's upsert hands out the offsets and holds
    // the row's lock until the commit (publishes to one topic commit in offset order), and the
    // messages come as three array parameters whatever their number. Values travel as base64
    // text: PGlite binds a bytea[] element by element, and a bytea per row in a VALUES list,
    // at about twice the CPU.
    const ts = Date.now();
    const values = messages.map((m) => (m.value === null ? null : toBuffer(m.value)!));
    const r = await this.opts.db.query<{ first: string }>(
      `WITH t AS (
         INSERT INTO eventlog.topics (name, next_offset) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET next_offset = eventlog.topics.next_offset + EXCLUDED.next_offset
         RETURNING next_offset - $2 AS first
       ), ins AS (
         INSERT INTO eventlog.events (topic, partition, "offset", key, value, headers, ts)
         SELECT $1, ${PARTITION}, t.first + m.i - 1, m.key, decode(m.value, 'base64'), m.headers::jsonb, $3::bigint
         FROM t, unnest($4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS m(key, value, headers, i)
       )
       SELECT first::text FROM t`,
      [
        topic,
        messages.length,
        String(ts),
        messages.map((m) => m.key),
        values.map((v) => (v === null ? null : v.toString('base64'))),
        messages.map((m) => JSON.stringify(m.headers ?? {})),
      ],
    );
    const first = BigInt(r.rows[0].first);
    const tail = tailOf(this.opts.db, topic, false);
    if (tail) {
      tail.append(
        first,
        messages.map((m, i) => ({
          topic,
          partition: PARTITION,
          offset: String(first + BigInt(i)),
          key: m.key,
          value: values[i] && Buffer.from(values[i]), // the publisher may reuse its buffer
          headers: { ...m.headers },
          timestamp: ts,
        })),
      );
    }
    this.waker.emit('wake', topic);
    await this.maybeCompact(topic, messages.length, first);
  }

  /**
   * Lazy compaction: every compactEvery messages on a compacted topic, superseded rows go (in the
   * background). Only the keys this bus published since the last time are looked at, so a round
   * costs what was published, not the topic's size; the first round of a topic, and every 100th,
   * looks at the whole topic (rows left by another process or before a restart).
   */
  private async maybeCompact(topic: string, published: number, first: bigint): Promise<void> {
    const every = this.opts.compactEvery ?? 1000;
    if (every <= 0) return;
    let compacted = this.compactedTopic.get(topic);
    if (compacted === undefined) {
      const r = await this.opts.db.query<{ compacted: boolean }>(
        `SELECT compacted FROM eventlog.topics WHERE name = $1`,
        [topic],
      );
      compacted = r.rows[0]?.compacted ?? false;
      this.compactedTopic.set(topic, compacted);
    }
    if (!compacted) return;
    let c = this.compaction.get(topic);
    if (!c) this.compaction.set(topic, (c = { published: 0, rounds: 0 }));
    c.from ??= first;
    c.published += published;
    if (c.published < every) return;
    const from = c.from;
    const round = c.rounds++;
    c.published = 0;
    c.from = undefined;
    this.compacting = this.compacting
      .then(() => (round % 100 === 0 ? this.compact(topic) : this.compactSince(topic, from)))
      .then(
        () => undefined,
        (err: unknown) => this.opts.logger?.warn({ err, topic }, 'event log compaction failed'),
      );
  }

  subscribe(opts: SubscribeOptions): Promise<Subscription> {
    return this.consume(opts, { each: opts.handler });
  }

  subscribeBatch(opts: BatchSubscribeOptions): Promise<Subscription> {
    if (opts.maxBatch !== undefined && !(Number.isInteger(opts.maxBatch) && opts.maxBatch > 0))
      throw invalidArgument('maxBatch', 'a positive integer is required');
    return this.consume(opts, {
      batch: opts.handler,
      maxBatch: opts.maxBatch ?? 500,
      maxWaitMs: opts.maxWaitMs ?? 0,
    });
  }

  private async consume(opts: GroupOptions, handler: Handler): Promise<Subscription> {
    checkTopic(opts.topic);
    if (this.closed) throw new Error('event bus closed');
    const db = this.opts.db;
    await this.ensureTopic(opts.topic);
    // The group's starting point is fixed now: the oldest message, or the current end.
    await db.query(
      `INSERT INTO eventlog.consumer_offsets (group_id, topic, partition, committed_offset)
       SELECT $1, $2, $3, CASE WHEN $4::boolean THEN 0 ELSE t.next_offset END FROM eventlog.topics t WHERE t.name = $2
       ON CONFLICT (group_id, topic, partition) DO NOTHING`,
      [opts.group, opts.topic, PARTITION, opts.fromBeginning ?? false],
    );
    const sub = new EmbeddedSubscription(this.opts, this.waker, opts, handler, () => this.subs.delete(sub));
    this.subs.add(sub);
    sub.start();
    return sub;
  }

  /**
   * The latest message of each key, read in pages of READ_PAGE in offset order (each row the
   * latest of its key when its page is read; tombstones delete), so that a large topic never
   * passes through the database and its thread as one result: a result of 100,000 subscribers
   * grew PGlite's memory (which it never gives back) and left ~150 MB of garbage on an idle
   * thread. What is published meanwhile shows in a later page: the map ends at least as new as
   * the last page.
   */
  async readCompacted(topic: string): Promise<Map<string, EventMessage>> {
    checkTopic(topic);
    const latest = new Map<string, EventMessage>();
    for (let after = '-1'; ;) {
      const r = await this.opts.db.query<EventRow>(
        `SELECT topic, partition, "offset", key, value, headers, ts FROM eventlog.events e
         WHERE topic = $1 AND partition = ${PARTITION} AND "offset" > $2 AND NOT EXISTS (
           SELECT 1 FROM eventlog.events n WHERE n.topic = e.topic AND n.key = e.key AND n."offset" > e."offset")
         ORDER BY "offset" LIMIT ${READ_PAGE}`,
        [topic, after],
        { name: 'eventlog-read-compacted' },
      );
      for (const row of r.rows) {
        latest.delete(row.key); // in offset order
        if (row.value !== null) latest.set(row.key, toMessage(row));
      }
      if (r.rows.length < READ_PAGE) return latest;
      after = r.rows[r.rows.length - 1].offset;
    }
  }

  /**
   * Deletes the messages superseded by a later one of a key published at `from` or after: the
   * earlier rows of the keys published since then, found by key. Returns how many.
   */
  async compactSince(topic: string, from: bigint): Promise<number> {
    const r = await this.opts.db.query(
      `DELETE FROM eventlog.events e
       USING (SELECT key, max("offset") AS last FROM eventlog.events
              WHERE topic = $1 AND partition = ${PARTITION} AND "offset" >= $2 GROUP BY key) n
       WHERE e.topic = $1 AND e.key = n.key AND e."offset" < n.last`,
      [topic, String(from)],
    );
    return r.rowCount;
  }

  /** Deletes the messages superseded by a later one with the same key (lazy compaction). Returns how many. */
  async compact(topic: string): Promise<number> {
    const r = await this.opts.db.query(
      `DELETE FROM eventlog.events e WHERE e.topic = $1 AND EXISTS (
         SELECT 1 FROM eventlog.events n WHERE n.topic = e.topic AND n.partition = e.partition AND n.key = e.key AND n."offset" > e."offset")`,
      [topic],
    );
    return r.rowCount;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retention);
    await Promise.all([...this.subs].map((s) => s.close()));
    await this.compacting;
    await this.expiring;
  }
}

/** A per-message handler, or a batch handler with its batch bounds. */
type Handler =
  | { each: (m: EventMessage) => Promise<void>; batch?: undefined }
  | {
      batch: BatchSubscribeOptions['handler'];
      maxBatch: number;
      maxWaitMs: number;
      each?: undefined;
    };

class EmbeddedSubscription implements Subscription {
  private readonly me = randomUUID();
  private readonly stop = new AbortController();
  private dirty = true;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> = Promise.resolve();
  private lastLag = -1;
  /** While this member holds the group's lease: the committed offset, and when the lease was last taken or renewed. */
  private held: { committed: bigint; renewedAt: number } | undefined;
  private readonly onWake = (topic: string) => {
    if (topic !== this.sub.topic) return;
    this.dirty = true;
    this.wakeUp?.();
  };

  constructor(
    private readonly opts: EmbeddedBusOptions,
    private readonly waker: EventEmitter,
    private readonly sub: GroupOptions,
    private readonly handler: Handler,
    private readonly onClosed: () => void,
  ) {}

  start(): void {
    this.tail = tailOf(this.db, this.sub.topic, true);
    this.waker.on('wake', this.onWake);
    this.loop = this.run();
  }

  private get db(): Db {
    return this.opts.db;
  }

  /** Waits for a publish on the topic, the poll interval or close, whichever first. */
  private async idle(ms: number): Promise<void> {
    if (this.dirty || this.stop.signal.aborted) return;
    // one timer and one abort listener, both gone when a publish wakes it (a race with sleep()
    // left them pending until the interval ran out: one more per wake-up on a busy topic)
    const signal = this.stop.signal;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.wakeUp = done;
    });
  }

  /**
   * The committed offset when this member holds the group's lease, else null. The lease is taken
   * or renewed by a statement only once a third of it has passed since the last renewal (as the
   * outbox relay does): a busy subscriber's rounds are a fetch and a commit, not four statements.
   */
  private async claim(): Promise<bigint | null> {
    const leaseMs = this.opts.leaseMs ?? 10_000;
    const now = performance.now();
    if (this.held && now - this.held.renewedAt < leaseMs / 3) return this.held.committed;
    this.held = undefined;
    const committed = await this.takeLease(leaseMs);
    if (committed === null) return null;
    // without commits the stored offset is where the group began; this member's place is its own
    this.held = { committed: this.position ?? committed, renewedAt: now };
    return this.held.committed;
  }

  /** commitOffsets: false: the next offset to handle, kept here instead of stored. */
  private position: bigint | undefined;

  /** Takes or renews the group's lease; the committed offset when this member holds it, else null. */
  private async takeLease(leaseMs: number): Promise<bigint | null> {
    const r = await this.db.query<{ committed_offset: string }>(
      `UPDATE eventlog.consumer_offsets
       SET owner = $4, lease_until = now() + $5::integer * interval '1 millisecond'
       WHERE group_id = $1 AND topic = $2 AND partition = $3
         AND (owner IS NULL OR owner = $4 OR lease_until < now())
       RETURNING committed_offset`,
      [this.sub.group, this.sub.topic, PARTITION, this.me, leaseMs],
    );
    return r.rowCount === 0 ? null : BigInt(r.rows[0].committed_offset);
  }

  /**
   * Commits `stored` (default `next`) while this member owns the group, and goes on from `next`;
   * false when the lease was lost. Reads the topic's end too (for the lag).
   */
  private async commit(next: bigint, stored = next): Promise<boolean> {
    if (this.sub.commitOffsets === false) {
      this.position = next;
      if (this.held) this.held.committed = next;
      this.endAtCommit = this.tail?.end();
      return true;
    }
    const r = await this.db.query<{ end_offset: string | null }>(
      `UPDATE eventlog.consumer_offsets SET committed_offset = $4
       WHERE group_id = $1 AND topic = $2 AND partition = $3 AND owner = $5
       RETURNING (SELECT next_offset FROM eventlog.topics WHERE name = $2) AS end_offset`,
      [this.sub.group, this.sub.topic, PARTITION, String(stored), this.me],
    );
    if (r.rowCount !== 1) {
      this.held = undefined; // the next round's claim says who holds the group now
      return false;
    }
    if (this.held) this.held.committed = next;
    this.endAtCommit = r.rows[0].end_offset === null ? undefined : BigInt(r.rows[0].end_offset);
    return true;
  }

  /** The topic's end as the last commit of this round read it; undefined when the round committed nothing. */
  private endAtCommit: bigint | undefined;

  /** The topic's tail in this process (PGlite), which spares the read of what was just published. */
  private tail: TopicTail | undefined;

  private async fetch(from: bigint, limit: number): Promise<EventMessage[]> {
    const fromTail = this.tail?.read(from, limit);
    if (fromTail) return fromTail;
    const r = await this.db.query<EventRow>(
      `SELECT topic, partition, "offset", key, value, headers, ts FROM eventlog.events
       WHERE topic = $1 AND partition = $2 AND "offset" >= $3 ORDER BY "offset" LIMIT $4`,
      [this.sub.topic, PARTITION, String(from), limit],
    );
    return r.rows.map(toMessage);
  }

  private async reportLag(committed: bigint): Promise<void> {
    if (!this.opts.onLag) return;
    let end = this.endAtCommit;
    if (end === undefined) {
      const r = await this.db.query<{ next_offset: string }>(
        `SELECT next_offset FROM eventlog.topics WHERE name = $1`,
        [this.sub.topic],
      );
      end = BigInt(r.rows[0]?.next_offset ?? '0');
    }
    const lag = Number(end - committed);
    if (lag === this.lastLag) return;
    this.lastLag = lag;
    this.opts.onLag({ group: this.sub.group, topic: this.sub.topic, partition: PARTITION, lag });
  }

  private async run(): Promise<void> {
    // PGlite has one process: publishes wake subscribers in-process, polling is only a fallback.
    const pollMs = this.opts.pollMs ?? (this.db.kind === 'pglite' ? 2_000 : 500);
    let failures = 0;
    while (!this.stop.signal.aborted) {
      try {
        this.dirty = false;
        this.endAtCommit = undefined;
        let committed = await this.claim();
        if (committed === null) {
          await this.idle(pollMs); // another member holds the group
          continue;
        }
        const batchSize = this.handler.batch ? this.handler.maxBatch : (this.opts.batchSize ?? 100);
        let rows = await this.fetch(committed, batchSize);
        if (this.handler.batch && rows.length < batchSize && this.handler.maxWaitMs > 0 && rows.length > 0) {
          // a short batch waits once for more, then goes with what there is
          await sleep(this.handler.maxWaitMs, this.stop.signal);
          rows = await this.fetch(committed, batchSize);
        }
        let failed = false;
        if (this.handler.batch) {
          if (rows.length > 0 && !this.stop.signal.aborted) {
            try {
              const upTo = await this.handler.batch(rows);
              committed = BigInt(rows[rows.length - 1].offset) + 1n;
              // false: lease lost; the next claim says so
              await this.commit(committed, storedOffset(upTo, committed));
            } catch (err) {
              this.opts.logger?.warn(
                {
                  err,
                  topic: this.sub.topic,
                  group: this.sub.group,
                  offset: rows[0].offset,
                  count: rows.length,
                },
                'event batch handler failed; will redeliver',
              );
              failed = true;
            }
          }
        } else {
          for (const m of rows) {
            if (this.stop.signal.aborted) break;
            try {
              await this.handler.each(m);
            } catch (err) {
              // Not committed: the next round fetches this message again.
              this.opts.logger?.warn(
                { err, topic: m.topic, group: this.sub.group, offset: m.offset },
                'event handler failed; will redeliver',
              );
              failed = true;
              break;
            }
            committed = BigInt(m.offset) + 1n;
            if (!(await this.commit(committed))) break; // lease lost to another member
          }
        }
        await this.reportLag(committed);
        if (failed) {
          await sleep(
            retryDelay(failures++, this.opts.retryInitialMs ?? 100, this.opts.retryMaxMs ?? 5_000),
            this.stop.signal,
          );
          continue;
        }
        failures = 0;
        if (rows.length < batchSize) await this.idle(pollMs);
        else this.dirty = true;
      } catch (err) {
        this.held = undefined; // claim again: the failed statement may have been a commit
        if (this.stop.signal.aborted) break;
        this.opts.logger?.error(
          { err, topic: this.sub.topic, group: this.sub.group },
          'event log consumer error; retrying',
        );
        await sleep(
          retryDelay(failures++, this.opts.retryInitialMs ?? 100, this.opts.retryMaxMs ?? 5_000),
          this.stop.signal,
        );
      }
    }
  }

  async close(): Promise<void> {
    if (this.stop.signal.aborted) return this.loop;
    this.stop.abort();
    this.wakeUp?.();
    this.waker.off('wake', this.onWake);
    await this.loop;
    this.onClosed();
    await this.db
      .query(
        `UPDATE eventlog.consumer_offsets SET owner = NULL, lease_until = NULL
         WHERE group_id = $1 AND topic = $2 AND partition = $3 AND owner = $4`,
        [this.sub.group, this.sub.topic, PARTITION, this.me],
      )
      .catch((err: unknown) => this.opts.logger?.warn({ err }, 'could not release event log lease'));
    // A standby member of the group may take over now.
    this.waker.emit('wake', this.sub.topic);
  }
}
