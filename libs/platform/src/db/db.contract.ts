/**
 * The contract every Db adapter keeps, as one suite taking a factory. Each test works in
 * its own freshly created schema, dropped after.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pgErrorCode, type Db } from './types';
import { migrate } from './migrate';
import { JsonbArray } from './jsonb-array';
import { DomainError } from '../errors';

export function dbContract(label: string, open: () => Promise<Db>): void {
  describe(`Db contract: ${label}`, () => {
    let db: Db;
    const dirs: string[] = [];
    before(async () => {
      db = await open();
    });
    after(async () => {
      await db?.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    /** A fresh schema for one test, dropped when fn ends. */
    async function inSchema(fn: (schema: string) => Promise<void>): Promise<void> {
      const schema = `t_${randomBytes(5).toString('hex')}`;
      await db.exec(`CREATE SCHEMA ${schema}`);
      try {
        await fn(schema);
      } finally {
        await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      }
    }
    function migrationsDir(files: Record<string, string>): string {
      const dir = mkdtempSync(join(tmpdir(), 'sb-migrations-'));
      dirs.push(dir);
      for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
      return dir;
    }

    test('query with $n parameters returns rows and rowCount, same types on every adapter', () =>
      inSchema(async (s) => {
        await db.exec(
          `CREATE TABLE ${s}.t (id bigserial PRIMARY KEY, name text, blob bytea, doc jsonb, at timestamptz, n numeric)`,
        );
        const ins = await db.query(
          `INSERT INTO ${s}.t (name, blob, doc, at, n) VALUES ($1, $2, $3, $4, $5), ($6, NULL, NULL, NULL, NULL)`,
          [
            'alice',
            Buffer.from([0, 1, 255]),
            JSON.stringify({ a: 1 }),
            new Date('2024-01-02T03:04:05Z'),
            '12.50',
            'bob',
          ],
        );
        assert.equal(ins.rowCount, 2);
        const r = await db.query<{
          id: string;
          name: string;
          blob: Buffer | null;
          doc: unknown;
          at: Date | null;
          n: string | null;
        }>(`SELECT id, name, blob, doc, at, n FROM ${s}.t WHERE name = $1 OR name = $2 ORDER BY id`, [
          'alice',
          'bob',
        ]);
        assert.equal(r.rowCount, 2);
        assert.equal(r.rows[0].id, '1');
        assert.equal(r.rows[0].name, 'alice');
        assert.ok(Buffer.isBuffer(r.rows[0].blob));
        assert.deepEqual([...r.rows[0].blob!], [0, 1, 255]);
        assert.deepEqual(r.rows[0].doc, { a: 1 });
        assert.ok(r.rows[0].at instanceof Date);
        assert.equal(r.rows[0].at!.toISOString(), '2024-01-02T03:04:05.000Z');
        assert.equal(r.rows[0].n, '12.50');
        assert.equal(r.rows[1].blob, null);
        const upd = await db.query(`UPDATE ${s}.t SET name = upper(name) WHERE id > $1`, [0]);
        assert.equal(upd.rowCount, 2);
      }));

    test('a JsonbArray parameter is read as jsonb, in a transaction too, whatever its characters', async () => {
      // ASCII, Latin-1, a character of three UTF-8 bytes, a surrogate pair, escapes
      const items = [{ a: 1 }, { s: 'Müller' }, { s: '東京 €' }, { s: 'call 📞' }, { s: 'q"\\\n' }, []];
      const json = items.map((i) => JSON.stringify(i));
      const read = async (q: Pick<Db, 'query'>, arr: JsonbArray) =>
        (
          await q.query<{ e: unknown; n: number }>(
            'SELECT e, (SELECT count(*) FROM jsonb_array_elements($1::jsonb))::int AS n FROM jsonb_array_elements($1::jsonb) AS t(e)',
            [arr],
          )
        ).rows;
      const rows = await read(db, new JsonbArray(json));
      assert.deepEqual(
        rows.map((r) => r.e),
        items,
      );
      assert.equal(rows[0].n, items.length);
      await db.transaction(async (tx) => {
        assert.deepEqual(
          (await read(tx, new JsonbArray(json))).map((r) => r.e),
          items,
        );
        assert.deepEqual(await read(tx, new JsonbArray([])), []);
      });
    });

    test('transaction commits and returns the callback value', () =>
      inSchema(async (s) => {
        await db.exec(`CREATE TABLE ${s}.t (v int)`);
        const out = await db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${s}.t VALUES ($1)`, [1]);
          await tx.query(`INSERT INTO ${s}.t VALUES ($1)`, [2]);
          return 'done';
        });
        assert.equal(out, 'done');
        const r = await db.query<{ v: number }>(`SELECT v FROM ${s}.t ORDER BY v`);
        assert.deepEqual(
          r.rows.map((x) => x.v),
          [1, 2],
        );
      }));

    test('transaction rolls back when the callback throws, and rethrows', () =>
      inSchema(async (s) => {
        await db.exec(`CREATE TABLE ${s}.t (v int)`);
        const boom = new Error('boom');
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.query(`INSERT INTO ${s}.t VALUES (1)`);
            throw boom;
          }),
          (e) => e === boom,
        );
        await assert.rejects(
          db.transaction(async (tx) => {
            await tx.query(`INSERT INTO ${s}.t VALUES (2)`);
            await tx.query(`SELECT no_such_function()`);
          }),
        );
        const r = await db.query(`SELECT v FROM ${s}.t`);
        assert.equal(r.rowCount, 0);
        // The connection is usable after both rollbacks.
        await db.transaction((tx) => tx.query(`INSERT INTO ${s}.t VALUES (3)`));
        assert.equal((await db.query(`SELECT v FROM ${s}.t`)).rowCount, 1);
      }));

    test("a failed statement's error carries its SQLSTATE and message, in a transaction too", () =>
      inSchema(async (s) => {
        await db.exec(`CREATE TABLE ${s}.t (v int PRIMARY KEY)`);
        await db.query(`INSERT INTO ${s}.t VALUES (1)`);
        const duplicate = (e: unknown) =>
          e instanceof Error && pgErrorCode(e) === '23505' && /duplicate key/.test(e.message);
        await assert.rejects(db.query(`INSERT INTO ${s}.t VALUES ($1)`, [1]), duplicate);
        await assert.rejects(
          db.transaction((tx) => tx.query(`INSERT INTO ${s}.t VALUES ($1)`, [1])),
          duplicate,
        );
        await assert.rejects(db.exec(`SELECT * FROM ${s}.no_such_table`), (e) => pgErrorCode(e) === '42P01');
      }));

    test('concurrent transactions and queries do not interleave', () =>
      inSchema(async (s) => {
        await db.exec(
          `CREATE TABLE ${s}.t (v text); CREATE TABLE ${s}.counter (n int); INSERT INTO ${s}.counter VALUES (0);`,
        );
        // A writes, yields many times, then fails; B and a plain query run meanwhile.
        // Had their statements landed inside A's transaction, A's rollback would take them too.
        const a = db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${s}.t VALUES ('a1')`);
          for (let i = 0; i < 20; i++) await tx.query('SELECT 1');
          await tx.query(`INSERT INTO ${s}.t VALUES ('a2')`);
          throw new Error('a fails');
        });
        const b = db.transaction(async (tx) => {
          await tx.query(`INSERT INTO ${s}.t VALUES ('b1')`);
          await tx.query(`INSERT INTO ${s}.t VALUES ('b2')`);
        });
        const c = db.query(`INSERT INTO ${s}.t VALUES ('c1')`);
        const [ra, rb, rc] = await Promise.allSettled([a, b, c]);
        assert.equal(ra.status, 'rejected');
        assert.equal(rb.status, 'fulfilled');
        assert.equal(rc.status, 'fulfilled');
        const r = await db.query<{ v: string }>(`SELECT v FROM ${s}.t ORDER BY v`);
        assert.deepEqual(
          r.rows.map((x) => x.v),
          ['b1', 'b2', 'c1'],
        );

        // Read-modify-write under a row lock: no lost update among 10 concurrent transactions.
        await Promise.all(
          Array.from({ length: 10 }, () =>
            db.transaction(async (tx) => {
              const cur = await tx.query<{ n: number }>(`SELECT n FROM ${s}.counter FOR UPDATE`);
              await tx.query('SELECT 1');
              await tx.query(`UPDATE ${s}.counter SET n = $1`, [cur.rows[0].n + 1]);
            }),
          ),
        );
        assert.equal((await db.query<{ n: number }>(`SELECT n FROM ${s}.counter`)).rows[0].n, 10);
      }));

    test('migrate applies pending files once, in order, in the schema; a re-run is a no-op', async () => {
      const schema = `m_${randomBytes(5).toString('hex')}`;
      try {
        const dir = migrationsDir({
          '002_seed.sql': `INSERT INTO item (name) VALUES ('first');`,
          '001_create.sql': `CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL);\nCREATE INDEX item_name ON item (name);`,
          'README.md': 'not a migration',
        });
        const first = await migrate(db, { schema, dir });
        assert.deepEqual(
          first.map((m) => m.file),
          ['001_create.sql', '002_seed.sql'],
        );
        const again = await migrate(db, { schema, dir });
        assert.deepEqual(again, []);
        const items = await db.query<{ name: string }>(`SELECT name FROM ${schema}.item`);
        assert.deepEqual(
          items.rows.map((x) => x.name),
          ['first'],
        );
        const log = await db.query<{ version: number; name: string; applied_at: Date }>(
          `SELECT version, name, applied_at FROM ${schema}.schema_migrations ORDER BY version`,
        );
        assert.deepEqual(
          log.rows.map((x) => [x.version, x.name]),
          [
            [1, 'create'],
            [2, 'seed'],
          ],
        );
        assert.ok(log.rows[0].applied_at instanceof Date);
        // A file added later is the only one applied next time.
        writeFileSync(join(dir, '003_more.sql'), `INSERT INTO item (name) VALUES ('second');`);
        assert.deepEqual(
          (await migrate(db, { schema, dir })).map((m) => m.version),
          [3],
        );
        assert.equal((await db.query(`SELECT 1 FROM ${schema}.item`)).rowCount, 2);
      } finally {
        await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      }
    });

    test('two migrate calls at once apply each file exactly once', async () => {
      const schema = `m_${randomBytes(5).toString('hex')}`;
      try {
        const dir = migrationsDir({
          '001_create.sql': `CREATE TABLE hits (n int);`,
          '002_seed.sql': `INSERT INTO hits VALUES (1);`,
          '003_seed.sql': `INSERT INTO hits VALUES (2);`,
        });
        const [x, y] = await Promise.all([migrate(db, { schema, dir }), migrate(db, { schema, dir })]);
        assert.equal(x.length + y.length, 3);
        const r = await db.query<{ n: number }>(`SELECT n FROM ${schema}.hits ORDER BY n`);
        assert.deepEqual(
          r.rows.map((z) => z.n),
          [1, 2],
        );
      } finally {
        await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      }
    });

    test('a failing migration rolls back, names its file, and leaves earlier ones applied', async () => {
      const schema = `m_${randomBytes(5).toString('hex')}`;
      try {
        const dir = migrationsDir({
          '001_ok.sql': `CREATE TABLE good (n int);`,
          '002_bad.sql': `CREATE TABLE half (n int);\nINSERT INTO good VALUES (1);\nSELECT no_such_function();`,
          '003_after.sql': `CREATE TABLE later (n int);`,
        });
        await assert.rejects(migrate(db, { schema, dir }), (e: unknown) => {
          assert.ok(e instanceof DomainError);
          assert.match(e.message, /002_bad\.sql/);
          assert.match(e.message, /no_such_function/);
          return true;
        });
        const tables = await db.query<{ table_name: string }>(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
          [schema],
        );
        assert.deepEqual(
          tables.rows.map((t) => t.table_name),
          ['good', 'schema_migrations'],
        );
        assert.equal((await db.query(`SELECT 1 FROM ${schema}.good`)).rowCount, 0);
        const log = await db.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`);
        assert.deepEqual(
          log.rows.map((x) => x.version),
          [1],
        );
        // Fixed, it applies on the next run.
        writeFileSync(join(dir, '002_bad.sql'), `CREATE TABLE half (n int);`);
        assert.deepEqual(
          (await migrate(db, { schema, dir })).map((m) => m.version),
          [2, 3],
        );
      } finally {
        await db.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      }
    });
  });
}
