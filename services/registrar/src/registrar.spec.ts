// The registrar as it runs: started by the target runner, called over gRPC,
// on embedded storage and on real PostgreSQL and Kafka.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grpcClient, openDb, openEventBus, runTargets, type RunningProcess } from '@switchboard/platform';
import {
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { RegistrarClient, WatchEvent_Type, type WatchEvent } from '@switchboard/proto/registrar';
import { LOCATION_TOPIC, publishInBatches, registrarService } from './main';

const baseEnv = {
  SWITCHBOARD_OPS_PORT: '0',
  SWITCHBOARD_OPS_HOST: '127.0.0.1',
  SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
  SWITCHBOARD_LOG_LEVEL: 'silent',
};

async function start(env: Record<string, string>) {
  const proc = await runTargets([registrarService], { version: 'test', env: { ...baseEnv, ...env } });
  const url = proc.endpoints.find((e) => e.service === 'registrar')!.url;
  const client = grpcClient(RegistrarClient, url.replace('grpc://', ''));
  return { proc, client };
}
const stopAll = async (s: { proc: RunningProcess; client: { close(): void } }) => {
  s.client.close();
  await s.proc.stop();
};

const contact = (uri: string, expires?: number) => ({ uri, expires, instanceId: '', regId: 0 });
const register = (aor: string, cseq: number, contacts: ReturnType<typeof contact>[], extra = {}) => ({
  aor,
  contacts,
  removeAll: false,
  callId: `call-${aor}`,
  cseq,
  path: [],
  userAgent: 'test',
  received: {
    address: '192.0.2.7',
    port: 5062,
    transport: 'udp',
    flowId: '',
    localSocket: 'udp:127.0.0.1:5060',
  },
  ...extra,
});

test('embedded: register, query, refresh, 423, out-of-order, watch, unregister, and bindings survive a restart', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-registrar-'));
  try {
    let s = await start({ SWITCHBOARD_DATA_DIR: dataDir });
    try {
      const aor = 'sip:alice@example.com';
      const watch = s.client.raw.watch({ aor, snapshot: false });
      const seen: WatchEvent[] = [];
      watch.on('data', (e: WatchEvent) => seen.push(e));
      watch.on('error', () => {});

      const r1 = await s.client.register(register(aor, 1, [contact('sip:alice@192.0.2.7:5062', 600)]));
      assert.equal(r1.minExpires, 0);
      assert.deepEqual(
        r1.bindings.map((b) => b.contact),
        ['sip:alice@192.0.2.7:5062'],
      );
      assert.equal(r1.bindings[0].received?.port, 5062);

      const brief = await s.client.register(register(aor, 2, [contact('sip:alice@192.0.2.7:5062', 5)]));
      assert.equal(brief.minExpires, 60, '423 Interval Too Brief with Min-Expires: 60');

      await assert.rejects(
        s.client.register(register(aor, 1, [contact('sip:alice@192.0.2.7:5062', 600)])),
        (e: Error & { kind?: string }) => e.kind === 'failed_precondition',
      );
      const query = await s.client.register(register(aor, 3, []));
      assert.equal(query.bindings.length, 1, 'a REGISTER without Contact lists the bindings');
      assert.equal((await s.client.lookup({ aor })).bindings.length, 1);

      for (let i = 0; i < 100 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(seen[0]?.type, WatchEvent_Type.TYPE_UPSERT);
      watch.cancel();
    } finally {
      await stopAll(s);
    }

    s = await start({ SWITCHBOARD_DATA_DIR: dataDir });
    try {
      const after = await s.client.lookup({ aor: 'sip:alice@example.com' });
      assert.deepEqual(
        after.bindings.map((b) => b.contact),
        ['sip:alice@192.0.2.7:5062'],
        'kept across a restart',
      );
      const removed = await s.client.unregister({ aor: 'sip:alice@example.com', contact: '' });
      assert.equal(removed.removed, 1);
      assert.equal((await s.client.lookup({ aor: 'sip:alice@example.com' })).bindings.length, 0);
    } finally {
      await stopAll(s);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('embedded: RegisterBatch applies its items in order in one commit, each with its own answer or error', async () => {
  const s = await start({ SWITCHBOARD_DATA_DIR: ':memory:' });
  try {
    const alice = 'sip:alice@example.com';
    const { results } = await s.client.registerBatch({
      requests: [
        register(alice, 1, [contact('sip:alice@192.0.2.7:5062', 600)]),
        // The same Call-ID, a higher CSeq: applied on top of the first item.
        register(alice, 2, [contact('sip:alice@192.0.2.8:5062', 600)]),
        // The binding the item before made holds CSeq 2 for this Call-ID: step 8 aborts this one.
        register(alice, 2, [contact('sip:alice@192.0.2.8:5062', 600)]),
        register('sip:bob@example.com', 1, [contact('sip:bob@192.0.2.10', 5)]),
        register('', 1, [contact('sip:nobody@192.0.2.11', 600)]),
        register('sip:carol@example.com', 1, [], { removeAll: true }),
      ],
    });
    assert.equal(results.length, 6);
    assert.deepEqual(
      results[0].response?.bindings.map((b) => b.contact),
      ['sip:alice@192.0.2.7:5062'],
    );
    assert.deepEqual(results[1].response?.bindings.map((b) => b.contact).sort(), [
      'sip:alice@192.0.2.7:5062',
      'sip:alice@192.0.2.8:5062',
    ]);
    assert.equal(results[2].response, undefined);
    assert.equal(results[2].error?.code, 9, 'FAILED_PRECONDITION, as Register answers it');
    assert.deepEqual(results[3].response, { bindings: [], minExpires: 60 }, '423 with Min-Expires');
    assert.deepEqual(results[4].error, { code: 3, message: 'aor is required', field: 'aor' });
    assert.deepEqual(results[5].response, { bindings: [], minExpires: 0 });

    // What Register answers for the same cases.
    await assert.rejects(
      s.client.register(register(alice, 2, [contact('sip:alice@192.0.2.8:5062', 600)])),
      (e: Error & { kind?: string }) => e.kind === 'failed_precondition',
    );
    assert.equal((await s.client.lookup({ aor: alice })).bindings.length, 2);
    const m = await (await fetch(`${s.proc.ops.url}/metrics`)).text();
    assert.match(m, /^switchboard_registrar_commit_batch_size_count 1$/m, 'one group commit');
    assert.match(m, /^switchboard_registrar_commit_batch_size_sum 2$/m, "alice's two writes in it");
  } finally {
    await stopAll(s);
  }
});

test('embedded: expired bindings are swept', async () => {
  const s = await start({
    SWITCHBOARD_DATA_DIR: ':memory:',
    SWITCHBOARD_REGISTRAR_MIN_EXPIRES: '1',
    SWITCHBOARD_REGISTRAR_SWEEP_MS: '100',
  });
  try {
    // 3 s: long enough for the gauge to be read before the sweep on a loaded machine (1 s was not).
    const res = await s.client.register(
      register('sip:bob@example.com', 1, [contact('sip:bob@192.0.2.9', 3)]),
    );
    assert.equal(res.bindings.length, 1);
    const metrics = () => fetch(`${s.proc.ops.url}/metrics`).then((r) => r.text());
    assert.match(await metrics(), /^switchboard_registrations_active 1$/m);
    const deadline = Date.now() + 15_000;
    while (/^switchboard_registrations_active 1$/m.test(await metrics())) {
      assert.ok(Date.now() < deadline, 'binding never expired');
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal((await s.client.lookup({ aor: 'sip:bob@example.com' })).bindings.length, 0);
  } finally {
    await stopAll(s);
  }
});

test('PostgreSQL + Kafka: concurrent registrations share commits, and every change reaches the location topic', async () => {
  await requirePostgres();
  await requireKafka();
  const db = await openDb({ databaseUrl: testPostgresUrl() });
  await db.exec('DROP SCHEMA IF EXISTS registrar CASCADE');
  const s = await start({ DATABASE_URL: testPostgresUrl(), KAFKA_BROKERS: testKafkaBrokers().join(',') });
  const bus = await openEventBus({
    kafkaBrokers: testKafkaBrokers(),
    db,
    clientId: uniqueName('registrar-test'),
  });
  try {
    const prefix = uniqueName('u');
    const N = 200;
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        s.client.register(
          register(`sip:${prefix}${i}@example.com`, 1, [
            contact(`sip:${prefix}${i}@192.0.2.1:${5000 + i}`, 300),
          ]),
        ),
      ),
    );
    const stored = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM registrar.aors WHERE aor LIKE $1`,
      [`sip:${prefix}%`],
    );
    assert.equal(Number(stored.rows[0].n), N, 'every binding stored before its answer');
    const m = await (await fetch(`${s.proc.ops.url}/metrics`)).text();
    const commits = Number(/^switchboard_registrar_commit_batch_size_count (\d+)/m.exec(m)?.[1]);
    assert.ok(commits > 0 && commits < N, `group commit: ${N} registrations in ${commits} transactions`);

    await s.client.unregister({ aor: `sip:${prefix}0@example.com`, contact: '' });
    const topic = await bus.readCompacted(LOCATION_TOPIC);
    const ours = [...topic.keys()].filter((k) => k.startsWith(`sip:${prefix}`));
    assert.equal(ours.length, N - 1, 'one record per AoR, the unregistered one tombstoned');
    const rec = JSON.parse(topic.get(`sip:${prefix}1@example.com`)!.value!.toString());
    assert.equal(rec.bindings[0].contact, `sip:${prefix}1@192.0.2.1:5001`);
  } finally {
    await bus.close();
    await stopAll(s);
    await db.close();
  }
});

test('the bindings republished at start go out 500 AoRs a publish, each AoR once, in order', async () => {
  const all = new Map(Array.from({ length: 1200 }, (_, i) => [`sip:u${i}@example.com`, []]));
  const parts: string[][] = [];
  await publishInBatches(all, async (part) => void parts.push([...part.keys()]));
  assert.deepEqual(
    parts.map((p) => p.length),
    [500, 500, 200],
  );
  assert.deepEqual(parts.flat(), [...all.keys()]);
});
