import { after, before } from 'node:test';
import { requirePostgres, testPostgresUrl } from '../testing';
import { dbContract } from './db.contract';
import { openDb } from './open';
import { openPglite } from './pglite';
import { createTestDatabase, type TestDatabase } from './test-databases';

dbContract('PGlite in memory, on its own thread', () => openDb({ memory: true }));
dbContract('PGlite in memory, on the calling thread', () => openPglite({ thread: false }));

let pgdb: TestDatabase;
before(async () => {
  await requirePostgres();
  pgdb = await createTestDatabase(testPostgresUrl());
});
after(async () => {
  await pgdb?.drop();
});
dbContract('PostgreSQL', () => openDb({ databaseUrl: pgdb.url }));
