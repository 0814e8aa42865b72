// The portal's SIP trace page: a call made with SIPp through the platform is
// found by its Call-ID in a real Chromium and drawn as a ladder (a column per
// host, an arrow per message), with credentials masked in the message shown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startPlatform } from '../lib/platform';
import { freePort } from '@switchboard/platform/testing';
import { sipp } from '../lib/sipp';
import { register } from '../lib/ua';

const TOKEN = 'e2e-admin-token';
const SHOTS = join(import.meta.dirname, '..', '..', 'services', 'portal', 'test-results');

test('an administrator finds a SIPp call by Call-ID on the SIP trace page and sees its ladder', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'erin', password: 'pw-erin' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32', SWITCHBOARD_ADMIN_TOKEN: TOKEN },
  });
  const uasPort = await freePort();
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '1'], {
    timeoutMs: 30_000,
  });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  try {
    assert.ok(p.portal, 'the portal runs');
    const admin = await fetch(`${p.portal}/api/v1/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: 'admin-password' }),
    });
    assert.equal(admin.status, 201);
    // Store every message from now on (the proxy's run-time switch).
    const cfg = await fetch(`${p.proc.ops.url}/sip/trace/config`, {
      method: 'POST',
      body: JSON.stringify({ global: true }),
    });
    assert.equal(cfg.status, 200);

    const reg = await register({
      proxy: p.sip.udp,
      user: 'erin',
      password: 'pw-erin',
      domain: p.domain,
      contact: `sip:erin@127.0.0.1:${uasPort}`,
    });
    assert.equal(reg.status, 200);
    const call = await sipp(
      [
        '-sn',
        'uac',
        '-s',
        'erin',
        '-i',
        '127.0.0.1',
        '-p',
        '0',
        '-m',
        '1',
        `${p.sip.udp.host}:${p.sip.udp.port}`,
      ],
      { timeoutMs: 30_000 },
    ).done;
    assert.equal(call.successful, 1, call.stderr);

    // The call's Call-ID, from the portal's API over the proxy's trace (INVITE to erin).
    const api = async (q: string) => {
      const r = await fetch(`${p.portal}/api/v1/sip-trace?${q}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      return {
        status: r.status,
        body: (await r.json()) as { messages: { callId: string; summary: string }[] },
      };
    };
    const invites = await api('number=erin&method=INVITE');
    assert.equal(invites.status, 200);
    const callId = invites.body.messages.find((m) => m.summary.startsWith('INVITE sip:erin@'))?.callId;
    assert.ok(callId, 'the INVITE is in the trace');
    // Wait (bounded) until the BYE's 200 is stored too.
    const deadline = Date.now() + 10_000;
    let stored = await api(`callId=${encodeURIComponent(callId)}`);
    while (
      stored.body.messages.filter((m) => m.summary.startsWith('BYE')).length < 2 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 100));
      stored = await api(`callId=${encodeURIComponent(callId)}`);
    }
    const n = stored.body.messages.length;
    assert.ok(n >= 8, `a call through the proxy is at least 8 messages, got ${n}`);
    // A bad query is a 400 naming the field.
    const bad = await fetch(`${p.portal}/api/v1/sip-trace?since=yesterday`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, 'since');

    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(p.portal);
    await page.getByLabel('Login').fill('admin');
    await page.getByLabel('Password', { exact: true }).fill('admin-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Subscribers' }).waitFor();
    await page.getByRole('button', { name: 'SIP trace' }).click();
    await page.getByLabel('Call-ID').fill(callId);
    await page.getByRole('button', { name: 'Search trace' }).click();
    await page.getByRole('heading', { name: `Call-ID ${callId}: ${n} messages` }).waitFor();

    const ladder = page.locator('svg.ladder');
    await ladder.waitFor();
    // Columns: the caller (SIPp UAC), the proxy, the callee (SIPp UAS).
    const hosts = await ladder
      .locator('g.host')
      .evaluateAll((gs) => gs.map((g) => g.getAttribute('data-host')));
    assert.equal(hosts.length, 3, `hosts: ${hosts.join(' ')}`);
    assert.equal(hosts[1], 'proxy');
    assert.equal(hosts[2], `127.0.0.1:${uasPort}`);
    const arrows = ladder.locator('g.arrow');
    assert.equal(await arrows.count(), n);
    const labels = await ladder.locator('g.arrow .arrow-label').allTextContents();
    for (const want of ['INVITE', '180 Ringing', '200 OK', 'ACK', 'BYE']) {
      assert.ok(labels.includes(want), `ladder lacks ${want}: ${labels.join(', ')}`);
    }
    // The first INVITE goes from the caller to the proxy, then from the proxy to erin's phone.
    const inv = await arrows.evaluateAll((gs) =>
      gs
        .filter((g) => g.querySelector('.arrow-label')?.textContent === 'INVITE')
        .map((g) => [g.getAttribute('data-from'), g.getAttribute('data-to')]),
    );
    assert.deepEqual(inv[0], [hosts[0], 'proxy']);
    assert.deepEqual(inv[1], ['proxy', hosts[2]]);
    assert.ok(
      await page.getByRole('button', { name: /^180 Ringing from 127\.0\.0\.1:\d+ to proxy at \+\d/ }).count(),
    );

    // A click shows the message.
    await arrows.first().click();
    await page
      .locator('#trace-message')
      .filter({ hasText: `Call-ID: ${callId}` })
      .waitFor();
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, 'admin-sip-trace.png'), fullPage: true });
  } finally {
    await browser.close();
    uas.kill();
    await p.stop();
  }
});
