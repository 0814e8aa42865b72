import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import {
  Dictionary,
  RadiusClient,
  RadiusClosedError,
  RadiusCode,
  RadiusTimeoutError,
  decodePacket,
  encodeResponse,
  verifyAccountingRequest,
  type Timers,
} from './index';
import { freePort } from '@switchboard/platform/testing';
import { startFreeRadius, type FreeRadiusServer } from './testing/freeradius';

const dict = Dictionary.standard();

/** Timers fired by hand: no sleeps in unit tests. */
function manualTimers() {
  const due: Array<{ fn: () => void; ms: number; live: boolean }> = [];
  const timers: Timers = {
    setTimeout(fn, ms) {
      const t = { fn, ms, live: true };
      due.push(t);
      return t;
    },
    clearTimeout(h) {
      if (h) (h as { live: boolean }).live = false;
    },
  };
  const fireAll = () => {
    const now = due.splice(0).filter((t) => t.live);
    for (const t of now) t.fn();
    return now.map((t) => t.ms);
  };
  return { timers, fireAll };
}

async function udpServer(): Promise<{
  socket: Socket;
  port: number;
  next(): Promise<{ msg: Buffer; port: number }>;
}> {
  const socket = createSocket('udp4');
  const queue: Array<{ msg: Buffer; port: number }> = [];
  const waiters: Array<(m: { msg: Buffer; port: number }) => void> = [];
  socket.on('message', (msg, rinfo) => {
    const m = { msg, port: rinfo.port };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    socket,
    port: socket.address().port,
    next: () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiters.push(r))),
  };
}

const startAttrs = () =>
  dict.encodeAll([
    ['Acct-Status-Type', 'Start'],
    ['Acct-Session-Id', 'call-1@example.com'],
    ['Sip-From-Tag', 'ft1'],
  ]);

describe('RadiusClient against a scripted server', () => {
  test('retransmits the same octets with a doubling timeout, then resolves with the verified reply', async () => {
    const srv = await udpServer();
    const { timers, fireAll } = manualTimers();
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: srv.port,
      secret: 'k',
      initialTimeoutMs: 100,
      timers,
    });
    try {
      const reply = client.accounting(startAttrs());
      const first = await srv.next();
      assert.ok(verifyAccountingRequest(first.msg, 'k'));
      assert.deepEqual(fireAll(), [100]);
      const second = await srv.next();
      assert.deepEqual(second.msg, first.msg);
      assert.equal(client.retransmissions, 1);
      // A reply signed with the wrong secret is ignored; the right one resolves.
      const reqAuth = first.msg.subarray(4, 20);
      const id = first.msg[1];
      srv.socket.send(
        encodeResponse({ code: 5, identifier: id, requestAuthenticator: reqAuth, secret: 'wrong' }),
        second.port,
        '127.0.0.1',
      );
      srv.socket.send(
        encodeResponse({ code: 5, identifier: id, requestAuthenticator: reqAuth, secret: 'k' }),
        second.port,
        '127.0.0.1',
      );
      const r = await reply;
      assert.equal(r.code, RadiusCode.AccountingResponse);
      assert.equal(client.badReplies, 1);
      assert.equal(client.inFlight, 0);
      assert.deepEqual(fireAll(), []); // the 200 ms timer was cleared by the reply
    } finally {
      client.close();
      srv.socket.close();
    }
  });

  test('gives up after maxAttempts with RadiusTimeoutError; close() fails what is in flight', async () => {
    const srv = await udpServer();
    const { timers, fireAll } = manualTimers();
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: srv.port,
      secret: 'k',
      initialTimeoutMs: 10,
      maxTimeoutMs: 15,
      maxAttempts: 3,
      timers,
    });
    try {
      const r = client.accounting(startAttrs());
      await srv.next();
      assert.deepEqual(fireAll(), [10]);
      await srv.next();
      assert.deepEqual(fireAll(), [15]);
      await srv.next();
      fireAll();
      await assert.rejects(r, RadiusTimeoutError);
      const pending = client.accounting(startAttrs());
      await srv.next();
      client.close();
      await assert.rejects(pending, RadiusClosedError);
    } finally {
      srv.socket.close();
    }
  });

  test('more than 256 requests in flight wait for a free Identifier; no Identifier is used twice at once', async () => {
    const srv = await udpServer();
    const { timers } = manualTimers();
    const client = await RadiusClient.open({ host: '127.0.0.1', port: srv.port, secret: 'k', timers });
    try {
      const replies = Array.from({ length: 300 }, (_, i) =>
        client.accounting(
          dict.encodeAll([
            ['Acct-Session-Id', `c${i}`],
            ['Acct-Status-Type', 'Start'],
          ]),
        ),
      );
      const first: Buffer[] = [];
      for (let i = 0; i < 256; i++) {
        const { msg } = await srv.next();
        assert.ok(!first.some((m) => m[1] === msg[1]), `identifier ${msg[1]} twice`);
        first.push(msg);
      }
      assert.equal(client.inFlight, 256);
      // Answer the first 256; the 44 waiting go out as Identifiers free up and are answered as they come.
      const port = client.localPort;
      const answer = (msg: Buffer) =>
        srv.socket.send(
          encodeResponse({
            code: 5,
            identifier: msg[1],
            requestAuthenticator: msg.subarray(4, 20),
            secret: 'k',
          }),
          port,
          '127.0.0.1',
        );
      srv.socket.removeAllListeners('message');
      let later = 0;
      srv.socket.on('message', (msg) => {
        later++;
        answer(msg);
      });
      for (const m of first) answer(m);
      const all = await Promise.all(replies);
      assert.equal(all.length, 300);
      assert.equal(later, 44);
    } finally {
      client.close();
      srv.socket.close();
    }
  });
});

describe('RadiusClient against FreeRADIUS (Debian freeradius, detail module)', () => {
  let fr: FreeRadiusServer;
  before(async () => {
    fr = await startFreeRadius({ port: await freePort(), secret: 'testing123', threads: 1 });
  });
  after(async () => {
    await fr?.stop();
  });

  test('an Accounting-Request with SIP and Switchboard attributes is answered and lands in the detail file', async () => {
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: fr.port,
      secret: 'testing123',
      initialTimeoutMs: 1000,
    });
    try {
      const reply = await client.accounting(
        dict.encodeAll([
          ['Acct-Status-Type', 'Start'],
          ['Acct-Session-Id', 'abc123@192.0.2.1'],
          ['Sip-From-Tag', 'from-tag-1'],
          ['Sip-To-Tag', 'to-tag-1'],
          ['Sip-Method', 'INVITE'],
          ['Sip-Response-Code', 200],
          ['User-Name', 'alice@example.com'],
          ['Calling-Station-Id', 'sip:alice@example.com'],
          ['Called-Station-Id', 'sip:+15551234567@example.com'],
          ['Sip-Translated-Request-URI', 'sip:+15551234567@gw1.example.net'],
          ['Event-Timestamp', 1700000000],
          ['NAS-IP-Address', '127.0.0.1'],
          ['Service-Type', 'Sip-Session'],
          ['Switchboard-Account', 'acct-42'],
          ['Switchboard-Gateway', 'gw1'],
          ['Switchboard-Source-Address', '192.0.2.1:5060'],
          ['Switchboard-Record-Id', 'proxy-1:000042'],
        ]),
        { messageAuthenticator: true },
      );
      assert.equal(reply.code, RadiusCode.AccountingResponse);
      const detail = fr.detail();
      for (const line of [
        'Acct-Status-Type = Start',
        'Acct-Session-Id = "abc123@192.0.2.1"',
        'Sip-From-Tag = "from-tag-1"',
        'Sip-Method = INVITE',
        'Sip-Response-Code = 200',
        'Service-Type = Sip-Session',
        'Switchboard-Account = "acct-42"',
        'Switchboard-Gateway = "gw1"',
        'Switchboard-Source-Address = "192.0.2.1:5060"',
        'Switchboard-Record-Id = "proxy-1:000042"',
        'Sip-Translated-Request-URI = "sip:+15551234567@gw1.example.net"',
      ]) {
        assert.ok(detail.includes(line), `detail file lacks ${line}:\n${detail}`);
      }
    } finally {
      client.close();
    }
  });

  test('Status-Server is answered with a verified Accounting-Response', async () => {
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: fr.port,
      secret: 'testing123',
      initialTimeoutMs: 1000,
    });
    try {
      const reply = await client.statusServer();
      assert.equal(reply.code, RadiusCode.AccountingResponse);
      assert.deepEqual(decodePacket(reply.raw).identifier, reply.identifier);
    } finally {
      client.close();
    }
  });
});
