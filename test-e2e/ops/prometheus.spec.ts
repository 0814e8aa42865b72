// A real Prometheus (Debian `prometheus`) scrapes the running platform after a few calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../lib/platform';
import { freePort } from '@switchboard/platform/testing';
import { sipp } from '../lib/sipp';
import { register } from '../lib/ua';

const CALLS = 5;

test('Prometheus scrapes the platform: target up, call counters equal the calls made', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'bob', password: 'pw-bob' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32' },
  });
  const dir = mkdtempSync(join(tmpdir(), 'sb-prom-'));
  const uasPort = await freePort();
  // no -m: a UAS that counted a stray retransmission as a call could exit before the last BYE
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort)], {
    timeoutMs: 60_000,
  });
  let prom: ReturnType<typeof spawn> | undefined;
  try {
    const reg = await register({
      proxy: p.sip.udp,
      user: 'bob',
      password: 'pw-bob',
      domain: p.domain,
      contact: `sip:bob@127.0.0.1:${uasPort}`,
    });
    assert.equal(reg.status, 200);
    const calls = await sipp(
      [
        '-sn',
        'uac',
        '-s',
        'bob',
        '-i',
        '127.0.0.1',
        '-p',
        '0',
        '-m',
        String(CALLS),
        '-r',
        '5',
        `${p.sip.udp.host}:${p.sip.udp.port}`,
      ],
      { timeoutMs: 60_000 },
    ).done;
    assert.equal(calls.successful, CALLS, calls.stderr);

    const target = new URL(p.proc.ops.url).host;
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: switchboard\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    const promPort = await freePort();
    prom = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: 'ignore' },
    );
    const query = async (q: string): Promise<number | undefined> => {
      const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`).catch(
        () => undefined,
      );
      if (!r?.ok) return undefined;
      const body = (await r.json()) as { data: { result: { value: [number, string] }[] } };
      const v = body.data.result[0]?.value[1];
      return v === undefined ? undefined : Number(v);
    };
    const deadline = Date.now() + 45_000;
    let up: number | undefined;
    let attempts: number | undefined;
    while (Date.now() < deadline) {
      up = await query('up{job="switchboard"}');
      attempts = await query('sum(switchboard_calls_total{outcome="attempt"})');
      if (up === 1 && attempts === CALLS) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(up, 1, 'the target is up');
    assert.equal(attempts, CALLS, 'call attempts as counted by Prometheus');
    assert.equal(await query('sum(switchboard_calls_total{outcome="answered"})'), CALLS);
    assert.equal(await query('sum(switchboard_sip_requests_total{method="BYE"})'), CALLS);
  } finally {
    prom?.kill('SIGKILL');
    uas.kill();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
