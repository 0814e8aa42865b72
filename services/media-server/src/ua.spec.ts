// The UA core over real loopback UDP, with a raw socket as the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import pino from 'pino';
import { createResponse, parseSip, type SipRequest, type SipResponse } from '@switchboard/sip';
import { Pacer } from './media';
import { PortAllocator, type BoundPorts } from './ports';
import { MediaUa, type Call } from './ua';

type Msg = SipRequest | SipResponse;

async function peer() {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const inbox: Msg[] = [];
  let waiter: (() => void) | undefined;
  sock.on('message', (b, rinfo) => {
    const m = parseSip(b, false) as Msg;
    // Answer the server's NOTIFYs as a phone does (else its transaction retransmits them).
    if (m.isRequest && (m as SipRequest).method === 'NOTIFY') {
      const ok = createResponse(m as SipRequest, 200);
      sock.send(ok.serialize(), rinfo.port, rinfo.address);
    }
    inbox.push(m);
    waiter?.();
  });
  const port = (sock.address() as { port: number }).port;
  return {
    port,
    sock,
    /** Received and not yet taken by next(). */
    inbox,
    send: (text: string, to: number) => sock.send(Buffer.from(text.replace(/\n/g, '\r\n')), to, '127.0.0.1'),
    /** The next message matching, waiting for it (bounded by the test's own timeout). */
    async next(pred: (m: Msg) => boolean): Promise<Msg> {
      for (;;) {
        const i = inbox.findIndex(pred);
        if (i >= 0) return inbox.splice(i, 1)[0];
        await new Promise<void>((r) => (waiter = r));
      }
    },
    close: () => sock.close(),
  };
}

const status = (n: number, method?: string) => (m: Msg) =>
  !m.isRequest && (m as SipResponse).status === n && (!method || m.cseq.method === method);
const request = (method: string) => (m: Msg) => m.isRequest && (m as SipRequest).method === method;

function req(
  method: string,
  ruri: string,
  p: number,
  opts: { callId: string; cseq?: number; toTag?: string; body?: string; extra?: string[]; branch?: string },
) {
  const body = opts.body ?? '';
  return [
    `${method} ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${p};branch=${opts.branch ?? 'z9hG4bK' + Math.random().toString(36).slice(2)}`,
    'From: <sip:alice@example.com>;tag=a1',
    `To: <sip:bob@example.com>${opts.toTag ? `;tag=${opts.toTag}` : ''}`,
    `Call-ID: ${opts.callId}`,
    `CSeq: ${opts.cseq ?? 1} ${method}`,
    `Contact: <sip:alice@127.0.0.1:${p}>`,
    'Max-Forwards: 70',
    ...(opts.extra ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body.replace(/\n/g, '\r\n'))}`,
    '',
    body,
  ].join('\n');
}

const sdp = (port: number, fmts = '0 101') =>
  `v=0\no=a 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio ${port} RTP/AVP ${fmts}\na=rtpmap:101 telephone-event/8000\n`;

async function startUa(
  ports: { bind(h: string): Promise<BoundPorts>; release(p: number): void },
  run: (c: Call<string>) => Promise<void> = async () => {},
  summary = async (a: string) =>
    `Messages-Waiting: yes\r\nMessage-Account: sip:${a}\r\nVoice-Message: 3/1\r\n`,
) {
  const ua = new MediaUa<string>({
    listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
    rtpHost: '127.0.0.1',
    ports,
    pacer: new Pacer(performance),
    logger: pino({ level: 'silent' }),
    T1: 100,
    route: (r) => {
      const user = (r.uri as { user?: string }).user;
      if (user === 'early') return { route: 'early', early: { status: 402, reason: 'No Credit' } };
      return user === 'app' ? { route: 'app' } : { status: 404 };
    },
    run,
    subscriptionAccount: (r) => (r.to.sipUri?.user === 'bob' ? 'bob@example.com' : undefined),
    summary,
  });
  await ua.start();
  return { ua, port: ua.port('udp')! };
}

test('OPTIONS 200; unknown user 404; no G.711 488; BYE outside a dialog 481', async () => {
  const { ua, port } = await startUa(new PortAllocator({ min: 47600, max: 47700 }));
  const p = await peer();
  try {
    p.send(req('OPTIONS', `sip:x@127.0.0.1:${port}`, p.port, { callId: 'o1' }), port);
    const o = (await p.next(status(200, 'OPTIONS'))) as SipResponse;
    assert.match(o.getHeader('Allow')!, /SUBSCRIBE/);
    p.send(req('INVITE', `sip:nobody@127.0.0.1:${port}`, p.port, { callId: 'i1', body: sdp(4000) }), port);
    await p.next(status(404, 'INVITE'));
    p.send(req('INVITE', `sip:app@127.0.0.1:${port}`, p.port, { callId: 'i2', body: sdp(4000, '18') }), port);
    await p.next(status(488, 'INVITE'));
    p.send(req('BYE', `sip:app@127.0.0.1:${port}`, p.port, { callId: 'nope', toTag: 'x' }), port);
    await p.next(status(481, 'BYE'));
  } finally {
    p.close();
    await ua.stop();
  }
});

test('CANCEL while the INVITE is pending: 200 for the CANCEL, 487 for the INVITE, the media port released', async () => {
  let release!: () => void;
  const released: number[] = [];
  const real = new PortAllocator({ min: 47710, max: 47790 });
  const slow = {
    bind: async (h: string) => {
      await new Promise<void>((r) => (release = r));
      return real.bind(h);
    },
    release: (port: number) => {
      released.push(port);
      real.release(port);
    },
  };
  const { ua, port } = await startUa(slow);
  const p = await peer();
  try {
    p.send(
      req('INVITE', `sip:app@127.0.0.1:${port}`, p.port, {
        callId: 'c1',
        body: sdp(4000),
        branch: 'z9hG4bKcancel1',
      }),
      port,
    );
    await p.next(status(100, 'INVITE'));
    p.send(
      req('CANCEL', `sip:app@127.0.0.1:${port}`, p.port, { callId: 'c1', branch: 'z9hG4bKcancel1' }),
      port,
    );
    await p.next(status(200, 'CANCEL'));
    await p.next(status(487, 'INVITE'));
    release();
    while (released.length === 0) await new Promise((r) => setImmediate(r));
    assert.equal(real.active, 0);
    assert.equal(ua.activeCalls, 0);
  } finally {
    p.close();
    await ua.stop();
  }
});

test('a call: 200 with SDP answer, the app runs after ACK, its end sends BYE; the 2xx is retransmitted until ACK', async () => {
  let ran = 0;
  const { ua, port } = await startUa(new PortAllocator({ min: 47800, max: 47900 }), async (call) => {
    ran++;
    assert.equal(call.caller, 'sip:alice@example.com');
  });
  const p = await peer();
  try {
    p.send(req('INVITE', `sip:app@127.0.0.1:${port}`, p.port, { callId: 'k1', body: sdp(4000) }), port);
    const ok = (await p.next(status(200, 'INVITE'))) as SipResponse;
    assert.match(ok.body.toString(), /m=audio \d+ RTP\/AVP 0 101/);
    // no ACK yet: the 2xx comes again (T1 = 100 ms)
    await p.next(status(200, 'INVITE'));
    assert.equal(ran, 0);
    const tag = ok.toTag!;
    p.send(req('ACK', `sip:mediaserver@127.0.0.1:${port}`, p.port, { callId: 'k1', toTag: tag }), port);
    const bye = (await p.next(request('BYE'))) as SipRequest;
    assert.equal(ran, 1);
    assert.equal(bye.fromTag, tag);
    assert.equal(bye.toTag, 'a1');
    assert.equal(bye.uriText, `sip:alice@127.0.0.1:${p.port}`);
  } finally {
    p.close();
    await ua.stop();
  }
});

test('SUBSCRIBE to message-summary: 200 with Expires, NOTIFY with the summary; Expires 0 ends it with a terminated NOTIFY', async () => {
  const { ua, port } = await startUa(new PortAllocator({ min: 47910, max: 47990 }));
  const p = await peer();
  try {
    p.send(
      req('SUBSCRIBE', `sip:bob@127.0.0.1:${port}`, p.port, {
        callId: 's1',
        extra: ['Event: message-summary', 'Expires: 7200'],
      }),
      port,
    );
    const ok = (await p.next(status(200, 'SUBSCRIBE'))) as SipResponse;
    assert.equal(ok.getHeader('Expires'), '3600');
    const n = (await p.next(request('NOTIFY'))) as SipRequest;
    assert.equal(n.getHeader('Event'), 'message-summary');
    assert.match(n.getHeader('Subscription-State')!, /^active;expires=\d+/);
    assert.equal(n.contentType, 'application/simple-message-summary');
    assert.match(
      n.body.toString(),
      /Messages-Waiting: yes\r\nMessage-Account: sip:bob@example.com\r\nVoice-Message: 3\/1/,
    );
    assert.equal(ua.subscriptionsFor('bob@example.com'), 1);
    assert.equal(await ua.notifySubscribers('bob@example.com'), 1);
    await p.next(request('NOTIFY'));
    p.send(
      req('SUBSCRIBE', `sip:bob@127.0.0.1:${port}`, p.port, {
        callId: 's1',
        cseq: 2,
        toTag: ok.toTag,
        extra: ['Event: message-summary', 'Expires: 0'],
      }),
      port,
    );
    await p.next(status(200, 'SUBSCRIBE'));
    const last = (await p.next(
      (m) => request('NOTIFY')(m) && /^terminated/.test(m.getHeader('Subscription-State') ?? ''),
    )) as SipRequest;
    assert.match(last.getHeader('Subscription-State')!, /^terminated/);
    assert.equal(ua.activeSubscriptions, 0);
    p.send(
      req('SUBSCRIBE', `sip:bob@127.0.0.1:${port}`, p.port, { callId: 's2', extra: ['Event: presence'] }),
      port,
    );
    await p.next(status(489, 'SUBSCRIBE'));
  } finally {
    p.close();
    await ua.stop();
  }
});

test('a message summary that fails (its database down): the SUBSCRIBE is answered, no NOTIFY, the UA serves on', async () => {
  const { ua, port } = await startUa(new PortAllocator({ min: 47910, max: 47990 }), undefined, async () => {
    throw new Error('database down');
  });
  const p = await peer();
  const rejected: unknown[] = [];
  const onRejection = (e: unknown) => rejected.push(e);
  process.on('unhandledRejection', onRejection);
  try {
    p.send(
      req('SUBSCRIBE', `sip:bob@127.0.0.1:${port}`, p.port, {
        callId: 's3',
        extra: ['Event: message-summary', 'Expires: 600'],
      }),
      port,
    );
    await p.next(status(200, 'SUBSCRIBE'));
    assert.equal(await ua.notifySubscribers('bob@example.com'), 0, 'no NOTIFY sent');
    p.send(req('OPTIONS', `sip:bob@127.0.0.1:${port}`, p.port, { callId: 'o3' }), port);
    await p.next(status(200, 'OPTIONS'));
    assert.equal(p.inbox.filter(request('NOTIFY')).length, 0);
    assert.deepEqual(rejected, []);
  } finally {
    process.off('unhandledRejection', onRejection);
    p.close();
    await ua.stop();
  }
});

test('early media: 183 with SDP, the application plays, then the final failure; CANCEL during it ends it with 487', async () => {
  let release: (() => void) | undefined;
  const { ua, port } = await startUa(new PortAllocator({ min: 47600, max: 47700 }), async (call) => {
    if (call.route === 'early' && call.request.callId === 'e2') await new Promise<void>((r) => (release = r));
  });
  const p = await peer();
  try {
    p.send(req('INVITE', `sip:early@127.0.0.1:${port}`, p.port, { callId: 'e1', body: sdp(4000) }), port);
    const pr = (await p.next(status(183, 'INVITE'))) as SipResponse;
    assert.match(pr.body.toString(), /m=audio \d+ RTP\/AVP 0 101/);
    const fin = (await p.next(status(402, 'INVITE'))) as SipResponse;
    assert.equal(fin.reason, 'No Credit');
    assert.equal(fin.toTag, pr.toTag);
    assert.equal(ua.activeCalls, 0);

    p.send(
      req('INVITE', `sip:early@127.0.0.1:${port}`, p.port, {
        callId: 'e2',
        body: sdp(4000),
        branch: 'z9hG4bKearly2',
      }),
      port,
    );
    const pr2 = (await p.next(status(183, 'INVITE'))) as SipResponse;
    while (!release) await new Promise((r) => setImmediate(r));
    p.send(
      req('CANCEL', `sip:early@127.0.0.1:${port}`, p.port, { callId: 'e2', branch: 'z9hG4bKearly2' }),
      port,
    );
    await p.next(status(200, 'CANCEL'));
    const t = (await p.next(status(487, 'INVITE'))) as SipResponse;
    assert.equal(t.toTag, pr2.toTag);
    assert.equal(ua.activeCalls, 0);
    release();
  } finally {
    p.close();
    await ua.stop();
  }
});
