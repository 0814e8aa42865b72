import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage, createResponse, type SipRequest, type SipResponse } from '../message';
import { FakeClock } from '../transport/fake-clock';
import type { TransportUser } from '../transport/layer';
import type { SendCallback, SendTarget, Source, TransportName } from '../transport/types';
import { TransactionLayer, type TransactionUser } from './layer';
import { cancelFor, type ClientTxUser } from './client';
import type { ServerTransaction } from './server';
import { ServerInviteTransaction } from './server';

type Msg = SipRequest | SipResponse;

class FakeTransport {
  sent: Array<{ msg: Msg; target: SendTarget }> = [];
  aliases: string[] = [];
  addAlias(connId: number, transport: TransportName, address: string, port: number) {
    this.aliases.push(`${connId} ${transport} ${address}:${port}`);
  }
  fail: Error | undefined;
  user!: TransportUser<Msg>;
  attach(u: TransportUser<Msg>) {
    this.user = u;
  }
  /** The bytes of each send, as handed over. */
  raw: Buffer[] = [];
  send(data: Buffer, target: SendTarget, cb?: SendCallback) {
    this.raw.push(data);
    this.sent.push({ msg: parseMessage(data), target });
    cb?.(this.fail);
  }
  lines() {
    return this.sent.map((s) => (s.msg.isRequest ? s.msg.method : String(s.msg.status)));
  }
}

const src = (transport: TransportName = 'udp', address = '192.0.2.10', port = 5070): Source => ({
  transport,
  address,
  port,
  localAddress: '192.0.2.1',
  localPort: 5060,
  connId: transport === 'udp' ? undefined : 3,
});

function req(
  method: string,
  o: {
    branch?: string;
    via?: string;
    toTag?: string;
    cseq?: number;
    cseqMethod?: string;
    uri?: string;
    callId?: string;
    fromTag?: string;
  } = {},
): SipRequest {
  const via = o.via ?? `SIP/2.0/UDP 192.0.2.10:5070;branch=${o.branch ?? 'z9hG4bK-1'}`;
  const s =
    `${method} ${o.uri ?? 'sip:bob@192.0.2.1'} SIP/2.0\r\n` +
    `Via: ${via}\r\n` +
    `Max-Forwards: 70\r\n` +
    `Route: <sip:p1.example.com;lr>\r\n` +
    `From: <sip:alice@example.com>;tag=${o.fromTag ?? 'ft1'}\r\n` +
    `To: <sip:bob@example.com>${o.toTag ? `;tag=${o.toTag}` : ''}\r\n` +
    `Call-ID: ${o.callId ?? 'call-1'}\r\n` +
    `CSeq: ${o.cseq ?? 1} ${o.cseqMethod ?? method}\r\n` +
    `Content-Length: 0\r\n\r\n`;
  return parseMessage(Buffer.from(s)) as SipRequest;
}

/** A response as the peer would send it (round-tripped through the parser). */
function resp(r: SipRequest, status: number, toTag = 'tt1'): SipResponse {
  return parseMessage(createResponse(r, status, undefined, { toTag }).serialize()) as SipResponse;
}

function setup(timers = {}) {
  const clock = new FakeClock();
  const transport = new FakeTransport();
  const layer = new TransactionLayer({ transport, clock, timers });
  const tu = {
    requests: [] as Array<{ req: SipRequest; tx: ServerTransaction | undefined }>,
    stray: [] as SipResponse[],
    parseErrors: [] as Error[],
  };
  const user: TransactionUser = {
    onRequest: (r, tx) => tu.requests.push({ req: r, tx }),
    onStrayResponse: (r) => tu.stray.push(r),
  };
  layer.attach(user);
  const deliver = (m: Msg, s: Source = src()) => transport.user.onMessage(parseMessage(m.serialize()), s);
  return { clock, transport, layer, tu, deliver };
}

function clientUser() {
  const got: number[] = [];
  const events: string[] = [];
  const u: ClientTxUser = {
    onResponse: (r) => got.push(r.status),
    onTimeout: () => events.push('timeout'),
    onTransportError: () => events.push('transport-error'),
  };
  return { got, events, u };
}

const udpTarget: SendTarget = { transport: 'udp', address: '192.0.2.20', port: 5060 };
const tcpTarget: SendTarget = { transport: 'tcp', address: '192.0.2.20', port: 5060 };

describe('client INVITE transaction (RFC 3261 §17.1.1, RFC 6026)', () => {
  test('Calling over UDP: Timer A doubles from T1; Timer B at 64*T1 gives the TU a 408', () => {
    const { clock, transport, layer } = setup();
    const c = clientUser();
    const tx = layer.request(req('INVITE'), udpTarget, c.u);
    assert.equal(transport.sent.length, 1);
    const at: number[] = [];
    for (let t = 0; t < 31_999; t += 1) {
      const n = transport.sent.length;
      clock.advance(1);
      if (transport.sent.length > n) at.push(clock.now());
    }
    assert.deepEqual(at, [500, 1500, 3500, 7500, 15500, 31500]);
    assert.deepEqual(c.got, []);
    clock.advance(1);
    assert.deepEqual(c.got, [408]);
    assert.deepEqual(c.events, ['timeout']);
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.counts.clientInvite, 0);
  });

  test('abandon() with no response (a proxy fr_timer): retransmissions stop, Terminated, the TU hears nothing', () => {
    const { clock, transport, layer } = setup();
    const c = clientUser();
    const tx = layer.request(req('INVITE'), udpTarget, c.u);
    clock.advance(600);
    assert.equal(transport.sent.length, 2);
    tx.abandon();
    assert.equal(tx.state, 'terminated');
    assert.equal(layer.counts.clientInvite, 0);
    clock.advance(64_000);
    assert.equal(transport.sent.length, 2, 'no more retransmissions');
    assert.deepEqual(c.got, []);
  });

  test('over TCP: no retransmissions, Timer B still applies', () => {
    const { clock, transport, layer } = setup();
    const c = clientUser();
    layer.request(req('INVITE'), tcpTarget, c.u);
    clock.advance(31_999);
    assert.equal(transport.sent.length, 1);
    clock.advance(1);
    assert.deepEqual(c.got, [408]);
  });

  test('1xx → Proceeding (retransmissions stop); 486 → ACK built per §17.1.1.3, Completed, Timer D', () => {
    const { clock, transport, layer, deliver, tu } = setup();
    const c = clientUser();
    const invite = req('INVITE', { branch: 'z9hG4bKinv' });
    const tx = layer.request(invite, udpTarget, c.u);
    deliver(resp(invite, 180));
    assert.equal(tx.state, 'proceeding');
    clock.advance(10_000);
    assert.equal(transport.sent.length, 1, 'no retransmission in Proceeding');
    deliver(resp(invite, 486));
    assert.equal(tx.state, 'completed');
    assert.deepEqual(c.got, [180, 486]);
    assert.throws(() => tx.request, /INVITE transaction z9hG4bKinv completed: its request is no longer held/);
    const ack = transport.sent[1].msg as SipRequest;
    assert.equal(ack.method, 'ACK');
    assert.equal(ack.uriText, 'sip:bob@192.0.2.1');
    assert.equal(ack.via.branch, 'z9hG4bKinv');
    assert.equal(ack.vias.length, 1);
    assert.equal(ack.toTag, 'tt1');
    assert.equal(ack.fromTag, 'ft1');
    assert.deepEqual(ack.cseq, { seq: 1, method: 'ACK' });
    assert.equal(ack.callId, 'call-1');
    assert.deepEqual(ack.getHeaderValues('Route'), ['<sip:p1.example.com;lr>']);
    assert.deepEqual(transport.sent[1].target, udpTarget);
    // retransmitted final: ACK again, TU not told
    deliver(resp(invite, 486));
    assert.deepEqual(transport.lines(), ['INVITE', 'ACK', 'ACK']);
    assert.deepEqual(c.got, [180, 486]);
    clock.advance(31_999);
    assert.equal(tx.state, 'completed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    assert.deepEqual(tu.stray, []);
  });

  test('final over TCP: Timer D is zero', () => {
    const { clock, layer, deliver } = setup();
    const c = clientUser();
    const invite = req('INVITE');
    const tx = layer.request(invite, tcpTarget, c.u);
    deliver(resp(invite, 603), src('tcp'));
    assert.equal(tx.state, 'completed');
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('2xx → Accepted (RFC 6026): retransmitted 2xx reach the TU, no ACK from the transaction, Timer M', () => {
    const { clock, transport, layer, deliver, tu } = setup();
    const c = clientUser();
    const invite = req('INVITE');
    const tx = layer.request(invite, udpTarget, c.u);
    deliver(resp(invite, 200));
    assert.equal(tx.state, 'accepted');
    assert.throws(() => tx.request, /no longer held/, 'Accepted holds the request no longer');
    deliver(resp(invite, 200));
    deliver(resp(invite, 200, 'other-fork'));
    assert.deepEqual(c.got, [200, 200, 200]);
    assert.deepEqual(transport.lines(), ['INVITE']);
    clock.advance(31_999);
    assert.equal(tx.state, 'accepted');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    deliver(resp(invite, 200));
    assert.equal(tu.stray.length, 1, 'after Terminated, a 2xx is stray (the TU/core handles it)');
  });

  test('transport error: TU told, 503 synthesized, Terminated (§17.1.4)', () => {
    const { clock, transport, layer } = setup();
    transport.fail = new Error('ECONNREFUSED');
    const c = clientUser();
    const tx = layer.request(req('INVITE'), udpTarget, c.u);
    assert.deepEqual(c.events, ['transport-error']);
    assert.deepEqual(c.got, [503]);
    assert.equal(tx.state, 'terminated');
    clock.advance(64_000);
    assert.equal(transport.sent.length, 1, 'no timers left behind');
    assert.equal(clock.size, 0);
  });

  test('request without a z9hG4bK branch is refused', () => {
    const { layer } = setup();
    assert.throws(
      () => layer.request(req('INVITE', { branch: 'old' }), udpTarget, clientUser().u),
      /z9hG4bK/,
    );
  });
});

describe('client non-INVITE transaction (RFC 3261 §17.1.2)', () => {
  test('Trying: Timer E doubles up to T2; Timer F gives 408', () => {
    const { clock, transport, layer } = setup();
    const c = clientUser();
    layer.request(req('OPTIONS'), udpTarget, c.u);
    const at: number[] = [];
    for (let t = 0; t < 32_000; t += 1) {
      const n = transport.sent.length;
      clock.advance(1);
      if (transport.sent.length > n) at.push(clock.now());
    }
    assert.deepEqual(at, [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]);
    assert.deepEqual(c.got, [408]);
  });

  test('Proceeding retransmits every T2; final → Completed, absorbs retransmissions, Timer K = T4', () => {
    const { clock, transport, layer, deliver } = setup();
    const c = clientUser();
    const r = req('REGISTER');
    const tx = layer.request(r, udpTarget, c.u);
    clock.advance(500); // E fired once (500 → next 1000)
    deliver(resp(r, 100));
    assert.equal(tx.state, 'proceeding');
    const before = transport.sent.length;
    clock.advance(1000); // the E set in Trying fires at 1500, next is T2 later
    assert.equal(transport.sent.length, before + 1);
    clock.advance(3999);
    assert.equal(transport.sent.length, before + 1);
    clock.advance(1);
    assert.equal(transport.sent.length, before + 2);
    deliver(resp(r, 200));
    deliver(resp(r, 200));
    assert.deepEqual(c.got, [100, 200]);
    assert.equal(tx.state, 'completed');
    assert.throws(() => tx.request, /REGISTER transaction .* completed/);
    clock.advance(10_000);
    assert.equal(transport.sent.length, before + 2, 'no retransmission in Completed');
    assert.equal(tx.state, 'terminated');
  });

  test('CANCEL and INVITE with the same branch are distinct client transactions', () => {
    const { layer, deliver } = setup();
    const ci = clientUser();
    const cc = clientUser();
    const invite = req('INVITE', { branch: 'z9hG4bKsame' });
    const cancel = cancelFor(invite);
    assert.equal(cancel.via.branch, 'z9hG4bKsame');
    assert.deepEqual(cancel.cseq, { seq: 1, method: 'CANCEL' });
    assert.equal(cancel.uriText, invite.uriText);
    assert.equal(cancel.getHeader('To'), invite.getHeader('To'));
    assert.deepEqual(cancel.getHeaderValues('Route'), ['<sip:p1.example.com;lr>']);
    layer.request(invite, udpTarget, ci.u);
    layer.request(cancel, udpTarget, cc.u);
    deliver(resp(cancel, 200));
    deliver(resp(invite, 487));
    assert.deepEqual(ci.got, [487]);
    assert.deepEqual(cc.got, [200]);
  });
});

describe('server INVITE transaction (RFC 3261 §17.2.1, RFC 6026)', () => {
  test('100 Trying after 200 ms unless the TU sent a provisional; retransmitted INVITE gets the last provisional', () => {
    const { clock, transport, deliver, tu } = setup();
    const invite = req('INVITE');
    deliver(invite);
    assert.equal(tu.requests.length, 1);
    const tx = tu.requests[0].tx!;
    clock.advance(199);
    assert.deepEqual(transport.lines(), []);
    clock.advance(1);
    assert.deepEqual(transport.lines(), ['100']);
    deliver(invite);
    assert.deepEqual(transport.lines(), ['100', '100']);
    tx.reply(180, undefined, { toTag: 'uas1' });
    deliver(invite);
    assert.deepEqual(transport.lines(), ['100', '100', '180', '180']);
    assert.equal(tu.requests.length, 1, 'retransmissions never reach the TU');
    // responses go where §18.2.2 says: received = source address, sent-by port
    assert.deepEqual(transport.sent[0].target, { transport: 'udp', address: '192.0.2.10', port: 5070 });
  });

  test('no automatic 100 when the TU answers first', () => {
    const { clock, transport, deliver, tu } = setup();
    deliver(req('INVITE'));
    tu.requests[0].tx!.reply(180, undefined, { toTag: 'x' });
    clock.advance(1000);
    assert.deepEqual(transport.lines(), ['180']);
  });

  test('non-2xx → Completed: Timer G doubles to T2, ACK → Confirmed, Timer I = T4', () => {
    const { clock, transport, deliver, tu } = setup();
    const invite = req('INVITE');
    deliver(invite);
    const tx = tu.requests[0].tx as ServerInviteTransaction;
    tx.reply(486, undefined, { toTag: 'uas1' });
    assert.equal(tx.state, 'completed');
    const at: number[] = [];
    for (let t = 0; t < 12_000; t++) {
      const n = transport.sent.length;
      clock.advance(1);
      if (transport.sent.length > n) at.push(clock.now());
    }
    assert.deepEqual(at, [500, 1500, 3500, 7500, 11500]);
    deliver(invite); // retransmitted INVITE → final again
    assert.equal(transport.lines().at(-1), '486');
    const n = transport.sent.length;
    deliver(req('ACK', { toTag: 'uas1' }));
    assert.equal(tx.state, 'confirmed');
    assert.equal(tu.requests.length, 1, 'ACK for non-2xx is absorbed');
    deliver(req('ACK', { toTag: 'uas1' }));
    clock.advance(4999);
    assert.equal(transport.sent.length, n, 'no retransmission once confirmed');
    assert.equal(tx.state, 'confirmed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
  });

  test('Timer H: no ACK within 64*T1 → TU told, Terminated', () => {
    const { clock, deliver, tu } = setup();
    deliver(req('INVITE'));
    const tx = tu.requests[0].tx as ServerInviteTransaction;
    let timedOut = false;
    tx.onTimeout = () => (timedOut = true);
    tx.reply(500);
    clock.advance(31_999);
    assert.equal(timedOut, false);
    clock.advance(1);
    assert.equal(timedOut, true);
    assert.equal(tx.state, 'terminated');
  });

  test('over TCP: no Timer G, Timer I is zero', () => {
    const { clock, transport, deliver, tu } = setup();
    deliver(req('INVITE', { via: 'SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK-t' }), src('tcp'));
    const tx = tu.requests[0].tx as ServerInviteTransaction;
    tx.reply(404, undefined, { toTag: 'a' });
    clock.advance(10_000);
    assert.deepEqual(transport.lines(), ['404']);
    assert.equal(transport.sent[0].target.connId, 3);
    deliver(req('ACK', { via: 'SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK-t', toTag: 'a' }), src('tcp'));
    assert.equal(tx.state, 'confirmed');
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('2xx → Accepted (RFC 6026): INVITE retransmissions absorbed, TU 2xx retransmissions sent, ACK to TU, Timer L', () => {
    const { clock, transport, deliver, tu } = setup();
    const invite = req('INVITE');
    deliver(invite);
    const tx = tu.requests[0].tx as ServerInviteTransaction;
    const ok = tx.reply(200, undefined, { toTag: 'u' });
    assert.equal(tx.state, 'accepted');
    deliver(invite);
    assert.deepEqual(transport.lines(), ['200']);
    tx.respond(ok); // the TU's own 2xx retransmission (§13.3.1.4)
    assert.deepEqual(transport.lines(), ['200', '200']);
    deliver(req('ACK', { toTag: 'u' })); // same branch: matches, goes to the TU
    assert.equal(tu.requests.length, 2);
    assert.equal(tu.requests[1].tx, tx);
    deliver(req('ACK', { toTag: 'u', branch: 'z9hG4bK-other' })); // new branch: stray ACK
    assert.equal(tu.requests[2].tx, undefined);
    clock.advance(32_000);
    assert.equal(tx.state, 'terminated');
  });
});

describe('server non-INVITE transaction (RFC 3261 §17.2.2)', () => {
  test('Trying absorbs, Proceeding resends provisional, Completed resends final, Timer J', () => {
    const { clock, transport, deliver, tu } = setup();
    const r = req('OPTIONS');
    deliver(r);
    const tx = tu.requests[0].tx!;
    deliver(r);
    assert.deepEqual(transport.lines(), []);
    tx.reply(100);
    deliver(r);
    assert.deepEqual(transport.lines(), ['100', '100']);
    tx.reply(200, undefined, { toTag: 'x' });
    deliver(r);
    assert.deepEqual(transport.lines(), ['100', '100', '200', '200']);
    tx.reply(500); // a second final is discarded
    assert.equal(transport.sent.length, 4);
    assert.equal(tu.requests.length, 1);
    clock.advance(31_999);
    assert.equal(tx.state, 'completed');
    clock.advance(1);
    assert.equal(tx.state, 'terminated');
    deliver(r);
    assert.equal(tu.requests.length, 2, 'after Timer J a retransmission is a new request');
  });

  test('Completed holds only the bytes sent: the request and response are let go, matching still works', () => {
    const { transport, deliver, tu } = setup();
    const r = req('REGISTER', { branch: 'z9hG4bK-reg' });
    deliver(r);
    const tx = tu.requests[0].tx!;
    assert.equal(tx.request.method, 'REGISTER');
    const sent = tx.reply(200, undefined, { toTag: 'x', headers: [['Expires', '60']] });
    assert.equal(tx.lastStatus, 200);
    assert.equal(tx.lastToTag, 'x');
    assert.throws(
      () => tx.request,
      /REGISTER transaction z9hG4bK-reg completed: its request is no longer held/,
    );
    // A retransmission (same branch, sent-by and method) still matches and gets the same bytes.
    deliver(r);
    assert.equal(tu.requests.length, 1);
    assert.deepEqual(transport.lines(), ['200', '200']);
    assert.equal(transport.sent[1].msg.serialize().toString(), sent.serialize().toString());
    // Another sent-by or method with that branch is not this transaction.
    deliver(req('REGISTER', { via: 'SIP/2.0/UDP 192.0.2.11:5070;branch=z9hG4bK-reg' }));
    deliver(req('OPTIONS', { branch: 'z9hG4bK-reg' }));
    assert.equal(tu.requests.length, 3);
    // A late reply from the TU is discarded; it gets back the final that stands.
    const late = tx.reply(500);
    assert.equal(late.status, 200);
    assert.equal(late.getHeader('Expires'), '60');
    assert.equal(transport.sent.length, 2);
  });

  test('the bytes kept for retransmissions are copied out of the slab messages are sent from', () => {
    // Kept in views of the shared slab, they pinned every 64 KiB slab of the last seconds: V8 counts
    // those as external memory and forced a full collection every few seconds under load.
    const { transport, layer, deliver, tu } = setup();
    const r = req('BYE');
    deliver(r);
    tu.requests[0].tx!.reply(200, undefined, { toTag: 'x' });
    const first = transport.raw[0];
    deliver(r);
    const again = transport.raw[1];
    assert.deepEqual(again, first, 'the same bytes are resent');
    assert.notEqual(again.buffer, first.buffer, 'from an ArrayBuffer of their own');
    // a client transaction lets its request's bytes go with the final response
    const c = clientUser();
    const out = req('OPTIONS', { branch: 'z9hG4bK-out' });
    const tx = layer.request(out, udpTarget, c.u);
    assert.ok((tx as unknown as { wire?: Buffer }).wire);
    deliver(resp(out, 200));
    assert.deepEqual(c.got, [200]);
    assert.equal((tx as unknown as { wire?: Buffer }).wire, undefined);
  });

  test('an INVITE server transaction lets its request go with its final response; a late reply sends nothing', () => {
    const { transport, deliver, tu } = setup();
    const invite = req('INVITE', { branch: 'z9hG4bK-inv' });
    deliver(invite);
    const tx = tu.requests[0].tx!;
    tx.reply(180, undefined, { toTag: 'x' });
    assert.equal(tx.request.method, 'INVITE', 'held while it has no final response');
    tx.reply(486, undefined, { toTag: 'x' });
    assert.equal(tx.state, 'completed');
    assert.equal(tx.lastStatus, 486);
    assert.throws(() => tx.request, /INVITE transaction z9hG4bK-inv completed/);
    // The retransmitted INVITE gets the 486 again, from the bytes; the ACK still matches.
    deliver(invite);
    assert.deepEqual(transport.lines(), ['180', '486', '486']);
    assert.equal(tx.reply(500).status, 486);
    assert.equal(transport.sent.length, 3);
    deliver(req('ACK', { branch: 'z9hG4bK-inv', toTag: 'x' }));
    assert.equal(tx.state, 'confirmed');
    assert.equal(tu.requests.length, 1);
  });

  test('over TCP Timer J is zero', () => {
    const { clock, deliver, tu } = setup();
    deliver(req('BYE', { via: 'SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK-b', toTag: 'x' }), src('tcp'));
    const tx = tu.requests[0].tx!;
    tx.reply(200);
    clock.advance(0);
    assert.equal(tx.state, 'terminated');
  });

  test('transport error on a response: TU told, Terminated', () => {
    const { transport, deliver, tu } = setup();
    deliver(req('OPTIONS'));
    const tx = tu.requests[0].tx!;
    let err: Error | undefined;
    tx.onTransportError = (e) => (err = e);
    transport.fail = new Error('EPIPE');
    tx.reply(200);
    assert.equal(err?.message, 'EPIPE');
    assert.equal(tx.state, 'terminated');
  });
});

describe('TransactionLayer matching', () => {
  test('a TU that throws (a bug): the request gets a 500, onError hears it, and the layer goes on', () => {
    const clock = new FakeClock();
    const transport = new FakeTransport();
    const layer = new TransactionLayer({ transport, clock });
    const errors: string[] = [];
    const handled: string[] = [];
    layer.attach({
      onRequest: (r, tx) => {
        if (r.method === 'MESSAGE') throw new Error('boom');
        handled.push(r.method);
        tx?.reply(200, undefined, { toTag: 'x' });
      },
      onError: (err, msg) => errors.push(`${(err as Error).message} ${msg?.callId}`),
    });
    const deliver = (m: Msg) => transport.user.onMessage(parseMessage(m.serialize()), src());
    deliver(req('MESSAGE', { branch: 'z9hG4bK-m', callId: 'c-boom' }));
    assert.deepEqual(transport.lines(), ['500']);
    assert.deepEqual(errors, ['boom c-boom']);
    deliver(req('OPTIONS', { branch: 'z9hG4bK-o' }));
    assert.deepEqual(handled, ['OPTIONS']);
    assert.deepEqual(transport.lines(), ['500', '200']);
    // A response whose client transaction's user throws: reported the same way.
    const r = req('INVITE', { branch: 'z9hG4bK-c' });
    layer.request(r, udpTarget, {
      onResponse: () => {
        throw new Error('late');
      },
    });
    deliver(resp(r, 180));
    assert.deepEqual(errors, ['boom c-boom', 'late call-1']);
  });

  test("a TU that throws on a timer's 408: onError hears it with the request, the transaction ends, the layer goes on", () => {
    const { layer, clock } = setup();
    const errors: string[] = [];
    layer.attach({
      onRequest: () => {},
      onError: (err, msg, s) => errors.push(`${(err as Error).message} ${msg?.callId} ${s}`),
    });
    const c = clientUser();
    const thrower = layer.request(req('OPTIONS', { branch: 'z9hG4bK-t1', callId: 'c-timer' }), udpTarget, {
      onResponse: () => {
        throw new Error('on 408');
      },
    });
    layer.request(req('OPTIONS', { branch: 'z9hG4bK-t2' }), udpTarget, c.u);
    clock.advance(32_000); // Timer F of both
    assert.deepEqual(errors, ['on 408 c-timer undefined']);
    assert.equal(thrower.state, 'terminated');
    assert.equal(layer.counts.clientNonInvite, 0, 'both out of the tables');
    assert.deepEqual(c.got, [408], "the other transaction's timer fired too");
  });

  test('without onError, what the TU throws is thrown on', () => {
    const { layer, transport } = setup();
    layer.attach({
      onRequest: () => {
        throw new Error('boom');
      },
    });
    assert.throws(() => transport.user.onMessage(parseMessage(req('MESSAGE').serialize()), src()), /boom/);
    assert.deepEqual(transport.lines(), ['500']);
  });

  test('answerStateless: the response goes out without a transaction, a retransmission asks again', () => {
    const { layer, transport, deliver, tu } = setup();
    const asked: string[] = [];
    layer.attach({
      onRequest: (r, tx) => tu.requests.push({ req: r, tx }),
      answerStateless: (r) => {
        asked.push(r.method);
        return r.method === 'REGISTER' ? createResponse(r, 401, undefined, { toTag: 'c1' }) : undefined;
      },
    });
    const reg = req('REGISTER', { branch: 'z9hG4bKr1' });
    deliver(reg);
    deliver(reg); // retransmission: a fresh answer, still no state
    assert.deepEqual(transport.lines(), ['401', '401']);
    assert.equal(transport.sent[0].target.address, '192.0.2.10');
    assert.equal(transport.sent[0].target.port, 5070);
    assert.equal(tu.requests.length, 0);
    assert.equal(layer.counts.serverNonInvite, 0);
    deliver(req('OPTIONS', { branch: 'z9hG4bKo1' })); // not answered by the hook: a transaction as usual
    assert.equal(tu.requests.length, 1);
    assert.equal(layer.counts.serverNonInvite, 1);
    deliver(req('ACK', { branch: 'z9hG4bKa1', toTag: 't' })); // never asked for an ACK
    assert.deepEqual(asked, ['REGISTER', 'REGISTER', 'OPTIONS']);
  });

  test('same branch, different sent-by or method: different transactions (§17.2.3)', () => {
    const { deliver, tu } = setup();
    deliver(req('OPTIONS', { branch: 'z9hG4bKx' }));
    deliver(
      req('OPTIONS', { via: 'SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKx' }),
      src('udp', '198.51.100.1', 5060),
    );
    deliver(req('INFO', { branch: 'z9hG4bKx', toTag: 't' }));
    assert.equal(tu.requests.length, 3);
  });

  test('CANCEL gets its own transaction and finds its INVITE (§9.2)', () => {
    const { layer, deliver, tu } = setup();
    deliver(req('INVITE', { branch: 'z9hG4bKc' }));
    const cancel = req('CANCEL', { branch: 'z9hG4bKc' });
    deliver(cancel);
    assert.equal(tu.requests.length, 2);
    const cancelTx = tu.requests[1].tx!;
    assert.notEqual(cancelTx, tu.requests[0].tx);
    assert.equal(layer.findInviteForCancel(tu.requests[1].req), tu.requests[0].tx);
    assert.equal(layer.findInviteForCancel(req('CANCEL', { branch: 'z9hG4bKnone' })), undefined);
  });

  test('merged request detection (§8.2.2.2)', () => {
    const { layer, deliver, tu } = setup();
    deliver(req('INVITE', { branch: 'z9hG4bKfork1' }));
    deliver(
      req('INVITE', { branch: 'z9hG4bKfork2', via: 'SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKfork2' }),
      src('udp', '192.0.2.99', 5060),
    );
    assert.equal(tu.requests.length, 2);
    assert.equal(layer.isMergedRequest(tu.requests[0].req, tu.requests[0].tx), false);
    assert.equal(layer.isMergedRequest(tu.requests[1].req, tu.requests[1].tx), true);
    // with a To tag (in-dialog) never merged
    deliver(req('INVITE', { branch: 'z9hG4bKfork3', toTag: 'd' }));
    assert.equal(layer.isMergedRequest(tu.requests[2].req, tu.requests[2].tx), false);
  });

  test('RFC 2543 fallback (§17.2.3): no cookie, retransmission absorbed, ACK with our To tag matches, CANCEL found', () => {
    const { transport, layer, deliver, tu } = setup();
    const via = 'SIP/2.0/UDP 192.0.2.10:5070;branch=old1';
    const invite = req('INVITE', { via });
    deliver(invite);
    deliver(invite);
    assert.equal(tu.requests.length, 1);
    const tx = tu.requests[0].tx as ServerInviteTransaction;
    assert.equal(layer.findInviteForCancel(req('CANCEL', { via })), tx);
    tx.reply(486, undefined, { toTag: 'ours' });
    deliver(req('ACK', { via, toTag: 'theirs' }));
    assert.equal(tx.state, 'completed', 'ACK with another To tag does not match');
    assert.equal(tu.requests.length, 2);
    deliver(req('ACK', { via, toTag: 'ours' }));
    assert.equal(tx.state, 'confirmed');
    // no Via branch at all
    deliver(req('OPTIONS', { via: 'SIP/2.0/UDP 192.0.2.10:5070' }));
    deliver(req('OPTIONS', { via: 'SIP/2.0/UDP 192.0.2.10:5070' }));
    assert.equal(tu.requests.length, 3);
    assert.ok(transport.sent.length >= 1);
  });

  test('received and rport on the top Via (§18.2.1, RFC 3581); responses follow them', () => {
    const { transport, deliver, tu } = setup();
    deliver(
      req('OPTIONS', { via: 'SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKn' }),
      src('udp', '203.0.113.9', 40001),
    );
    const r = tu.requests[0].req;
    assert.equal(r.via.received, '203.0.113.9');
    assert.equal(r.via.rport, 40001);
    tu.requests[0].tx!.reply(200, undefined, { toTag: 'a' });
    assert.deepEqual(transport.sent[0].target, { transport: 'udp', address: '203.0.113.9', port: 40001 });
    const res = transport.sent[0].msg as SipResponse;
    assert.equal(res.via.received, '203.0.113.9');
    // same host as the source, no rport: Via untouched
    deliver(req('OPTIONS', { branch: 'z9hG4bKm' }));
    assert.equal(tu.requests[1].req.via.received, undefined);
  });

  test('received and rport on the first of several Vias in one field: the others stay, in order', () => {
    const { transport, tu, layer } = setup();
    const raw =
      'OPTIONS sip:bob@192.0.2.1 SIP/2.0\r\n' +
      'Max-Forwards: 70\r\n' +
      'v: SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bKtop, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKnext\r\n' +
      'Via: SIP/2.0/UDP 10.0.0.10;branch=z9hG4bKlast\r\n' +
      'From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n';
    layer.onMessage(parseMessage(Buffer.from(raw)), src('udp', '203.0.113.9', 40001));
    const r = tu.requests[0].req;
    const vias = parseMessage(r.serialize()).vias;
    assert.deepEqual(
      vias.map((v) => [v.branch, v.received, v.rport]),
      [
        ['z9hG4bKtop', '203.0.113.9', 40001],
        ['z9hG4bKnext', undefined, undefined],
        ['z9hG4bKlast', undefined, undefined],
      ],
    );
    // the retransmission still matches (branch and sent-by of the top Via)
    layer.onMessage(parseMessage(Buffer.from(raw)), src('udp', '203.0.113.9', 40001));
    assert.equal(tu.requests.length, 1);
    assert.equal(transport.sent.length, 0);
  });

  test('RFC 5923 alias on a connection-oriented Via names the connection', () => {
    const { transport, deliver } = setup();
    deliver(
      req('OPTIONS', { via: 'SIP/2.0/TLS 198.51.100.4:5071;alias;branch=z9hG4bKal' }),
      src('tls', '198.51.100.4', 40000),
    );
    deliver(
      req('OPTIONS', { via: 'SIP/2.0/UDP 198.51.100.4:5071;alias;branch=z9hG4bKa2' }),
      src('udp', '198.51.100.4', 5071),
    );
    deliver(
      req('OPTIONS', { via: 'SIP/2.0/TCP 198.51.100.4;branch=z9hG4bKa3' }),
      src('tcp', '198.51.100.4', 40001),
    );
    assert.deepEqual(transport.aliases, ['3 tls 198.51.100.4:5071']);
  });

  test('unmatched responses are stray; unparsable requests answered 400 statelessly', () => {
    const { transport, deliver, tu } = setup();
    deliver(resp(req('OPTIONS', { branch: 'z9hG4bKnobody' }), 200));
    assert.equal(tu.stray.length, 1);
    const bad = Buffer.from(
      'OPTIONS sip:bob@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKq\r\n' +
        'From: <sip:a@b>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
    );
    transport.user.onParseError(bad, new Error('cseq mismatch'), src());
    assert.deepEqual(transport.lines(), ['400']);
    assert.equal(transport.sent[0].target.address, '192.0.2.10');
    transport.user.onParseError(Buffer.from('garbage'), new Error('bad'), src());
    assert.equal(transport.sent.length, 1);
  });
});

describe('the configured wait (Timers J, L, M; Kamailio wt_timer)', () => {
  const lingers = (clock: FakeClock, tx: { state: string }, ms: number) => {
    clock.advance(ms - 1);
    assert.notEqual(tx.state, 'terminated', `still there at ${ms - 1} ms`);
    clock.advance(1);
    assert.equal(tx.state, 'terminated', `gone at ${ms} ms`);
  };

  test('server non-INVITE Completed (J), server INVITE Accepted (L), client INVITE Accepted (M) last `wait`', () => {
    const { clock, layer, deliver, tu } = setup({ wait: 5000 });
    deliver(req('OPTIONS', { branch: 'z9hG4bKw1' }));
    const nist = tu.requests[0].tx!;
    nist.reply(200);
    lingers(clock, nist, 5000);

    deliver(req('INVITE', { branch: 'z9hG4bKw2' }));
    const ist = tu.requests[1].tx!;
    ist.reply(200, undefined, { toTag: 'a' });
    assert.equal(ist.state, 'accepted');
    lingers(clock, ist, 5000);

    const invite = req('INVITE', { branch: 'z9hG4bKw3' });
    const ict = layer.request(invite, udpTarget, clientUser().u);
    deliver(resp(invite, 200));
    assert.equal(ict.state, 'accepted');
    lingers(clock, ict, 5000);
  });

  test('Timers B and H stay 64*T1', () => {
    const { clock, layer, deliver, tu } = setup({ wait: 5000 });
    const c = clientUser();
    layer.request(req('INVITE', { branch: 'z9hG4bKw4' }), udpTarget, c.u);
    deliver(req('INVITE', { branch: 'z9hG4bKw5' }));
    const ist = tu.requests[0].tx as ServerInviteTransaction;
    ist.reply(486, undefined, { toTag: 'b' });
    clock.advance(31_999);
    assert.deepEqual(c.got, []);
    assert.equal(ist.state, 'completed');
    clock.advance(1);
    assert.deepEqual(c.got, [408]);
    assert.equal(ist.state, 'terminated');
  });
});
