// SIP trace: the CLI's live view and the stored search show a real call through the proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trace } from '../../cli/trace';
import { startPlatform } from '../lib/platform';
import { freePort } from '@switchboard/platform/testing';
import { sipp } from '../lib/sipp';
import { register } from '../lib/ua';

test('switchboard trace follows a live call; the stored trace finds it by Call-ID with credentials masked', async () => {
  const p = await startPlatform({
    subscribers: [{ username: 'erin', password: 'pw-erin' }],
    env: { SWITCHBOARD_SIP_TRUSTED: '127.0.0.1/32' },
  });
  const uasPort = await freePort();
  const uas = sipp(['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '1'], {
    timeoutMs: 30_000,
  });
  const abort = new AbortController();
  const lines: string[] = [];
  const following = trace([`--url=${p.proc.ops.url}`, '--number=erin'], (l) => lines.push(l), abort.signal);
  try {
    // Store everything from now on (switched at run time, no restart).
    const cfg = await fetch(`${p.proc.ops.url}/sip/trace/config`, {
      method: 'POST',
      body: JSON.stringify({ global: true }),
    });
    assert.deepEqual(await cfg.json(), { global: true, users: [] });
    const bad = await fetch(`${p.proc.ops.url}/sip/trace/config`, {
      method: 'POST',
      body: '{"global":"yes"}',
    });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, 'global');

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
    assert.equal(call.successful, 1);

    const deadline = Date.now() + 10_000;
    while (!lines.some((l) => l.includes('BYE sip:')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const shown = lines.join('\n');
    for (const s of [
      'REGISTER sip:',
      'SIP/2.0 401',
      'INVITE sip:erin@',
      'SIP/2.0 180',
      'SIP/2.0 200 OK',
      'BYE sip:',
    ]) {
      assert.ok(shown.includes(s), `live trace lacks ${s}:\n${shown}`);
    }
    assert.match(shown, /<-- UDP/);
    assert.match(shown, /--> UDP/);

    const invite = lines.find((l) => l.includes('INVITE sip:erin@'))!;
    const callId = /\[([^\]]+)\]$/.exec(invite)![1];
    const stored = (await (
      await fetch(`${p.proc.ops.url}/sip/trace?callId=${encodeURIComponent(callId)}`)
    ).json()) as {
      messages: { summary: string; message: string }[];
    };
    assert.ok(
      stored.messages.length >= 8,
      `a call through the proxy is at least 8 messages, got ${stored.messages.length}`,
    );
    const regs = (await (await fetch(`${p.proc.ops.url}/sip/trace?method=REGISTER`)).json()) as {
      messages: { message: string }[];
    };
    const withAuth = regs.messages.find((m) => /^Authorization:/im.test(m.message));
    assert.ok(withAuth, 'the authenticated REGISTER is stored');
    assert.match(withAuth.message, /response="\*\*\*"/);
  } finally {
    abort.abort();
    await following.catch(() => {});
    uas.kill();
    await p.stop();
  }
});
