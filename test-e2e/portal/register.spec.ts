// The portal as the source of subscribers: a subscriber created over the REST API
// registers through the proxy (the `subscribers` topic reached the proxy's replica),
// a password change and a removal take effect there too, and the portal lists the
// live registration it gets from the registrar over gRPC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startPlatform } from '../lib/platform';
import { register } from '../lib/ua';

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

/** REGISTER until the answer is `want` (the record travels portal → outbox → topic → proxy), bounded. */
async function registerUntil(want: number, o: Parameters<typeof register>[0], timeoutMs = 5000) {
  const start = Date.now();
  for (;;) {
    const r = await register(o);
    if (r.status === want) return { res: r, ms: Date.now() - start };
    if (Date.now() - start > timeoutMs)
      throw new Error(`REGISTER still ${r.status} ${r.reason} after ${timeoutMs} ms (want ${want})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a subscriber created through the portal API registers through the proxy; PATCH and DELETE reach the proxy too', async () => {
  const p = await startPlatform({
    targets: ['registrar', 'sip-proxy', 'portal'],
    env: { SWITCHBOARD_ADMIN_TOKEN: TOKEN },
  });
  try {
    assert.ok(p.portal, 'the portal runs');
    const created = await api(p.portal, 'POST', '/api/v1/subscribers', {
      username: 'alice',
      password: 'secret',
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.aor, `sip:alice@${p.domain}`);

    const ua = { proxy: p.sip.udp, user: 'alice', domain: p.domain };
    const first = await registerUntil(200, { ...ua, password: 'secret' });
    assert.equal(first.res.status, 200);
    // Recorded for the report: how long the record took to reach the proxy.
    process.stderr.write(`# portal → proxy: REGISTER 200 after ${first.ms} ms\n`);

    const regs = await api(
      p.portal,
      'GET',
      `/api/v1/registrations?aor=${encodeURIComponent(`sip:alice@${p.domain}`)}`,
    );
    assert.equal(regs.status, 200);
    assert.equal(regs.body.items.length, 1);
    assert.equal(regs.body.items[0].aor, `sip:alice@${p.domain}`);
    assert.match(regs.body.items[0].contact, /^sip:alice@127\.0\.0\.1:\d+$/);

    // A new SIP password: the old one stops working, the new one works.
    assert.equal(
      (await api(p.portal, 'PATCH', `/api/v1/subscribers/${created.body.id}`, { password: 'n3w-secret' }))
        .status,
      200,
    );
    const refused = await registerUntil(401, { ...ua, password: 'secret' });
    assert.equal(refused.res.status, 401);
    assert.equal((await register({ ...ua, password: 'n3w-secret' })).status, 200);

    // Removed: the phone's binding goes at once and it can no longer register.
    assert.equal((await api(p.portal, 'DELETE', `/api/v1/subscribers/${created.body.id}`)).status, 204);
    const gone = await registerUntil(401, { ...ua, password: 'n3w-secret' });
    assert.equal(gone.res.status, 401);
    const after = await api(
      p.portal,
      'GET',
      `/api/v1/registrations?aor=${encodeURIComponent(`sip:alice@${p.domain}`)}`,
    );
    assert.equal(after.body.items.length, 0);
  } finally {
    await p.stop();
  }
});
