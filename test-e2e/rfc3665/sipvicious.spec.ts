// Abuse protection against the real attack tools (Debian `sipvicious`), loopback only:
// svwar finds no extension (a known and an unknown user are answered alike), svcrack is
// banned before it reaches the password, and the proxy keeps serving legitimate users meanwhile.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metricValue, startPlatform, type RunningPlatform } from '../lib/platform';
import { explain, ladder, ua } from './lib';

/** Run a sipvicious tool to its end (bounded), with its output. */
function tool(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // sipvicious keeps session state under $HOME/.sipvicious: a home of its own per run.
    const home = mkdtempSync(join(tmpdir(), 'sipvicious-'));
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: home },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) =>
      reject(new Error(`${cmd} could not start (install Debian sipvicious): ${e.message}`)),
    );
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

// Numeric extensions, as svwar guesses them; 1234 is also svcrack's target password range.
const SUBSCRIBERS = [
  { username: '100', password: '1234' },
  { username: '150', password: 'x-150-secret' },
  { username: '200', password: 'x-200-secret' },
];

describe('sipvicious against the proxy', () => {
  let p: RunningPlatform;
  before(async () => {
    p = await startPlatform({
      subscribers: SUBSCRIBERS,
      targets: ['registrar', 'sip-proxy'],
      // The rate limit is not what stops svwar here (it would hide the answers): the answers are alike.
      env: { SWITCHBOARD_SIP_PIKE_REQUESTS: '100000', SWITCHBOARD_SIP_BAN_FAILURES: '5' },
    });
  });
  after(() => p?.stop());

  test('svwar (REGISTER and INVITE scans of 90-210) finds no extension: an unknown user gets the same challenge', async () => {
    const target = `udp://${p.sip.udp.host}:${p.sip.udp.port}`;
    for (const method of ['REGISTER', 'INVITE']) {
      const r = await tool('svwar', ['-e90-210', '-m', method, '-t', '0.05', target], 60_000);
      // svwar first probes a random extension; answered like a real one, it has nothing to tell them apart by.
      assert.match(
        r.out,
        /authentication request for an unknown extension/,
        `${method}:\n${r.out.slice(-2000)}`,
      );
      assert.match(r.out, /found nothing/, `${method}:\n${r.out.slice(-2000)}`);
      assert.doesNotMatch(
        r.out,
        /\|\s*(100|150|200)\s*\|/,
        `${method}: svwar listed an extension:\n${r.out.slice(-2000)}`,
      );
    }
    const metrics = await p.metrics();
    assert.ok(
      (metricValue(metrics, 'switchboard_sip_responses_total', 'code="401"') ?? 0) >= 1,
      'REGISTER probes were challenged',
    );
    assert.ok(
      (metricValue(metrics, 'switchboard_sip_responses_total', 'code="407"') ?? 0) >= 1,
      'INVITE probes were challenged',
    );
  });

  test('svcrack is banned after a few guesses and never finds the password; others keep registering', async () => {
    const target = `udp://${p.sip.udp.host}:${p.sip.udp.port}`;
    const before401 = metricValue(await p.metrics(), 'switchboard_sip_responses_total', 'code="401"') ?? 0;
    // The password (1234) is in the range: unbanned, svcrack finds it within seconds. It attacks from 127.0.0.1.
    const attack = tool('svcrack', ['-u', '100', '-r', '1-2000', '-t', '0.05', target], 40_000);
    // Meanwhile a legitimate phone registers from another address (127.0.0.5).
    await new Promise((r) => setTimeout(r, 2000));
    const phone = await ua('2.1-bob.xml', {
      remote: p.sip.udp,
      keys: { user: '200', dom: p.domain, expires: 600 },
      args: ['-i', '127.0.0.5', '-au', '200', '-ap', 'x-200-secret'],
    });
    const reg = await phone.done;
    assert.deepEqual(ladder(reg.log), ['> REGISTER', '< 401', '> REGISTER', '< 200'], explain(reg));
    const r = await attack;
    assert.match(r.out, /since we last received a response - stopping|found nothing/, r.out.slice(-2000));
    assert.doesNotMatch(r.out, /1234/, `svcrack found the password:\n${r.out.slice(-2000)}`);
    const metrics = await p.metrics();
    assert.ok(
      (metricValue(metrics, 'switchboard_banned_sources') ?? 0) >= 1,
      'the attacking source is banned',
    );
    assert.ok(
      (metricValue(metrics, 'switchboard_sip_dropped_total', 'reason="banned"') ?? 0) > 0,
      'its later requests are dropped',
    );
    const answered = (metricValue(metrics, 'switchboard_sip_responses_total', 'code="401"') ?? 0) - before401;
    assert.ok(
      answered <= 12,
      `svcrack got only a few answers before the ban (${answered} 401s, the phone's included)`,
    );
  });
});
