import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { TransportLayer, type TransportUser } from './layer';
import { responseTarget } from './response-target';
import { defaultFramer } from './framing';
import { loadUdpSenderAddon } from './udp-sender';
import type { Clock, Source, TransportName } from './types';

const cert = readFileSync(new URL('./testdata/cert.pem', import.meta.url));
const key = readFileSync(new URL('./testdata/key.pem', import.meta.url));

/** Stand-in parser: accepts anything that starts with a SIP start line token. */
function parse(buf: Buffer): string {
  const s = buf.toString('latin1');
  if (!/^(SIP\/2\.0 \d{3} [^\r\n]*|[A-Z]+ \S+ SIP\/2\.0)\r\n/.test(s)) throw new Error('bad start line');
  return s;
}

const msg = (body = '', first = 'OPTIONS sip:x@127.0.0.1 SIP/2.0') =>
  Buffer.from(`${first}\r\nCall-ID: c1\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);

class Collector implements TransportUser<string> {
  messages: Array<{ msg: string; src: Source }> = [];
  errors: Array<{ raw: Buffer; err: Error; src: Source }> = [];
  closed: number[] = [];
  private waiters: Array<() => void> = [];
  onMessage(m: string, src: Source) {
    this.messages.push({ msg: m, src });
    this.wake();
  }
  onParseError(raw: Buffer, err: Error, src: Source) {
    this.errors.push({ raw, err, src });
    this.wake();
  }
  onConnectionClosed(id: number) {
    this.closed.push(id);
    this.wake();
  }
  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((r) => this.waiters.push(r));
  }
}

async function layer(listen: Array<{ transport: TransportName; host?: string }>, extra: object = {}) {
  const t = new TransportLayer<string>({
    listen: listen.map((l) => ({
      transport: l.transport,
      host: l.host ?? '127.0.0.1',
      port: 0,
      tls: l.transport === 'tls' || l.transport === 'wss' ? { cert, key } : undefined,
    })),
    parse,
    framer: defaultFramer,
    tlsClient: { ca: cert },
    ...extra,
  });
  const c = new Collector();
  t.attach(c);
  await t.start();
  return {
    t,
    c,
    port: (tr: TransportName, host = '127.0.0.1') =>
      t.addresses().find((a) => a.transport === tr && a.host === host)!.port,
  };
}

const stops: Array<() => Promise<void>> = [];
after(async () => {
  for (const s of stops) await s();
});

describe('TransportLayer UDP', { timeout: 10_000 }, () => {
  for (const udpSendThread of [true, false])
    test(`receives and sends over IPv4 and IPv6; source carries address, port, local interface (udpSendThread ${udpSendThread})`, async () => {
      const { t, c, port } = await layer([{ transport: 'udp' }, { transport: 'udp', host: '::1' }], {
        udpSendThread,
      });
      stops.push(() => t.stop());
      assert.equal(
        t.udpSender(),
        udpSendThread && !(loadUdpSenderAddon() instanceof Error) ? 'thread' : 'dgram',
      );
      for (const [fam, host] of [
        ['udp4', '127.0.0.1'],
        ['udp6', '::1'],
      ] as const) {
        const peer = dgram.createSocket(fam);
        await new Promise<void>((r) => peer.bind(0, host, r));
        const n = c.messages.length;
        peer.send(msg(), port('udp', host), host);
        await c.until(() => c.messages.length > n);
        const { src } = c.messages[n];
        assert.equal(src.transport, 'udp');
        assert.equal(src.address, host);
        assert.equal(src.port, peer.address().port);
        assert.equal(src.localAddress, host);
        assert.equal(src.localPort, port('udp', host));
        assert.equal(src.connId, undefined);
        const got = once(peer, 'message');
        t.send(msg('', 'SIP/2.0 200 OK'), { transport: 'udp', address: src.address, port: src.port });
        const [reply] = (await got) as [Buffer];
        assert.match(reply.toString(), /^SIP\/2\.0 200 OK/);
        peer.close();
      }
    });

  test('malformed and oversized datagrams are reported with raw bytes; keep-alives ignored; keeps serving', async () => {
    const { t, c, port } = await layer([{ transport: 'udp' }], { maxMessageSize: 1000 });
    stops.push(() => t.stop());
    const peer = dgram.createSocket('udp4');
    const p = port('udp');
    peer.send(Buffer.from('\r\n\r\n'), p, '127.0.0.1');
    peer.send(Buffer.from('garbage\r\n\r\n'), p, '127.0.0.1');
    peer.send(msg('x'.repeat(2000)), p, '127.0.0.1');
    peer.send(msg(), p, '127.0.0.1');
    await c.until(() => c.messages.length === 1 && c.errors.length === 2);
    assert.equal(c.errors[0].raw.toString(), 'garbage\r\n\r\n');
    assert.match(c.errors[1].err.message, /over limit/);
    peer.close();
  });

  test('send reports errors: non-numeric udp target, no listener for family', async () => {
    const { t } = await layer([{ transport: 'udp' }]);
    stops.push(() => t.stop());
    const errs: string[] = [];
    await new Promise<void>((r) =>
      t.send(msg(), { transport: 'udp', address: 'example.com', port: 5060 }, (e) => {
        errs.push(String(e?.message));
        r();
      }),
    );
    await new Promise<void>((r) =>
      t.send(msg(), { transport: 'udp', address: '::1', port: 5060 }, (e) => {
        errs.push(String(e?.message));
        r();
      }),
    );
    assert.match(errs[0], /not a numeric address/);
    assert.match(errs[1], /no udp listener for IPv6/);
  });
});

describe('TransportLayer TCP/TLS', { timeout: 10_000 }, () => {
  test('frames split messages, answers CRLFCRLF with CRLF, replies over the same connection', async () => {
    const { t, c, port } = await layer([{ transport: 'tcp' }]);
    stops.push(() => t.stop());
    const sock = net.connect(port('tcp'), '127.0.0.1');
    await once(sock, 'connect');
    const data: Buffer[] = [];
    sock.on('data', (d) => data.push(d));
    const m = msg('hello');
    sock.write(Buffer.concat([Buffer.from('\r\n\r\n'), m.subarray(0, 10)]));
    sock.write(Buffer.concat([m.subarray(10), m]));
    await c.until(() => c.messages.length === 2);
    assert.ok(c.messages[0].msg.endsWith('hello'));
    const src = c.messages[0].src;
    assert.equal(src.transport, 'tcp');
    assert.equal(src.port, sock.localPort);
    assert.ok(src.connId !== undefined);
    assert.equal(c.messages[1].src, src, 'one Source object per connection');
    assert.deepEqual(t.connection(src.connId!), src);
    t.send(msg('', 'SIP/2.0 200 OK'), {
      transport: 'tcp',
      address: '192.0.2.1',
      port: 1,
      connId: src.connId,
    });
    await new Promise<void>((r) => {
      const check = () => (Buffer.concat(data).includes('200 OK') ? r() : sock.once('data', check));
      check();
    });
    assert.ok(Buffer.concat(data).subarray(0, 2).equals(Buffer.from('\r\n')), 'pong first');
    sock.destroy();
    await c.until(() => c.closed.includes(src.connId!));
    assert.equal(t.connection(src.connId!), undefined);
  });

  test('outbound TCP connections are reused per target, and inbound ones are reachable by alias', async () => {
    const a = await layer([{ transport: 'tcp' }]);
    const b = await layer([{ transport: 'tcp' }]);
    stops.push(
      () => a.t.stop(),
      () => b.t.stop(),
    );
    const target = { transport: 'tcp' as const, address: '127.0.0.1', port: b.port('tcp') };
    a.t.send(msg(), target);
    a.t.send(msg(), target);
    await b.c.until(() => b.c.messages.length === 2);
    assert.equal(b.c.messages[0].src.connId, b.c.messages[1].src.connId);
    // B registers the flow under the UA's advertised contact and sends a request there.
    const before = b.t.aliasCount;
    b.t.addAlias(b.c.messages[0].src.connId!, 'tcp', '198.51.100.7', 5060);
    b.t.addAlias(b.c.messages[0].src.connId!, 'tcp', '198.51.100.7', 5060);
    assert.equal(b.t.aliasCount, before + 1);
    b.t.send(msg('', 'NOTIFY sip:a SIP/2.0'), { transport: 'tcp', address: '198.51.100.7', port: 5060 });
    await a.c.until(() => a.c.messages.length === 1);
    assert.match(a.c.messages[0].msg, /^NOTIFY/);
  });

  test('flowOnly: a closed flow fails the send instead of opening a new connection (RFC 5626)', async () => {
    const a = await layer([{ transport: 'tcp' }]);
    const b = await layer([{ transport: 'tcp' }]);
    stops.push(
      () => a.t.stop(),
      () => b.t.stop(),
    );
    a.t.send(msg(), { transport: 'tcp', address: '127.0.0.1', port: b.port('tcp') });
    await b.c.until(() => b.c.messages.length === 1);
    const flow = b.c.messages[0].src;
    b.t.closeConnection(flow.connId!);
    const err = await new Promise<Error | undefined>((r) =>
      b.t.send(
        msg(),
        { transport: 'tcp', address: flow.address, port: flow.port, connId: flow.connId, flowOnly: true },
        r,
      ),
    );
    assert.match(String(err?.message), /flow \d+ is closed/);
  });

  test('oversized stream message: over maxMessageSize reported, over the framing limit also closed', async () => {
    const { t, c, port } = await layer([{ transport: 'tcp' }], { maxMessageSize: 1000 });
    stops.push(() => t.stop());
    const sock = net.connect(port('tcp'), '127.0.0.1');
    sock.on('error', () => {});
    await once(sock, 'connect');
    sock.write(msg('x'.repeat(5000)));
    await c.until(() => c.errors.length === 1);
    assert.match(c.errors[0].err.message, /over limit 1000/);
    assert.deepEqual(c.closed, [], 'framing still in sync: connection kept');
    sock.write(msg('x'.repeat(70_000)));
    await c.until(() => c.errors.length === 2 && c.closed.length === 1);
    assert.equal(c.messages.length, 0);
    sock.destroy();
  });

  test('idle connections close after idleTimeoutMs (fake clock)', async () => {
    let now = 1000;
    const clock: Clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
    const { t, c, port } = await layer([{ transport: 'tcp' }], { clock, idleTimeoutMs: 30_000 });
    stops.push(() => t.stop());
    const sock = net.connect(port('tcp'), '127.0.0.1');
    await once(sock, 'connect');
    sock.write(msg());
    await c.until(() => c.messages.length === 1);
    now += 29_999;
    t.sweepIdle();
    assert.deepEqual(c.closed, []);
    now += 1;
    t.sweepIdle();
    assert.deepEqual(c.closed, [c.messages[0].src.connId]);
    await once(sock, 'close');
  });

  test('TLS listener and outbound TLS with certificate verification (IPv4 and IPv6)', async () => {
    const server = await layer([{ transport: 'tls' }, { transport: 'tls', host: '::1' }]);
    const client = await layer([]);
    stops.push(
      () => server.t.stop(),
      () => client.t.stop(),
    );
    for (const host of ['127.0.0.1', '::1']) {
      client.t.send(msg(), {
        transport: 'tls',
        address: host,
        port: server.port('tls', host),
        hostname: 'localhost',
      });
    }
    await server.c.until(() => server.c.messages.length === 2);
    assert.deepEqual(
      server.c.messages.map((m) => [m.src.transport, m.src.address]),
      [
        ['tls', '127.0.0.1'],
        ['tls', '::1'],
      ],
    );
    // Reply over the flow; the client hears it.
    const src = server.c.messages[0].src;
    server.t.send(msg('', 'SIP/2.0 200 OK'), {
      transport: 'tls',
      address: src.address,
      port: src.port,
      connId: src.connId,
    });
    await client.c.until(() => client.c.messages.length === 1);
    assert.equal(client.c.messages[0].src.transport, 'tls');
  });

  test('TLS: an untrusted certificate fails the send with an error', async () => {
    const server = await layer([{ transport: 'tls' }]);
    const client = await layer([], { tlsClient: {} });
    stops.push(
      () => server.t.stop(),
      () => client.t.stop(),
    );
    const err = await new Promise<Error | undefined>((r) =>
      client.t.send(msg(), { transport: 'tls', address: '127.0.0.1', port: server.port('tls') }, r),
    );
    assert.ok(err instanceof Error);
  });

  test('raw TLS socket client is served', async () => {
    const server = await layer([{ transport: 'tls' }]);
    stops.push(() => server.t.stop());
    const s = tls.connect({ host: '127.0.0.1', port: server.port('tls'), ca: cert, servername: 'localhost' });
    await once(s, 'secureConnect');
    s.write(msg());
    await server.c.until(() => server.c.messages.length === 1);
    s.destroy();
  });
});

describe('TransportLayer WebSocket (RFC 7118)', { timeout: 10_000 }, () => {
  for (const transport of ['ws', 'wss'] as const) {
    test(`${transport}: subprotocol sip, one message per frame, reply over the connection, outbound client`, async () => {
      const server = await layer([{ transport }]);
      stops.push(() => server.t.stop());
      const url = `${transport}://127.0.0.1:${server.port(transport)}/`;
      const ws = new WebSocket(url, 'sip', { ca: cert, servername: 'localhost' } as object);
      await once(ws, 'open');
      assert.equal(ws.protocol, 'sip');
      ws.send(msg().toString());
      await server.c.until(() => server.c.messages.length === 1);
      const src = server.c.messages[0].src;
      assert.equal(src.transport, transport);
      const got = once(ws, 'message');
      server.t.send(msg('', 'SIP/2.0 200 OK'), {
        transport,
        address: src.address,
        port: src.port,
        connId: src.connId,
      });
      const [data] = (await got) as [Buffer];
      assert.match(data.toString(), /^SIP\/2\.0 200 OK/);
      ws.close();

      // outbound, from another layer
      const client = await layer([]);
      stops.push(() => client.t.stop());
      client.t.send(msg(), {
        transport,
        address: '127.0.0.1',
        port: server.port(transport),
        hostname: 'localhost',
      });
      await server.c.until(() => server.c.messages.length === 2);
    });
  }

  test('a WebSocket without the sip subprotocol is refused', async () => {
    const server = await layer([{ transport: 'ws' }]);
    stops.push(() => server.t.stop());
    const ws = new WebSocket(`ws://127.0.0.1:${server.port('ws')}/`, 'xmpp');
    const [err] = (await once(ws, 'error').catch((e) => [e])) as [Error];
    assert.ok(err instanceof Error);
  });
});

describe('responseTarget (RFC 3261 §18.2.2, RFC 3581)', { timeout: 10_000 }, () => {
  const udp: Source = {
    transport: 'udp',
    address: '203.0.113.5',
    port: 40000,
    localAddress: '0.0.0.0',
    localPort: 5060,
    connId: undefined,
  };
  test('udp: rport → source address and port', () => {
    assert.deepEqual(responseTarget({ host: '10.0.0.2', port: 5062, rport: true }, udp), {
      transport: 'udp',
      address: '203.0.113.5',
      port: 40000,
    });
  });
  test('udp without rport: received (source) address, sent-by port', () => {
    assert.deepEqual(responseTarget({ host: '10.0.0.2', port: 5062 }, udp), {
      transport: 'udp',
      address: '203.0.113.5',
      port: 5062,
    });
    assert.deepEqual(responseTarget({ host: '10.0.0.2' }, udp).port, 5060);
  });
  test('udp with maddr', () => {
    assert.deepEqual(responseTarget({ host: 'a', maddr: '239.1.1.1' }, udp), {
      transport: 'udp',
      address: '239.1.1.1',
      port: 5060,
    });
  });
  test('reliable: over the connection, falling back to source address and sent-by port', () => {
    const tcp: Source = { ...udp, transport: 'tls', connId: 7 };
    assert.deepEqual(responseTarget({ host: 'x', rport: true }, tcp), {
      transport: 'tls',
      connId: 7,
      address: '203.0.113.5',
      port: 5061,
    });
  });
});
