import type { Db } from './types';
import { openPglite } from './pglite';
import { openPgPool } from './pg';

export interface OpenDbOptions {
  /** PostgreSQL URL: when given, a node-postgres Pool is used. */
  databaseUrl?: string;
  /** PGlite data directory (default ./data/pglite). */
  dataDir?: string;
  /** PGlite in memory (tests); ignored when databaseUrl is given. */
  memory?: boolean;
  /** PGlite on a thread of its own (default true); ignored when databaseUrl is given. */
  thread?: boolean;
  /** PGlite's shared_buffers in MB (default 32); ignored when databaseUrl is given. */
  sharedBuffersMb?: number;
  /** Pool size for PostgreSQL. */
  poolSize?: number;
}

export const DEFAULT_PGLITE_DIR = './data/pglite';

/** PostgreSQL when a URL is given, else embedded PGlite (on disk, or in memory). */
export function openDb(opts: OpenDbOptions = {}): Promise<Db> {
  if (opts.databaseUrl) return openPgPool({ databaseUrl: opts.databaseUrl, max: opts.poolSize });
  return openPglite({
    dataDir: opts.memory ? undefined : (opts.dataDir ?? DEFAULT_PGLITE_DIR),
    thread: opts.thread,
    sharedBuffersMb: opts.sharedBuffersMb,
  });
}
