// Linphone remote provisioning: a real linphonec (Debian linphone-cli) started with
// only the portal's provisioning URL in its config fetches its account from the
// portal (HA1, never the password) and registers through the proxy; the registrar
// holds its binding.
//
// Why an earlier try never registered: linphonec 5.1 opens its database at
// $HOME/.local/share/linphone/linphone.db before anything else, and when that
// folder does not exist the core never finishes starting, so it neither fetches
// config-uri nor sends a REGISTER (and `status register` says registered=0, with
// no error on the console). The XML was not at fault. Each run here gets a HOME
// of its own with that folder made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../lib/platform';

const TOKEN = 'e2e-admin-token';

async function api(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

test('linphonec provisioned from the portal URL registers through the proxy', async () => {
  const p = await startPlatform({
    targets: ['registrar', 'sip-proxy', 'portal'],
    env: { SWITCHBOARD_ADMIN_TOKEN: TOKEN },
  });
  const dir = mkdtempSync(join(tmpdir(), 'linphone-'));
  const home = join(dir, 'home');
  mkdirSync(join(home, '.local', 'share', 'linphone'), { recursive: true });
  let child: ReturnType<typeof spawn> | undefined;
  let out = '';
  try {
    const s = await api(p.portal!, 'POST', '/api/v1/subscribers', {
      username: 'lin',
      password: 'l1n-secret',
    });
    assert.equal(s.status, 201);
    const dev = await api(p.portal!, 'POST', `/api/v1/subscribers/${s.body.id}/devices`, {
      vendor: 'linphone',
      model: 'linphonec',
      mac: '02:00:00:00:00:01',
    });
    assert.equal(dev.status, 201);
    const url = dev.body.provisioningUrlWithToken as string;

    // The file itself: Linphone's lpconfig XML with the HA1 and no password.
    const xml = await (await fetch(url)).text();
    assert.match(xml, /<config xmlns="http:\/\/www\.linphone\.org\/xsds\/lpconfig\.xsd"/);
    assert.doesNotMatch(xml, /l1n-secret/);

    // Only the provisioning URL: everything else comes from the portal. Random SIP ports.
    const rc = join(dir, 'linphonerc');
    writeFileSync(rc, `[misc]\nconfig-uri=${url}\n\n[sip]\nsip_port=-1\nsip_tcp_port=-1\n`);
    const log = join(dir, 'linphone.log');
    child = spawn('linphonec', ['-c', rc, '-d', '5', '-l', log], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', (e) => (out += `\nlinphonec could not start (install linphone-cli): ${e.message}\n`));

    // Registered at the registrar (through the proxy), bounded.
    const aor = `sip:lin@${p.domain}`;
    const started = Date.now();
    const deadline = started + 20_000;
    let binding: { aor: string; contact: string; userAgent: string } | undefined;
    while (!binding && Date.now() < deadline) {
      const regs = await api(p.portal!, 'GET', `/api/v1/registrations?aor=${encodeURIComponent(aor)}`);
      binding = regs.body?.items?.[0];
      if (!binding) await new Promise((r) => setTimeout(r, 200));
    }
    let shown = out;
    try {
      shown += readFileSync(log, 'utf8').slice(-4000);
    } catch {
      // no log: linphonec did not start
    }
    assert.ok(binding, `linphonec never registered:\n${shown}`);
    process.stderr.write(`# linphonec provisioned and registered after ${Date.now() - started} ms\n`);
    assert.equal(binding.aor, aor);
    assert.match(binding.userAgent, /Linphone/i);

    // linphonec agrees, and the portal saw the fetch.
    // asked again until it says so: the binding is stored before the 200 reaches linphonec,
    // which answers registered=-1 while its REGISTER is still in progress
    const until = Date.now() + 10_000;
    for (let i = 0; !/registered, identity=sip:lin@/.test(out) && Date.now() < until; i++) {
      if (i % 5 === 0) child.stdin!.write('status register\n');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(out, /registered, identity=sip:lin@example\.com/);
    const devices = await api(p.portal!, 'GET', `/api/v1/subscribers/${s.body.id}/devices`);
    assert.ok(devices.body.items[0].lastFetchAt, 'the fetch is recorded');
  } finally {
    if (child && child.exitCode === null) {
      child.stdin!.write('quit\n');
      const exited = new Promise((r) => child!.once('exit', r));
      const t = setTimeout(() => child!.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
