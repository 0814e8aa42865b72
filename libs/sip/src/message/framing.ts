/**
 * Stream framing for SIP over TCP/TLS (RFC 3261 §18.3): messages are delimited
 * by the empty line and Content-Length. CRLF keep-alives (RFC 5626 §3.5.1)
 * between messages are swallowed: a double CRLF is a ping (answer with a single
 * CRLF), a single CRLF is a pong.
 */
import { SipParseError } from './errors';
import { MAX_BODY_SIZE, MAX_HEADER_SECTION, MAX_MESSAGE_SIZE, MAX_STREAM_BUFFER } from './limits';

export interface StreamFramerHandlers {
  /** One complete message (start line, headers, empty line, body). Feed it to parseMessage(buf, { transport: 'stream' }). */
  onMessage(buf: Buffer): void;
  /** A CRLFCRLF keep-alive ping arrived: answer it with a single CRLF. */
  onPing?(): void;
  /** A single CRLF arrived between messages (keep-alive pong). */
  onPong?(): void;
}

export interface StreamFramerOptions {
  /** bytes buffered without a complete message before the stream is rejected */
  maxBuffer?: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Finds Content-Length in the header section buf[0, end). Returns -1 when absent.
 * Throws SipParseError on a malformed or conflicting value.
 */
function contentLength(buf: Buffer, end: number): number {
  let value = -1;
  let pos = buf.indexOf(10) + 1; // skip the start line
  while (pos > 0 && pos < end) {
    // logical line [pos, next): continuation lines start with SP/HT
    let eol = buf.indexOf(10, pos);
    while (eol >= 0 && eol + 1 < end && (buf[eol + 1] === 32 || buf[eol + 1] === 9))
      eol = buf.indexOf(10, eol + 1);
    const next = eol < 0 || eol >= end ? end : eol + 1;
    const c0 = buf[pos] | 0x20;
    if (c0 === 0x6c || c0 === 0x63) {
      const colon = buf.indexOf(58, pos);
      if (colon > 0 && colon < next) {
        const name = buf.toString('latin1', pos, colon).trimEnd().toLowerCase();
        if (name === 'l' || name === 'content-length') {
          const v = buf.toString('latin1', colon + 1, next).trim();
          if (!/^[0-9]{1,10}$/.test(v))
            throw new SipParseError(
              'bad_content_length',
              'bad Content-Length on stream',
              400,
              'content-length',
            );
          const n = Number(v);
          if (value >= 0 && value !== n)
            throw new SipParseError(
              'bad_content_length',
              'conflicting Content-Length values',
              400,
              'content-length',
            );
          value = n;
        }
      }
    }
    pos = next;
  }
  return value;
}

export class StreamFramer {
  private buf: Buffer = Buffer.alloc(0);
  /** where to resume looking for CRLFCRLF */
  private scanFrom = 0;
  /** total length of the message being received, once its headers are complete */
  private need = -1;
  private failed: SipParseError | null = null;
  private readonly maxBuffer: number;

  constructor(
    private readonly handlers: StreamFramerHandlers,
    opts: StreamFramerOptions = {},
  ) {
    this.maxBuffer = opts.maxBuffer ?? MAX_STREAM_BUFFER;
  }

  /** Bytes held for an incomplete message. */
  get buffered(): number {
    return this.buf.length;
  }

  /**
   * Feeds bytes. Calls the handlers for every complete message and keep-alive.
   * Throws SipParseError when the stream can't be framed (the caller should
   * answer 400 if it can and close the connection); after that every push throws.
   */
  push(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    try {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      this.drain();
    } catch (e) {
      if (e instanceof SipParseError) this.failed = e;
      throw e;
    }
  }

  private drain(): void {
    for (;;) {
      let b = this.buf;
      if (this.need < 0) {
        // keep-alives between messages
        let i = 0;
        while (i < b.length && (b[i] === 13 || b[i] === 10)) {
          if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) {
            i += 4;
            this.handlers.onPing?.();
          } else if (b[i] === 13 && b[i + 1] === 10) {
            i += 2;
            this.handlers.onPong?.();
          } else if (b[i] === 13 && i + 1 >= b.length) {
            break; // wait for the LF
          } else i++;
        }
        if (i > 0) {
          b = this.buf = b.subarray(i);
          this.scanFrom = 0;
        }
        if (b.length === 0) return;
        const h = b.indexOf(CRLFCRLF, Math.max(0, this.scanFrom - 3));
        if (h < 0) {
          if (b.length > MAX_HEADER_SECTION)
            throw new SipParseError('too_large', 'header section too large', 513);
          if (b.length > this.maxBuffer) throw new SipParseError('too_large', 'stream buffer limit', 513);
          this.scanFrom = b.length;
          return;
        }
        const cl = contentLength(b, h + 2);
        if (cl < 0)
          throw new SipParseError(
            'missing_header',
            'no Content-Length on a stream transport',
            400,
            'content-length',
          );
        if (cl > MAX_BODY_SIZE)
          throw new SipParseError('too_large', `body of ${cl} bytes`, 413, 'content-length');
        this.need = h + 4 + cl;
        if (this.need > MAX_MESSAGE_SIZE)
          throw new SipParseError('too_large', `message of ${this.need} bytes`, 513);
      }
      if (b.length < this.need) {
        if (b.length > this.maxBuffer) throw new SipParseError('too_large', 'stream buffer limit', 513);
        return;
      }
      const msg = b.subarray(0, this.need);
      this.buf = b.subarray(this.need);
      this.need = -1;
      this.scanFrom = 0;
      this.handlers.onMessage(msg);
    }
  }
}
