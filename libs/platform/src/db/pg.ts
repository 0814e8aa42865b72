import pg from 'pg';
import { pgParams } from './jsonb-array';
import type { Db, DbTx, QueryOptions, QueryResult } from './types';

export interface PgOptions {
  /** postgres://user@host:port/db */
  databaseUrl: string;
  /** Pool size (default 10). */
  max?: number;
  /** Called when an idle pooled connection fails (the pool drops it). */
  onError?: (err: Error) => void;
}

const toResult = <T>(r: pg.QueryResult): QueryResult<T> => ({
  rows: r.rows as T[],
  rowCount: r.rowCount ?? 0,
});

/** PostgreSQL through a node-postgres Pool. */
export async function openPgPool(opts: PgOptions): Promise<Db> {
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.max ?? 10 });
  pool.on('error', (err) => opts.onError?.(err));
  // Fail fast on a wrong URL rather than at the first query.
  const probe = await pool.connect();
  probe.release();
  let closed = false;
  return {
    kind: 'pg',
    async query<T>(sql: string, params?: unknown[], opts?: QueryOptions) {
      const values = pgParams(params);
      if (opts?.name) return toResult<T>(await pool.query({ name: opts.name, text: sql, values }));
      return toResult<T>(await pool.query(sql, values));
    },
    async exec(sql: string) {
      await pool.query(sql); // no parameters: simple protocol, several statements allowed
    },
    async transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      // A connection whose ROLLBACK failed is in an unknown state: destroy it, don't pool it.
      let broken: Error | undefined;
      const tx: DbTx = {
        query: async <R>(sql: string, params?: unknown[], opts?: QueryOptions) =>
          toResult<R>(
            await (opts?.name
              ? client.query({ name: opts.name, text: sql, values: pgParams(params) })
              : client.query(sql, pgParams(params))),
          ),
        exec: async (sql: string) => {
          await client.query(sql);
        },
      };
      try {
        await client.query('BEGIN');
        let out: T;
        try {
          out = await fn(tx);
        } catch (e) {
          await client.query('ROLLBACK').catch((re: Error) => (broken = re));
          throw e;
        }
        await client.query('COMMIT');
        return out;
      } finally {
        client.release(broken);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
