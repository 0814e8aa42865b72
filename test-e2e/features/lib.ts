/**
 * Call features end to end: the platform as `npm start` runs it, every
 * setting provisioned through the portal's REST API (and so replicated to the
 * proxy over the `subscribers` and `routing` topics), SIPp phones and gateways.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SipResponse } from '@switchboard/sip';
import { metricValue, startPlatform, type RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { ladder, ua, type Ua, type UaRun } from '../rfc3665/lib';

export const TOKEN = 'features-admin-token';
const SCENARIOS = new URL('./scenarios/', import.meta.url).pathname;

/** A JSON body from the API, read loosely by tests. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

export interface Api {
  (method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>;
}

export async function startProvisioned(env: Record<string, string> = {}) {
  const p = await startPlatform({
    env: {
      SWITCHBOARD_ADMIN_TOKEN: TOKEN,
      SWITCHBOARD_SIP_COUNTRY_CODE: '49',
      SWITCHBOARD_SIP_BRANCH_TIMEOUT_MS: '1000',
      SWITCHBOARD_SIP_INVITE_TIMEOUT_MS: '15000',
      SWITCHBOARD_RATING_DEFAULT_PLAN: 'std',
      ...env,
    },
  });
  const api: Api = async (method, path, body) => {
    const res = await fetch(p.portal! + path, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return {
      status: res.status,
      body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text,
    };
  };
  return { p, api };
}

/** POST and expect 201 (or 200), returning the body. */
export async function create(api: Api, path: string, body: unknown): Promise<Json> {
  const r = await api('POST', path, body);
  assert.ok(r.status === 201 || r.status === 200, `POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Waits until the portal has published everything provisioned so far (its outbox is drained into the topics). */
export async function settled(p: RunningPlatform): Promise<void> {
  let last = -1;
  let stableSince = Date.now();
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const text = await p.metrics();
    const n =
      (metricValue(text, 'switchboard_portal_published_total', 'topic="subscribers"') ?? 0) +
      (metricValue(text, 'switchboard_portal_published_total', 'topic="routing"') ?? 0);
    if (n !== last) [last, stableSince] = [n, Date.now()];
    else if (Date.now() - stableSince > 400) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A SIPp phone running `scenario`, registered as `user` (its only binding). */
export async function phone(
  p: RunningPlatform,
  user: { username: string; password: string },
  scenario: string,
  o: { timeoutMs?: number; keys?: Record<string, string> } = {},
): Promise<Ua> {
  const u = await ua(join(SCENARIOS, scenario), { timeoutMs: o.timeoutMs ?? 20_000, keys: o.keys });
  const res: SipResponse = await register({
    proxy: p.sip.udp,
    user: user.username,
    password: user.password,
    domain: p.domain,
    contact: `sip:${user.username}@127.0.0.1:${u.port}`,
    expires: 600,
  });
  assert.equal(res.status, 200, `REGISTER ${user.username}: ${res.status}`);
  return u;
}

/** A SIPp UA (gateway or phone not registered) on `port`. */
export function peer(scenario: string, o: Parameters<typeof ua>[1]): Promise<Ua> {
  return ua(join(SCENARIOS, scenario), o);
}

/** A subscriber's call to `callee` (user part) through the proxy; answered calls last `holdMs` unless cut. */
export async function call(
  p: RunningPlatform,
  from: { username: string; password: string },
  callee: string,
  holdMs = 200,
  timeoutMs = 20_000,
): Promise<UaRun> {
  const dir = mkdtempSync(join(tmpdir(), 'features-'));
  const file = join(dir, 'call.xml');
  writeFileSync(file, readFileSync(join(SCENARIOS, 'call.xml'), 'utf8').replace('[hold]', String(holdMs)));
  const u = await ua(file, {
    remote: p.sip.udp,
    keys: { user: from.username, callee, dom: p.domain },
    args: ['-au', from.username, '-ap', from.password],
    timeoutMs,
  });
  return u.done;
}

/** The final response the caller got to its authenticated INVITE. */
export function finalResponse(run: UaRun): SipResponse {
  const finals = run.log
    .filter((l) => l.dir === 'recv' && !l.msg.isRequest)
    .map((l) => l.msg as SipResponse)
    .filter((r) => r.cseq.method === 'INVITE' && r.status >= 200 && r.status !== 407);
  assert.ok(finals.length, `no final response: ${JSON.stringify(ladder(run.log))}`);
  return finals[finals.length - 1];
}
