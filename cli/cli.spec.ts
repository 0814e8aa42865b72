import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = join(import.meta.dirname, '..', 'bin', 'switchboard.js');
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });

test('switchboard --help lists the commands', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const cmd of ['start --target=all', 'targets', 'config']) assert.ok(r.stdout.includes(cmd), cmd);
});

test('an unknown command or target exits non-zero saying so', () => {
  const a = run(['frobnicate']);
  assert.equal(a.status, 2);
  assert.match(a.stderr, /unknown command "frobnicate"/);
  const b = run(['start', '--target=pbx']);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /unknown target "pbx"/);
});

test('a bad configuration value stops start-up naming the variable', () => {
  const r = run(['start', '--target=all'], { SWITCHBOARD_OPS_PORT: 'ninety' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /configuration error: SWITCHBOARD_OPS_PORT: expected an integer/);
});

test('start --target=all serves /metrics and /healthz on embedded storage, and SIGTERM stops it cleanly', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sb-cli-'));
  const child = spawn(process.execPath, [bin, 'start', '--target=all'], {
    env: {
      ...process.env,
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_LOG_LEVEL: 'info',
      SWITCHBOARD_LOG_FORMAT: 'json',
      // Services bind ephemeral ports so this can run beside anything else.
      SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
      SWITCHBOARD_MEDIA_GRPC_PORT: '0',
      SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
      SWITCHBOARD_ACCOUNTING_PORT: '0',
      SWITCHBOARD_MEDIASERVER_SIP_PORT: '0',
      SWITCHBOARD_MEDIASERVER_GRPC_PORT: '0',
      SWITCHBOARD_RATING_GRPC_PORT: '0',
      SWITCHBOARD_PORTAL_HOST: '127.0.0.1',
      SWITCHBOARD_PORTAL_PORT: '0',
      SWITCHBOARD_SIP_LISTEN: 'udp:127.0.0.1:0,tcp:127.0.0.1:0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!/Press Ctrl-C to stop/.test(out)) {
      assert.ok(Date.now() < deadline, `did not start:\n${out}`);
      assert.equal(child.exitCode, null, `exited early:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const metricsUrl = /ops metrics\s+(\S+)/.exec(out)?.[1];
    assert.ok(metricsUrl, out);
    const metrics = await fetch(metricsUrl);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^nodejs_heap_size_total_bytes /m);
    assert.equal((await fetch(metricsUrl.replace('/metrics', '/healthz'))).status, 200);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.match(out, /"msg":"stopped"/);
  } finally {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
