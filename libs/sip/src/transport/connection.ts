/**
 * Connection-oriented flows: TCP and TLS sockets (framed by Content-Length,
 * RFC 3261 §18.3) and WebSockets (one SIP message per WebSocket message,
 * RFC 7118 §5). Each connection has a numeric id, which is the flow token
 * the upper layers use to send back over it (RFC 5626, RFC 5923).
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Source, TransportName } from './types';

/** "::ffff:127.0.0.1" → "127.0.0.1" (dual-stack sockets report IPv4 peers mapped). */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** Splits a byte stream into SIP messages; answers CRLFCRLF pings. */
export interface Framer {
  push(chunk: Buffer): void;
}
export interface FramerSink {
  /** One complete message (start line through body). */
  message(buf: Buffer): void;
  /** RFC 5626 §4.4.1 keep-alive ping (CRLFCRLF): answer with a CRLF pong. */
  ping(): void;
  /** Unrecoverable framing error (oversized, bad Content-Length): the connection is closed. */
  error(err: Error, raw: Buffer): void;
}
export type FramerFactory = (sink: FramerSink, maxMessageSize: number) => Framer;

export interface ConnectionEvents {
  message(conn: Connection, buf: Buffer): void;
  framingError(conn: Connection, err: Error, raw: Buffer): void;
  closed(conn: Connection, err?: Error): void;
}

const CRLF = Buffer.from('\r\n');

export abstract class Connection {
  lastActive: number;
  closed = false;
  /** Set when the connection is established (outbound connections start pending). */
  ready: boolean;
  private pending: Array<{ data: Buffer; cb?: (err?: Error) => void }> | undefined;
  /** Handed up with every message from this connection (one object per connection, not per message). */
  readonly source: Source;

  constructor(
    readonly id: number,
    readonly transport: TransportName,
    public remoteAddress: string,
    public remotePort: number,
    public localAddress: string,
    public localPort: number,
    readonly outbound: boolean,
    protected readonly events: ConnectionEvents,
    now: number,
  ) {
    this.lastActive = now;
    this.ready = !outbound;
    this.source = {
      transport,
      address: normalizeAddress(remoteAddress),
      port: remotePort,
      localAddress: normalizeAddress(localAddress),
      localPort,
      connId: id,
    };
  }

  send(data: Buffer, cb?: (err?: Error) => void): void {
    if (this.closed) {
      cb?.(new Error(`connection ${this.id} closed`));
      return;
    }
    if (!this.ready) {
      (this.pending ??= []).push({ data, cb });
      return;
    }
    this.write(data, cb);
  }

  protected markReady(localAddress: string, localPort: number): void {
    this.ready = true;
    this.localAddress = localAddress;
    this.localPort = localPort;
    this.source.localAddress = normalizeAddress(localAddress);
    this.source.localPort = localPort;
    const q = this.pending;
    this.pending = undefined;
    if (q) for (const p of q) this.write(p.data, p.cb);
  }

  protected markClosed(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const q = this.pending;
    this.pending = undefined;
    if (q) for (const p of q) p.cb?.(err ?? new Error(`connection ${this.id} closed`));
    this.events.closed(this, err);
  }

  protected abstract write(data: Buffer, cb?: (err?: Error) => void): void;
  abstract close(): void;
}

/** TCP or TLS socket. */
export class StreamConnection extends Connection {
  private readonly framer: Framer;

  constructor(
    id: number,
    transport: 'tcp' | 'tls',
    readonly socket: Socket,
    remote: { address: string; port: number },
    outbound: boolean,
    events: ConnectionEvents,
    framerFactory: FramerFactory,
    maxMessageSize: number,
    now: () => number,
  ) {
    super(
      id,
      transport,
      remote.address,
      remote.port,
      socket.localAddress ?? '',
      socket.localPort ?? 0,
      outbound,
      events,
      now(),
    );
    socket.setNoDelay(true);
    this.framer = framerFactory(
      {
        message: (buf) => events.message(this, buf),
        ping: () => {
          if (!this.closed) socket.write(CRLF);
        },
        error: (err, raw) => {
          events.framingError(this, err, raw);
          this.close();
        },
      },
      maxMessageSize,
    );
    socket.on('data', (chunk: Buffer) => {
      this.lastActive = now();
      this.framer.push(chunk);
    });
    socket.on('error', (err) => this.markClosed(err));
    socket.on('close', () => this.markClosed());
    if (outbound) {
      socket.once(transport === 'tls' ? 'secureConnect' : 'connect', () =>
        this.markReady(socket.localAddress ?? '', socket.localPort ?? 0),
      );
    }
  }

  protected write(data: Buffer, cb?: (err?: Error) => void): void {
    this.socket.write(data, cb ? (err) => cb(err ?? undefined) : undefined);
  }

  close(): void {
    if (!this.closed) this.socket.destroy();
    this.markClosed();
  }
}

/** RFC 7118 WebSocket connection: each WebSocket message carries exactly one SIP message. */
export class WsConnection extends Connection {
  constructor(
    id: number,
    transport: 'ws' | 'wss',
    readonly ws: WebSocket,
    remote: { address: string; port: number },
    local: { address: string; port: number },
    outbound: boolean,
    events: ConnectionEvents,
    now: () => number,
  ) {
    super(id, transport, remote.address, remote.port, local.address, local.port, outbound, events, now());
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      this.lastActive = now();
      const buf = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data);
      events.message(this, buf);
    });
    ws.on('error', (err) => this.markClosed(err));
    ws.on('close', () => this.markClosed());
    if (outbound) {
      let local = { address: '', port: 0 };
      ws.once('upgrade', (res) => {
        local = { address: res.socket.localAddress ?? '', port: res.socket.localPort ?? 0 };
      });
      ws.once('open', () => this.markReady(local.address, local.port));
    }
  }

  protected write(data: Buffer, cb?: (err?: Error) => void): void {
    // SIP over WebSocket is text (UTF-8) in practice; send text frames.
    this.ws.send(data, { binary: false }, cb ? (err) => cb(err ?? undefined) : undefined);
  }

  close(): void {
    if (!this.closed) this.ws.terminate();
    this.markClosed();
  }
}
