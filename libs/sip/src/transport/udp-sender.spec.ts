import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { loadUdpSenderAddon, UdpSendThread } from './udp-sender';

const addon = loadUdpSenderAddon();

async function bound(type: 'udp4' | 'udp6', host: string, recvBuffer = 0): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  await new Promise<void>((r) => s.bind(0, host, r));
  if (recvBuffer) s.setRecvBufferSize(recvBuffer);
  return s;
}

/** Collects what `peer` receives until `n` datagrams came. */
function collect(peer: dgram.Socket, n: number): Promise<Array<{ text: string; port: number }>> {
  const got: Array<{ text: string; port: number }> = [];
  return new Promise((resolve) =>
    peer.on('message', (m, r) => {
      got.push({ text: m.toString(), port: r.port });
      if (got.length === n) resolve(got);
    }),
  );
}

describe(
  'UdpSendThread',
  { skip: addon instanceof Error ? `addon not built: ${addon.message}` : false },
  () => {
    test('sends in order, from the socket itself, over IPv4 and IPv6; callbacks get no error', async () => {
      for (const [type, host] of [
        ['udp4', '127.0.0.1'],
        ['udp6', '::1'],
      ] as const) {
        const sock = await bound(type, host);
        const peer = await bound(type, host, 4 << 20);
        const sender = UdpSendThread.open(sock)!;
        assert.ok(sender, 'a sender thread for a bound socket');
        const n = 2000;
        const arrived = collect(peer, n);
        const outcomes: Array<Error | undefined> = [];
        for (let i = 0; i < n; i++)
          assert.equal(
            sender.send(Buffer.from(`datagram ${i}`), peer.address().port, host, (err) => outcomes.push(err)),
            true,
          );
        const got = await arrived;
        assert.deepEqual(
          got.map((g) => g.text),
          Array.from({ length: n }, (_, i) => `datagram ${i}`),
        );
        assert.ok(got.every((g) => g.port === sock.address().port));
        // every callback, once, without an error
        while (outcomes.length < n) await new Promise((r) => setTimeout(r, 5));
        assert.equal(outcomes.length, n);
        assert.ok(outcomes.every((e) => e === undefined));
        assert.deepEqual(sender.stats(), [n, 0]);
        sender.close();
        sock.close();
        peer.close();
      }
    });

    test("a failed send reports the errno's code to its callback; later sends still go", async () => {
      const sock = await bound('udp4', '127.0.0.1');
      const peer = await bound('udp4', '127.0.0.1');
      const sender = UdpSendThread.open(sock)!;
      // broadcast without SO_BROADCAST: the kernel refuses it (EACCES)
      const failed = new Promise<Error | undefined>((r) =>
        sender.send(Buffer.from('to all'), 9, '255.255.255.255', r),
      );
      const arrived = once(peer, 'message');
      const ok = new Promise<Error | undefined>((r) =>
        sender.send(Buffer.from('after'), peer.address().port, '127.0.0.1', r),
      );
      const err = (await failed) as NodeJS.ErrnoException;
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'EACCES');
      assert.equal(err.syscall, 'send');
      assert.equal(await ok, undefined);
      assert.equal(String((await arrived)[0]), 'after');
      assert.deepEqual(sender.stats(), [1, 1]);
      sender.close();
      sock.close();
      peer.close();
    });

    test('close sends what is queued before it returns; then it takes nothing', async () => {
      const sock = await bound('udp4', '127.0.0.1');
      const peer = await bound('udp4', '127.0.0.1', 4 << 20);
      const sender = UdpSendThread.open(sock)!;
      const arrived = collect(peer, 100);
      for (let i = 0; i < 100; i++) sender.send(Buffer.from(`q${i}`), peer.address().port, '127.0.0.1');
      sender.close(); // in the same turn: nothing was flushed yet
      assert.deepEqual(sender.stats(), [100, 0]);
      sock.close(); // safe now: the thread is gone
      assert.equal((await arrived).length, 100);
      assert.equal(sender.send(Buffer.from('late'), peer.address().port, '127.0.0.1'), false);
      peer.close();
    });

    test('an address the thread does not read is not taken (the caller sends it otherwise)', async () => {
      const sock = await bound('udp6', '::1');
      const sender = UdpSendThread.open(sock)!;
      assert.equal(sender.send(Buffer.from('x'), 5060, 'fe80::1%lo'), false);
      assert.equal(sender.send(Buffer.from('x'), 5060, 'example.com'), false);
      sender.close();
      sock.close();
    });
  },
);

test('without the addon there is no sender thread', async () => {
  const sock = await bound('udp4', '127.0.0.1');
  assert.equal(UdpSendThread.open(sock, new Error('not built')), undefined);
  sock.close();
});
