import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { Registry } from 'prom-client';
import { FakeClock, parseMessage, type SipRequest } from '@switchboard/sip';
import type { LocationBinding } from '@switchboard/contracts';
import { NatKeepalive, type NatPingMethod } from './keepalive';

async function udp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}
const portOf = (s: Socket) => s.address().port;

function binding(i: number, over: Partial<LocationBinding> = {}): LocationBinding {
  return {
    aor: `sip:u${i}@example.com`,
    contact: `sip:u${i}@192.168.1.${i}:5060`,
    expires: 10_000,
    callId: `c${i}`,
    cseq: 1,
    path: [],
    instanceId: '',
    regId: 0,
    userAgent: 'test',
    updatedAt: 0,
    ...over,
  };
}

/** Collects what a socket receives until `n` datagrams came (bounded by a real-time guard). */
function collect(s: Socket): { got: Buffer[]; until(n: number): Promise<void> } {
  const got: Buffer[] = [];
  let want = Infinity;
  let wake: (() => void) | undefined;
  s.on('message', (m) => {
    got.push(m);
    if (got.length >= want) wake?.();
  });
  return {
    got,
    until: (n) =>
      new Promise<void>((resolve, reject) => {
        if (got.length >= n) return resolve();
        want = n;
        const guard = setTimeout(() => reject(new Error(`got ${got.length} of ${n} datagrams`)), 3000);
        wake = () => {
          clearTimeout(guard);
          resolve();
        };
      }),
  };
}

async function setup(method: NatPingMethod, bindings: LocationBinding[], intervalSec = 10) {
  const proxy = await udp();
  const clock = new FakeClock(1_000_000);
  const registry = new Registry();
  const ka = new NatKeepalive(
    {
      send: (data, t) => proxy.send(data, t.port, t.address),
      local: (f) => (f === 4 ? { host: '127.0.0.1', port: portOf(proxy) } : undefined),
      domain: 'example.com',
      clock,
      registry,
    },
    { intervalSec, method },
  );
  ka.update(undefined, bindings);
  return { proxy, clock, registry, ka };
}

test('pings every live NATed UDP binding once per interval, spread over the slots, with OPTIONS', async () => {
  const ue = await udp();
  const rx = collect(ue);
  const nated = Array.from({ length: 20 }, (_, i) =>
    binding(i + 1, {
      received: { address: '127.0.0.1', port: portOf(ue), transport: 'udp', flowId: '', localSocket: '' },
    }),
  );
  const skipped = [
    binding(100), // not NATed
    binding(101, {
      received: { address: '127.0.0.1', port: portOf(ue), transport: 'tcp', flowId: '7', localSocket: '' },
    }),
    binding(102, {
      expires: 999, // expired (clock is at 1000 s)
      received: { address: '127.0.0.1', port: portOf(ue), transport: 'udp', flowId: '', localSocket: '' },
    }),
  ];
  const { proxy, clock, registry, ka } = await setup('options', [...nated, ...skipped], 10);
  try {
    ka.start();
    assert.equal(clock.size, 1, 'one timer for the next slot');
    // First slot only: some, not all (spread).
    clock.advance(1000);
    const firstSlot = await new Promise<number>((r) => setTimeout(() => r(rx.got.length), 100));
    assert.ok(firstSlot < nated.length, `first slot pinged ${firstSlot} of ${nated.length}: not spread`);
    clock.advance(9000);
    await rx.until(nated.length);
    // A second interval pings each again.
    clock.advance(10_000);
    await rx.until(2 * nated.length);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.got.length, 2 * nated.length, 'exactly two pings per binding in two intervals');

    const reqs = rx.got.map((b) => parseMessage(b) as SipRequest);
    const perContact = new Map<string, number>();
    for (const r of reqs) {
      assert.equal(r.method, 'OPTIONS');
      assert.equal(r.via.host, '127.0.0.1');
      assert.equal(r.via.port, portOf(proxy));
      assert.ok(r.via.branch?.startsWith('z9hG4bK'));
      assert.equal(r.uri.toString(), r.to.uri.toString());
      assert.equal(r.cseq.method, 'OPTIONS');
      perContact.set(r.uri.toString(), (perContact.get(r.uri.toString()) ?? 0) + 1);
    }
    assert.deepEqual(
      [...perContact.keys()].sort(),
      nated.map((b) => b.contact).sort(),
      'only the NATed UDP bindings',
    );
    assert.ok([...perContact.values()].every((n) => n === 2));
    assert.equal(new Set(reqs.map((r) => r.callId)).size, reqs.length, 'a Call-ID per ping');
    const m = await registry.getSingleMetricAsString('switchboard_sip_nat_pings_total');
    assert.match(m, /switchboard_sip_nat_pings_total\{method="OPTIONS"\} 40/);
  } finally {
    ka.stop();
    assert.equal(clock.size, 0, 'stop clears the timer');
    proxy.close();
    ue.close();
  }
});

test('auto sends a CRLF ping to an RFC 5626 outbound contact and OPTIONS to the others', async () => {
  const outboundUa = await udp();
  const plainUa = await udp();
  const crlfRx = collect(outboundUa);
  const optRx = collect(plainUa);
  const rec = (s: Socket) => ({
    address: '127.0.0.1',
    port: portOf(s),
    transport: 'udp',
    flowId: '',
    localSocket: '',
  });
  const { proxy, clock, registry, ka } = await setup(
    'auto',
    [
      binding(1, {
        instanceId: '<urn:uuid:00000000-0000-0000-0000-000000000001>',
        regId: 1,
        received: rec(outboundUa),
      }),
      binding(2, { received: rec(plainUa) }),
    ],
    1,
  );
  try {
    ka.start();
    clock.advance(1000);
    await crlfRx.until(1);
    await optRx.until(1);
    assert.equal(crlfRx.got[0].toString(), '\r\n\r\n');
    assert.equal((parseMessage(optRx.got[0]) as SipRequest).method, 'OPTIONS');
    const m = await registry.getSingleMetricAsString('switchboard_sip_nat_pings_total');
    assert.match(m, /method="CRLF"\} 1/);
    assert.match(m, /method="OPTIONS"\} 1/);
  } finally {
    ka.stop();
    proxy.close();
    outboundUa.close();
    plainUa.close();
  }
});

test('method crlf pings every NATed contact with CRLF; interval 0 starts nothing', async () => {
  const ue = await udp();
  const rx = collect(ue);
  const b = binding(1, {
    received: { address: '127.0.0.1', port: portOf(ue), transport: 'udp', flowId: '', localSocket: '' },
  });
  const crlf = await setup('crlf', [b], 1);
  const off = await setup('options', [b], 0);
  try {
    off.ka.start();
    assert.equal(off.clock.size, 0, 'disabled: no timer');
    crlf.ka.start();
    crlf.clock.advance(3000);
    await rx.until(3);
    assert.ok(rx.got.every((d) => d.toString() === '\r\n\r\n'));
  } finally {
    crlf.ka.stop();
    crlf.proxy.close();
    off.proxy.close();
    ue.close();
  }
});

test('follows the location replica: a removed binding is no longer pinged, a refreshed one once, a new one from then on', async () => {
  const ue = await udp();
  const rx = collect(ue);
  const received = { address: '127.0.0.1', port: portOf(ue), transport: 'udp', flowId: '', localSocket: '' };
  const a = binding(1, { received });
  const b = binding(2, { received });
  const { proxy, clock, ka } = await setup('options', [a, b], 5);
  const pinged = () => rx.got.map((d) => (parseMessage(d) as SipRequest).uri.toString()).sort();
  try {
    ka.start();
    clock.advance(5000);
    await rx.until(2);
    assert.deepEqual(pinged(), [a.contact, b.contact]);
    // a refreshed (its record replaced by a new object), b gone, c registered
    const a2 = { ...a, expires: 20_000 };
    const c = binding(3, { received });
    ka.update([a], [a2]);
    ka.update([b], undefined);
    ka.update(undefined, [c]);
    rx.got.length = 0;
    clock.advance(5000);
    await rx.until(2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(pinged(), [a.contact, c.contact]);
  } finally {
    ka.stop();
    proxy.close();
    ue.close();
  }
});
