/**
 * PGlite on a thread of its own: the calling thread's Db sends each statement to it
 * and gets the rows back, so the embedded database's WebAssembly, its protocol parsing
 * and the garbage they make leave the event loop that answers SIP and RADIUS.
 *
 * Calling thread -> database thread: { id, op, tx?, sql?, params? }, op one of query,
 * exec, begin, commit, rollback, close; a statement of a transaction names it (tx).
 * Database thread -> calling thread: { id, rows?, rowCount?, bytea? } or { id, error }.
 * A transaction holds PGlite's mutex on the database thread from begin to commit or
 * rollback, as PGlite's own transaction() does on one thread: statements from outside it
 * wait, so a transaction never interleaves with another caller's statements.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { startModuleWorker } from '../worker';
import { textParams } from './jsonb-array';
import type { Db, DbTx, QueryResult } from './types';
import { openPgliteHere, type PgliteOptions } from './pglite';

type Op = 'query' | 'exec' | 'begin' | 'commit' | 'rollback' | 'close';
interface Request {
  id: number;
  op: Op;
  /** The transaction a statement, commit or rollback belongs to. */
  tx?: number;
  sql?: string;
  params?: unknown[];
}
interface Reply {
  id: number;
  rows?: Record<string, unknown>[];
  rowCount?: number;
  /** Columns holding bytea, sent as exact Uint8Arrays: Buffers again on the calling thread. */
  bytea?: string[];
  /** A PostgreSQL error's message, name and fields (code, detail, constraint, ...). */
  error?: Record<string, unknown>;
}

interface ThreadData {
  /** initOnly: create the data directory (initdb), close it and end the thread. */
  switchboardPglite: Omit<PgliteOptions, 'thread'> & { initOnly?: boolean };
}

/**
 * Creates a new data directory on a thread that then ends. initdb grows PGlite's
 * WebAssembly memory by some 400 MB that a WebAssembly instance never gives back; the
 * thread that serves the database afterwards opens the directory as on any restart.
 */
async function initInThread(dataDir: string): Promise<void> {
  const worker = startModuleWorker(import.meta.url, {
    switchboardPglite: { dataDir, initOnly: true },
  } satisfies ThreadData);
  let failure: Error | undefined;
  worker.once('error', (err) => (failure = err));
  const [code] = (await once(worker, 'exit')) as [number];
  const why = failure?.message ?? (code !== 0 ? `exit code ${code}` : undefined);
  if (why) throw new Error(`embedded database: creating ${dataDir} failed (${why})`, { cause: failure });
}

/** PGlite on its own thread, as a Db on this one. */
export async function openPgliteThread(opts: Omit<PgliteOptions, 'thread'> = {}): Promise<Db> {
  const { dataDir, sharedBuffersMb } = opts;
  if (dataDir && !existsSync(join(dataDir, 'PG_VERSION'))) await initInThread(dataDir);
  const worker = startModuleWorker(import.meta.url, {
    switchboardPglite: { dataDir, sharedBuffersMb },
  } satisfies ThreadData);
  const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let seq = 0;
  let ended: Error | undefined;
  const end = (err: Error) => {
    ended ??= err;
    for (const w of waiting.values()) w.reject(ended);
    waiting.clear();
  };
  worker.on('message', (r: Reply) => {
    const w = waiting.get(r.id);
    if (!w) return;
    waiting.delete(r.id);
    // Nothing to wait for: the thread does not keep the process alive.
    if (waiting.size === 0) worker.unref();
    if (r.error) w.reject(toError(r.error));
    else w.resolve(r);
  });
  worker.on('error', (err) =>
    end(new Error(`embedded database thread failed: ${err.message}`, { cause: err })),
  );
  worker.on('exit', (code) => end(new Error(`embedded database thread exited (code ${code})`)));

  const call = (req: Omit<Request, 'id'>): Promise<Reply> => {
    if (ended) return Promise.reject(ended);
    const id = ++seq;
    return new Promise<Reply>((resolve, reject) => {
      if (waiting.size === 0) worker.ref();
      waiting.set(id, { resolve, reject });
      worker.postMessage({ ...req, id, params: textParams(req.params)?.map(exactBytes) } satisfies Request);
    });
  };
  const run = async <T>(req: Omit<Request, 'id'>): Promise<QueryResult<T>> => {
    const r = await call(req);
    const rows = r.rows ?? [];
    if (r.bytea)
      for (const row of rows)
        for (const c of r.bytea) {
          const v = row[c];
          if (v instanceof Uint8Array) row[c] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
        }
    return { rows: rows as T[], rowCount: r.rowCount ?? 0 };
  };

  await call({ op: 'query', sql: 'SELECT 1' }); // started, the database open
  let txs = 0;
  return {
    kind: 'pglite',
    query: <T>(sql: string, params?: unknown[]) => run<T>({ op: 'query', sql, params }),
    async exec(sql: string) {
      await call({ op: 'exec', sql });
    },
    async transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
      const tx = ++txs;
      await call({ op: 'begin', tx });
      const t: DbTx = {
        query: <R>(sql: string, params?: unknown[]) => run<R>({ op: 'query', tx, sql, params }),
        exec: async (sql: string) => {
          await call({ op: 'exec', tx, sql });
        },
      };
      let out: T;
      try {
        out = await fn(t);
      } catch (e) {
        await call({ op: 'rollback', tx }).catch(() => undefined);
        throw e;
      }
      await call({ op: 'commit', tx });
      return out;
    },
    async close() {
      if (ended) return;
      await call({ op: 'close' }).catch(() => undefined);
      end(new Error('embedded database closed'));
      await worker.terminate();
    },
  };
}

/** A Buffer sharing Node's pool would copy the whole pool across: only its own bytes go. */
const exactBytes = (v: unknown): unknown =>
  v instanceof Uint8Array && v.byteLength !== v.buffer.byteLength ? new Uint8Array(v) : v;

function toError(e: Record<string, unknown>): Error {
  const err = new Error(String(e.message));
  return Object.assign(err, e);
}

/** An error's message, name and own fields, as structured clone carries them. */
function errorFields(e: unknown): Record<string, unknown> {
  if (!(e instanceof Error)) return { message: String(e) };
  const out: Record<string, unknown> = { message: e.message, name: e.name };
  for (const [k, v] of Object.entries(e)) if (v === null || typeof v !== 'object') out[k] = v;
  return out;
}

type PgliteRows = { rows: Record<string, unknown>[]; rowCount: number };
type Channel = { push(r: Request): void; next(): Promise<Request> };

function channel(): Channel {
  const queue: Request[] = [];
  let wake: ((r: Request) => void) | undefined;
  return {
    push(r) {
      if (wake) {
        const w = wake;
        wake = undefined;
        w(r);
      } else queue.push(r);
    },
    next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => (wake = r))),
  };
}

/** The database thread: PGlite, and the requests of the thread that started it. */
async function runThread(data: ThreadData['switchboardPglite']): Promise<void> {
  const port = parentPort!;
  const db = await openPgliteHere(data);
  if (data.initOnly) return db.close();
  const reply = (r: Reply) => {
    const transfer: ArrayBuffer[] = [];
    const bytea = new Set<string>();
    for (const row of r.rows ?? [])
      for (const c in row) {
        const v = row[c];
        if (!(v instanceof Uint8Array)) continue;
        const own = new Uint8Array(v); // its own ArrayBuffer, moved rather than copied
        row[c] = own;
        transfer.push(own.buffer);
        bytea.add(c);
      }
    if (bytea.size) r.bytea = [...bytea];
    port.postMessage(r, transfer);
  };
  const fail = (id: number, e: unknown) => port.postMessage({ id, error: errorFields(e) } satisfies Reply);
  const statement = async (q: Pick<Db, 'query' | 'exec'>, r: Request) => {
    try {
      if (r.op === 'exec') {
        await q.exec(r.sql!);
        reply({ id: r.id });
      } else {
        const res = (await q.query(r.sql!, r.params)) as PgliteRows;
        reply({ id: r.id, rows: res.rows, rowCount: res.rowCount });
      }
    } catch (e) {
      fail(r.id, e);
    }
  };
  const open = new Map<number, Channel>();
  const ROLLBACK = Symbol('rollback');
  const begin = (r: Request) => {
    const ch = channel();
    open.set(r.tx!, ch);
    let ending: Request | undefined;
    let begun = false;
    db.transaction(async (t) => {
      begun = true;
      reply({ id: r.id });
      for (;;) {
        const m = await ch.next();
        if (m.op === 'commit') return void (ending = m);
        if (m.op === 'rollback') {
          ending = m;
          throw ROLLBACK;
        }
        await statement(t, m);
      }
    })
      .then(
        () => reply({ id: ending!.id }),
        (e: unknown) => {
          if (e === ROLLBACK) reply({ id: ending!.id });
          else fail(begun ? ending!.id : r.id, e);
        },
      )
      .finally(() => open.delete(r.tx!));
  };
  port.on('message', (r: Request) => {
    if (r.tx !== undefined && r.op !== 'begin') {
      const ch = open.get(r.tx);
      // a statement for a transaction that ended (or never began) is answered, not left waiting
      return ch ? ch.push(r) : fail(r.id, new Error(`embedded database: transaction ${r.tx} is not open`));
    }
    if (r.op === 'begin') return begin(r);
    if (r.op === 'close')
      return void db.close().then(
        () => reply({ id: r.id }),
        (e: unknown) => fail(r.id, e),
      );
    void statement(db, r);
  });
}

const data = (workerData as Partial<ThreadData> | undefined)?.switchboardPglite;
if (parentPort && data) {
  runThread(data).catch((err: unknown) => {
    // The first request (the start-up SELECT 1) gets nothing: the thread's exit rejects it.
    console.error(err);
    process.exit(1);
  });
}
