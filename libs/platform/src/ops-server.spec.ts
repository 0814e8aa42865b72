import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { createMetricsRegistry, markService } from './metrics';
import { startOpsServer } from './ops-server';

test('ops server: /healthz, /readyz follows its checks and draining, /metrics has defaults and build info', async () => {
  const registry = createMetricsRegistry();
  markService(registry, '1.2.3', 'registrar');
  const ops = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    registry,
    logger: pino({ level: 'silent' }),
  });
  try {
    assert.equal((await fetch(`${ops.url}/healthz`)).status, 200);
    let dbUp = false;
    ops.addReadinessCheck('database', () => dbUp);
    ops.addReadinessCheck('throws', () => true);
    const notReady = await fetch(`${ops.url}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(((await notReady.json()) as { checks: unknown }).checks, {
      database: false,
      throws: true,
    });
    dbUp = true;
    assert.equal((await fetch(`${ops.url}/readyz`)).status, 200);
    ops.setDraining(true);
    assert.equal((await fetch(`${ops.url}/readyz`)).status, 503);

    const m = await fetch(`${ops.url}/metrics`);
    assert.equal(m.status, 200);
    const text = await m.text();
    assert.match(text, /^process_cpu_user_seconds_total /m);
    assert.match(text, /^switchboard_build_info\{version="1.2.3",service="registrar"\} 1$/m);
    assert.match(text, /^switchboard_dependency_ready\{dependency="database"\} 1$/m);
    assert.equal((await fetch(`${ops.url}/nope`)).status, 404);
  } finally {
    await ops.close();
  }
});

test('a readiness check that rejects counts as not ready', async () => {
  const ops = await startOpsServer({
    host: '127.0.0.1',
    port: 0,
    registry: createMetricsRegistry(),
    logger: pino({ level: 'silent' }),
  });
  try {
    ops.addReadinessCheck('kafka', async () => {
      throw new Error('down');
    });
    assert.equal((await fetch(`${ops.url}/readyz`)).status, 503);
  } finally {
    await ops.close();
  }
});
