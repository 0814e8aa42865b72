/**
 * Stream framing for TCP/TLS (RFC 3261 §18.3): a message ends Content-Length
 * bytes after the blank line. Leading CRLFCRLF is an RFC 5626 §4.4.1 ping
 * (answered with CRLF by the connection); a lone CRLF is a pong and skipped.
 *
 * Small and self-contained so the transport does not depend on the message
 * layer's internals; it only finds message boundaries (the parser validates).
 */
import { MAX_MESSAGE_SIZE, MAX_STREAM_BUFFER } from '../message/limits';
import type { Framer, FramerFactory, FramerSink } from './connection';

const CR = 13;
const LF = 10;

/** Content-Length (or compact "l") value in a header section, -1 if absent, -2 if malformed. */
function contentLength(buf: Buffer, end: number): number {
  let i = 0;
  while (i < end) {
    // i is at the start of a line
    let lineEnd = buf.indexOf('\r\n', i);
    if (lineEnd < 0 || lineEnd > end) lineEnd = end;
    const c = buf[i] | 0x20;
    if (c === 0x63 /* c */ || c === 0x6c /* l */) {
      const colon = buf.indexOf(':', i);
      if (colon > 0 && colon < lineEnd) {
        const name = buf.toString('latin1', i, colon).trim().toLowerCase();
        if (name === 'content-length' || name === 'l') {
          const v = buf.toString('latin1', colon + 1, lineEnd).trim();
          return /^\d{1,9}$/.test(v) ? Number(v) : -2;
        }
      }
    }
    i = lineEnd + 2;
  }
  return -1;
}

export class ContentLengthFramer implements Framer {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly sink: FramerSink,
    private readonly maxMessage = MAX_MESSAGE_SIZE,
    private readonly maxBuffer = Math.max(MAX_STREAM_BUFFER, maxMessage),
  ) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (b.length === 0) return;
      // keep-alives (RFC 5626 §4.4.1)
      if (b[0] === CR) {
        if (b.length < 2) return;
        if (b[1] !== LF) return this.fail(new Error('stray CR'));
        if (b.length >= 4 && b[2] === CR && b[3] === LF) {
          this.buf = b.subarray(4);
          this.sink.ping();
          continue;
        }
        if (b.length < 4 && (b.length === 2 || b[2] === CR)) return; // may be the start of a ping
        this.buf = b.subarray(2);
        continue;
      }
      const hdrEnd = b.indexOf('\r\n\r\n');
      if (hdrEnd < 0) {
        if (b.length > this.maxBuffer || b.length > this.maxMessage)
          return this.fail(new Error('header section over limit'));
        return;
      }
      const cl = contentLength(b, hdrEnd);
      // RFC 3261 §18.3: Content-Length is mandatory over streams.
      if (cl < 0)
        return this.fail(new Error(cl === -1 ? 'missing Content-Length on stream' : 'bad Content-Length'));
      const total = hdrEnd + 4 + cl;
      if (total > this.maxMessage)
        return this.fail(new Error(`message of ${total} bytes over limit ${this.maxMessage}`));
      if (b.length < total) return;
      const msg = b.subarray(0, total);
      this.buf = b.subarray(total);
      this.sink.message(msg);
    }
  }

  private fail(err: Error): void {
    const raw = this.buf;
    this.buf = Buffer.alloc(0);
    this.sink.error(err, raw);
  }
}

export const defaultFramer: FramerFactory = (sink, maxMessageSize) =>
  new ContentLengthFramer(sink, maxMessageSize);
