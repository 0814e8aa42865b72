/**
 * What publish() acknowledged survives a SIGKILL of the publisher: a child process
 * publishes numbered messages and prints each acknowledged number; it is killed
 * mid-publish; the log, reopened, holds every printed number.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestKafka, requireKafka, testKafkaBrokers, uniqueName } from '../testing';
import { openDb } from '../db/open';
import { openEmbeddedBus } from './embedded';
import { KafkaBus } from './kafka';

const FIXTURE = fileURLToPath(new URL('./testdata/crash-publisher.fixture.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** Numbers acknowledged before the kill; enough that the child is in its publish loop. */
const KILL_AFTER = 60;

/** Runs the publisher until it has acknowledged KILL_AFTER numbers, SIGKILLs it, returns what it acknowledged. */
function publishThenKill(args: string[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: number[] = [];
    let buf = '';
    let stderr = '';
    let killed = false;
    const bound = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`publisher acknowledged only ${acked.length} in 60 s; stderr: ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (/^\d+$/.test(l)) acked.push(Number(l));
      if (!killed && acked.length >= KILL_AFTER) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(bound);
      if (signal === 'SIGKILL' && killed) resolve(acked);
      else reject(new Error(`publisher exited (${code ?? signal}) before the kill; stderr: ${stderr}`));
    });
  });
}

function assertAllPresent(acked: number[], logged: number[]): void {
  const have = new Set(logged);
  const missing = acked.filter((n) => !have.has(n));
  assert.deepEqual(missing, [], `acknowledged but not in the log (of ${acked.length} acknowledged)`);
  assert.ok(acked.length >= KILL_AFTER);
}

describe('crash: acknowledged messages survive SIGKILL of the publisher', () => {
  test('embedded log on PGlite on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-crash-'));
    try {
      const topic = uniqueName('crash');
      const acked = await publishThenKill(['embedded', dir, topic]);
      const db = await openDb({ dataDir: dir });
      try {
        const bus = await openEmbeddedBus({ db });
        const r = await db.query<{ offset: string; value: Buffer }>(
          `SELECT "offset", value FROM eventlog.events WHERE topic = $1 ORDER BY "offset"`,
          [topic],
        );
        const logged = r.rows.map((x) => Number(x.value.toString()));
        assertAllPresent(acked, logged);
        // The log is whole: offsets 0.. dense, and the numbers in publish order without gaps.
        assert.deepEqual(
          r.rows.map((x) => Number(x.offset)),
          logged.map((_, i) => i),
        );
        assert.deepEqual(
          logged,
          logged.map((_, i) => i + 1),
        );
        // And it is still writable after the crash.
        await bus.publish(topic, [{ key: 'after', value: 'crash' }]);
        assert.equal((await bus.readCompacted(topic)).get('after')?.value?.toString(), 'crash');
        await bus.close();
      } finally {
        await db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('Kafka', async () => {
    await requireKafka();
    const topic = uniqueName('crash');
    const acked = await publishThenKill(['kafka', testKafkaBrokers().join(','), topic]);
    const bus = new KafkaBus({
      brokers: testKafkaBrokers(),
      clientId: uniqueName('crash_check'),
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 300,
    });
    try {
      const all = await bus.readCompacted(topic); // keys are unique: every message
      assertAllPresent(acked, [...all.keys()].map(Number));
    } finally {
      await bus.close();
      const admin = createTestKafka(uniqueName('crash_admin')).admin();
      await admin.connect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
