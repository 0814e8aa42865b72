/**
 * No record lost, none doubled: the accounting service runs in a child process
 * on PostgreSQL and Kafka; a generator sends 10,000 Accounting-Requests (5,000
 * calls, Start then Stop), retransmitting each until answered; the service is
 * SIGKILLed mid-load and started again on the same port. Afterwards exactly
 * 10,000 records are stored and every one is on the topic (deduped by id).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { KafkaBus } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { Dictionary, RadiusClient } from '@switchboard/radius';
import { collectAccounting, createTestDatabase, until } from './test-support';
import type { AccountingRecord } from './record';

const CALLS = 5000;
const WINDOW = 200;
const KILL_AFTER = 3000;
const SECRET = 'crash-secret';
const CHILD = fileURLToPath(new URL('./child.ts', import.meta.url));
const dict = Dictionary.standard();

interface Child {
  process: ChildProcess;
  port: number;
  output: () => string;
}

async function startChild(env: Record<string, string>): Promise<Child> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(env)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`accounting child did not start in 30 s:\n${out}`)),
      30_000,
    );
    const onData = () => {
      const m = /READY udp:\/\/[^\s]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`accounting child exited (${code ?? sig}) while starting:\n${out}`));
    });
  });
  return { process: child, port, output: () => out };
}

test(
  'SIGKILL during 10,000 Starts and Stops: exactly 10,000 stored, each published',
  { timeout: 120_000 },
  async () => {
    await requirePostgres();
    await requireKafka();
    const testDb = await createTestDatabase(testPostgresUrl());
    const topic = uniqueName('accounting_crash');
    const env: Record<string, string> = {
      DATABASE_URL: testDb.url,
      KAFKA_BROKERS: testKafkaBrokers().join(','),
      SWITCHBOARD_LOG_LEVEL: 'warn',
      SWITCHBOARD_LOG_FORMAT: 'json',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
      SWITCHBOARD_ACCOUNTING_PORT: '0',
      SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET}`,
      SWITCHBOARD_ACCOUNTING_TOPIC: topic,
      SWITCHBOARD_ACCOUNTING_RELAY_LEASE_MS: '1500',
      SWITCHBOARD_ACCOUNTING_RELAY_POLL_MS: '100',
    };
    let child = await startChild(env);
    const port = child.port;
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port,
      secret: SECRET,
      initialTimeoutMs: 300,
      maxTimeoutMs: 1000,
      maxAttempts: Infinity,
    });
    const bus = new KafkaBus({ brokers: testKafkaBrokers(), clientId: uniqueName('crash-reader') });
    try {
      let answered = 0;
      let answeredAtKill = -1;
      let restarted: Promise<void> | undefined;
      const killAndRestart = async () => {
        answeredAtKill = answered;
        const exited = once(child.process, 'exit');
        child.process.kill('SIGKILL');
        const [, signal] = await exited;
        assert.equal(signal, 'SIGKILL');
        child = await startChild({ ...env, SWITCHBOARD_ACCOUNTING_PORT: String(port) });
      };

      let next = 0;
      const worker = async () => {
        while (next < CALLS) {
          const i = next++;
          for (const type of ['Start', 'Stop'] as const) {
            await client.accounting(
              dict.encodeAll([
                ['Acct-Status-Type', type],
                ['Acct-Session-Id', `crash-${i}@test`],
                ['Sip-Method', type === 'Start' ? 'INVITE' : 'BYE'],
                ['Sip-From-Tag', `f${i}`],
                ['Sip-To-Tag', `t${i}`],
                ['Event-Timestamp', 1_700_000_000 + i],
              ]),
            );
            answered++;
            if (answered === KILL_AFTER) restarted = killAndRestart();
          }
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, worker));
      await restarted;
      assert.ok(answeredAtKill > 0 && answeredAtKill < 2 * CALLS, `killed at ${answeredAtKill}`);
      assert.ok(client.retransmissions > 0, 'requests were retransmitted across the outage');
      assert.equal(answered, 2 * CALLS);

      // Exactly 10,000 stored: one per call and status type.
      const pgc = new pg.Client({ connectionString: testDb.url });
      await pgc.connect();
      let ids: Set<string>;
      try {
        const counts = await pgc.query<{ n: string; distinct_pairs: string }>(
          'SELECT count(*) AS n, count(DISTINCT (session_id, status_type)) AS distinct_pairs FROM accounting.records',
        );
        assert.equal(Number(counts.rows[0].n), 2 * CALLS);
        assert.equal(Number(counts.rows[0].distinct_pairs), 2 * CALLS);
        ids = new Set(
          (await pgc.query<{ id: string }>('SELECT id FROM accounting.records')).rows.map((r) => r.id),
        );
      } finally {
        await pgc.end();
      }

      // Every stored record is on the topic; deduped by id, nothing else is.
      const feed = await collectAccounting(bus, uniqueName('crash-check'), topic);
      try {
        const seen = new Set<string>();
        let scanned = 0;
        await until(
          () => {
            for (; scanned < feed.messages.length; scanned++) {
              seen.add((JSON.parse(feed.messages[scanned].value!.toString()) as AccountingRecord).id);
            }
            return seen.size >= ids.size;
          },
          'every record published',
          60_000,
        );
        assert.equal(seen.size, ids.size);
        for (const id of seen) assert.ok(ids.has(id), `published ${id} is not stored`);
      } finally {
        await feed.close();
      }
    } finally {
      client.close();
      await bus.close();
      if (child.process.exitCode === null && child.process.signalCode === null) {
        const exited = once(child.process, 'exit');
        child.process.kill('SIGTERM');
        await exited;
      }
      await testDb.drop();
    }
  },
);
