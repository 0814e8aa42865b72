/**
 * The relay: calls, their sides (the caller's from-tag and one per branch /
 * to-tag, as rtpengine's monologues), and per m= line a stream facing each
 * side: an RTP socket on an even port and an RTCP socket on the odd one.
 *
 * A packet that arrives on the stream facing party X came from X; it leaves
 * through the stream facing the other party (its `sink`), from that stream's
 * socket, to that party's address (learned from its first packets: symmetric
 * RTP, RFC 4961; else the one in its SDP). One datagram in, at most one out.
 *
 * Two engines run the hot path. "js": a dgram socket per port and onPacket
 * below (field reads, counters, a Buffer read or two, one socket.send of the
 * same Buffer; no allocation of our own, no JSON, no promise). "native" (the
 * default when native/relay.c is built): the same decisions in C on a thread of
 * its own (epoll, recvmmsg/sendmmsg, no JS per packet); the control plane here
 * edits a stream's state under the thread's lock (edit, commit) and reads its
 * counters from memory the thread writes.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP } from 'node:net';
import { DomainError, literalLookup } from '@switchboard/platform';
import { parse, rewriteMedia, listStreams, serialize, type SessionDescription } from '@switchboard/sdp';
import type {
  AnswerRequest,
  CallStats,
  DeleteRequest,
  Leg,
  OfferRequest,
  Stream as StreamStats,
} from '@switchboard/proto/media';
import type { RelayInterface, SchedulingPolicy } from './config';
import { PortPool } from './ports';
import { looksLikeRtcp, looksLikeRtp, newReportFigures, readRtcp, type ReportFigures } from './rtcp';
import { G, loadNative, type NativeAddon } from './native';

export interface Clock {
  /** ms since the Unix epoch */
  now(): number;
  /**
   * A clock other than the wall clock (tests): the native engine's thread reads the time from a
   * cell the relay sets from now() at each control operation and sweep, and whenever the clock
   * calls the function it was given here.
   */
  watch?(changed: () => void): void;
}

export type RelayEngine = 'native' | 'js';

export type DropReason = 'no_session' | 'strict_source' | 'no_destination' | 'malformed' | 'loop';
export const DROP_REASONS: readonly DropReason[] = [
  'no_session',
  'strict_source',
  'no_destination',
  'malformed',
  'loop',
];

/** Process-wide counters, read by the metrics collectors. */
export class RelayCounters {
  packetsIn = 0;
  packetsOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  rtcpIn = 0;
  timeouts = 0;
  readonly dropped: Record<DropReason, number> = {
    no_session: 0,
    strict_source: 0,
    no_destination: 0,
    malformed: 0,
    loop: 0,
  };
}

export type EndReason = 'delete' | 'timeout' | 'shutdown';

export interface RelayOptions {
  interfaces: readonly RelayInterface[];
  portMin: number;
  portMax: number;
  quietPeriodMs: number;
  timeoutMs: number;
  holdTimeoutMs: number;
  deleteGraceMs: number;
  clock?: Clock;
  /** A call ended (delete, timeout, shutdown): its final stats. Called synchronously; must not throw. */
  onEnded?: (stats: CallStats, reason: EndReason) => void;
  /** A stream's final figures when its call or branch ended (for loss/jitter histograms). */
  onStreamEnded?: (lossRatio: number, jitterMs: number) => void;
  /** Socket receive/send buffer size in bytes (0 keeps the OS default). */
  socketBufferBytes?: number;
  /** The hot path: "native" (default; falls back to "js" when the addon cannot be loaded) or "js". */
  engine?: RelayEngine;
  /** The native addon's path (default native/build/relay.node). */
  nativeAddon?: string;
  /** The native engine was asked for and could not be had: why (the JS relay runs). */
  onEngineFallback?: (reason: string) => void;
  /** Native engine (bench): timestamp arrivals and keep a histogram of each relayed packet's time in the relay. */
  measureResidence?: boolean;
  /** The native relay thread's scheduling policy and priority (rtpengine's --scheduling, --priority); default: as started. */
  scheduling?: SchedulingPolicy;
  priority?: number;
  /** The scheduling asked for could not be set (e.g. EPERM without CAP_SYS_NICE, or the JS engine): why; the relay runs on. */
  onSchedulingFailed?: (reason: string) => void;
}

/** Time from the kernel's receipt of a datagram to its send, per relayed packet (ms; 10 µs buckets). */
export interface Residence {
  packets: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

interface Native {
  addon: NativeAddon;
  h: unknown;
  /** Counters the relay thread writes (layout G). */
  g: Float64Array;
}

/** Static RTP payload types' clock rates (RFC 3551 table 4); dynamic ones come from a=rtpmap. */
const STATIC_CLOCK: Record<number, number> = {
  0: 8000,
  3: 8000,
  4: 8000,
  8: 8000,
  9: 8000,
  13: 8000,
  18: 8000,
  14: 90000,
  26: 90000,
  31: 90000,
  32: 90000,
  34: 90000,
};

/** One m= line's relay ports facing one party. Mutable fields are the hot path's state. */
export class RelayStream {
  rtpSock!: Socket;
  rtcpSock!: Socket;
  /** The native engine's slot for this port pair (-1 with the JS engine). */
  slot = -1;
  dead = false;
  /** Where packets received here go out. */
  sink: RelayStream | null = null;

  // what the party's SDP said
  sdpAddress = '';
  sdpRtpPort = 0;
  sdpRtcpAddress = '';
  sdpRtcpPort = 0;
  advertisedMux = false;
  sentMux = false;
  /** RTCP shares the RTP port toward this party (RFC 5761), negotiated both ways. */
  mux = false;
  hold = false;
  /** The party's SDP lets it send here (sendrecv or sendonly): its silence means something. */
  sends = true;
  symmetric = true;
  strict = false;
  clockRate = 8000;
  mediaType = 'audio';

  // where we send to this party (the SDP address until latched)
  rtpAddr = '';
  rtpPort = 0;
  rtcpAddr = '';
  rtcpPort = 0;
  latched = false;
  rtcpLatched = false;
  /**
   * After an address change (re-INVITE): packets from this old source with the old SSRC do not
   * latch until `staleUntil` (the learning window after the signal); later they may.
   */
  staleAddr = '';
  stalePort = 0;
  staleSsrc = -1;
  staleUntil = 0;

  // counters
  rtpPackets = 0;
  rtpBytes = 0;
  rtcpPackets = 0;
  rtcpBytes = 0;
  dropped = 0;
  lastRtp = 0;
  lastRtcp = 0;

  // RTP receive statistics (RFC 3550 A.1, A.8)
  ssrc = -1;
  baseSeq = 0;
  maxSeq = 0;
  cycles = 0;
  received = 0;
  lostBefore = 0;
  reordered = 0;
  jitter = 0;
  transit = 0;
  hasTransit = false;

  /** What this party reported in RTCP (about the stream it receives). */
  readonly report: ReportFigures = newReportFigures();

  constructor(
    readonly index: number,
    readonly iface: RelayInterface,
    readonly port: number,
  ) {}

  /** Packets lost before the relay, by sequence numbers. */
  get lost(): number {
    const expected = this.received === 0 ? 0 : this.cycles + this.maxSeq - this.baseSeq + 1;
    return this.lostBefore + Math.max(0, expected - this.received);
  }

  get jitterMs(): number {
    return (this.jitter / this.clockRate) * 1000;
  }
}

/** One party of a call: the caller (from-tag) or one branch (via-branch / to-tag). */
export class Side {
  readonly streams: (RelayStream | undefined)[] = [];
  iface: RelayInterface | undefined;
  ended = 0;
  constructor(
    public tag: string,
    readonly viaBranch: string,
    readonly created: number,
  ) {}
  live(): RelayStream[] {
    return this.streams.filter((s): s is RelayStream => s !== undefined);
  }
}

export class Call {
  readonly branches: Side[] = [];
  /** Branches deleted while the call went on: kept for Query. */
  readonly removed: Side[] = [];
  active: Side | null = null;
  lastSignal: number;
  ended = 0;
  endReason: EndReason | '' = '';
  /** An answer was seen: until then the call may ring silently (the long timeout applies, as rtpengine's offer timeout). */
  answered = false;
  /** Delete with ng "delete delay": the call relays on and ends at this time (ms); 0 for none. */
  deleteAt = 0;
  constructor(
    readonly id: string,
    readonly caller: Side,
    readonly created: number,
  ) {
    this.lastSignal = created;
  }
  sides(): Side[] {
    return [this.caller, ...this.branches];
  }
}

interface Draining {
  stream: RelayStream;
  at: number;
}

const secs = (ms: number) => Math.floor(ms / 1000);

/** When a party was last heard (RTP or RTCP) on the streams its SDP says it sends on; 0 for never. */
function partyLastHeard(side: Side): number {
  let last = 0;
  for (const s of side.streams) {
    if (s === undefined || !s.sends) continue;
    if (s.lastRtp > last) last = s.lastRtp;
    if (s.lastRtcp > last) last = s.lastRtcp;
  }
  return last;
}

/**
 * After a party's address changed (re-INVITE), late packets from its old source with its old SSRC
 * do not take the latch back for this long; after it they may (rtpengine waits 3 s after the last
 * signal before committing to an endpoint): a UA that wrote a new address but still sends from the
 * same NAT binding is found again rather than never.
 */
export const LEARNING_WINDOW_MS = 3000;

/** The "ip:port" text of an address (IPv6 in brackets). */
const hostPort = (addr: string, port: number) =>
  addr === '' ? '' : addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;

/** The address of "ip", "ip:port", "[v6]:port" or a bare IPv6 address; '' when it is none of these. */
export function hostOf(s: string): string {
  const v = s.trim();
  const bracket = /^\[([0-9a-fA-F:.]+)\](?::\d+)?$/.exec(v);
  if (bracket) return isIP(bracket[1]!) ? bracket[1]! : '';
  if (isIP(v)) return v;
  const i = v.lastIndexOf(':');
  return i > 0 && /^\d+$/.test(v.slice(i + 1)) && isIP(v.slice(0, i)) === 4 ? v.slice(0, i) : '';
}

const KNOWN_FLAGS = new Set([
  'strict-source',
  'asymmetric',
  'symmetric',
  'sip-source-address',
  'trust-address',
  'force-relay',
  'port-latching',
]);

interface SdpRequest {
  sdp: string;
  flags: string[];
  replace: string[];
  direction: string[];
  receivedFrom: string;
  ice: string;
  rtcpMux: string[];
}

export class MediaRelay {
  private readonly jsCounters = new RelayCounters();
  readonly pool: PortPool;
  /** The engine running the hot path. */
  readonly engine: RelayEngine;
  private readonly native: Native | null = null;
  private readonly manualClock: boolean;
  private readonly firstPort: number;
  private readonly calls = new Map<string, Call>();
  private readonly ended = new Map<string, Call>();
  private readonly draining: Draining[] = [];
  private readonly clock: Clock;
  private readonly ifaceAddrs: Set<string>;
  /** The even port of each pair the JS engine has bound (live and draining). */
  private readonly boundPorts = new Set<number>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly opts: RelayOptions) {
    if (opts.interfaces.length === 0) throw new Error('no relay interface');
    if (opts.portMin > opts.portMax) throw new Error(`port range ${opts.portMin}-${opts.portMax} is empty`);
    this.clock = opts.clock ?? { now: Date.now };
    this.pool = new PortPool(opts.portMin, opts.portMax, opts.quietPeriodMs);
    this.ifaceAddrs = new Set(opts.interfaces.map((i) => i.address));
    this.firstPort = opts.portMin % 2 === 0 ? opts.portMin : opts.portMin + 1;
    this.manualClock = opts.clock !== undefined;
    this.engine = 'js';
    if ((opts.engine ?? 'native') === 'native') {
      const addon = loadNative(opts.nativeAddon);
      if (addon instanceof Error) opts.onEngineFallback?.(addon.message);
      else {
        try {
          const [h, g] = addon.create(
            opts.portMin,
            opts.portMax,
            opts.interfaces.map((i) => i.address),
            this.manualClock,
            opts.measureResidence === true,
          );
          this.native = { addon, h, g };
          this.engine = 'native';
          this.tick();
          if (opts.scheduling && opts.scheduling !== 'default') {
            try {
              addon.schedule(h, opts.scheduling, opts.priority ?? 0);
            } catch (e) {
              opts.onSchedulingFailed?.(e instanceof Error ? e.message : String(e));
            }
          }
          opts.clock?.watch?.(() => this.tick());
        } catch (e) {
          opts.onEngineFallback?.(e instanceof Error ? e.message : String(e));
        }
      }
    }
    if (opts.scheduling && opts.scheduling !== 'default' && this.engine !== 'native')
      opts.onSchedulingFailed?.('the js engine relays on the event loop: no relay thread to schedule');
  }

  /** Process-wide counters (with the native engine, as its thread last wrote them). */
  get counters(): RelayCounters {
    const c = this.jsCounters;
    const n = this.native;
    if (n) {
      const g = n.g;
      c.packetsIn = g[G.packetsIn]!;
      c.packetsOut = g[G.packetsOut]!;
      c.bytesIn = g[G.bytesIn]!;
      c.bytesOut = g[G.bytesOut]!;
      c.rtcpIn = g[G.rtcpIn]!;
      for (let i = 0; i < DROP_REASONS.length; i++) c.dropped[DROP_REASONS[i]!] = g[G.dropped + i]!;
    }
    return c;
  }

  /**
   * The native engine's residence-time figures since the last reset (measureResidence on);
   * undefined with the JS engine.
   */
  residence(reset: boolean): Residence | undefined {
    const n = this.native;
    if (!n) return undefined;
    const [packets, p50Ms, p99Ms, p999Ms, maxMs] = n.addon.latency(n.h, reset);
    return { packets, p50Ms, p99Ms, p999Ms, maxMs };
  }

  /** With a manual clock, the native thread's time follows it. */
  private tick(): void {
    if (this.native && this.manualClock) this.native.g[G.now] = this.clock.now();
  }

  /**
   * Change a stream's state: with the native engine, under the relay thread's lock, with the
   * thread's view of it read first and what fn changed written back.
   */
  private edit(s: RelayStream, fn: () => void): void {
    const n = this.native;
    if (!n || s.slot < 0) return fn();
    n.addon.lock(n.h);
    try {
      n.addon.pull(n.h, s.slot, s);
      fn();
      n.addon.push(n.h, s.slot, s);
      n.addon.configure(n.h, s.slot, s, s.sink?.slot ?? -1);
    } finally {
      n.addon.unlock(n.h);
    }
  }

  /** The native thread takes up the call's configuration (sinks, flags, SDP addresses). */
  private commit(call: Call): void {
    const n = this.native;
    if (!n) return;
    n.addon.lock(n.h);
    try {
      for (const side of call.sides())
        for (const s of side.live()) if (!s.dead) n.addon.configure(n.h, s.slot, s, s.sink?.slot ?? -1);
    } finally {
      n.addon.unlock(n.h);
    }
  }

  /** The streams' packet-side state as the native thread has it (live streams: a retired one was read when it ended). */
  private pull(streams: Iterable<RelayStream>): void {
    const n = this.native;
    if (!n) return;
    n.addon.lock(n.h);
    try {
      for (const s of streams) if (!s.dead) n.addon.pull(n.h, s.slot, s);
    } finally {
      n.addon.unlock(n.h);
    }
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  /** Ports bound (live and draining). */
  get portsInUse(): number {
    return (this.pool.size - this.pool.available) * 2;
  }

  get portsFree(): number {
    return this.pool.available * 2;
  }

  callIds(limit: number): string[] {
    return [...this.calls.keys()].slice(0, limit);
  }

  /** Control operations one at a time: they bind sockets asynchronously and share the call table. */
  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const step = () => {
      this.tick();
      return fn();
    };
    const run = this.queue.then(step, step);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---- hot path -------------------------------------------------------------------------

  /** A datagram arrived on stream s (its RTCP port when onRtcpPort). */
  private onPacket(s: RelayStream, msg: Buffer, rinfo: RemoteInfo, onRtcpPort: boolean): void {
    const c = this.jsCounters;
    c.packetsIn++;
    c.bytesIn += msg.length;
    if (s.dead) {
      c.dropped.no_session++;
      return;
    }
    const rtcp = onRtcpPort || looksLikeRtcp(msg);
    if (rtcp ? msg.length < 8 || (msg[0]! & 0xc0) !== 0x80 : !looksLikeRtp(msg)) {
      c.dropped.malformed++;
      s.dropped++;
      return;
    }
    const addr = rinfo.address;
    const port = rinfo.port;
    const now = this.clock.now();
    if (onRtcpPort) {
      if (s.symmetric) {
        if (!s.rtcpLatched) {
          if (this.isSelf(addr, port)) return this.drop(s, 'loop');
          s.rtcpAddr = addr;
          s.rtcpPort = port;
          s.rtcpLatched = true;
        } else if (s.strict && (addr !== s.rtcpAddr || port !== s.rtcpPort))
          return this.drop(s, 'strict_source');
      } else if (s.strict && (addr !== s.sdpRtcpAddress || port !== s.sdpRtcpPort))
        return this.drop(s, 'strict_source');
    } else {
      const ssrc = msg.readUInt32BE(rtcp ? 4 : 8);
      if (s.symmetric) {
        if (!s.latched) {
          const stale =
            addr === s.staleAddr && port === s.stalePort && ssrc === s.staleSsrc && now < s.staleUntil;
          if (!stale) {
            if (this.isSelf(addr, port)) return this.drop(s, 'loop');
            s.rtpAddr = addr;
            s.rtpPort = port;
            s.latched = true;
            s.staleAddr = '';
          } else if (s.strict) return this.drop(s, 'strict_source');
        } else if (s.strict && (addr !== s.rtpAddr || port !== s.rtpPort))
          return this.drop(s, 'strict_source');
      } else if (s.strict && (addr !== s.sdpAddress || port !== s.sdpRtpPort))
        return this.drop(s, 'strict_source');
    }

    if (rtcp) {
      s.rtcpPackets++;
      s.rtcpBytes += msg.length;
      s.lastRtcp = now;
      c.rtcpIn++;
      readRtcp(msg, now, s.report);
    } else {
      s.rtpPackets++;
      s.rtpBytes += msg.length;
      s.lastRtp = now;
      this.track(s, msg, now);
    }

    const d = s.sink;
    if (d === null || d.dead) return this.drop(s, 'no_destination');
    let sock: Socket;
    let toAddr: string;
    let toPort: number;
    if (!rtcp) {
      sock = d.rtpSock;
      toAddr = d.rtpAddr;
      toPort = d.rtpPort;
    } else if (d.mux) {
      sock = d.rtpSock;
      toAddr = d.rtpAddr;
      toPort = d.rtpPort;
    } else {
      sock = d.rtcpSock;
      toAddr = d.rtcpAddr;
      toPort = d.rtcpPort;
    }
    if (toPort === 0 || toAddr === '') return this.drop(s, 'no_destination');
    // an SDP (or a latch) naming one of our own ports: never send into ourselves
    if (this.isSelf(toAddr, toPort)) return this.drop(s, 'loop');
    c.packetsOut++;
    c.bytesOut += msg.length;
    sock.send(msg, toPort, toAddr);
  }

  private drop(s: RelayStream, reason: DropReason): void {
    this.jsCounters.dropped[reason]++;
    s.dropped++;
  }

  /**
   * A source that is one of our own bound relay ports would make a loop. A port of the range we do
   * not hold is another program's (the kernel's ephemeral ports overlap the default range): a peer
   * on our host, relayed as any other.
   */
  private isSelf(addr: string, port: number): boolean {
    return this.boundPorts.has(port & ~1) && this.ifaceAddrs.has(addr);
  }

  /** Sequence and jitter bookkeeping (RFC 3550 A.1 simplified, A.8). */
  private track(s: RelayStream, msg: Buffer, now: number): void {
    const seq = msg.readUInt16BE(2);
    const ssrc = msg.readUInt32BE(8);
    if (ssrc !== s.ssrc) {
      s.lostBefore = s.lost;
      s.ssrc = ssrc;
      s.baseSeq = seq;
      s.maxSeq = seq;
      s.cycles = 0;
      s.received = 0;
      s.hasTransit = false;
    } else {
      const delta = (seq - s.maxSeq) & 0xffff;
      if (delta !== 0 && delta < 0x8000) {
        if (seq < s.maxSeq) s.cycles += 65536;
        s.maxSeq = seq;
      } else if (delta !== 0) {
        s.reordered++;
      }
    }
    s.received++;
    const arrival = Math.floor((now * s.clockRate) / 1000);
    const transit = (arrival - msg.readUInt32BE(4)) | 0;
    if (s.hasTransit) {
      let dd = (transit - s.transit) | 0;
      if (dd < 0) dd = -dd;
      s.jitter += (dd - s.jitter) / 16;
    }
    s.transit = transit;
    s.hasTransit = true;
  }

  // ---- ports ------------------------------------------------------------------------------

  private async bindSocket(iface: RelayInterface, port: number): Promise<Socket> {
    const sock = createSocket({
      type: iface.family === 6 ? 'udp6' : 'udp4',
      ipv6Only: iface.family === 6,
      lookup: literalLookup,
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      sock.once('error', onError);
      sock.bind({ port, address: iface.address, exclusive: true }, () => {
        sock.off('error', onError);
        resolve();
      });
    }).catch((e: unknown) => {
      sock.close();
      throw e;
    });
    const size = this.opts.socketBufferBytes ?? 0;
    if (size > 0) {
      try {
        sock.setRecvBufferSize(size);
        sock.setSendBufferSize(size);
      } catch {
        // the OS may cap it; the default still works
      }
    }
    return sock;
  }

  /** A stream with both sockets bound on the next free pair of the range. */
  private async allocate(index: number, iface: RelayInterface): Promise<RelayStream> {
    const now = this.clock.now();
    this.reap(now);
    for (let attempt = 0; attempt < 64; attempt++) {
      const base = this.pool.take(now);
      if (base === undefined) break;
      const n = this.native;
      if (n) {
        const slot = (base - this.firstPort) / 2;
        try {
          n.addon.open(n.h, slot, iface.address, this.opts.socketBufferBytes ?? 0);
        } catch {
          this.pool.release(base, now);
          continue;
        }
        const s = new RelayStream(index, iface, base);
        s.slot = slot;
        return s;
      }
      let rtp: Socket | undefined;
      try {
        rtp = await this.bindSocket(iface, base);
        const rtcpSock = await this.bindSocket(iface, base + 1);
        const s = new RelayStream(index, iface, base);
        s.rtpSock = rtp;
        s.rtcpSock = rtcpSock;
        this.boundPorts.add(base);
        rtp.on('message', (msg, rinfo) => this.onPacket(s, msg, rinfo, false));
        rtcpSock.on('message', (msg, rinfo) => this.onPacket(s, msg, rinfo, true));
        rtp.on('error', () => undefined);
        rtcpSock.on('error', () => undefined);
        return s;
      } catch {
        rtp?.close();
        // in use by another process: give it back behind the others
        this.pool.release(base, now);
      }
    }
    throw new DomainError(
      'resource_exhausted',
      `no free relay port pair in ${this.opts.portMin}-${this.opts.portMax}`,
    );
  }

  /** Stop relaying on s; its sockets stay bound through the quiet period, counting late packets. */
  private retire(s: RelayStream, now: number): void {
    if (s.dead) return;
    this.edit(s, () => {
      s.dead = true;
      s.sink = null;
    });
    this.draining.push({ stream: s, at: now });
    this.opts.onStreamEnded?.(s.received + s.lost > 0 ? s.lost / (s.received + s.lost) : 0, s.jitterMs);
  }

  /** Close sockets whose quiet period is over and give their ports back; forget old deleted calls. */
  private reap(now: number): void {
    while (this.draining.length > 0 && now - this.draining[0]!.at >= this.opts.quietPeriodMs) {
      const { stream, at } = this.draining.shift()!;
      this.closeSockets(stream);
      this.pool.release(stream.port, at);
    }
    for (const [id, call] of this.ended) {
      if (now - call.ended >= this.opts.deleteGraceMs) this.ended.delete(id);
    }
  }

  // ---- control ----------------------------------------------------------------------------

  offer(req: OfferRequest): Promise<{ sdp: string; warnings: string[] }> {
    return this.serial(async () => {
      const sdp = this.parseSdp(req.sdp);
      if (!req.callId) throw new DomainError('invalid_argument', 'call_id is required', 'call_id');
      if (!req.fromTag) throw new DomainError('invalid_argument', 'from_tag is required', 'from_tag');
      const now = this.clock.now();
      let call = this.calls.get(req.callId);
      if (!call) {
        this.ended.delete(req.callId);
        call = new Call(req.callId, new Side(req.fromTag, '', now), now);
        this.calls.set(req.callId, call);
      }
      let owner: Side;
      let peer: Side;
      const fromBranch = call.branches.find((b) => b.tag !== '' && b.tag === req.fromTag);
      if (req.fromTag === call.caller.tag) {
        owner = call.caller;
        peer =
          (req.toTag ? call.branches.find((b) => b.tag === req.toTag) : undefined) ??
          call.branches.find((b) => b.viaBranch === req.viaBranch && b.tag === '') ??
          call.branches.find((b) => b.viaBranch === req.viaBranch && (req.toTag === '' || b.tag === '')) ??
          this.addBranch(call, req.viaBranch, req.toTag, now);
      } else if (fromBranch) {
        // a re-INVITE from the callee side
        owner = fromBranch;
        peer = call.caller;
      } else {
        throw new DomainError(
          'failed_precondition',
          `from-tag "${req.fromTag}" is not a party of call "${req.callId}"`,
          'from_tag',
        );
      }
      call.lastSignal = now;
      call.deleteAt = 0; // signalling again: a delayed delete no longer applies
      const fresh = call.caller.streams.length === 0;
      try {
        const out = await this.apply(call, owner, peer, sdp, req, false);
        // the caller's packets go to the active branch (the first offered until one answers)
        this.activate(call, owner !== call.caller ? owner : (call.active ?? peer));
        return out;
      } catch (e) {
        if (fresh) this.endCall(call, 'delete', false);
        throw e;
      }
    });
  }

  answer(req: AnswerRequest): Promise<{ sdp: string; warnings: string[] }> {
    return this.serial(async () => {
      const sdp = this.parseSdp(req.sdp);
      if (!req.toTag) throw new DomainError('invalid_argument', 'to_tag is required', 'to_tag');
      const call = this.calls.get(req.callId);
      if (!call) throw new DomainError('not_found', `no call "${req.callId}"`, 'call_id');
      let owner: Side | undefined;
      let peer: Side;
      if (req.fromTag === call.caller.tag) {
        peer = call.caller;
        const byVia = (b: Side) => req.viaBranch === '' || b.viaBranch === req.viaBranch;
        owner =
          call.branches.find((b) => b.tag === req.toTag) ??
          [...call.branches].reverse().find((b) => b.tag === '' && byVia(b)) ??
          // a second to-tag on one branch (forked further downstream): the latest answer wins
          [...call.branches].reverse().find(byVia);
        if (!owner)
          throw new DomainError(
            'failed_precondition',
            `no offer is pending in call "${req.callId}"`,
            'to_tag',
          );
        owner.tag = req.toTag;
      } else {
        const branch = call.branches.find((b) => b.tag === req.fromTag);
        if (!branch || req.toTag !== call.caller.tag) {
          throw new DomainError(
            'failed_precondition',
            `tags ${req.fromTag}/${req.toTag} are not a dialogue of call "${req.callId}"`,
            'from_tag',
          );
        }
        owner = call.caller;
        peer = branch;
      }
      call.lastSignal = this.clock.now();
      call.deleteAt = 0;
      const out = await this.apply(call, owner, peer, sdp, req, true);
      this.activate(call, owner === call.caller ? peer : owner);
      call.answered = true;
      return out;
    });
  }

  /** Ends the whole call (no from-tag, or the caller's tag alone) or one branch; returns the stats at that moment. */
  delete(req: DeleteRequest): Promise<CallStats> {
    return this.serial(() => {
      const call = this.calls.get(req.callId);
      if (!call) {
        const gone = this.ended.get(req.callId);
        if (gone) return this.stats(gone);
        throw new DomainError('not_found', `no call "${req.callId}"`, 'call_id');
      }
      const now = this.clock.now();
      const tags = [req.fromTag, req.toTag].filter(Boolean);
      let branch: Side | undefined;
      if (req.viaBranch)
        branch = call.branches.find(
          (b) => b.viaBranch === req.viaBranch && (!req.toTag || tags.includes(b.tag)),
        );
      else if (tags.length === 2)
        branch = call.branches.find(
          (b) => b.tag !== '' && tags.includes(b.tag) && tags.includes(call.caller.tag),
        );
      else if (tags.length === 1 && tags[0] !== call.caller.tag)
        branch = call.branches.find((b) => b.tag === tags[0]);
      if (
        (req.viaBranch || tags.length === 2 || (tags.length === 1 && tags[0] !== call.caller.tag)) &&
        !branch
      ) {
        throw new DomainError('not_found', `no such branch in call "${req.callId}"`, 'to_tag');
      }
      if (branch && call.branches.length > 1) {
        this.removeBranch(call, branch, now);
        return this.stats(call);
      }
      if (req.deleteDelay > 0) {
        // ng "delete delay": go on relaying for a while (media after the BYE), then end
        call.deleteAt = now + req.deleteDelay * 1000;
        return this.stats(call);
      }
      return this.endCall(call, 'delete', true);
    });
  }

  query(callId: string): CallStats {
    const call = this.calls.get(callId) ?? this.ended.get(callId);
    if (!call) throw new DomainError('not_found', `no call "${callId}"`, 'call_id');
    return this.stats(call);
  }

  /**
   * Timeouts, delayed deletes, quiet periods and the delete grace period; call every second or so.
   *
   * A call times out when nothing (RTP, RTCP, signalling) came from anyone for the timeout, as in
   * rtpengine, and also when one party of the answered dialogue that was sending (RTP or RTCP) and
   * whose SDP says it sends has gone silent for the timeout while the other talks on: its UA
   * vanished (lost its network, crashed) and no BYE will come. A party that never sent (one-way
   * media, a broken NAT) does not end the call this way. Hold and ringing get the long timeout.
   */
  sweep(): void {
    const now = this.clock.now();
    this.tick();
    const g = this.native?.g;
    // No array or closure per call: this runs over every call each second, between packets.
    // (endCall deletes the call being visited from the Map, which its iteration allows.)
    for (const call of this.calls.values()) {
      if (call.deleteAt > 0 && now >= call.deleteAt) {
        this.endCall(call, 'delete', true);
        continue;
      }
      let last = call.lastSignal;
      let hold = false;
      for (let i = -1; i < call.branches.length; i++) {
        const side = i < 0 ? call.caller : call.branches[i]!;
        for (const s of side.streams) {
          if (s === undefined) continue;
          if (g !== undefined && !s.dead) {
            const at = G.size + s.slot * G.perSlot;
            s.lastRtp = g[at + G.lastRtp]!;
            s.lastRtcp = g[at + G.lastRtcp]!;
          }
          if (s.lastRtp > last) last = s.lastRtp;
          if (s.lastRtcp > last) last = s.lastRtcp;
          if (s.hold) hold = true;
        }
      }
      const long = hold || !call.answered;
      const vanished =
        !long &&
        (this.partyVanished(call, call.caller, now) ||
          (call.active !== null && this.partyVanished(call, call.active, now)));
      if (vanished || now - last >= (long ? this.opts.holdTimeoutMs : this.opts.timeoutMs)) {
        this.jsCounters.timeouts++;
        this.endCall(call, 'timeout', true);
      }
    }
    this.reap(now);
  }

  /** The party sent (RTP or RTCP), then fell silent for the timeout, counted from the last signalling too. */
  private partyVanished(call: Call, side: Side, now: number): boolean {
    const heard = partyLastHeard(side);
    return heard > 0 && now - Math.max(heard, call.lastSignal) >= this.opts.timeoutMs;
  }

  /** Ends every call (reason "shutdown") and closes every socket. */
  async close(): Promise<void> {
    await this.serial(() => {
      this.closed = true;
      for (const call of [...this.calls.values()]) this.endCall(call, 'shutdown', true);
      for (const { stream } of this.draining.splice(0)) this.closeSockets(stream);
      if (this.native) this.native.addon.destroy(this.native.h);
    });
  }

  private closeSockets(s: RelayStream): void {
    if (this.native) this.native.addon.close(this.native.h, s.slot);
    else {
      s.rtpSock.close();
      s.rtcpSock.close();
      this.boundPorts.delete(s.port);
    }
  }

  // ---- internals --------------------------------------------------------------------------

  private parseSdp(text: string): SessionDescription {
    if (this.closed) throw new DomainError('unavailable', 'media relay is shutting down');
    if (!text) throw new DomainError('invalid_argument', 'sdp is required', 'sdp');
    return parse(text);
  }

  private addBranch(call: Call, viaBranch: string, tag: string, now: number): Side {
    const b = new Side(tag, viaBranch, now);
    call.branches.push(b);
    return b;
  }

  /** The caller's packets now go to this branch. */
  private activate(call: Call, branch: Side): void {
    call.active = branch;
    call.caller.streams.forEach((s, i) => {
      if (!s) return;
      const d = branch.streams[i];
      s.sink = d && !d.dead ? d : null;
    });
    this.commit(call);
  }

  private removeBranch(call: Call, branch: Side, now: number): void {
    for (const s of branch.live()) this.retire(s, now);
    branch.ended = now;
    call.branches.splice(call.branches.indexOf(branch), 1);
    call.removed.push(branch);
    if (call.active === branch) {
      const next =
        [...call.branches].reverse().find((b) => b.tag !== '') ?? call.branches[call.branches.length - 1];
      if (next) this.activate(call, next);
      else call.active = null;
    }
  }

  private endCall(call: Call, reason: EndReason, publish: boolean): CallStats {
    const now = this.clock.now();
    for (const side of call.sides()) {
      for (const s of side.live()) this.retire(s, now);
      side.ended = now;
    }
    call.ended = now;
    call.endReason = reason;
    this.calls.delete(call.id);
    this.ended.set(call.id, call);
    const stats = this.stats(call);
    if (publish) this.opts.onEnded?.(stats, reason);
    return stats;
  }

  private pickInterface(name: string | undefined, family: 4 | 6 | undefined): RelayInterface {
    const all = this.opts.interfaces;
    if (name) {
      const i = all.find((x) => x.name === name);
      if (!i)
        throw new DomainError(
          'invalid_argument',
          `unknown interface "${name}"; known: ${all.map((x) => x.name).join(', ')}`,
          'direction',
        );
      return i;
    }
    return all.find((x) => x.family === family) ?? all[0]!;
  }

  /**
   * The SDP of `owner` as `peer` should see it: every live m= line of owner gets a
   * stream facing owner (where owner's packets arrive) and one facing peer (whose
   * port goes into the rewritten SDP).
   */
  private async apply(
    call: Call,
    owner: Side,
    peer: Side,
    sdp: SessionDescription,
    req: SdpRequest,
    isAnswer: boolean,
  ) {
    try {
      return await this.applySdp(owner, peer, sdp, req, isAnswer);
    } finally {
      // the native thread takes up what changed, also when a later m= line failed
      this.commit(call);
    }
  }

  private async applySdp(
    owner: Side,
    peer: Side,
    sdp: SessionDescription,
    req: SdpRequest,
    isAnswer: boolean,
  ) {
    const warnings: string[] = [];
    for (const f of req.flags) if (!KNOWN_FLAGS.has(f)) warnings.push(`flag "${f}" ignored`);
    const flags = new Set(req.flags);
    const infos = listStreams(sdp);
    const firstAddr = infos.find((i) => i.address)?.address ?? '';
    const ownerFamily = firstAddr.includes(':') ? 6 : 4;
    const [ownerIfName, peerIfName] = req.direction;
    const ownerIf = this.pickInterface(ownerIfName || owner.iface?.name, ownerFamily);
    const peerIf = this.pickInterface(peerIfName || peer.iface?.name || ownerIf.name, ownerIf.family);
    for (const [side, iface] of [
      [owner, ownerIf],
      [peer, peerIf],
    ] as const) {
      if (side.iface && side.iface.name !== iface.name)
        warnings.push(`side "${side.tag}" stays on interface "${side.iface.name}"`);
      side.iface ??= iface;
    }
    let ice: boolean;
    if (req.ice === '' || req.ice === 'remove' || req.ice === 'default') ice = true;
    else if (req.ice === 'keep') ice = false;
    else throw new DomainError('invalid_argument', `ICE "${req.ice}" is not supported (remove, keep)`, 'ice');

    const sip = flags.has('sip-source-address') ? hostOf(req.receivedFrom) : '';
    const ports: ({ rtp: number } | undefined)[] = [];
    for (const info of infos) {
      if (info.rejected) {
        const os = owner.streams[info.index];
        if (os) this.edit(os, () => (os.sdpRtpPort = os.rtpPort = 0));
        ports.push(undefined);
        continue;
      }
      const os = (owner.streams[info.index] ??= await this.allocate(info.index, owner.iface!));
      const ps = (peer.streams[info.index] ??= await this.allocate(info.index, peer.iface!));
      const m = sdp.media[info.index]!;
      os.mediaType = ps.mediaType = info.media;
      const rate = m.rtpmap(m.formats[0] ?? '')?.clockRate ?? STATIC_CLOCK[Number(m.formats[0])] ?? 8000;
      os.clockRate = rate;
      ps.clockRate = rate;
      this.edit(os, () =>
        this.updateEndpoint(
          os,
          sip || info.address || '',
          info.port,
          sip || info.rtcpAddress || '',
          info.rtcpPort,
          info.hold,
        ),
      );
      os.advertisedMux = info.rtcpMux;
      os.symmetric = !flags.has('asymmetric');
      os.strict = flags.has('strict-source');
      os.sends = info.direction === 'sendrecv' || info.direction === 'sendonly';
      os.sink = ps;
      ps.sink = os;
      ports.push({ rtp: ps.port });
    }

    let rtcpMux: 'keep' | 'offer' | 'accept' | 'demux' = 'keep';
    const mux = new Set(req.rtcpMux);
    if (!isAnswer) {
      if (mux.has('demux')) rtcpMux = 'demux';
      else if (mux.has('offer')) rtcpMux = 'offer';
    } else {
      const offered = infos.every((i) => i.rejected || peer.streams[i.index]?.advertisedMux);
      if (!offered || mux.has('demux')) rtcpMux = 'demux';
      else if (mux.has('accept')) rtcpMux = 'accept';
    }
    const out = rewriteMedia(sdp, {
      address: peer.iface!.advertised,
      family: peer.iface!.family === 6 ? 'IP6' : 'IP4',
      ports,
      stripIce: ice,
      rtcpMux,
      replaceOriginAddress: req.replace.includes('origin'),
    });
    out.media.forEach((m, i) => {
      const ps = peer.streams[i];
      const os = owner.streams[i];
      if (!ps || !os || m.rejected) return;
      ps.sentMux = m.rtcpMux;
      ps.mux = ps.advertisedMux && ps.sentMux;
      os.mux = os.advertisedMux && os.sentMux;
    });
    return { sdp: serialize(out), warnings };
  }

  /**
   * The party's SDP address for a stream; a change (re-INVITE, RFC 3665 3.7) re-arms latching.
   *
   * The first SDP of a party (the callee's answer) often comes after its first packets: a UA sends
   * as soon as it has the offer, and the proxy's Answer follows the 200. Those packets latched the
   * stream already; as rtpengine does (it learns only once the media is answered), learning starts
   * again with the next packet from any source, but until then the relay keeps sending to that
   * early source rather than to the SDP address (behind a NAT the SDP's port may not be the one
   * the NAT opened). Only an address that replaces an earlier SDP address marks the old latch stale.
   */
  private updateEndpoint(
    s: RelayStream,
    addr: string,
    port: number,
    rtcpAddr: string,
    rtcpPort: number,
    hold: boolean,
  ): void {
    const nullAddr = addr === '0.0.0.0' || addr === '::' || addr === '';
    s.hold = hold;
    if (nullAddr) {
      // old-style hold: nothing may be sent to this party until it gives an address again
      s.sdpAddress = s.sdpRtcpAddress = '';
      s.sdpRtpPort = s.sdpRtcpPort = 0;
      s.rtpAddr = s.rtcpAddr = '';
      s.rtpPort = s.rtcpPort = 0;
      if (s.latched) {
        s.staleAddr = '';
        s.latched = false;
        s.rtcpLatched = false;
      }
      return;
    }
    const first = s.sdpAddress === '';
    const changed = addr !== s.sdpAddress || port !== s.sdpRtpPort;
    s.sdpAddress = addr;
    s.sdpRtpPort = port;
    s.sdpRtcpAddress = rtcpAddr;
    s.sdpRtcpPort = rtcpPort;
    if (!changed && s.latched) return;
    if (first) {
      // learned before this party's first SDP: keep sending there, but let the next packet re-latch
      if (!s.latched) {
        s.rtpAddr = addr;
        s.rtpPort = port;
      }
      if (!s.rtcpLatched) {
        s.rtcpAddr = rtcpAddr;
        s.rtcpPort = rtcpPort;
      }
      s.latched = false;
      s.rtcpLatched = false;
      s.staleAddr = '';
      return;
    }
    if (s.latched) {
      s.staleAddr = s.rtpAddr;
      s.stalePort = s.rtpPort;
      s.staleSsrc = s.ssrc;
      s.staleUntil = this.clock.now() + LEARNING_WINDOW_MS;
    }
    s.latched = false;
    s.rtcpLatched = false;
    s.rtpAddr = addr;
    s.rtpPort = port;
    s.rtcpAddr = rtcpAddr;
    s.rtcpPort = rtcpPort;
  }

  private stats(call: Call): CallStats {
    this.tick();
    if (this.native) for (const side of call.sides()) this.pull(side.live());
    const legs: Leg[] = [];
    const rtp = { packets: 0, bytes: 0, errors: 0 };
    const rtcp = { packets: 0, bytes: 0, errors: 0 };
    for (const side of [call.caller, ...call.branches, ...call.removed]) {
      const streams: StreamStats[] = [];
      for (const s of side.live()) {
        const common = {
          mediaIndex: s.index + 1,
          mediaType: s.mediaType,
          localAddress: s.iface.advertised,
          ssrc: s.ssrc < 0 ? 0 : s.ssrc,
        };
        streams.push({
          ...common,
          rtcp: false,
          localPort: s.port,
          endpoint: s.latched ? hostPort(s.rtpAddr, s.rtpPort) : '',
          advertisedEndpoint: hostPort(s.sdpAddress, s.sdpRtpPort),
          stats: { packets: s.rtpPackets, bytes: s.rtpBytes, errors: s.dropped },
          lastPacket: secs(s.lastRtp),
          latched: s.latched,
          lost: s.lost,
          jitterMs: s.jitterMs,
          rttMs: 0,
          dropped: s.dropped,
          fractionLost: 0,
        });
        const rep = s.report;
        streams.push({
          ...common,
          rtcp: true,
          localPort: s.mux ? s.port : s.port + 1,
          endpoint: s.mux
            ? s.latched
              ? hostPort(s.rtpAddr, s.rtpPort)
              : ''
            : s.rtcpLatched
              ? hostPort(s.rtcpAddr, s.rtcpPort)
              : '',
          advertisedEndpoint: hostPort(s.sdpRtcpAddress, s.sdpRtcpPort),
          stats: { packets: s.rtcpPackets, bytes: s.rtcpBytes, errors: 0 },
          lastPacket: secs(s.lastRtcp),
          latched: s.mux ? s.latched : s.rtcpLatched,
          lost: Math.max(0, rep.cumulativeLost),
          jitterMs: (rep.jitter / s.clockRate) * 1000,
          rttMs: rep.rttMs < 0 ? 0 : rep.rttMs,
          dropped: 0,
          fractionLost: rep.fractionLost,
        });
        rtp.packets += s.rtpPackets;
        rtp.bytes += s.rtpBytes;
        rtp.errors += s.dropped;
        rtcp.packets += s.rtcpPackets;
        rtcp.bytes += s.rtcpBytes;
      }
      legs.push({ tag: side.tag, created: secs(side.created), streams });
    }
    return {
      callId: call.id,
      created: secs(call.created),
      lastSignal: secs(call.lastSignal),
      legs,
      rtp,
      rtcp,
      deleted: secs(call.ended),
      endReason: call.endReason,
    };
  }
}
