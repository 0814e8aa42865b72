// Two proxy processes share everything through Kafka: a phone registered
// through one is reachable by a call through the other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '@switchboard/platform';
import {
  freePort,
  requireKafka,
  requirePostgres,
  testKafkaBrokers,
  testPostgresUrl,
  uniqueName,
} from '@switchboard/platform/testing';
import { startPlatform } from '../lib/platform';
import { sipp } from '../lib/sipp';
import { register } from '../lib/ua';

test('PostgreSQL + Kafka: register through proxy A, call through proxy B', async (t) => {
  await requirePostgres();
  await requireKafka();
  const db = await openDb({ databaseUrl: testPostgresUrl() });
  await db.exec('DROP SCHEMA IF EXISTS registrar CASCADE');
  await db.close();
  const shared = {
    DATABASE_URL: testPostgresUrl(),
    KAFKA_BROKERS: testKafkaBrokers().join(','),
    SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32',
  };
  const user = uniqueName('dave').replace(/[^a-z0-9]/gi, '');
  // Each process is stopped after the test, also when a later one failed to start.
  const registrar = await startPlatform({ targets: ['registrar'], env: shared, subscribers: [] });
  t.after(() => registrar.stop());
  const registrarAddr = registrar.proc.endpoints
    .find((e) => e.service === 'registrar')!
    .url.replace('grpc://', '');
  const proxyEnv = { ...shared, SWITCHBOARD_SIP_REGISTRAR: registrarAddr };
  const a = await startPlatform({
    targets: ['sip-proxy'],
    env: proxyEnv,
    subscribers: [{ username: user, password: 'pw' }],
  });
  t.after(() => a.stop());
  const b = await startPlatform({ targets: ['sip-proxy'], env: proxyEnv });
  t.after(() => b.stop());
  const uasPort = await freePort();
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '3'], {
    timeoutMs: 60_000,
  });
  try {
    const reg = await register({
      proxy: a.sip.udp,
      user,
      password: 'pw',
      domain: a.domain,
      contact: `sip:${user}@127.0.0.1:${uasPort}`,
    });
    assert.equal(reg.status, 200, `${reg.status} ${reg.reason}`);
    // Proxy B learns the binding from the location topic; wait (bounded) until a call goes through.
    let ok = 0;
    const deadline = Date.now() + 30_000;
    while (ok < 3 && Date.now() < deadline) {
      const r = await sipp(
        [
          '-sn',
          'uac',
          '-s',
          user,
          '-i',
          '127.0.0.1',
          '-p',
          '0',
          '-m',
          '1',
          '-recv_timeout',
          '4000',
          `${b.sip.udp.host}:${b.sip.udp.port}`,
        ],
        {
          timeoutMs: 20_000,
        },
      ).done;
      if (r.successful === 1) ok++;
      else await new Promise((res) => setTimeout(res, 500));
    }
    assert.equal(ok, 3, 'three calls through proxy B reached the phone registered through proxy A');
  } finally {
    uas.kill();
  }
});
