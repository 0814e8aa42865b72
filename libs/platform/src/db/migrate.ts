import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DomainError, invalidArgument } from '../errors';
import type { Db } from './types';

export interface MigrateOptions {
  /** The service's schema, e.g. 'registrar'; created when missing. */
  schema: string;
  /** Folder of NNN_name.sql files, applied in numeric order. */
  dir: string;
}

export interface Migration {
  version: number;
  name: string;
  file: string;
}

const FILE = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;
const SCHEMA = /^[a-z_][a-z0-9_]{0,62}$/;

/** The NNN_name.sql files of a folder, in version order; other files are ignored. */
export function listMigrations(dir: string): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir)) {
    const m = FILE.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2], file });
  }
  out.sort((a, b) => a.version - b.version);
  for (let i = 1; i < out.length; i++) {
    if (out[i].version === out[i - 1].version) {
      throw invalidArgument(
        'dir',
        `migrations ${out[i - 1].file} and ${out[i].file} share version ${out[i].version}`,
      );
    }
  }
  return out;
}

/**
 * Applies the pending migrations of one schema, each in its own transaction with
 * `SET LOCAL search_path` to the schema, recorded in `<schema>.schema_migrations`.
 * Every transaction first takes a transaction-scoped advisory lock on the schema, so two
 * processes starting at once apply each file once. Returns the migrations applied now.
 */
export async function migrate(db: Db, opts: MigrateOptions): Promise<Migration[]> {
  if (!SCHEMA.test(opts.schema))
    throw invalidArgument('schema', `bad schema name ${JSON.stringify(opts.schema)}`);
  const q = `"${opts.schema}"`;
  const lockKey = `switchboard.migrate.${opts.schema}`;
  const files = listMigrations(opts.dir);
  const lock = 'SELECT pg_advisory_xact_lock(hashtext($1))';

  const applied = await db.transaction(async (tx) => {
    await tx.query(lock, [lockKey]);
    await tx.exec(
      `CREATE SCHEMA IF NOT EXISTS ${q};
       CREATE TABLE IF NOT EXISTS ${q}.schema_migrations (
         version integer PRIMARY KEY,
         name text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
       );`,
    );
    const r = await tx.query<{ version: number }>(`SELECT version FROM ${q}.schema_migrations`);
    return new Set(r.rows.map((x) => Number(x.version)));
  });

  const done: Migration[] = [];
  for (const m of files) {
    if (applied.has(m.version)) continue;
    const sql = readFileSync(join(opts.dir, m.file), 'utf8');
    const ran = await db
      .transaction(async (tx) => {
        await tx.query(lock, [lockKey]);
        // Another process may have applied it while we waited for the lock.
        const seen = await tx.query(`SELECT 1 FROM ${q}.schema_migrations WHERE version = $1`, [m.version]);
        if (seen.rowCount > 0) return false;
        await tx.exec(`SET LOCAL search_path TO ${q}`);
        await tx.exec(sql);
        await tx.query(`INSERT INTO ${q}.schema_migrations (version, name) VALUES ($1, $2)`, [
          m.version,
          m.name,
        ]);
        return true;
      })
      .catch((e: unknown) => {
        const msg = e instanceof Error ? e.message : String(e);
        throw new DomainError('internal', `migration ${opts.schema}/${m.file} failed: ${msg}`, undefined, {
          cause: e,
        });
      });
    if (ran) done.push(m);
  }
  return done;
}
