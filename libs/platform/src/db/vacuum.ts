/**
 * Autovacuum for embedded PGlite. PGlite runs PostgreSQL in single-user mode, which has
 * no autovacuum: without this, the space of deleted and updated rows is never reused (an
 * outbox table, its rows inserted and deleted, grows by every row it ever held), the
 * planner never gets statistics, and after about two billion transactions the database
 * stops taking writes (transaction ID wraparound).
 *
 * Each round decides as autovacuum does with its default settings: VACUUM a table whose
 * dead rows exceed 50 + 20% of its live rows, ANALYZE one with more than 50 + 10% of its
 * live rows changed since its last analyze, and VACUUM the whole database (which freezes
 * old rows) once its oldest unfrozen transaction ID is over 150 million transactions old.
 */
import type { Logger } from 'pino';
import type { Db, Queryable } from './types';

export interface TableStats {
  schema: string;
  table: string;
  live: number;
  dead: number;
  /** Rows inserted, updated or deleted since the last ANALYZE. */
  modified: number;
}

/** autovacuum_freeze_max_age is 200 million; start well before it. */
export const FREEZE_AGE = 150_000_000;

/** Every table of the database, catalogs included (freezes their old rows too). */
const WHOLE_DATABASE = 'VACUUM (ANALYZE)';

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** The statements one round runs, by autovacuum's default thresholds. */
export function vacuumPlan(tables: TableStats[], databaseXidAge: number): string[] {
  if (databaseXidAge > FREEZE_AGE) return [WHOLE_DATABASE];
  const plan: string[] = [];
  for (const t of tables) {
    const name = `${ident(t.schema)}.${ident(t.table)}`;
    const vacuum = t.dead > 50 + 0.2 * t.live;
    const analyze = t.modified > 50 + 0.1 * t.live;
    if (vacuum) plan.push(analyze ? `VACUUM (ANALYZE) ${name}` : `VACUUM ${name}`);
    else if (analyze) plan.push(`ANALYZE ${name}`);
  }
  return plan;
}

/**
 * One round: reads the statistics, runs what vacuumPlan says (or, with `whole`, VACUUM (ANALYZE)
 * of the whole database); returns the statements run.
 */
export async function vacuumOnce(db: Queryable, logger?: Logger, whole = false): Promise<string[]> {
  const plan = whole ? [WHOLE_DATABASE] : await planFromStatistics(db);
  const started = performance.now();
  for (const sql of plan) await db.exec(sql);
  const ms = Math.round(performance.now() - started);
  // A long round held the embedded database (one connection) that long.
  if (plan.length > 0)
    logger?.[ms >= 1000 ? 'info' : 'debug']({ statements: plan, ms }, 'embedded database vacuumed');
  return plan;
}

async function planFromStatistics(db: Queryable): Promise<string[]> {
  // A backend publishes its counts at most once a second, and idle never in single-user mode:
  // this statement's end publishes them.
  await db.query('SELECT pg_stat_force_next_flush()');
  const tables = await db.query<TableStats>(
    `SELECT schemaname AS schema, relname AS "table", n_live_tup::float8 AS live, n_dead_tup::float8 AS dead,
            n_mod_since_analyze::float8 AS modified
     FROM pg_stat_user_tables`,
  );
  const age = await db.query<{ age: number }>(
    'SELECT age(datfrozenxid)::float8 AS age FROM pg_database WHERE datname = current_database()',
  );
  return vacuumPlan(tables.rows, age.rows[0]?.age ?? 0);
}

/**
 * Runs vacuumOnce every intervalMs (the timer does not keep the process alive); stop() waits for a
 * round in flight. The first round vacuums and analyzes the whole database: PGlite's statistics
 * counters do not survive a restart, so what an earlier run left would not reach the thresholds.
 */
export function startEmbeddedVacuum(
  db: Db,
  opts: { intervalMs: number; logger?: Logger },
): { stop(): Promise<void> } {
  let round: Promise<void> | undefined;
  let first = true;
  const timer = setInterval(() => {
    if (round) return;
    round = vacuumOnce(db, opts.logger, first)
      .then(() => undefined)
      .catch((err: unknown) => opts.logger?.warn({ err }, 'embedded database: vacuum failed'))
      .finally(() => (round = undefined));
    first = false;
  }, opts.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await round;
    },
  };
}
