import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, int } from './config';
import { MEMORY_DATA_DIR, runTargets } from './runner';
import { defineService, type ServiceModule } from './service';

const env = {
  SWITCHBOARD_OPS_PORT: '0',
  SWITCHBOARD_OPS_HOST: '127.0.0.1',
  SWITCHBOARD_DATA_DIR: MEMORY_DATA_DIR,
  SWITCHBOARD_LOG_LEVEL: 'silent',
};

function recorder(log: string[]) {
  const mod = (name: string, dependsOn: string[] = []): ServiceModule =>
    defineService({
      name,
      description: name,
      dependsOn,
      configSpec: { n: int(`SWITCHBOARD_${name.toUpperCase()}_N`, 1, 'n') },
      async start(ctx) {
        log.push(`start ${name}`);
        const db = await ctx.db();
        await db.query('select 1');
        ctx.endpoint('test', `x://${name}`);
        return { stop: async () => void log.push(`stop ${name}`) };
      },
    });
  return mod;
}

test('starts services in dependency order on one ops port, stops in reverse, serves /metrics and /readyz', async () => {
  const log: string[] = [];
  const mod = recorder(log);
  const proc = await runTargets([mod('b', ['a']), mod('a')], { version: '9.9.9', env });
  try {
    assert.deepEqual(log, ['start a', 'start b']);
    assert.deepEqual(
      proc.endpoints.map((e) => `${e.service} ${e.name}`),
      ['ops metrics', 'a test', 'b test'],
    );
    const metrics = await (await fetch(`${proc.ops.url}/metrics`)).text();
    assert.match(metrics, /switchboard_build_info\{version="9.9.9",service="a"\} 1/);
    assert.match(metrics, /switchboard_build_info\{version="9.9.9",service="b"\} 1/);
    assert.equal((await fetch(`${proc.ops.url}/readyz`)).status, 200, 'database ready');
  } finally {
    await proc.stop();
  }
  assert.deepEqual(log.slice(2), ['stop b', 'stop a']);
  await assert.rejects(fetch(`${proc.ops.url}/healthz`), 'ops server closed');
});

test('a bad value in any service config stops start-up before anything starts', async () => {
  const log: string[] = [];
  const mod = recorder(log);
  await assert.rejects(
    runTargets([mod('a'), mod('b')], { version: '0', env: { ...env, SWITCHBOARD_B_N: 'many' } }),
    (e: unknown) => e instanceof ConfigError && e.variable === 'SWITCHBOARD_B_N',
  );
  assert.deepEqual(log, []);
});

test('a service failing to start stops the ones already started', async () => {
  const log: string[] = [];
  const mod = recorder(log);
  const broken = defineService({
    name: 'broken',
    description: 'fails',
    dependsOn: ['a'],
    configSpec: {},
    async start() {
      throw new Error('port in use');
    },
  });
  await assert.rejects(runTargets([mod('a'), broken], { version: '0', env }), /port in use/);
  assert.deepEqual(log, ['start a', 'stop a']);
});
