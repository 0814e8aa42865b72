import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { RouteRecord, SubscriberRecord } from '@switchboard/contracts';
import { parseUri } from '@switchboard/sip';
import { Domains } from '../domains';
import { failureCondition, forwardingFor, screenIncoming, screenOutgoing, speedDial } from './features';
import { GatewayTable, gatewayUri } from './gateways';
import { DEFAULT_DIAL_PLAN, classOf, normalizeDialled } from './numbers';
import { Router, callerIdentity, didOf, type Caller } from './router';

const plan = { ...DEFAULT_DIAL_PLAN, countryCode: '49' };

const sub = (user: string, extra: Partial<SubscriberRecord> = {}): SubscriberRecord => ({
  aor: `sip:${user}@example.com`,
  username: user,
  domain: 'example.com',
  ha1: '',
  ha1Sha256: '',
  enabled: true,
  privileges: [],
  ...extra,
});

describe('dial plan', () => {
  it('normalises international, national and + forms to E.164', () => {
    assert.deepEqual(normalizeDialled('+49 30 1234567', plan), { kind: 'e164', number: '49301234567' });
    assert.deepEqual(normalizeDialled('0044-20-7946-0000', plan), { kind: 'e164', number: '442079460000' });
    assert.deepEqual(normalizeDialled('0301234567', plan), { kind: 'e164', number: '49301234567' });
    assert.deepEqual(normalizeDialled('alice', plan), { kind: 'name' });
    assert.equal(normalizeDialled('0301', plan).kind, 'incomplete');
    assert.equal(normalizeDialled('12345', plan).kind, 'incomplete');
    // Without a country code, a national number cannot be completed.
    assert.equal(normalizeDialled('0301234567', DEFAULT_DIAL_PLAN).kind, 'incomplete');
  });

  it('classifies destinations', () => {
    const t = { countryCode: '49', premium: ['49900'] };
    assert.equal(classOf('49301234567', t), 'national');
    assert.equal(classOf('4990012345', t), 'premium');
    assert.equal(classOf('442079460000', t), 'international');
  });
});

describe('features', () => {
  it('expands speed dials of 1 to 3 digits only', () => {
    const s = sub('alice', { speedDials: [{ code: '2', target: 'sip:bob@example.com' }] });
    assert.equal(speedDial(s, '2'), 'sip:bob@example.com');
    assert.equal(speedDial(s, '3'), undefined);
    assert.equal(speedDial(s, 'bob'), undefined);
  });

  it('screens incoming callers by URI, number prefix and anonymity, and in allow-only mode', () => {
    const s = sub('bob', {
      blockList: [
        { direction: 'incoming', pattern: 'sip:mallory@evil.example', action: 'block' },
        { direction: 'incoming', pattern: '+4930*', action: 'block' },
        { direction: 'incoming', pattern: 'anonymous', action: 'block' },
      ],
    });
    const who = (u: string, privacy?: string) => callerIdentity(parseUri(u), undefined, privacy);
    assert.deepEqual(screenIncoming(s, who('sip:mallory@EVIL.example')), { allowed: false, why: 'blocked' });
    assert.deepEqual(screenIncoming(s, who('sip:+4930555@gw.example')), { allowed: false, why: 'blocked' });
    assert.deepEqual(screenIncoming(s, who('sip:alice@example.com', 'id')), {
      allowed: false,
      why: 'blocked',
    });
    assert.deepEqual(screenIncoming(s, who('sip:alice@example.com')), { allowed: true });
    const only = sub('carol', {
      blockList: [{ direction: 'incoming', pattern: 'sip:alice@example.com', action: 'allow' }],
    });
    assert.deepEqual(screenIncoming(only, who('sip:alice@example.com')), { allowed: true });
    assert.deepEqual(screenIncoming(only, who('sip:dave@example.com')), {
      allowed: false,
      why: 'not-allowed',
    });
  });

  it('screens outgoing numbers by the caller list and global prefixes', () => {
    const list = [{ direction: 'outgoing', pattern: '44*', action: 'block' }];
    assert.equal(screenOutgoing(list, '442079460000', []).allowed, false);
    assert.equal(screenOutgoing(list, '49301234567', ['+49900']).allowed, true);
    assert.equal(screenOutgoing([], '4990012345', ['+49900']).allowed, false);
  });

  it('maps failures to forwarding conditions', () => {
    assert.equal(failureCondition(486), 'busy');
    assert.equal(failureCondition(600), 'busy');
    assert.equal(failureCondition(480), 'unavailable');
    assert.equal(failureCondition('no-binding'), 'unavailable');
    assert.equal(failureCondition(403), undefined);
    const s = sub('bob', { forwarding: [{ condition: 'busy', target: 'sip:vm@example.com' }] });
    assert.equal(forwardingFor(s, 'busy')?.target, 'sip:vm@example.com');
    assert.equal(forwardingFor(s, 'always'), undefined);
  });
});

describe('gateways', () => {
  const table = (random = () => 0) => {
    const t = new GatewayTable(2, random, () => 0);
    t.apply('gateway:a', { kind: 'gateway', id: 'a', address: '192.0.2.1', strip: 2, prefix: '0' });
    t.apply('gateway:b', { kind: 'gateway', id: 'b', address: '192.0.2.2:5070', transport: 'tcp' });
    t.apply('gateway:c', { kind: 'gateway', id: 'c', address: '192.0.2.3', enabled: false });
    t.apply('route:all', { kind: 'route', id: 'all', prefix: '', gatewayIds: ['b'] });
    t.apply('route:de', { kind: 'route', id: 'de', prefix: '+49', gatewayIds: ['a', 'b', 'c'] });
    return t;
  };

  it('routes by longest prefix, leaves disabled gateways out, rewrites the number', () => {
    const t = table();
    const de = t.select('49301234567', 'example.com');
    assert.deepEqual(
      de.hops.map((h) => h.uri),
      ['sip:0301234567@192.0.2.1', 'sip:49301234567@192.0.2.2:5070;transport=tcp'],
    );
    assert.deepEqual(
      t.select('442079460000', 'example.com').hops.map((h) => h.gateway.id),
      ['b'],
    );
    // A domain's own route for a prefix replaces the one for every domain (for that domain only).
    t.apply('route:de-own', {
      kind: 'route',
      id: 'de-own',
      prefix: '49',
      gatewayIds: ['b'],
      domain: 'example.com',
    });
    assert.deepEqual(
      t.select('49301234567', 'example.com').hops.map((h) => h.gateway.id),
      ['b'],
    );
    assert.equal(t.select('49301234567', 'other.example').hops[0].gateway.id, 'a');
    t.apply('route:all', null);
    assert.equal(t.select('442079460000', 'example.com').routed, false);
  });

  it("property: the routes chosen are those a scan of every route finds (longest prefix, a domain's own routes first)", () => {
    const op = fc.record({
      id: fc.integer({ min: 0, max: 7 }),
      // null: the route is deleted
      prefix: fc.option(fc.stringMatching(/^\+?[1-3]{0,3}$/), { nil: null }),
      domain: fc.constantFrom(undefined, 'a.example', 'b.example'),
    });
    const digits = (r: RouteRecord) => r.prefix.replace(/^\+/, '');
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 30 }),
        fc.stringMatching(/^[1-3]{0,5}$/),
        fc.constantFrom('a.example', 'b.example'),
        (ops, number, domain) => {
          const t = new GatewayTable(3, () => 0);
          const live = new Map<string, RouteRecord>();
          ops.forEach((o, i) => {
            const id = `r${o.id}`;
            t.apply(`gateway:${id}`, { kind: 'gateway', id, address: `${id}.example` });
            if (o.prefix === null) {
              t.apply(`route:${id}`, null);
              live.delete(id);
              return;
            }
            // Each change its own priority, so that the order chosen is the priorities' only.
            const r: RouteRecord = { kind: 'route', id, prefix: o.prefix, gatewayIds: [id], priority: i };
            if (o.domain) r.domain = o.domain;
            t.apply(`route:${id}`, r);
            live.set(id, r);
          });
          const fits = [...live.values()].filter(
            (r) => (!r.domain || r.domain === domain) && number.startsWith(digits(r)),
          );
          const longest = Math.max(-1, ...fits.map((r) => digits(r).length));
          let best = fits.filter((r) => digits(r).length === longest);
          if (best.some((r) => r.domain)) best = best.filter((r) => r.domain);
          best.sort((a, b) => b.priority! - a.priority!);
          const got = t.select(number, domain);
          assert.deepEqual(
            got.hops.map((h) => h.gateway.id),
            best.map((r) => r.id),
          );
          assert.equal(got.routed, best.length > 0);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('orders by priority, then by weight', () => {
    const t = new GatewayTable(3, () => 0.9);
    t.apply('gateway:x', { kind: 'gateway', id: 'x', address: 'x.example', weight: 1 });
    t.apply('gateway:y', { kind: 'gateway', id: 'y', address: 'y.example', weight: 9 });
    t.apply('gateway:z', { kind: 'gateway', id: 'z', address: 'z.example', priority: 5 });
    t.apply('route:r', { kind: 'route', id: 'r', prefix: '1', gatewayIds: ['z', 'x', 'y'] });
    // random 0.9 of total weight 10 falls in y's share.
    assert.deepEqual(
      t.select('15551234567', 'd').hops.map((h) => h.gateway.id),
      ['y', 'x', 'z'],
    );
  });

  it('marks a gateway down after failures and up when it answers', () => {
    const t = table();
    assert.equal(t.failed('a'), false);
    assert.equal(t.failed('a'), true);
    assert.deepEqual(
      t.select('49301234567', 'example.com').hops.map((h) => h.gateway.id),
      ['b'],
    );
    assert.deepEqual(
      t.down().map((g) => g.id),
      ['a'],
    );
    assert.equal(t.answered('a'), true);
    assert.equal(t.isDown('a'), false);
    assert.equal(t.byAddress('192.0.2.1')?.id, 'a');
    assert.equal(t.byAddress('192.0.2.2', 5070)?.id, 'b');
    assert.equal(t.byAddress('192.0.2.2', 5060), undefined);
    assert.equal(
      gatewayUri({ kind: 'gateway', id: 'g', address: '[2001:db8::1]:5060' }, '1'),
      'sip:1@[2001:db8::1]:5060',
    );
  });
});

describe('router', () => {
  const bob = sub('bob', { aliases: ['sip:robert@example.com', 'sip:+49301111111@example.com'] });
  const alice = sub('alice', {
    privileges: ['national'],
    speedDials: [{ code: '7', target: 'sip:bob@example.com' }],
  });
  const subs = new Map([bob, alice].map((s) => [s.aor, s]));
  const gateways = new GatewayTable();
  gateways.apply('gateway:g', { kind: 'gateway', id: 'g', address: '192.0.2.9' });
  gateways.apply('route:de', { kind: 'route', id: 'de', prefix: '49', gatewayIds: ['g'] });
  const router = new Router({
    domains: new Domains('example.com', []),
    byAor: (aor) => subs.get(aor),
    isRegistered: (aor) => aor === 'sip:static@example.com',
    dialPlan: () => plan,
    classes: () => ({ countryCode: '49', premium: ['49900'] }),
    blockedPrefixes: [],
    gateways,
    mediaServer: '127.0.0.1:5080',
    mailboxUsers: ['*98'],
  });
  router.subscriberChanged(undefined, bob);
  const asAlice: Caller = {
    subscriber: alice,
    trusted: false,
    identity: { anonymous: false, uri: 'sip:alice@example.com' },
  };
  const decide = (uri: string, caller = asAlice) => router.decide(parseUri(uri), caller);

  it('reaches a subscriber by name, alias, DID and speed dial', () => {
    for (const u of [
      'sip:bob@example.com',
      'sip:robert@example.com',
      'sip:+49301111111@example.com',
      'sip:030-1111111@example.com',
      'sip:7@example.com',
    ]) {
      const d = decide(u);
      assert.equal(d.action, 'subscriber', u);
      assert.equal(d.action === 'subscriber' && d.aor, bob.aor, u);
    }
    assert.equal(didOf('sip:+49301111111@example.com'), '49301111111');
    assert.deepEqual(decide('sip:static@example.com'), {
      action: 'subscriber',
      aor: 'sip:static@example.com',
    });
  });

  it('routes numbers to the PSTN within the caller privileges', () => {
    const d = decide('sip:0301234567@example.com');
    assert.equal(d.action, 'pstn');
    assert.equal(d.action === 'pstn' && d.hops[0].uri, 'sip:49301234567@192.0.2.9');
    const intl = decide('sip:+442079460000@example.com');
    assert.equal(intl.action, 'reject');
    assert.equal(intl.action === 'reject' && intl.status, 403);
    assert.match(intl.action === 'reject' ? intl.reason : '', /international/);
    const nobody = decide('sip:nobody@example.com');
    assert.equal(nobody.action === 'reject' && nobody.status, 404);
    const short = decide('sip:030@example.com');
    assert.equal(short.action === 'reject' && short.status, 484);
  });

  it('accepts from a gateway only calls to our numbers', () => {
    const gw: Caller = {
      trusted: true,
      gateway: gateways.get('g'),
      identity: { anonymous: false, number: '4930999' },
    };
    const foreign = decide('sip:+49301111111@192.0.2.100', gw);
    assert.equal(foreign.action === 'reject' && foreign.status, 404);
    assert.equal(decide('sip:+49301111111@example.com', gw).action, 'subscriber');
    const other = decide('sip:+49309999999@example.com', gw);
    assert.equal(other.action === 'reject' && other.status, 404);
  });

  it('sends media server applications to the media server', () => {
    assert.deepEqual(decide('sip:*98@example.com'), { action: 'media', uri: 'sip:*98@127.0.0.1:5080' });
    assert.deepEqual(decide('sip:conf-42@example.com'), {
      action: 'media',
      uri: 'sip:conf-42@127.0.0.1:5080',
    });
  });

  it('declines blocked callers with 603', () => {
    const carol = sub('carol', {
      blockList: [{ direction: 'incoming', pattern: 'sip:alice@example.com', action: 'block' }],
    });
    subs.set(carol.aor, carol);
    const d = decide('sip:carol@example.com');
    assert.equal(d.action === 'reject' && d.status, 603);
  });
});
