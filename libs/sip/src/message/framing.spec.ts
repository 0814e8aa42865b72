import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { StreamFramer, parseMessage, SipParseError, MAX_STREAM_BUFFER, type SipRequest } from './index';

const msg = (body: string, cl = Buffer.byteLength(body), clName = 'Content-Length') =>
  `OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c${body.length}\r\nCSeq: 1 OPTIONS\r\n${clName}: ${cl}\r\n\r\n${body}`;

function collect() {
  const out: { msgs: Buffer[]; pings: number; pongs: number } = { msgs: [], pings: 0, pongs: 0 };
  const f = new StreamFramer({
    onMessage: (b) => out.msgs.push(Buffer.from(b)),
    onPing: () => out.pings++,
    onPong: () => out.pongs++,
  });
  return { f, out };
}

describe('StreamFramer', () => {
  test('splits back-to-back messages by Content-Length, byte by byte too', () => {
    const wire = Buffer.from(msg('hello') + msg('') + msg('x\r\n\r\ny'));
    for (const step of [wire.length, 1, 7]) {
      const { f, out } = collect();
      for (let i = 0; i < wire.length; i += step) f.push(wire.subarray(i, i + step));
      assert.equal(out.msgs.length, 3);
      assert.equal(parseMessage(out.msgs[0], { transport: 'stream' }).body.toString(), 'hello');
      assert.equal(parseMessage(out.msgs[1], { transport: 'stream' }).body.length, 0);
      assert.equal(parseMessage(out.msgs[2], { transport: 'stream' }).body.toString(), 'x\r\n\r\ny');
      assert.equal(f.buffered, 0);
    }
  });

  test('compact l: form and folded value', () => {
    const { f, out } = collect();
    f.push(Buffer.from(msg('abc', 3, 'l')));
    f.push(Buffer.from(msg('abcd').replace('Content-Length: 4', 'Content-Length:\r\n 4')));
    assert.equal(out.msgs.length, 2);
    assert.equal(out.msgs[1].subarray(-4).toString(), 'abcd');
  });

  test('keep-alives: CRLFCRLF is a ping, CRLF a pong, swallowed between messages', () => {
    const { f, out } = collect();
    f.push(Buffer.from('\r\n\r\n'));
    f.push(Buffer.from('\r\n'));
    f.push(Buffer.from('\r\n\r\n' + msg('') + '\r\n\r\n'));
    assert.equal(out.pings, 3);
    assert.equal(out.pongs, 1);
    assert.equal(out.msgs.length, 1);
    assert.equal((parseMessage(out.msgs[0], { transport: 'stream' }) as SipRequest).method, 'OPTIONS');
  });

  test('missing Content-Length is an error, and the framer stays failed', () => {
    const { f } = collect();
    const bad = Buffer.from(msg('').replace('Content-Length: 0\r\n', ''));
    assert.throws(
      () => f.push(bad),
      (e: unknown) => e instanceof SipParseError && e.code === 'missing_header',
    );
    assert.throws(() => f.push(Buffer.from(msg(''))), SipParseError);
  });

  test('bad and conflicting Content-Length', () => {
    for (const v of ['-1', 'abc', '12345678901']) {
      const { f } = collect();
      assert.throws(
        () => f.push(Buffer.from(msg('', 0).replace('Content-Length: 0', `Content-Length: ${v}`))),
        (e: unknown) => e instanceof SipParseError && e.code === 'bad_content_length',
      );
    }
    const { f } = collect();
    const two = msg('').replace('Content-Length: 0', 'Content-Length: 0\r\nl: 5');
    assert.throws(
      () => f.push(Buffer.from(two)),
      (e: unknown) => e instanceof SipParseError && e.code === 'bad_content_length',
    );
  });

  test('bounded: endless headers or huge Content-Length are rejected', () => {
    const { f } = collect();
    assert.throws(
      () => {
        for (let i = 0; i < 10000; i++) f.push(Buffer.from('X-Junk: ' + 'a'.repeat(100) + '\r\n'));
      },
      (e: unknown) => e instanceof SipParseError && e.code === 'too_large',
    );
    const g = collect().f;
    assert.throws(
      () => g.push(Buffer.from(msg('', 1_000_000))),
      (e: unknown) => e instanceof SipParseError && e.code === 'too_large',
    );
    assert.ok(MAX_STREAM_BUFFER > 65535);
  });

  test('waits for the rest of a body (RFC 4475 clerr on TCP)', () => {
    const { f, out } = collect();
    f.push(Buffer.from(msg('short', 9999)));
    assert.equal(out.msgs.length, 0);
    assert.ok(f.buffered > 0);
  });
});
