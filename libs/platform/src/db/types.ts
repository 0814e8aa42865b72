/** The storage seam: one small interface over node-postgres (a Pool) and PGlite (embedded). */

export interface QueryResult<T> {
  rows: T[];
  /** Rows returned (SELECT) or affected (INSERT/UPDATE/DELETE); 0 for other commands. */
  rowCount: number;
}

export interface QueryOptions {
  /**
   * Prepare the statement once per connection under this name and reuse the plan
   * (node-postgres named statements; PGlite ignores it). One name, one sql text.
   */
  name?: string;
}

export interface Queryable {
  /** One statement, parameters as $1, $2, ... */
  query<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    opts?: QueryOptions,
  ): Promise<QueryResult<T>>;
  /** A script of several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** A statement runner bound to one open transaction. */
export type DbTx = Queryable;

export interface Db extends Queryable {
  readonly kind: 'pg' | 'pglite';
  /**
   * Runs fn in BEGIN ... COMMIT; ROLLBACK when fn throws (the error is rethrown).
   * On PGlite transactions are serialized (one connection): do not call `db` (only `tx`)
   * inside fn, it would wait for the transaction that is waiting for it.
   */
  transaction<T>(fn: (tx: DbTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The SQLSTATE of a PostgreSQL error from either adapter (e.g. '23505' unique_violation), or undefined. */
export function pgErrorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Column types both adapters return the same way: int8 and numeric as string, bytea as Buffer, timestamptz as Date, json(b) parsed. */
export const PG_TYPE = { INT8: 20, BYTEA: 17, NUMERIC: 1700 } as const;
