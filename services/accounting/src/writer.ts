/**
 * Group commit: requests that arrive while a write is in flight are stored
 * together by the next one, in one statement that inserts the records and
 * their outbox rows (atomic: a record is never stored without its outbox row).
 * A caller's promise resolves only after the commit, so the Accounting-Response
 * follows durability (RFC 2866 §2).
 *
 * Duplicates (the same record id: RFC 5080 §2.2.2's source address and port,
 * Identifier and Request Authenticator, or the sender's Switchboard-Record-Id)
 * resolve as 'duplicate': the one still being written is joined in memory, a
 * stored one is found by the primary key.
 */
import type { Queryable } from '@switchboard/platform';
import { recordKey, type AccountingRecord } from './record';

export interface NewRecord {
  record: AccountingRecord;
  srcAddr: string;
  srcPort: number;
  identifier: number;
  /** Request Authenticator, hex. */
  authenticator: string;
}

export type Outcome = 'stored' | 'duplicate';

export class OverloadError extends Error {
  constructor(queued: number) {
    super(`accounting write queue full (${queued} waiting)`);
    this.name = 'OverloadError';
  }
}

export interface WriterOptions {
  /** Most records per statement. */
  maxBatch: number;
  /** Statements in flight at once (1 on PGlite, which has one connection). */
  concurrency: number;
  /** Most records waiting; more are refused with OverloadError (the client retransmits). */
  maxQueued: number;
  /** After each commit: how many records, and how long it took (seconds). */
  onCommit?: (records: number, stored: number, seconds: number) => void;
  /** After each commit that stored something: wake the outbox relay. */
  onStored?: () => void;
}

interface Waiting {
  rec: NewRecord;
  key: string;
  resolve(o: Outcome): void;
  reject(e: unknown): void;
}

/** The record id already encodes what makes two requests the same record (see recordId). */
const dedupeKey = (r: NewRecord) => r.record.id;

/**
 * One round trip per batch, the batch as one JSON array parameter: insert the
 * records (skipping stored duplicates) and, in the same statement, an outbox row
 * for each record inserted, in arrival order. One row comes back: the count
 * stored and the ids that were already stored.
 */
const INSERT = `
WITH input AS (
  SELECT * FROM json_to_recordset($1::json) AS t(
    n int, id uuid, "receivedAt" timestamptz, client text, "srcAddr" text, "srcPort" int, identifier int,
    authenticator text, "statusType" text, "sessionId" text, key text, body json)
), ins AS (
  INSERT INTO accounting.records (id, received_at, client, src_addr, src_port, identifier, authenticator, status_type, session_id, body)
  SELECT id, "receivedAt", client, "srcAddr", "srcPort", identifier, authenticator, "statusType", "sessionId", body
  FROM input ORDER BY n
  ON CONFLICT (id) DO NOTHING
  RETURNING id
), outbox AS (
  INSERT INTO accounting.outbox (record_id, key)
  SELECT ins.id, input.key FROM input JOIN ins ON ins.id = input.id ORDER BY input.n
  RETURNING 1
)
SELECT (SELECT count(*) FROM outbox) AS stored,
       (SELECT coalesce(array_agg(input.id::text), '{}') FROM input LEFT JOIN ins ON ins.id = input.id WHERE ins.id IS NULL) AS duplicates`;

export class RecordWriter {
  private readonly queue: Waiting[] = [];
  private readonly inFlight = new Map<string, Promise<Outcome>>();
  private active = 0;
  private scheduled = false;
  private idle: Array<() => void> = [];

  constructor(
    private readonly db: Queryable,
    private readonly opts: WriterOptions,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Resolves once the record is durable ('stored') or found already stored or being stored ('duplicate'). */
  submit(rec: NewRecord): Promise<Outcome> {
    const key = dedupeKey(rec);
    const pending = this.inFlight.get(key);
    if (pending) return pending.then(() => 'duplicate' as const);
    if (this.queue.length >= this.opts.maxQueued) return Promise.reject(new OverloadError(this.queue.length));
    const p = new Promise<Outcome>((resolve, reject) => this.queue.push({ rec, key, resolve, reject }));
    this.inFlight.set(key, p);
    const forget = () => this.inFlight.delete(key);
    p.then(forget, forget);
    // Start writing after the datagrams already read in this poll phase have been queued too.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.pump();
      });
    }
    return p;
  }

  private pump(): void {
    while (this.active < this.opts.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.active++;
      void this.write(batch).finally(() => {
        this.active--;
        if (this.queue.length > 0) this.pump();
        else if (this.active === 0) for (const f of this.idle.splice(0)) f();
      });
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    const started = process.hrtime.bigint();
    const rows = batch.map(({ rec }, n) => ({
      n,
      id: rec.record.id,
      receivedAt: rec.record.receivedAt,
      client: rec.record.client,
      srcAddr: rec.srcAddr,
      srcPort: rec.srcPort,
      identifier: rec.identifier,
      authenticator: rec.authenticator,
      statusType: rec.record.statusType,
      sessionId: rec.record.sessionId,
      key: recordKey(rec.record),
      body: rec.record,
    }));
    try {
      // One row back: how many were stored, and the ids already stored (duplicates; usually none).
      const res = await this.db.query<{ stored: string; duplicates: string[] }>(INSERT, [
        JSON.stringify(rows),
      ]);
      const duplicates = new Set(res.rows[0].duplicates);
      const stored = { size: Number(res.rows[0].stored) };
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.opts.onCommit?.(batch.length, stored.size, seconds);
      if (stored.size > 0) this.opts.onStored?.();
      for (const w of batch) w.resolve(duplicates.has(w.rec.record.id) ? 'duplicate' : 'stored');
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }

  /** Resolves when nothing is queued or being written. */
  flush(): Promise<void> {
    if (this.active === 0 && this.queue.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }
}
