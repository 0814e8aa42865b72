import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseSipUri } from '../message';
import {
  resolveInputFromUri,
  SipResolver,
  orderSrv,
  withFailover,
  type DnsLookup,
  type NaptrRecord,
  type SrvRecord,
  type Target,
} from './resolver';

function fakeDns(zone: {
  naptr?: Record<string, NaptrRecord[]>;
  srv?: Record<string, SrvRecord[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
}): DnsLookup & { queries: string[] } {
  const queries: string[] = [];
  const look = <T>(kind: string, m: Record<string, T[]> | undefined, name: string): Promise<T[]> => {
    queries.push(`${kind} ${name}`);
    const v = m?.[name];
    if (v) return Promise.resolve(v);
    return Promise.reject(Object.assign(new Error('nodata'), { code: 'ENOTFOUND' }));
  };
  return {
    queries,
    resolveNaptr: (n) => look('NAPTR', zone.naptr, n),
    resolveSrv: (n) => look('SRV', zone.srv, n),
    resolve4: (n) => look('A', zone.a, n),
    resolve6: (n) => look('AAAA', zone.aaaa, n),
  };
}

const naptr = (order: number, pref: number, service: string, replacement: string): NaptrRecord => ({
  flags: 's',
  service,
  regexp: '',
  replacement,
  order,
  preference: pref,
});

const brief = (ts: Target[]) => ts.map((t) => `${t.transport}:${t.address}:${t.port}`);

describe('SipResolver (RFC 3263)', () => {
  test('numeric IPv4 and IPv6 short-circuit DNS', async () => {
    const dns = fakeDns({});
    const r = new SipResolver({ dns });
    assert.deepEqual(brief(await r.resolve({ host: '192.0.2.1' })), ['udp:192.0.2.1:5060']);
    assert.deepEqual(brief(await r.resolve({ host: '[2001:db8::1]', port: 5070, transport: 'tcp' })), [
      'tcp:2001:db8::1:5070',
    ]);
    assert.deepEqual(brief(await r.resolve({ host: '192.0.2.1', secure: true })), ['tls:192.0.2.1:5061']);
    assert.deepEqual(dns.queries, []);
  });

  test('explicit port: A/AAAA only, no NAPTR/SRV', async () => {
    const dns = fakeDns({
      a: { 'sip.example.com': ['192.0.2.5'] },
      aaaa: { 'sip.example.com': ['2001:db8::5'] },
    });
    const r = new SipResolver({ dns });
    assert.deepEqual(brief(await r.resolve({ host: 'sip.example.com', port: 5080 })), [
      'udp:192.0.2.5:5080',
      'udp:2001:db8::5:5080',
    ]);
    assert.deepEqual(dns.queries.sort(), ['A sip.example.com', 'AAAA sip.example.com']);
  });

  test('explicit transport without port: SRV of that transport', async () => {
    const dns = fakeDns({
      srv: { '_sip._tcp.example.com': [{ name: 'p1.example.com', port: 5070, priority: 10, weight: 0 }] },
      a: { 'p1.example.com': ['192.0.2.7'] },
    });
    const r = new SipResolver({ dns, ipv6: false });
    assert.deepEqual(brief(await r.resolve({ host: 'example.com', transport: 'tcp' })), [
      'tcp:192.0.2.7:5070',
    ]);
  });

  test('NAPTR order/preference, then SRV, filtered by supported transports', async () => {
    const dns = fakeDns({
      naptr: {
        'example.com': [
          naptr(50, 50, 'SIP+D2U', '_sip._udp.example.com'),
          naptr(10, 20, 'SIP+D2T', '_sip._tcp.example.com'),
          naptr(10, 10, 'SIPS+D2T', '_sips._tcp.example.com'),
          naptr(5, 5, 'SIP+D2S', '_sip._sctp.example.com'), // unsupported
        ],
      },
      srv: {
        '_sips._tcp.example.com': [{ name: 's.example.com', port: 5061, priority: 1, weight: 0 }],
        '_sip._tcp.example.com': [{ name: 't.example.com', port: 5060, priority: 1, weight: 0 }],
        '_sip._udp.example.com': [{ name: 'u.example.com', port: 5060, priority: 1, weight: 0 }],
      },
      a: { 's.example.com': ['192.0.2.1'], 't.example.com': ['192.0.2.2'], 'u.example.com': ['192.0.2.3'] },
    });
    const r = new SipResolver({ dns, ipv6: false });
    assert.deepEqual(brief(await r.resolve({ host: 'example.com' })), [
      'tls:192.0.2.1:5061',
      'tcp:192.0.2.2:5060',
      'udp:192.0.2.3:5060',
    ]);
    // sips: only secure services
    assert.deepEqual(brief(await r.resolve({ host: 'example.com', secure: true })), ['tls:192.0.2.1:5061']);
    // transports we do not support are skipped
    const udpOnly = new SipResolver({ dns, ipv6: false, transports: ['udp'] });
    assert.deepEqual(brief(await udpOnly.resolve({ host: 'example.com' })), ['udp:192.0.2.3:5060']);
  });

  test('no NAPTR: SRV for each supported transport; no SRV: A with udp/5060', async () => {
    const dns = fakeDns({
      srv: { '_sip._tcp.b.example': [{ name: 'x.b.example', port: 5090, priority: 0, weight: 0 }] },
      a: { 'x.b.example': ['192.0.2.9'], 'c.example': ['192.0.2.10'] },
    });
    const r = new SipResolver({ dns, ipv6: false });
    assert.deepEqual(brief(await r.resolve({ host: 'b.example' })), ['tcp:192.0.2.9:5090']);
    assert.deepEqual(brief(await r.resolve({ host: 'c.example' })), ['udp:192.0.2.10:5060']);
    assert.deepEqual(brief(await r.resolve({ host: 'c.example', secure: true })), ['tls:192.0.2.10:5061']);
  });

  test('SRV "." target means no service', async () => {
    const dns = fakeDns({ srv: { '_sip._udp.d.example': [{ name: '.', port: 0, priority: 0, weight: 0 }] } });
    const r = new SipResolver({ dns, ipv6: false });
    assert.deepEqual(await r.resolve({ host: 'd.example', transport: 'udp' }), []);
  });

  test('DNS errors other than no-data propagate', async () => {
    const dns = fakeDns({});
    dns.resolveNaptr = () => Promise.reject(Object.assign(new Error('boom'), { code: 'EOTHER' }));
    await assert.rejects(new SipResolver({ dns }).resolve({ host: 'e.example' }), /boom/);
  });
});

describe('resolveInputFromUri', () => {
  test('maps scheme, host, port, transport and maddr', async () => {
    assert.deepEqual(
      resolveInputFromUri(parseSipUri('sips:alice@[2001:db8::1]:5071;transport=TCP;maddr=192.0.2.4')),
      {
        host: '[2001:db8::1]',
        port: 5071,
        transport: 'tcp',
        secure: true,
        maddr: '192.0.2.4',
      },
    );
    const r = new SipResolver({ dns: fakeDns({}) });
    assert.deepEqual(
      brief(await r.resolve(resolveInputFromUri(parseSipUri('sips:b@[2001:db8::1]:5071;transport=tcp')))),
      ['tls:2001:db8::1:5071'],
    );
  });
});

describe('orderSrv (RFC 2782)', () => {
  const recs: SrvRecord[] = [
    { name: 'c', port: 1, priority: 20, weight: 0 },
    { name: 'a', port: 1, priority: 10, weight: 90 },
    { name: 'b', port: 1, priority: 10, weight: 10 },
  ];
  test('priority ascending, weight decides within a priority', () => {
    assert.deepEqual(
      orderSrv(recs, () => 0.99).map((r) => r.name),
      ['a', 'b', 'c'],
    );
    // small random: running sum over weight-ascending order picks b (weight 10) first
    assert.deepEqual(
      orderSrv(recs, () => 0.05).map((r) => r.name),
      ['b', 'a', 'c'],
    );
  });
});

describe('withFailover', () => {
  const ts: Target[] = [1, 2, 3].map((i) => ({
    transport: 'udp',
    address: `192.0.2.${i}`,
    port: 5060,
    hostname: 'h',
  }));
  test('moves on after transport error and 503/408, stops on other answers', async () => {
    const tried: string[] = [];
    const res = await withFailover(
      ts,
      async (t) => {
        tried.push(t.address);
        if (t.address.endsWith('.1')) throw new Error('ECONNREFUSED');
        return t.address.endsWith('.2') ? 503 : 486;
      },
      (s) => s,
    );
    assert.deepEqual(tried, ['192.0.2.1', '192.0.2.2', '192.0.2.3']);
    assert.equal(res.target.address, '192.0.2.3');
    assert.deepEqual(res.result, { ok: true, value: 486, status: 486 });
  });
  test('returns the last failure when all fail', async () => {
    const res = await withFailover(
      ts,
      async () => 408,
      (s) => s,
    );
    assert.equal(res.target.address, '192.0.2.3');
    assert.equal(res.result.ok && res.result.status, 408);
  });
});
