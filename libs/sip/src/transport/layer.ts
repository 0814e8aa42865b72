/**
 * The SIP transport layer (RFC 3261 §18): listens on UDP, TCP, TLS, WS and WSS
 * (IPv4 and IPv6), hands every received message up with where it came from,
 * and sends messages to a target or back over a given connection.
 *
 * It knows nothing of transactions: the layer above attaches a
 * `TransportUser` and calls `send`. Parsing and stream framing are injected
 * (the message layer's parser and StreamFramer: see `createSipTransport`),
 * so this file only moves bytes.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { literalLookup } from '@switchboard/platform';
import { MAX_MESSAGE_SIZE, type SipRequest, type SipResponse } from '../message';
import {
  Connection,
  StreamConnection,
  normalizeAddress,
  WsConnection,
  type ConnectionEvents,
  type FramerFactory,
} from './connection';
import { defaultFramer, parseSip } from './framing';
import { UdpSendThread } from './udp-sender';
import {
  systemClock,
  type BoundAddress,
  type Clock,
  type ListenSpec,
  type SendCallback,
  type SendTarget,
  type Source,
  type TransportName,
} from './types';

/** What the layer above hears. */
export interface TransportUser<M> {
  /** A message that parsed. `src` tells where from (and over which connection). */
  onMessage(msg: M, src: Source): void;
  /**
   * Bytes that did not parse (or were over the size limit). The raw bytes are
   * handed up so the upper layer can answer 400 when it can read enough of them,
   * or drop them. The transport keeps serving.
   */
  onParseError(raw: Buffer, err: Error, src: Source): void;
  /** A connection (flow) closed: idle timeout, peer close, or error. */
  onConnectionClosed?(connId: number, err?: Error): void;
}

export interface TlsClientOptions {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Verify the server certificate. Default true. */
  rejectUnauthorized?: boolean;
}

/** One message as the transport saw it, for tracing. `address`/`port` are the remote end. */
export interface TapEvent {
  dir: 'in' | 'out';
  data: Buffer;
  transport: TransportName;
  address: string;
  port: number;
  /** Milliseconds since the epoch (the layer's clock). */
  time: number;
}

export interface TransportLayerOptions<M> {
  listen: ListenSpec[];
  /** Parser: bytes → message, throws on malformed input. `stream` is true for TCP/TLS (Content-Length required). */
  parse: (buf: Buffer, stream: boolean) => M;
  /** Stream framer for TCP/TLS (Content-Length framing, CRLF keep-alives). */
  framer: FramerFactory;
  /** Close connections idle for this long (ms). Default 120 s (Kamailio's tcp_connection_lifetime). */
  idleTimeoutMs?: number;
  /** Largest message accepted or sent over UDP. Default MAX_MESSAGE_SIZE. */
  maxMessageSize?: number;
  /** TLS options for outbound tls/wss connections. */
  tlsClient?: TlsClientOptions;
  /** Kernel receive buffer for UDP sockets (best effort). */
  udpRecvBufferSize?: number;
  /**
   * UDP sends on a native thread, one wake-up per event-loop turn (udp-sender.ts); default true.
   * Without the addon (not built) they go through dgram's send either way.
   */
  udpSendThread?: boolean;
  /** Sees every message received and sent (SIP trace, HEP mirroring); keep it cheap. */
  tap?: (ev: TapEvent) => void;
  clock?: Clock;
}

interface UdpListener {
  socket: dgram.Socket;
  /** Its sends' thread (udpSendThread), if it has one. */
  sender: UdpSendThread | undefined;
  family: 4 | 6;
  address: string;
  port: number;
}

type Closable = { close(cb?: () => void): unknown };

/** Only whitespace: a CRLF keep-alive datagram (or stray CRLFs), not a message. */
function isKeepAlive(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== 13 && c !== 10 && c !== 32 && c !== 9 && c !== 0) return false;
  }
  return true;
}

function hostForUrl(a: string): string {
  return net.isIPv6(a) ? `[${a}]` : a;
}

function aliasKey(transport: TransportName, address: string, port: number): string {
  return `${transport} ${address} ${port}`;
}

export class TransportLayer<M> {
  private user: TransportUser<M> | undefined;
  private readonly clock: Clock;
  private readonly idleTimeoutMs: number;
  private readonly maxMessageSize: number;
  private readonly udp: UdpListener[] = [];
  private readonly servers: Closable[] = [];
  private readonly bound: BoundAddress[] = [];
  private readonly conns = new Map<number, Connection>();
  private readonly aliases = new Map<string, number>();
  private readonly aliasesOf = new Map<number, string[]>();
  private nextConnId = 1;
  private sweepTimer: unknown;
  private readonly events: ConnectionEvents;
  private readonly now = (): number => this.clock.now();

  constructor(private readonly opts: TransportLayerOptions<M>) {
    this.clock = opts.clock ?? systemClock;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 120_000;
    this.maxMessageSize = opts.maxMessageSize ?? MAX_MESSAGE_SIZE;
    this.events = {
      message: (conn, buf) => this.deliver(buf, conn.source),
      framingError: (conn, err, raw) => this.user?.onParseError(raw, err, conn.source),
      closed: (conn, err) => this.forget(conn, err),
    };
  }

  /** Attach the layer above (the transaction layer). */
  attach(user: TransportUser<M>): void {
    this.user = user;
  }

  /** Bind every configured listener. */
  async start(): Promise<BoundAddress[]> {
    for (const spec of this.opts.listen) await this.listen(spec);
    this.scheduleSweep();
    return this.addresses();
  }

  /** Bound addresses (ports resolved when 0 was asked for). */
  addresses(): BoundAddress[] {
    return this.bound.slice();
  }

  /** How UDP sends go: on the native send thread (udpSendThread), or through dgram's send. */
  udpSender(): 'thread' | 'dgram' {
    return this.udp.some((u) => u.sender) ? 'thread' : 'dgram';
  }

  /** Datagrams the send threads sent and failed so far, over every UDP listener; undefined without one. */
  udpSendStats(): [sent: number, failed: number] | undefined {
    if (this.udpSender() === 'dgram') return undefined;
    const total: [number, number] = [0, 0];
    for (const u of this.udp) {
      const [sent, failed] = u.sender?.stats() ?? [0, 0];
      total[0] += sent;
      total[1] += failed;
    }
    return total;
  }

  /** The bound address to advertise for a transport (Via sent-by, Contact), preferring `family`. */
  localFor(transport: TransportName, family?: 4 | 6): BoundAddress | undefined {
    let first: BoundAddress | undefined;
    for (const b of this.bound) {
      if (b.transport !== transport) continue;
      if (!family || net.isIP(b.host) === family) return b;
      first ??= b;
    }
    return first;
  }

  /** The Source of a live connection (flow), or undefined once it closed. */
  connection(connId: number): Source | undefined {
    const c = this.conns.get(connId);
    return c && !c.closed ? c.source : undefined;
  }

  /**
   * Register `transport address:port` as another name for a connection: RFC 5923
   * `alias` Via parameter, or the Contact of a UA registered over this flow
   * (RFC 5626), so requests to it reuse the connection.
   */
  addAlias(connId: number, transport: TransportName, address: string, port: number): void {
    const conn = this.conns.get(connId);
    if (!conn || conn.closed) return;
    const key = aliasKey(transport, address, port);
    if (this.aliases.get(key) === connId) return; // refreshes (re-REGISTER) add nothing
    this.aliases.set(key, connId);
    const list = this.aliasesOf.get(connId);
    if (list) list.push(key);
    else this.aliasesOf.set(connId, [key]);
  }

  /**
   * Send bytes. Over `target.connId` if that connection is open; otherwise UDP
   * to address:port, or an existing connection to address:port, or a new one.
   * `cb` gets the transport error, if any (RFC 3261 §17.1.4 reports it to the TU).
   */
  send(data: Buffer, target: SendTarget, cb?: SendCallback): void {
    const tap = this.opts.tap;
    if (tap)
      tap({
        dir: 'out',
        data,
        transport: target.transport,
        address: target.address,
        port: target.port,
        time: this.clock.now(),
      });
    if (target.connId !== undefined) {
      const conn = this.conns.get(target.connId);
      if (conn && !conn.closed) {
        conn.lastActive = this.clock.now();
        conn.send(data, cb);
        return;
      }
      if (target.flowOnly) {
        cb?.(new Error(`flow ${target.connId} is closed`));
        return;
      }
    }
    if (target.transport === 'udp') {
      this.sendUdp(data, target, cb);
      return;
    }
    const existing = this.aliases.get(aliasKey(target.transport, target.address, target.port));
    let conn = existing !== undefined ? this.conns.get(existing) : undefined;
    if (!conn || conn.closed) {
      try {
        conn = this.connect(target);
      } catch (err) {
        cb?.(err as Error);
        return;
      }
    }
    conn.lastActive = this.clock.now();
    conn.send(data, cb);
  }

  /** Number of names (aliases) held for live connections, for metrics and tests. */
  get aliasCount(): number {
    return this.aliases.size;
  }

  /** Close one connection (flow). */
  closeConnection(connId: number): void {
    this.conns.get(connId)?.close();
  }

  /** Close every listener and connection. */
  async stop(): Promise<void> {
    if (this.sweepTimer !== undefined) this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const c of [...this.conns.values()]) c.close();
    for (const u of this.udp) {
      u.sender?.close(); // its queue goes out before the socket's descriptor closes
      u.socket.close();
    }
    this.udp.length = 0;
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
    this.bound.length = 0;
  }

  // ---- receive path -------------------------------------------------------

  private deliver(buf: Buffer, src: Source): void {
    const user = this.user;
    if (!user) return;
    const tap = this.opts.tap;
    if (tap)
      tap({
        dir: 'in',
        data: buf,
        transport: src.transport,
        address: src.address,
        port: src.port,
        time: this.clock.now(),
      });
    if (buf.length > this.maxMessageSize) {
      user.onParseError(
        buf,
        new Error(`message of ${buf.length} bytes over limit ${this.maxMessageSize}`),
        src,
      );
      return;
    }
    let msg: M;
    try {
      msg = this.opts.parse(buf, src.transport === 'tcp' || src.transport === 'tls');
    } catch (err) {
      user.onParseError(buf, err as Error, src);
      return;
    }
    user.onMessage(msg, src);
  }

  // ---- listeners ------------------------------------------------------------

  private async listen(spec: ListenSpec): Promise<void> {
    switch (spec.transport) {
      case 'udp':
        return this.listenUdp(spec);
      case 'tcp':
        return this.listenServer(
          spec,
          net.createServer((s) => this.accept(s, 'tcp', spec)),
        );
      case 'tls':
        if (!spec.tls) throw new Error('tls listener needs tls.cert and tls.key');
        return this.listenServer(
          spec,
          tls.createServer(
            {
              cert: spec.tls.cert,
              key: spec.tls.key,
              ca: spec.tls.ca,
              requestCert: spec.tls.requestCert ?? false,
              rejectUnauthorized: false,
            },
            (s) => this.accept(s, 'tls', spec),
          ),
        );
      case 'ws':
      case 'wss': {
        let server: http.Server;
        if (spec.transport === 'wss') {
          if (!spec.tls) throw new Error('wss listener needs tls.cert and tls.key');
          server = https.createServer({ cert: spec.tls.cert, key: spec.tls.key, ca: spec.tls.ca });
        } else {
          server = http.createServer();
        }
        server.on('request', (_req, res) => {
          res.writeHead(426, { 'content-type': 'text/plain' }).end('SIP over WebSocket only\n');
        });
        const wss = new WebSocketServer({
          server,
          maxPayload: this.maxMessageSize,
          // RFC 7118 §4.1: the subprotocol must be "sip".
          handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
        });
        wss.on('connection', (ws, req) => {
          if (ws.protocol !== 'sip') {
            ws.close(1002, 'subprotocol sip required');
            return;
          }
          const s = req.socket;
          this.register(
            new WsConnection(
              this.nextConnId++,
              spec.transport as 'ws' | 'wss',
              ws,
              { address: normalizeAddress(s.remoteAddress ?? ''), port: s.remotePort ?? 0 },
              { address: normalizeAddress(s.localAddress ?? ''), port: s.localPort ?? 0 },
              false,
              this.events,
              this.now,
            ),
          );
        });
        this.servers.push(wss);
        return this.listenServer(spec, server);
      }
    }
  }

  private listenUdp(spec: ListenSpec): Promise<void> {
    const family: 4 | 6 = net.isIPv6(spec.host) ? 6 : 4;
    // sends go to address literals (resolved targets): answered at once, not through dns.lookup's extra tick
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: family === 6,
      lookup: literalLookup,
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(spec.port, spec.host, () => {
        socket.off('error', reject);
        socket.on('error', () => {
          /* ICMP errors etc.: UDP keeps serving */
        });
        if (this.opts.udpRecvBufferSize) {
          try {
            socket.setRecvBufferSize(this.opts.udpRecvBufferSize);
          } catch {
            /* best effort */
          }
        }
        const a = socket.address();
        const sender = this.opts.udpSendThread === false ? undefined : UdpSendThread.open(socket);
        const l: UdpListener = { socket, sender, family, address: a.address, port: a.port };
        this.udp.push(l);
        this.bound.push({ transport: 'udp', host: a.address, port: a.port });
        socket.on('message', (buf, rinfo) => {
          if (isKeepAlive(buf)) return;
          this.deliver(buf, {
            transport: 'udp',
            address: normalizeAddress(rinfo.address),
            port: rinfo.port,
            localAddress: l.address,
            localPort: l.port,
            connId: undefined,
          });
        });
        resolve();
      });
    });
  }

  private listenServer(spec: ListenSpec, server: net.Server): Promise<void> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: spec.host, port: spec.port, ipv6Only: net.isIPv6(spec.host) }, () => {
        server.off('error', reject);
        const a = server.address() as net.AddressInfo;
        this.servers.push(server);
        this.bound.push({ transport: spec.transport, host: a.address, port: a.port });
        resolve();
      });
    });
  }

  private accept(socket: net.Socket, transport: 'tcp' | 'tls', _spec: ListenSpec): void {
    const remote = { address: normalizeAddress(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    this.register(
      new StreamConnection(
        this.nextConnId++,
        transport,
        socket,
        remote,
        false,
        this.events,
        this.opts.framer,
        this.maxMessageSize,
        this.now,
      ),
    );
  }

  private register(conn: Connection): void {
    this.conns.set(conn.id, conn);
    this.addAlias(conn.id, conn.transport, conn.remoteAddress, conn.remotePort);
  }

  private forget(conn: Connection, err?: Error): void {
    if (!this.conns.delete(conn.id)) return;
    for (const key of this.aliasesOf.get(conn.id) ?? []) {
      if (this.aliases.get(key) === conn.id) this.aliases.delete(key);
    }
    this.aliasesOf.delete(conn.id);
    this.user?.onConnectionClosed?.(conn.id, err);
  }

  // ---- send path --------------------------------------------------------------

  private sendUdp(data: Buffer, target: SendTarget, cb?: SendCallback): void {
    const family = net.isIP(target.address);
    if (family === 0) {
      cb?.(new Error(`udp target ${target.address} is not a numeric address (resolve it first)`));
      return;
    }
    if (data.length > this.maxMessageSize) {
      cb?.(new Error(`message of ${data.length} bytes too large for udp`));
      return;
    }
    let l: UdpListener | undefined;
    for (const u of this.udp) {
      if (u.family === family) {
        l = u;
        break;
      }
    }
    if (!l) {
      cb?.(new Error(`no udp listener for IPv${family}`));
      return;
    }
    if (l.sender?.send(data, target.port, target.address, cb)) return;
    l.socket.send(data, target.port, target.address, cb ? (err) => cb(err ?? undefined) : undefined);
  }

  private connect(target: SendTarget): Connection {
    const id = this.nextConnId++;
    const { transport, address, port } = target;
    const tc = this.opts.tlsClient ?? {};
    const servername = target.hostname && !net.isIP(target.hostname) ? target.hostname : undefined;
    let conn: Connection;
    if (transport === 'tcp' || transport === 'tls') {
      const socket =
        transport === 'tcp'
          ? net.connect({ host: address, port })
          : tls.connect({
              host: address,
              port,
              servername,
              ca: tc.ca,
              cert: tc.cert,
              key: tc.key,
              rejectUnauthorized: tc.rejectUnauthorized ?? true,
            });
      conn = new StreamConnection(
        id,
        transport,
        socket,
        { address, port },
        true,
        this.events,
        this.opts.framer,
        this.maxMessageSize,
        this.now,
      );
    } else if (transport === 'ws' || transport === 'wss') {
      const url = `${transport}://${hostForUrl(address)}:${port}/`;
      const ws = new WebSocket(url, 'sip', {
        ca: tc.ca,
        cert: tc.cert,
        key: tc.key,
        ...(servername ? ({ servername } as object) : {}),
        rejectUnauthorized: tc.rejectUnauthorized ?? true,
        maxPayload: this.maxMessageSize,
      });
      conn = new WsConnection(
        id,
        transport,
        ws,
        { address, port },
        { address: '', port: 0 },
        true,
        this.events,
        this.now,
      );
    } else {
      throw new Error(`cannot connect over ${transport}`);
    }
    this.register(conn);
    return conn;
  }

  private scheduleSweep(): void {
    const every = Math.max(1000, Math.floor(this.idleTimeoutMs / 2));
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweepIdle();
      this.scheduleSweep();
    }, every);
  }

  /** Close connections idle longer than idleTimeoutMs. Public for tests driving a fake clock. */
  sweepIdle(): void {
    const now = this.clock.now();
    for (const c of this.conns.values()) {
      if (now - c.lastActive >= this.idleTimeoutMs) c.close();
    }
  }
}

/** A TransportLayer of SIP messages: the message layer's parser and StreamFramer wired in. */
export function createSipTransport(
  opts: Omit<TransportLayerOptions<SipRequest | SipResponse>, 'parse' | 'framer'>,
): TransportLayer<SipRequest | SipResponse> {
  return new TransportLayer({ ...opts, parse: parseSip, framer: defaultFramer });
}
