// Call features and the PSTN through the platform as `npm start` runs it: every setting made
// through the portal's API and read by the proxy from the replicated topics; SIPp phones and gateways.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipRequest } from '@switchboard/sip';
import { metricValue, type RunningPlatform } from '../lib/platform';
import { explain, freePort, ladder, pick } from '../rfc3665/lib';
import { startNaptrServer } from '../lib/dns';
import { enumDomain } from '../../services/sip-proxy/src/routing/enum';
import { call, create, finalResponse, peer, phone, settled, startProvisioned, type Api } from './lib';

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
const CAROL = { username: 'carol', password: 'car0l-Secret' };
const DAVE = { username: 'dave', password: 'dav3-Secret' };
const ERIN = { username: 'erin', password: 'er1n-Secret' };
/** Prepaid with credit for 3 seconds to Germany (0.60 a minute, per second). */
const PAULA = { username: 'paula', password: 'paul4-Secret' };

describe('call features and PSTN gateways', () => {
  let p: RunningPlatform;
  let api: Api;
  let gwPort: number;
  let trunkPort: number;
  let deadPort: number;
  const ids: Record<string, string> = {};

  let dns: Awaited<ReturnType<typeof startNaptrServer>>;
  before(async () => {
    // ENUM: +49 30 5550000 is carol's, on the platform: reached without the PSTN.
    dns = await startNaptrServer({
      [enumDomain('49305550000', 'e164.test')]: [
        { order: 10, preference: 10, flags: 'u', service: 'E2U+sip', regexp: '!^.*$!sip:carol@example.com!' },
      ],
    });
    ({ p, api } = await startProvisioned({
      SWITCHBOARD_SIP_ENUM_SUFFIX: 'e164.test',
      SWITCHBOARD_SIP_ENUM_SERVERS: dns.address,
      SWITCHBOARD_SIP_GATEWAY_FAILURES: '1',
      SWITCHBOARD_SIP_GATEWAY_PROBE_INTERVAL: '1',
    }));
    gwPort = await freePort();
    trunkPort = await freePort();
    deadPort = await freePort();
    for (const s of [ALICE, BOB, CAROL, DAVE, ERIN, PAULA]) {
      const privileges = s === ALICE || s === PAULA ? ['national'] : [];
      ids[s.username] = (await create(api, '/api/v1/subscribers', { ...s, privileges })).id;
    }
    const sub = (u: string) => `/api/v1/subscribers/${ids[u]}`;
    // bob: busy → carol; erin: no answer after 5 s → carol; dave blocks alice; alice: speed dial 7 → bob.
    await create(api, `${sub('bob')}/forwarding`, { condition: 'busy', target: `sip:carol@${p.domain}` });
    await create(api, `${sub('erin')}/forwarding`, {
      condition: 'no-answer',
      target: `sip:carol@${p.domain}`,
      timeout: 5,
    });
    await create(api, `${sub('dave')}/blocklist`, {
      direction: 'incoming',
      pattern: `sip:alice@${p.domain}`,
    });
    await create(api, `${sub('alice')}/speed-dials`, { code: '7', target: `sip:bob@${p.domain}` });
    await create(api, '/api/v1/aliases', { subscriberId: ids.bob, username: '+49301111111', kind: 'did' });
    // Alice has two DIDs and presents the second as her caller ID.
    for (const did of ['+49302222222', '+49303333333'])
      await create(api, '/api/v1/aliases', { subscriberId: ids.alice, username: did, kind: 'did' });
    const notHers = await api('PATCH', sub('alice'), { callerId: '+49301111111' });
    assert.equal(notHers.status, 400, JSON.stringify(notHers.body));
    assert.equal(notHers.body.field, 'callerId');
    assert.equal(
      (await api('PATCH', sub('alice'), { callerId: '+49303333333' })).body.callerId,
      '+49303333333',
    );
    // German numbers: a dead gateway first, then a live one (SIPp); the trunk delivers calls to DIDs.
    const dead = await create(api, '/api/v1/gateways', {
      name: 'dead',
      address: `127.0.0.1:${deadPort}`,
      priority: 0,
    });
    const live = await create(api, '/api/v1/gateways', {
      name: 'live',
      address: `127.0.0.1:${gwPort}`,
      priority: 1,
      strip: 2,
      prefix: '0',
    });
    await create(api, '/api/v1/gateways', { name: 'trunk', address: `127.0.0.1:${trunkPort}` });
    await create(api, '/api/v1/routes', { name: 'de', prefix: '49', gatewayIds: [dead.id, live.id] });
    const plan = await api('PUT', '/api/v1/rate-plans/std', {
      currency: 'EUR',
      ratesCsv: 'prefix,name,price_per_minute,increment\n49,Germany,0.60,1/1\n44,United Kingdom,0.60,1/1\n',
    });
    assert.equal(plan.status, 200, JSON.stringify(plan.body));
    for (const [who, amount] of [
      ['alice', '10.00'],
      ['paula', '0.03'],
    ]) {
      const credit = await api('POST', `${sub(who)}/credit`, { amount, reason: 'test top-up' });
      assert.equal(credit.status, 200, JSON.stringify(credit.body));
    }
    await settled(p);
  });
  after(async () => {
    await p?.stop();
    await dns?.close();
  });

  test('forwarding on busy: bob is busy, carol gets the call with Diversion and History-Info', async () => {
    const bob = await phone(p, BOB, 'busy.xml');
    const carol = await phone(p, CAROL, 'answer.xml');
    const alice = await call(p, ALICE, 'bob');
    const [b, c] = [await bob.done, await carol.done];
    assert.equal(finalResponse(alice).status, 200, explain(alice, b, c));
    const inv = pick<SipRequest>(c.log, '< INVITE');
    assert.match(
      inv.getHeader('Diversion') ?? '',
      new RegExp(`^<sip:bob@${p.domain}>;reason=user-busy;counter=1`),
    );
    const hi = inv.getHeaderValues('History-Info');
    assert.equal(hi.length, 2, hi.join(' | '));
    assert.match(hi[1], /;cause=486>;index=1\.1/);
  });

  test('forwarding on no answer: erin rings for 5 s, is cancelled, carol answers', async () => {
    const erin = await phone(p, ERIN, 'ring.xml');
    const carol = await phone(p, CAROL, 'answer.xml');
    const started = Date.now();
    const alice = await call(p, ALICE, 'erin', 200, 25_000);
    const [e, c] = [await erin.done, await carol.done];
    assert.equal(finalResponse(alice).status, 200, explain(alice, e, c));
    const ringing = pick<SipRequest>(c.log, '< INVITE');
    assert.match(ringing.getHeader('Diversion') ?? '', /reason=no-answer/);
    assert.ok(Date.now() - started >= 5000, 'carol was reached only after the no-answer time');
    assert.equal(e.result.failed, 0, explain(e));
  });

  test('a block list declines a caller with 603', async () => {
    const before =
      metricValue(await p.metrics(), 'switchboard_calls_refused_total', 'reason="incoming-blocked"') ?? 0;
    const alice = await call(p, ALICE, 'dave');
    assert.equal(finalResponse(alice).status, 603, explain(alice));
    const afterCount = metricValue(
      await p.metrics(),
      'switchboard_calls_refused_total',
      'reason="incoming-blocked"',
    );
    assert.equal(afterCount, before + 1);
  });

  test('a speed dial reaches its target', async () => {
    const bob = await phone(p, BOB, 'answer.xml');
    const alice = await call(p, ALICE, '7');
    const b = await bob.done;
    assert.equal(finalResponse(alice).status, 200, explain(alice, b));
    assert.match(pick<SipRequest>(b.log, '< INVITE').getHeader('To') ?? '', /sip:7@/);
  });

  test('an international call without the privilege is refused with 403 saying why', async () => {
    const alice = await call(p, ALICE, '00442079460000');
    const res = finalResponse(alice);
    assert.equal(res.status, 403, explain(alice));
    assert.match(res.reason, /international/);
    const short = await call(p, ALICE, '0301');
    assert.equal(finalResponse(short).status, 484, explain(short));
  });

  test('a PSTN call fails over from a dead gateway to the live one, with the caller asserted', async () => {
    const gw = await peer('answer.xml', { port: gwPort, timeoutMs: 20_000 });
    const alice = await call(p, ALICE, '030-1234567');
    const g = await gw.done;
    assert.equal(finalResponse(alice).status, 200, explain(alice, g));
    const inv = pick<SipRequest>(g.log, '< INVITE');
    // E.164 49301234567, the gateway's strip 2 and prefix 0.
    assert.equal(inv.uriText, `sip:0301234567@127.0.0.1:${gwPort}`);
    // Toward the gateway, alice is asserted as the DID she chose (RFC 3325).
    assert.equal(inv.getHeader('P-Asserted-Identity'), `<sip:+49303333333@${p.domain};user=phone>`);
    const text = await p.metrics();
    assert.ok((metricValue(text, 'switchboard_gateway_events_total', 'event="failover"') ?? 0) >= 1);
    // The dead gateway is marked down (one failure here) and probed with OPTIONS until it answers.
    assert.equal(metricValue(text, 'switchboard_gateways_down'), 1);
    const back = await peer('options.xml', { port: deadPort, timeoutMs: 10_000 });
    const o = await back.done;
    assert.equal(o.result.successful, 1, explain(o));
    for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
      if (metricValue(await p.metrics(), 'switchboard_gateways_down') === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(metricValue(await p.metrics(), 'switchboard_gateways_down'), 0);
  });

  test('a call from the trusted trunk to a DID reaches its subscriber without a challenge', async () => {
    const bob = await phone(p, BOB, 'answer.xml');
    const gw = await peer('gateway-call.xml', {
      port: trunkPort,
      remote: p.sip.udp,
      keys: { callee: '+49301111111' },
      timeoutMs: 20_000,
    });
    const [g, b] = [await gw.done, await bob.done];
    assert.equal(g.result.successful, 1, explain(g, b));
    const inv = pick<SipRequest>(b.log, '< INVITE');
    assert.match(inv.getHeader('From') ?? '', /\+442079460000/);
    // Anyone else calling the same DID from elsewhere is not a gateway: relaying to a number needs credentials.
    const stranger = await peer('gateway-call.xml', {
      remote: p.sip.udp,
      keys: { callee: '+49309999999' },
      timeoutMs: 5000,
    });
    const s = await stranger.done;
    assert.equal(s.result.successful, 0, explain(s));
  });

  test('a prepaid call is cut by the proxy when the credit runs out, rated to the cent, balance zero', async () => {
    const gw = await peer('answer.xml', { port: gwPort, timeoutMs: 30_000 });
    const started = Date.now();
    const paula = await call(p, PAULA, '0301234567', 20_000, 30_000);
    const g = await gw.done;
    assert.equal(finalResponse(paula).status, 200, explain(paula, g));
    // Both sides got the proxy's BYE (the caller wanted to talk for 20 s).
    const toCaller = pick<SipRequest>(paula.log, '< BYE');
    assert.match(toCaller.getHeader('Reason') ?? '', /Credit time exhausted/);
    pick<SipRequest>(g.log, '< BYE');
    const talked = Date.now() - started;
    assert.ok(talked < 15_000, `cut after ${talked} ms`);
    assert.equal(metricValue(await p.metrics(), 'switchboard_calls_cut_total'), 1);
    // The CDR: 3 s at 0.01 a second; the balance 0.00.
    const id = ids.paula;
    let cdrs: { items: { price: string; billableSeconds: number; disposition: string }[] } = { items: [] };
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      cdrs = (await api('GET', `/api/v1/subscribers/${id}/cdrs`)).body;
      if (cdrs.items?.length) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(cdrs.items.length, 1, JSON.stringify(cdrs));
    const [cdr] = cdrs.items;
    assert.equal(cdr.disposition, 'answered');
    assert.ok(cdr.billableSeconds >= 3 && cdr.billableSeconds <= 4, JSON.stringify(cdr));
    // 0.60 a minute billed per second: one cent a second, to the minor unit.
    assert.equal(Math.round(Number(cdr.price) * 1e6), cdr.billableSeconds * 10_000, JSON.stringify(cdr));
    const balance = (await api('GET', `/api/v1/subscribers/${id}/balance`)).body;
    // The 0.03 of credit less the price: exactly zero, or one increment (0.01) below it when the cut came late.
    assert.equal(balance.balanceMicros, 30_000 - cdr.billableSeconds * 10_000, JSON.stringify(balance));
    assert.ok(balance.balanceMicros === 0 || balance.balanceMicros === -10_000, JSON.stringify(balance));
  });

  test('blind transfer: bob REFERs alice to carol; REFER, NOTIFY and the new INVITE with Referred-By pass the proxy', async () => {
    const transferor = await phone(p, BOB, 'transferor.xml', {
      keys: { user: 'bob', target: 'carol', dom: p.domain },
    });
    const carol = await phone(p, CAROL, 'answer.xml');
    const alice = await peer('transferee.xml', {
      remote: p.sip.udp,
      keys: { user: ALICE.username, callee: 'bob', dom: p.domain },
      args: ['-au', ALICE.username, '-ap', ALICE.password],
      timeoutMs: 20_000,
    });
    const [a, b, c] = [await alice.done, await transferor.done, await carol.done];
    assert.equal(a.result.successful, 1, explain(a, b, c));
    assert.equal(b.result.successful, 1, explain(a, b, c));
    const refer = pick<SipRequest>(a.log, '< REFER');
    assert.equal(refer.getHeader('Refer-To'), `<sip:carol@${p.domain}>`);
    const inv = pick<SipRequest>(c.log, '< INVITE');
    assert.match(inv.getHeader('Referred-By') ?? '', new RegExp(`sip:bob@${p.domain}`));
    assert.equal(pick<SipRequest>(b.log, '< NOTIFY', 1).body.toString().trim(), 'SIP/2.0 200 OK');
  });

  test('the proxy registers with a SIP trunk that asks for it, answers its challenge, and refreshes in time', async () => {
    const registrar = await peer('trunk-registrar.xml', { timeoutMs: 15_000 });
    await create(api, '/api/v1/gateways', {
      name: 'registering-trunk',
      address: `127.0.0.1:${registrar.port}`,
      register: true,
      username: 'trunkuser',
      password: 'trunk-s3cret',
    });
    const r = await registrar.done;
    assert.equal(r.result.successful, 1, explain(r));
    // REGISTERs only: a stray request for an earlier SIPp that had this port (a retransmission) may come too
    const regs = r.log
      .filter((l) => l.dir === 'recv')
      .map((l) => l.msg as SipRequest)
      .filter((m) => m.method === 'REGISTER');
    assert.equal(regs.length, 4, explain(r));
    assert.match(regs[1].getHeader('Authorization') ?? '', /username="trunkuser"/);
    assert.match(regs[0].getHeader('Contact') ?? '', /^<sip:trunkuser@127\.0\.0\.1:\d+>/);
    assert.ok(
      (metricValue(await p.metrics(), 'switchboard_trunk_registrations_total', 'outcome="registered"') ??
        0) >= 2,
    );
  });

  test('feature codes: *72<number> forwards every call there, *73 stops it (applied by the portal)', async () => {
    const sub = `/api/v1/subscribers/${ids.dave}/forwarding`;
    const on = await call(p, DAVE, '*72+49301111111');
    assert.equal(finalResponse(on).status, 200, explain(on));
    // The portal applied it: the rule is in its API, as if made there.
    let rules: { items: { condition: string; target: string }[] } = { items: [] };
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && !rules.items.length;) {
      await new Promise((r) => setTimeout(r, 200));
      rules = (await api('GET', sub)).body;
    }
    assert.deepEqual(
      rules.items.map((r) => [r.condition, r.target]),
      [['always', '+49301111111']],
    );
    await settled(p);
    // Carol calls dave (not registered): the call reaches bob, whose DID dave forwards to.
    const bob = await phone(p, BOB, 'answer.xml');
    const forwarded = await call(p, CAROL, 'dave');
    const b = await bob.done;
    assert.equal(finalResponse(forwarded).status, 200, explain(forwarded, b));
    assert.match(pick<SipRequest>(b.log, '< INVITE').getHeader('Diversion') ?? '', /reason=unconditional/);

    const off = await call(p, DAVE, '*73');
    assert.equal(finalResponse(off).status, 200, explain(off));
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && rules.items.length;) {
      await new Promise((r) => setTimeout(r, 200));
      rules = (await api('GET', sub)).body;
    }
    assert.equal(rules.items.length, 0);
    await settled(p);
    const unforwarded = await call(p, CAROL, 'dave');
    assert.equal(finalResponse(unforwarded).status, 480, explain(unforwarded));
    // A code without its number is incomplete.
    assert.equal(finalResponse(await call(p, DAVE, '*72')).status, 484);
  });

  test('ENUM: a number with an E2U+sip NAPTR is reached at its SIP URI, not through a gateway', async () => {
    const carol = await phone(p, CAROL, 'answer.xml');
    const alice = await call(p, ALICE, '0305550000');
    const c = await carol.done;
    assert.equal(finalResponse(alice).status, 200, explain(alice, c));
    assert.match(pick<SipRequest>(c.log, '< INVITE').uriText, /^sip:carol@127\.0\.0\.1/);
  });

  test('a gateway that challenges gets the INVITE again with its credentials (uac_auth), and the call completes', async () => {
    const gw = await peer('gateway-challenge.xml', { timeoutMs: 20_000 });
    const authgw = await create(api, '/api/v1/gateways', {
      name: 'carrier',
      address: `127.0.0.1:${gw.port}`,
      username: 'gwuser',
      password: 'gw-s3cret',
    });
    await create(api, '/api/v1/routes', { name: 'hamburg', prefix: '4940', gatewayIds: [authgw.id] });
    await settled(p);
    const alice = await call(p, ALICE, '040123456');
    const g = await gw.done;
    assert.equal(finalResponse(alice).status, 200, explain(alice, g));
    assert.equal(g.result.successful, 1, explain(g));
    assert.match(
      pick<SipRequest>(g.log, '< INVITE', 1).getHeader('Authorization') ?? '',
      /username="gwuser"/,
    );
    // The caller never saw the gateway's challenge.
    assert.ok(!ladder(alice.log).includes('< 401'), explain(alice));
  });

  test("a domain's own dial plan (set in the portal) turns what its phones dial into E.164", async () => {
    const domains = (await api('GET', `/api/v1/domains?search=${p.domain}`)).body;
    const id = domains.items.find((d: { domain: string }) => d.domain === p.domain).id;
    const set = await api('PATCH', `/api/v1/domains/${id}`, { dialPlan: { countryCode: '44' } });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(set.body.dialPlan, {
      countryCode: '44',
      nationalPrefix: '0',
      internationalPrefix: '00',
    });
    const bad = await api('PATCH', `/api/v1/domains/${id}`, { dialPlan: { countryCode: '0' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, 'dialPlan.countryCode');
    await settled(p);
    try {
      // 020 7946 0000 is now +44 20 7946 0000: a national call here, and no route serves +44.
      const uk = await call(p, ALICE, '02079460000');
      const res = finalResponse(uk);
      assert.equal(res.status, 404, explain(uk));
      assert.equal(res.reason, 'No Route to Destination');
    } finally {
      assert.equal((await api('PATCH', `/api/v1/domains/${id}`, { dialPlan: null })).status, 200);
    }
  });
});
