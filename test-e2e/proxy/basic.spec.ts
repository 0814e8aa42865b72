// The proxy as `npm start` runs it, with real SIPp on the other side.
import { test } from 'node:test';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { metricValue, startPlatform } from '../lib/platform';
import { sipp } from '../lib/sipp';
import { register } from '../lib/ua';
import { freePort } from '@switchboard/platform/testing';
import { loadUdpSenderAddon } from '@switchboard/sip';

test('a phone registers with digest auth, and 20 calls from a trusted peer reach it through the proxy (SIPp uac → proxy → SIPp uas)', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'bob', password: 'b0b-secret' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32' },
  });
  const uasPort = await freePort();
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '20'], {
    timeoutMs: 60_000,
  });
  try {
    const reg = await register({
      proxy: p.sip.udp,
      user: 'bob',
      password: 'b0b-secret',
      domain: p.domain,
      contact: `sip:bob@127.0.0.1:${uasPort}`,
    });
    assert.equal(reg.status, 200, `REGISTER: ${reg.status} ${reg.reason}`);
    assert.match(reg.getHeader('Contact') ?? '', new RegExp(`<sip:bob@127.0.0.1:${uasPort}>;expires=\\d+`));

    const uac = sipp(
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
        '20',
        '-r',
        '10',
        `${p.sip.udp.host}:${p.sip.udp.port}`,
      ],
      { timeoutMs: 60_000 },
    );
    const r = await uac.done;
    assert.equal(r.failed, 0, r.stdout.slice(-2000) + r.stderr);
    assert.equal(r.successful, 20);
    const u = await uas.done;
    assert.equal(u.successful, 20, u.stderr);
    const metrics = await p.metrics();
    assert.equal(metricValue(metrics, 'switchboard_sip_requests_total', 'method="INVITE"'), 20);
    assert.equal(metricValue(metrics, 'switchboard_calls_total', 'outcome="answered"'), 20);
    // Answered calls are not active calls, though their contexts stay for Timer L (5 s).
    assert.equal(metricValue(metrics, 'switchboard_calls_active'), 0);
    if (!(loadUdpSenderAddon() instanceof Error)) {
      // UDP went out on the native send thread: per call the INVITE, 100, 180, 200, ACK, BYE and its 200
      const sent = metricValue(metrics, 'switchboard_sip_udp_send_thread_datagrams_total', 'outcome="sent"');
      assert.ok(sent !== undefined && sent >= 20 * 7, `datagrams sent by the thread: ${sent}`);
      assert.equal(
        metricValue(metrics, 'switchboard_sip_udp_send_thread_datagrams_total', 'outcome="failed"'),
        0,
      );
    }
    // Every call accounted over RADIUS to the accounting service in the same process: 20 Starts, 20 Stops.
    const deadline = Date.now() + 20_000;
    const radius = (type: string) =>
      p.metrics().then((m) =>
        m
          .split('\n')
          .filter((l) => l.startsWith(`switchboard_radius_requests_total{type="${type}"`))
          .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0),
      );
    while ((await radius('Start')) < 20 || (await radius('Stop')) < 20) {
      assert.ok(
        Date.now() < deadline,
        `accounting: ${await radius('Start')} Starts, ${await radius('Stop')} Stops`,
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(await radius('Start'), 20);
    assert.equal(await radius('Stop'), 20);
  } finally {
    uas.kill();
    await p.stop();
  }
});

test('calling an unknown user is 404 and a subscriber registered nowhere 480', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'carol', password: 'x' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1' },
  });
  try {
    for (const [user, status] of [
      ['nobody', 404],
      ['carol', 480],
    ] as const) {
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
          '3000',
          `${p.sip.udp.host}:${p.sip.udp.port}`,
        ],
        { timeoutMs: 20_000 },
      ).done;
      // The built-in uac expects 180/200: an error response counts as a failed call; the proxy counts what it sent.
      assert.equal(r.failed, 1);
      assert.equal(metricValue(await p.metrics(), 'switchboard_sip_responses_total', `code="${status}"`), 1);
    }
  } finally {
    await p.stop();
  }
});

test('an INVITE from a local user without credentials is challenged with 407 (SIPp sees the challenge)', async () => {
  const p = await startPlatform({ subscribers: [{ username: 'carol', password: 'x' }] });
  try {
    const r = await sipp(
      [
        '-sn',
        'uac',
        '-s',
        'carol',
        '-i',
        '127.0.0.1',
        '-p',
        '0',
        '-m',
        '1',
        '-recv_timeout',
        '3000',
        `${p.sip.udp.host}:${p.sip.udp.port}`,
      ],
      { timeoutMs: 20_000 },
    ).done;
    assert.equal(r.failed, 1);
    assert.equal(metricValue(await p.metrics(), 'switchboard_sip_responses_total', 'code="407"'), 1);
  } finally {
    await p.stop();
  }
});

test('with SWITCHBOARD_SIP_MEDIA_RELAY=always the callee is offered the media proxy, and calls still complete', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'bob', password: 'b0b' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32', SWITCHBOARD_SIP_MEDIA_RELAY: 'always' },
  });
  const uasPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sipp-uas-'));
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '3', '-trace_msg'], {
    timeoutMs: 60_000,
    cwd: dir,
  });
  try {
    const reg = await register({
      proxy: p.sip.udp,
      user: 'bob',
      password: 'b0b',
      domain: p.domain,
      contact: `sip:bob@127.0.0.1:${uasPort}`,
    });
    assert.equal(reg.status, 200);
    const r = await sipp(
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
        '3',
        '-r',
        '3',
        `${p.sip.udp.host}:${p.sip.udp.port}`,
      ],
      {
        timeoutMs: 60_000,
      },
    ).done;
    assert.equal(r.successful, 3, r.stderr);
    assert.equal((await uas.done).successful, 3);
    const log = readdirSync(dir)
      .filter((f) => f.endsWith('_messages.log'))
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    const ports = [...log.matchAll(/^m=audio (\d+) /gm)].map((m) => Number(m[1]));
    assert.ok(ports.length >= 3, 'the UAS saw the offers');
    const relayed = ports.filter((port) => port >= 30000 && port <= 39999);
    assert.ok(relayed.length >= 3, `offers point at relay ports (30000-39999): ${ports.join(', ')}`);
  } finally {
    uas.kill();
    await p.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SWITCHBOARD_SIP_UDP_SEND_THREAD=false: UDP goes through node:dgram, and a phone still registers', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'dave', password: 'd4ve-secret' }],
    env: { SWITCHBOARD_SIP_UDP_SEND_THREAD: 'false' },
  });
  try {
    const reg = await register({ proxy: p.sip.udp, user: 'dave', password: 'd4ve-secret', domain: p.domain });
    assert.equal(reg.status, 200, `REGISTER: ${reg.status} ${reg.reason}`);
    const metrics = await p.metrics();
    assert.ok(metricValue(metrics, 'switchboard_sip_requests_total', 'method="REGISTER"')! >= 2);
    assert.equal(
      metricValue(metrics, 'switchboard_sip_udp_send_thread_datagrams_total', 'outcome="sent"'),
      undefined,
    );
  } finally {
    await p.stop();
  }
});
