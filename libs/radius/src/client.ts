/**
 * A RADIUS client over one UDP socket: allocates Identifiers (256 in flight at
 * most; more requests wait for a free one), retransmits the same packet (same
 * Identifier and Authenticator, RFC 5080 §2.2.1) with a doubling timeout, and
 * resolves with the verified reply. Replies with a wrong Response Authenticator
 * are ignored (counted in `badReplies`), as RFC 2865 §3 asks.
 *
 * Failover between servers and a durable queue are the caller's (the proxy's).
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { encodeRequest, verifyResponse } from './auth';
import { RadiusCode, decodePacket, type Packet, type RawAttribute } from './packet';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface RadiusClientOptions {
  host: string;
  port: number;
  secret: string;
  /** First retransmission timeout, ms (RFC 5080 suggests 2 s). */
  initialTimeoutMs?: number;
  /** Cap of the doubling timeout, ms. */
  maxTimeoutMs?: number;
  /** Transmissions before giving up; Infinity retransmits until answered or closed. */
  maxAttempts?: number;
  /** Local address to bind (default: any, of the server's family). */
  bindAddress?: string;
  timers?: Timers;
}

export class RadiusTimeoutError extends Error {
  constructor(
    readonly identifier: number,
    readonly attempts: number,
  ) {
    super(`no RADIUS reply to identifier ${identifier} after ${attempts} transmissions`);
    this.name = 'RadiusTimeoutError';
  }
}

export class RadiusClosedError extends Error {
  constructor() {
    super('RADIUS client closed');
    this.name = 'RadiusClosedError';
  }
}

export interface Reply extends Packet {
  raw: Buffer;
}

interface Pending {
  packet: Buffer;
  authenticator: Buffer;
  attempts: number;
  timeoutMs: number;
  timer: unknown;
  resolve(r: Reply): void;
  reject(e: Error): void;
}

export class RadiusClient {
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: Array<() => void> = [];
  private readonly claimed = new Set<number>();
  private nextId = Math.floor(Math.random() * 256);
  private closed = false;
  /** Replies dropped for a wrong authenticator or an Identifier not in flight. */
  badReplies = 0;
  /** Retransmissions sent. */
  retransmissions = 0;
  private readonly timers: Timers;

  private constructor(
    private readonly socket: Socket,
    private readonly opts: RadiusClientOptions,
  ) {
    this.timers = opts.timers ?? realTimers;
    socket.on('message', (msg) => this.onMessage(msg));
    socket.on('error', () => undefined);
  }

  static async open(opts: RadiusClientOptions): Promise<RadiusClient> {
    const socket = createSocket(isIPv6(opts.host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, opts.bindAddress, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new RadiusClient(socket, opts);
  }

  get inFlight(): number {
    return this.pending.size;
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  /** Sends an Accounting-Request with these attributes; resolves with the verified Accounting-Response. */
  accounting(
    attributes: readonly RawAttribute[],
    opts: { messageAuthenticator?: boolean } = {},
  ): Promise<Reply> {
    return this.request(RadiusCode.AccountingRequest, attributes, opts);
  }

  /** RFC 5997 Status-Server (with Message-Authenticator). */
  statusServer(attributes: readonly RawAttribute[] = []): Promise<Reply> {
    return this.request(RadiusCode.StatusServer, attributes);
  }

  async request(
    code: number,
    attributes: readonly RawAttribute[],
    opts: { messageAuthenticator?: boolean } = {},
  ): Promise<Reply> {
    const id = await this.allocate();
    const packet = encodeRequest({
      code,
      identifier: id,
      attributes,
      secret: this.opts.secret,
      messageAuthenticator: opts.messageAuthenticator,
    });
    return new Promise<Reply>((resolve, reject) => {
      const p: Pending = {
        packet,
        authenticator: Buffer.from(packet.subarray(4, 20)),
        attempts: 0,
        timeoutMs: this.opts.initialTimeoutMs ?? 2000,
        timer: undefined,
        resolve,
        reject,
      };
      this.claimed.delete(id);
      this.pending.set(id, p);
      this.transmit(id, p);
    });
  }

  private transmit(id: number, p: Pending): void {
    if (p.attempts > 0) this.retransmissions++;
    p.attempts++;
    this.socket.send(p.packet, this.opts.port, this.opts.host, () => undefined);
    p.timer = this.timers.setTimeout(() => {
      if (this.pending.get(id) !== p) return;
      if (p.attempts >= (this.opts.maxAttempts ?? 5)) {
        this.finish(id);
        p.reject(new RadiusTimeoutError(id, p.attempts));
        return;
      }
      p.timeoutMs = Math.min(p.timeoutMs * 2, this.opts.maxTimeoutMs ?? 16000);
      this.transmit(id, p);
    }, p.timeoutMs);
  }

  private onMessage(msg: Buffer): void {
    if (msg.length < 20) return void this.badReplies++;
    const id = msg[1];
    const p = this.pending.get(id);
    if (!p || !verifyResponse(msg, p.authenticator, this.opts.secret)) return void this.badReplies++;
    let packet: Packet;
    try {
      packet = decodePacket(msg);
    } catch {
      return void this.badReplies++;
    }
    this.finish(id);
    p.resolve({ ...packet, raw: msg });
  }

  private finish(id: number): void {
    const p = this.pending.get(id);
    if (p) this.timers.clearTimeout(p.timer);
    this.pending.delete(id);
    this.waiting.shift()?.();
  }

  /** A free Identifier, claimed until request() puts it in `pending`; waits while 256 are taken. */
  private async allocate(): Promise<number> {
    while (this.pending.size + this.claimed.size >= 256 && !this.closed)
      await new Promise<void>((r) => this.waiting.push(r));
    if (this.closed) throw new RadiusClosedError();
    while (this.pending.has(this.nextId) || this.claimed.has(this.nextId))
      this.nextId = (this.nextId + 1) & 0xff;
    const id = this.nextId;
    this.claimed.add(id);
    this.nextId = (this.nextId + 1) & 0xff;
    return id;
  }

  /** Fails every request in flight and closes the socket. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [id, p] of this.pending) {
      this.timers.clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new RadiusClosedError());
    }
    for (const w of this.waiting.splice(0)) w();
    this.socket.close();
  }
}
