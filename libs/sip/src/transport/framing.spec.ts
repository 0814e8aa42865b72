import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ContentLengthFramer } from './framing';

function run(chunks: string[], max?: number) {
  const out: string[] = [];
  const f = new ContentLengthFramer(
    {
      message: (b) => out.push(b.toString()),
      ping: () => out.push('PING'),
      error: (e, raw) => out.push(`ERR ${e.message} [${raw.toString()}]`),
    },
    max,
  );
  for (const c of chunks) f.push(Buffer.from(c));
  return out;
}

const m = (body: string, cl = 'Content-Length') =>
  `OPTIONS sip:a SIP/2.0\r\n${cl}: ${body.length}\r\n\r\n${body}`;

describe('ContentLengthFramer (RFC 3261 §18.3, RFC 5626 §4.4.1)', () => {
  test('whole, split at every byte, and back-to-back messages', () => {
    const two = m('abc') + m('', 'l');
    assert.deepEqual(run([two]), [m('abc'), m('', 'l')]);
    assert.deepEqual(run(two.split('')), [m('abc'), m('', 'l')]);
  });
  test('CRLFCRLF is a ping, lone CRLF a pong, even split across chunks', () => {
    assert.deepEqual(run(['\r\n\r\n', m('x')]), ['PING', m('x')]);
    assert.deepEqual(run(['\r', '\n', '\r', '\n']), ['PING']);
    assert.deepEqual(run(['\r\n' + m('')]), [m('')]);
  });
  test('missing or bad Content-Length and oversize are framing errors', () => {
    assert.match(run(['OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n'])[0], /^ERR missing Content-Length/);
    assert.match(run(['OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n'])[0], /^ERR bad Content-Length/);
    assert.match(run([m('x'.repeat(200))], 100)[0], /^ERR message of \d+ bytes over limit 100/);
    assert.match(run(['A'.repeat(150)], 100)[0], /^ERR header section over limit/);
  });
});
