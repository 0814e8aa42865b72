// Exactly once across crashes: the rating service in a child process on
// PostgreSQL + Kafka, killed with SIGKILL while it correlates a stream of
// accounting records, then restarted on the same group; every call ends up
// with one CDR and one debit, and every balance is the expected sum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { KafkaBus, migrate, openDb } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { RatingEngine } from './engine';
import { importPlan } from './csv';
import { PlanBook, rateCall } from './tariff';
import { SAMPLE_RATES, startRecord, stopRecord, type CallSpec } from './testing';

const CHILD = join(import.meta.dirname, 'child.ts');
const CALLS = 600;
const ACCOUNTS = 20;
const TOPUP = 1_000_000_000;
const PLAN = {
  planId: 'std',
  effectiveFrom: Date.parse('2026-01-01T00:00:00Z'),
  currency: 'EUR',
  timezone: 'UTC',
  holidays: [],
};

function startChild(env: Record<string, string>): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\nready ') || out.startsWith('ready ')) resolve();
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code, sig) =>
      reject(new Error(`rating exited (${code ?? sig}) before it started:\n${out}`)),
    );
  });
  return { child, ready };
}

test('SIGKILL mid-stream and a restart: one CDR and one debit per call, balances are the expected sums', async () => {
  await requirePostgres();
  await requireKafka();
  const name = `rating_crash_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testPostgresUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(testPostgresUrl());
  url.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: url.toString() });
  const topics = { accounting: uniqueName('crash_accounting'), cdrs: uniqueName('crash_cdrs') };
  const env = {
    SWITCHBOARD_OPS_PORT: '0',
    SWITCHBOARD_OPS_HOST: '127.0.0.1',
    SWITCHBOARD_RATING_GRPC_PORT: '0',
    SWITCHBOARD_LOG_LEVEL: 'silent',
    DATABASE_URL: url.toString(),
    KAFKA_BROKERS: testKafkaBrokers().join(','),
    SWITCHBOARD_KAFKA_CLIENT_ID: uniqueName('crash'),
    SWITCHBOARD_RATING_ACCOUNTING_TOPIC: topics.accounting,
    SWITCHBOARD_RATING_CDRS_TOPIC: topics.cdrs,
    SWITCHBOARD_RATING_MEDIA_TOPIC: uniqueName('crash_media'),
    SWITCHBOARD_RATING_GROUP: uniqueName('rating'),
    SWITCHBOARD_RATING_SWEEP_MS: '500',
  };
  const bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: uniqueName('crash-test') });
  let running: ChildProcess | undefined;
  try {
    await migrate(db, { schema: 'rating', dir: join(import.meta.dirname, '..', 'migrations') });
    const seed = new RatingEngine({
      db,
      now: Date.now,
      publish: async () => undefined,
      maxCallSeconds: 3600,
      reservationGraceSeconds: 60,
    });
    assert.ok((await seed.importPlan(PLAN, SAMPLE_RATES, '', 'test')).ok);
    for (let a = 0; a < ACCOUNTS; a++) {
      const account = `sip:c${a}@example.com`;
      await seed.upsertAccount({
        account,
        prepaid: true,
        currency: 'EUR',
        creditLimitMicros: null,
        planId: 'std',
        blocked: false,
      });
      await seed.adjust({ account, kind: 'topup', amountMicros: TOPUP, actor: 'test', reason: 'seed' });
    }

    // the expected debits, from the pure rating function
    const book = new PlanBook();
    const v = await importPlan(PLAN, SAMPLE_RATES);
    assert.ok(v.ok);
    book.add(v.version);
    const callees = ['15551234567', '12125550000', '447700900000', '4930123456'];
    const expected = new Map<string, number>();
    const records = [];
    for (let i = 0; i < CALLS; i++) {
      const c: CallSpec = {
        callId: `crash-${i}-${name}`,
        account: `sip:c${i % ACCOUNTS}@example.com`,
        callee: callees[i % callees.length],
        answeredAt: Date.parse('2026-11-25T10:00:00Z') + i * 1000,
        duration: 1 + ((i * 37) % 400),
      };
      const price = rateCall(book, {
        planId: 'std',
        callee: c.callee,
        onNet: false,
        answeredAt: c.answeredAt,
        durationSeconds: c.duration,
      }).priceMicros;
      expected.set(c.account, (expected.get(c.account) ?? 0) + price);
      // every tenth record twice, as the accounting relay may publish it
      for (const r of [startRecord(c), stopRecord(c, i % 2 === 0)]) {
        records.push(r);
        if (i % 10 === 0) records.push(r);
      }
    }
    const chunks: Array<Array<{ key: string; value: string }>> = [];
    for (let i = 0; i < records.length; i += 200)
      chunks.push(records.slice(i, i + 200).map((r) => ({ key: r.sessionId!, value: JSON.stringify(r) })));

    const count = async (sql: string) => Number((await db.query<{ n: string }>(sql)).rows[0].n);
    const cdrCount = () => count('SELECT count(*)::text AS n FROM rating.cdrs');
    const waitFor = async (cond: () => Promise<boolean>, what: string, ms = 120_000) => {
      const deadline = Date.now() + ms;
      while (!(await cond())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    // first run: the stream arrives while it runs, and it is killed once a third of the calls
    // are rated, before the last two chunks are published: mid-stream however fast it rates
    let s = startChild(env);
    running = s.child;
    await s.ready;
    let next = 0;
    await waitFor(async () => {
      if (next < chunks.length - 2) await bus.publish(topics.accounting, chunks[next++]);
      return (await cdrCount()) >= CALLS / 3;
    }, 'a third of the CDRs');
    s.child.kill('SIGKILL');
    await once(s.child, 'exit');
    const atKill = await cdrCount();
    assert.ok(atKill < CALLS, `killed mid-stream (${atKill} of ${CALLS} rated)`);
    for (; next < chunks.length; next++) await bus.publish(topics.accounting, chunks[next]);

    // second run on the same group finishes the stream
    s = startChild(env);
    running = s.child;
    await s.ready;
    await waitFor(async () => (await cdrCount()) >= CALLS, 'every CDR');
    await waitFor(
      async () => (await count('SELECT count(*)::text AS n FROM rating.cdr_outbox')) === 0,
      'the outbox drained',
    );

    assert.equal(await cdrCount(), CALLS, 'one CDR per call');
    assert.equal(await count('SELECT count(*)::text AS n FROM rating.open_calls'), 0, 'no call left open');
    assert.equal(
      await count("SELECT count(*)::text AS n FROM rating.ledger WHERE kind = 'debit'"),
      await count('SELECT count(*)::text AS n FROM rating.cdrs WHERE price_micros > 0'),
      'one debit per priced CDR',
    );
    const balances = await db.query<{ account: string; balance_micros: string; sum: string }>(
      `SELECT a.account, a.balance_micros::text, (SELECT sum(amount_micros) FROM rating.ledger l WHERE l.account = a.account)::text AS sum
       FROM rating.accounts a ORDER BY a.account`,
    );
    assert.equal(balances.rowCount, ACCOUNTS);
    for (const b of balances.rows) {
      assert.equal(Number(b.balance_micros), TOPUP - expected.get(b.account)!, `balance of ${b.account}`);
      assert.equal(b.sum, b.balance_micros, `ledger sum of ${b.account}`);
    }
  } finally {
    if (running && running.exitCode === null && running.signalCode === null) {
      running.kill('SIGTERM');
      await once(running, 'exit');
    }
    await bus.close();
    await db.close();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
});
