/**
 * RTP media of one call: a UDP socket from the port range, playout paced by a
 * shared timer against a monotonic clock, receive with RFC 4733 DTMF
 * detection and timestamp-ordered recording.
 *
 * Hot path: sending writes the 12-byte header and copies one 160-byte frame
 * into a packet buffer taken from a small per-session ring (no allocation per
 * packet); receiving parses the header into one reused object.
 */
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:dgram';
import { decodeRange, type Law } from './g711';
import { InbandDtmfDetector } from './inband';
import {
  FRAME_MS,
  FRAME_SAMPLES,
  RTP_HEADER,
  TelephoneEventDetector,
  parseRtp,
  writeRtpHeader,
  type RtpHeader,
} from './rtp';

/** A monotonic clock in milliseconds (performance.now in production, fake in tests). */
export interface MonoClock {
  now(): number;
}

export interface TimerApi {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: TimerApi = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** Something the pacer drives: sends the frames due by `now`. */
export interface Pumped {
  pump(now: number): void;
}

/**
 * One timer for every stream that is playing. Each tick asks each stream to
 * send the frames due by the clock, so timing follows the monotonic clock and
 * does not drift with timer jitter; the tick only bounds the jitter.
 */
export class Pacer {
  private readonly streams = new Set<Pumped>();
  private handle: unknown;
  constructor(
    readonly clock: MonoClock,
    private readonly tickMs = 10,
    private readonly timers: TimerApi = realTimers,
  ) {}

  add(s: Pumped): void {
    this.streams.add(s);
    if (this.handle === undefined) this.handle = this.timers.setInterval(() => this.tick(), this.tickMs);
  }

  remove(s: Pumped): void {
    this.streams.delete(s);
    if (this.streams.size === 0 && this.handle !== undefined) {
      this.timers.clearInterval(this.handle);
      this.handle = undefined;
    }
  }

  get size(): number {
    return this.streams.size;
  }

  tick(): void {
    const now = this.clock.now();
    for (const s of this.streams) s.pump(now);
  }
}

/** Frames beyond this many overdue ones (a stalled event loop) are skipped, not sent in a burst. */
export const MAX_BURST_FRAMES = 5;
const RING = 4;

/**
 * Recording by RTP timestamp: each payload is decoded to its place on the
 * timeline, so reordered packets land where they belong and lost ones leave
 * silence. A new SSRC continues after what is recorded.
 */
export class Recorder {
  private pcm: Int16Array;
  private firstTs = -1;
  private ssrc = -1;
  private end = 0;
  packets = 0;
  constructor(
    readonly law: Law,
    readonly maxSamples: number,
  ) {
    this.pcm = new Int16Array(Math.min(maxSamples, 8000 * 8));
  }

  write(buf: Buffer, start: number, stop: number, ts: number, ssrc: number): void {
    if (this.firstTs < 0 || ssrc !== this.ssrc) {
      this.firstTs = (ts - this.end) >>> 0;
      this.ssrc = ssrc;
    }
    const idx = (ts - this.firstTs) | 0;
    const n = stop - start;
    if (idx < 0 || idx + n > this.maxSamples) return;
    if (idx + n > this.pcm.length) {
      const grown = new Int16Array(Math.min(this.maxSamples, Math.max(idx + n, this.pcm.length * 2)));
      grown.set(this.pcm.subarray(0, this.end));
      this.pcm = grown;
    }
    decodeRange(buf, start, stop, this.law, this.pcm, idx);
    if (idx + n > this.end) this.end = idx + n;
    this.packets++;
  }

  /** True once the timeline reached the maximum length. */
  get full(): boolean {
    return this.end + FRAME_SAMPLES > this.maxSamples;
  }

  get samples(): Int16Array {
    return this.pcm.subarray(0, this.end);
  }
}

export interface MediaSessionOptions {
  socket: Socket;
  port: number;
  law: Law;
  payloadType: number;
  /** Negotiated telephone-event payload type, if any. */
  dtmfPayloadType?: number;
  remote: { address: string; port: number };
  pacer: Pacer;
  /** Send to where the peer's RTP comes from (symmetric RTP, for NAT) once it arrives. */
  latch?: boolean;
  onDigit?(digit: string): void;
  onClose?(): void;
  /** Detect DTMF tones in the audio (when telephone-event was not negotiated). */
  inbandDtmf?: boolean;
  /** RTCP socket (RTP port + 1): sender reports go out from it every RTCP_INTERVAL_MS. */
  rtcp?: Socket;
  /** The peer's RTCP port (SDP a=rtcp); default its RTP port + 1. */
  remoteRtcpPort?: number;
  /** Wall clock for RTCP NTP timestamps (ms since 1970); default Date.now. */
  wallClock?: () => number;
  /** How often sender reports go out; default RTCP_INTERVAL_MS, 0 for none. */
  rtcpIntervalMs?: number;
}

/** RFC 3550 §6.2: the minimum RTCP interval. */
export const RTCP_INTERVAL_MS = 5000;
/** Seconds from 1900 (NTP epoch) to 1970 (Unix epoch). */
const NTP_OFFSET = 2_208_988_800;
const CNAME = 'switchboard-media-server';

/** Receives the peer's audio payloads (conference input). */
export type AudioSink = (buf: Buffer, start: number, end: number, timestamp: number) => void;

export class MediaSession implements Pumped {
  readonly law: Law;
  readonly port: number;
  readonly ssrc = randomInt(0, 0x100000000);
  private seq = randomInt(0, 0x10000);
  private readonly tsBase = randomInt(0, 0x100000000);
  private readonly createdAt: number;
  private readonly ring: Buffer[] = [];
  private ringPos = 0;
  private remote: { address: string; port: number };
  private latched = false;
  private readonly header: RtpHeader = {
    payloadType: 0,
    marker: false,
    seq: 0,
    timestamp: 0,
    ssrc: 0,
    payloadStart: 0,
    payloadEnd: 0,
  };
  private readonly dtmf: TelephoneEventDetector;
  private readonly inband: InbandDtmfDetector | undefined;
  private readonly scratch: Int16Array | undefined;
  // playout
  private audio: Uint8Array | undefined;
  private pos = 0;
  private playStart = 0;
  private framesDue = 0;
  private ts = 0;
  private marker = false;
  private playDone: ((completed: boolean) => void) | undefined;
  // recording, or another consumer of the peer's audio
  private recorder: Recorder | undefined;
  audioSink: AudioSink | undefined;
  private streaming = false;
  closed = false;
  readonly stats = { sent: 0, received: 0, digits: 0, lastReceivedAt: 0, octets: 0, reports: 0 };
  private rtcpRemote: { address: string; port: number } | undefined;
  private rtcpLatched = false;
  private rtcpTimer: NodeJS.Timeout | undefined;
  private readonly report: Buffer | undefined;

  constructor(private readonly opts: MediaSessionOptions) {
    this.law = opts.law;
    this.port = opts.port;
    this.remote = { ...opts.remote };
    this.createdAt = opts.pacer.clock.now();
    for (let i = 0; i < RING; i++) this.ring.push(Buffer.alloc(RTP_HEADER + FRAME_SAMPLES));
    this.dtmf = new TelephoneEventDetector((d) => {
      this.stats.digits++;
      opts.onDigit?.(d);
    });
    if (opts.inbandDtmf) {
      this.scratch = new Int16Array(FRAME_SAMPLES);
      this.inband = new InbandDtmfDetector((d) => {
        this.stats.digits++;
        opts.onDigit?.(d);
      });
    }
    opts.socket.on('message', (buf, rinfo) => this.receive(buf, rinfo.address, rinfo.port));
    if (opts.rtcp) {
      this.rtcpRemote = { address: opts.remote.address, port: opts.remoteRtcpPort ?? opts.remote.port + 1 };
      // SR (28 bytes) + SDES with the CNAME, padded to a 32-bit boundary: one buffer for the call.
      const sdesLen = 4 + 4 + 2 + CNAME.length + 1;
      this.report = Buffer.alloc(28 + ((sdesLen + 3) & ~3));
      opts.rtcp.on('message', (_buf, rinfo) => {
        if (opts.latch && !this.rtcpLatched) {
          this.rtcpLatched = true;
          this.rtcpRemote = { address: rinfo.address, port: rinfo.port };
        }
      });
      opts.rtcp.on('error', () => {});
      const every = opts.rtcpIntervalMs ?? RTCP_INTERVAL_MS;
      if (every > 0) {
        this.rtcpTimer = setInterval(() => this.sendReport(), every);
        this.rtcpTimer.unref();
      }
    }
    opts.socket.on('error', () => {});
  }

  /** The pacer's monotonic clock. */
  clockNow(): number {
    return this.opts.pacer.clock.now();
  }

  /** Where RTP goes now (the SDP address, or the latched source). */
  get remoteAddress(): { address: string; port: number } {
    return this.remote;
  }

  /** Update the peer's address (re-INVITE). */
  setRemote(address: string, port: number): void {
    if (!this.latched) this.remote = { address, port };
  }

  /**
   * Play G.711 audio in this session's law; resolves true when it played to
   * the end, false when stopped or the session closed. A play replaces one in progress.
   */
  play(audio: Uint8Array): Promise<boolean> {
    this.finishPlay(false);
    if (this.closed) return Promise.resolve(false);
    const now = this.opts.pacer.clock.now();
    this.audio = audio;
    this.pos = 0;
    this.playStart = now;
    this.framesDue = 0;
    // RTP timestamps follow the sampling clock across pauses between prompts (RFC 3550 §5.1).
    this.ts = (this.tsBase + Math.round((now - this.createdAt) * 8)) >>> 0;
    this.marker = true;
    const p = new Promise<boolean>((resolve) => (this.playDone = resolve));
    this.opts.pacer.add(this);
    this.pump(now);
    return p;
  }

  stopPlay(): void {
    this.finishPlay(false);
  }

  get playing(): boolean {
    return this.audio !== undefined;
  }

  private finishPlay(completed: boolean): void {
    if (!this.audio) return;
    this.audio = undefined;
    this.opts.pacer.remove(this);
    const done = this.playDone;
    this.playDone = undefined;
    done?.(completed);
  }

  /** The pacer's tick: send every frame due by `now`. */
  pump(now: number): void {
    const audio = this.audio;
    if (!audio) return;
    const due = Math.floor((now - this.playStart) / FRAME_MS) + 1;
    if (due - this.framesDue > MAX_BURST_FRAMES) {
      // Stalled: skip the overdue frames so the stream stays on the clock's timeline.
      const skip = due - this.framesDue - MAX_BURST_FRAMES;
      this.framesDue += skip;
      this.pos += skip * FRAME_SAMPLES;
      this.ts = (this.ts + skip * FRAME_SAMPLES) >>> 0;
    }
    while (this.framesDue < due) {
      if (this.pos >= audio.length) {
        this.finishPlay(true);
        return;
      }
      this.sendFrame(audio);
      this.framesDue++;
    }
    if (this.pos >= audio.length) this.finishPlay(true);
  }

  private sendFrame(audio: Uint8Array): void {
    const pkt = this.ring[this.ringPos];
    this.ringPos = (this.ringPos + 1) % RING;
    writeRtpHeader(pkt, this.opts.payloadType, this.marker, this.seq, this.ts, this.ssrc);
    this.marker = false;
    const n = Math.min(FRAME_SAMPLES, audio.length - this.pos);
    for (let i = 0, p = this.pos; i < n; i++) pkt[RTP_HEADER + i] = audio[p + i];
    // A short last frame is padded with silence.
    if (n < FRAME_SAMPLES) pkt.fill(this.law === 'pcmu' ? 0xff : 0xd5, RTP_HEADER + n);
    this.pos += FRAME_SAMPLES;
    this.seq = (this.seq + 1) & 0xffff;
    this.ts = (this.ts + FRAME_SAMPLES) >>> 0;
    this.stats.sent++;
    this.stats.octets += FRAME_SAMPLES;
    if (!this.closed) this.opts.socket.send(pkt, 0, pkt.length, this.remote.port, this.remote.address);
  }

  /**
   * Send one 20 ms frame made elsewhere (the conference mixer), in this
   * session's law: the frame is copied into a ring buffer, no allocation.
   */
  sendPayload(frame: Uint8Array): void {
    if (this.closed || this.audio) return;
    if (!this.streaming) {
      this.streaming = true;
      this.ts = (this.tsBase + Math.round((this.opts.pacer.clock.now() - this.createdAt) * 8)) >>> 0;
      this.marker = true;
    }
    this.pos = 0;
    this.sendFrame(frame);
  }

  /**
   * RTCP sender report (RFC 3550 §6.4.1) with an SDES CNAME (§6.5): sent only
   * once this session has sent RTP. Returns the bytes sent, or undefined.
   */
  sendReport(): Buffer | undefined {
    const b = this.report;
    if (!b || !this.rtcpRemote || this.closed || this.stats.sent === 0) return undefined;
    const wall = (this.opts.wallClock ?? Date.now)();
    const secs = Math.floor(wall / 1000);
    const frac = Math.floor(((wall % 1000) / 1000) * 0x100000000);
    const rtpNow = (this.tsBase + Math.round((this.opts.pacer.clock.now() - this.createdAt) * 8)) >>> 0;
    b[0] = 0x80; // V=2, no reception blocks
    b[1] = 200; // SR
    b.writeUInt16BE(6, 2);
    b.writeUInt32BE(this.ssrc, 4);
    b.writeUInt32BE((secs + NTP_OFFSET) >>> 0, 8);
    b.writeUInt32BE(frac >>> 0, 12);
    b.writeUInt32BE(rtpNow, 16);
    b.writeUInt32BE(this.stats.sent >>> 0, 20);
    b.writeUInt32BE(this.stats.octets >>> 0, 24);
    const sdesWords = (b.length - 28) / 4;
    b[28] = 0x81; // V=2, one chunk
    b[29] = 202; // SDES
    b.writeUInt16BE(sdesWords - 1, 30);
    b.writeUInt32BE(this.ssrc, 32);
    b[36] = 1; // CNAME
    b[37] = CNAME.length;
    b.write(CNAME, 38, 'ascii');
    b.fill(0, 38 + CNAME.length); // END item and padding
    this.stats.reports++;
    this.opts.rtcp!.send(b, 0, b.length, this.rtcpRemote.port, this.rtcpRemote.address);
    return b;
  }

  /** Start recording the peer's audio (up to maxSamples); returns the recorder. */
  startRecording(maxSamples: number): Recorder {
    this.recorder = new Recorder(this.law, maxSamples);
    return this.recorder;
  }

  stopRecording(): Recorder | undefined {
    const r = this.recorder;
    this.recorder = undefined;
    return r;
  }

  /** One incoming datagram. */
  receive(buf: Buffer, address: string, port: number): void {
    const h = this.header;
    if (this.closed || !parseRtp(buf, h)) return;
    // Latch to a source we can answer: port 0 (a raw-socket sender such as SIPp's pcap play) is not one.
    if (this.opts.latch && !this.latched && port !== 0) {
      this.latched = true;
      this.remote = { address, port };
    }
    this.stats.received++;
    this.stats.lastReceivedAt = this.opts.pacer.clock.now();
    if (h.payloadType === this.opts.dtmfPayloadType) {
      this.dtmf.receive(buf, h.payloadStart, h.payloadEnd, h.timestamp);
    } else if (h.payloadType === this.opts.payloadType) {
      const r = this.recorder;
      if (r) r.write(buf, h.payloadStart, h.payloadEnd, h.timestamp, h.ssrc);
      const sink = this.audioSink;
      if (sink) sink(buf, h.payloadStart, h.payloadEnd, h.timestamp);
      const inband = this.inband;
      if (inband && h.payloadEnd - h.payloadStart === FRAME_SAMPLES) {
        decodeRange(buf, h.payloadStart, h.payloadEnd, this.law, this.scratch!, 0);
        inband.block(this.scratch!);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.finishPlay(false);
    this.sendReport();
    this.closed = true;
    if (this.rtcpTimer) clearInterval(this.rtcpTimer);
    for (const sock of [this.opts.socket, this.opts.rtcp]) {
      try {
        sock?.close();
      } catch {
        // already closed
      }
    }
    this.opts.onClose?.();
  }
}
