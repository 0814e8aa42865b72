import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { textParams } from './jsonb-array';
import type { Db, DbTx, QueryResult } from './types';
import { PG_TYPE } from './types';
import { openPgliteThread } from './pglite-thread';

export interface PgliteOptions {
  /** Directory of the database files; omitted = in memory. */
  dataDir?: string;
  /**
   * Run PGlite on a thread of its own (default true): its WebAssembly and result parsing
   * leave the calling thread's event loop. false runs it on the calling thread.
   */
  thread?: boolean;
  /**
   * shared_buffers in MB (default 32). PGlite's buffers live in its WebAssembly memory and
   * are resident from the start: PostgreSQL's default of 128 costs ~100 MB more. Pages
   * beyond them are read from the data directory's files (the OS page cache).
   */
  sharedBuffersMb?: number;
}

const DEFAULT_SHARED_BUFFERS_MB = 32;

/** PGlite's own start parameters, with shared_buffers set. */
const startParams = (sharedBuffersMb = DEFAULT_SHARED_BUFFERS_MB): string[] => [
  ...PGlite.defaultStartParams,
  '-c',
  `shared_buffers=${sharedBuffersMb}MB`,
];

type PgliteResult = { rows: unknown[]; rowCount?: number; affectedRows?: number };

const toResult = <T>(r: PgliteResult): QueryResult<T> => ({
  rows: r.rows as T[],
  rowCount: r.rowCount ?? r.affectedRows ?? 0,
});

/** Same column parsing as node-postgres, so the two adapters return the same rows. */
const PARSERS = {
  [PG_TYPE.INT8]: (x: string) => x,
  [PG_TYPE.NUMERIC]: (x: string) => x,
  [PG_TYPE.BYTEA]: (x: string) => Buffer.from(x.startsWith('\\x') ? x.slice(2) : x, 'hex'),
};

/**
 * Embedded PostgreSQL (WASM). It has one connection: PGlite runs queries and transactions
 * through one mutex, so a transaction's statements never interleave with another caller's.
 */
export function openPglite(opts: PgliteOptions = {}): Promise<Db> {
  return opts.thread === false ? openPgliteHere(opts) : openPgliteThread(opts);
}

/** PGlite on the calling thread (also what the database thread itself runs). */
export async function openPgliteHere(opts: Omit<PgliteOptions, 'thread'> = {}): Promise<Db> {
  const { dataDir } = opts;
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const pg = await PGlite.create({
    dataDir,
    parsers: PARSERS,
    startParams: startParams(opts.sharedBuffersMb),
  });
  return {
    kind: 'pglite',
    async query<T>(sql: string, params?: unknown[]) {
      return toResult<T>(await pg.query(sql, textParams(params)));
    },
    async exec(sql: string) {
      await pg.exec(sql);
    },
    transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
      return pg.transaction(async (t) => {
        const tx: DbTx = {
          query: async <R>(sql: string, params?: unknown[]) =>
            toResult<R>(await t.query(sql, textParams(params))),
          exec: async (sql: string) => {
            await t.exec(sql);
          },
        };
        return fn(tx);
      });
    },
    async close() {
      if (!pg.closed) await pg.close();
    },
  };
}
