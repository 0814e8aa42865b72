import { after, before } from 'node:test';
import { dbContract } from './db.contract';
import { openDb } from './open';
import { createTestDatabase, DEFAULT_TEST_PG_URL, type TestDatabase } from './test-databases';

dbContract('PGlite in memory', () => openDb({ memory: true }));

let pgdb: TestDatabase;
before(async () => {
  pgdb = await createTestDatabase(process.env.SWITCHBOARD_TEST_DATABASE_URL ?? DEFAULT_TEST_PG_URL);
});
after(async () => {
  await pgdb?.drop();
});
dbContract('PostgreSQL', () => openDb({ databaseUrl: pgdb.url }));
