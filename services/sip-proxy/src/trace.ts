/**
 * SIP trace, built in (the book's siptrace and ngrep): every message the
 * proxy receives and sends can be mirrored as HEPv3 to a Homer/heplify
 * collector, kept in a bounded in-memory store searchable by Call-ID, number
 * or time, and streamed live to `switchboard trace`. Tracing is switched on
 * globally or per subscriber at run time. Credentials are masked in anything
 * shown to a person.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { TapEvent } from '@switchboard/sip';

export interface TraceEntry {
  time: number;
  dir: 'in' | 'out';
  transport: string;
  /** The other end. */
  address: string;
  port: number;
  callId: string;
  /** First line: request line or status line. */
  summary: string;
  data: Buffer;
}

export interface TraceFilter {
  callId?: string;
  /** Matches a user part or number anywhere in From, To or the Request-URI. */
  number?: string;
  method?: string;
  since?: number;
  until?: number;
}

export interface HepTarget {
  host: string;
  port: number;
  captureId: number;
  authKey?: string;
}

const CALL_ID = /^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)/im;
const HEADERS_END = '\r\n\r\n';

/** Header section as text, for matching (the body is not searched). */
function headerText(data: Buffer): string {
  const end = data.indexOf(HEADERS_END);
  return data.toString('latin1', 0, end < 0 ? Math.min(data.length, 8192) : end);
}

/** Digest responses and nonces hidden: what a person may see of a message. */
export function maskCredentials(text: string): string {
  return text.replace(/^((?:Proxy-)?Authorization[ \t]*:.*)$/gim, (line) =>
    line.replace(/(response|cnonce)[ \t]*=[ \t]*("[^"]*"|[^,\s]+)/gi, '$1="***"'),
  );
}

export function matches(e: TraceEntry, f: TraceFilter): boolean {
  if (f.callId && e.callId !== f.callId) return false;
  if (f.since !== undefined && e.time < f.since) return false;
  if (f.until !== undefined && e.time > f.until) return false;
  if (f.method) {
    const m = f.method.toUpperCase();
    const s = e.summary;
    if (!(
      s.startsWith(m + ' ') ||
      (s.startsWith('SIP/2.0') && new RegExp(`^CSeq:\\s*\\d+\\s+${m}\\b`, 'im').test(headerText(e.data)))
    ))
      return false;
  }
  if (f.number) {
    const h = headerText(e.data);
    const want = f.number.toLowerCase();
    const lines = h.split('\r\n').filter((l, i) => i === 0 || /^(From|f|To|t)[ \t]*:/i.test(l));
    if (!lines.some((l) => l.toLowerCase().includes(want))) return false;
  }
  return true;
}

/** HEPv3 (the Homer encapsulation protocol): chunks of vendor 0. */
export function encodeHep(
  e: TraceEntry,
  local: { address: string; port: number },
  target: HepTarget,
): Buffer {
  const src = e.dir === 'in' ? { address: e.address, port: e.port } : local;
  const dst = e.dir === 'in' ? local : { address: e.address, port: e.port };
  const v6 = isIPv6(src.address) || isIPv6(dst.address);
  const chunks: Buffer[] = [];
  const chunk = (type: number, payload: Buffer) => {
    const h = Buffer.alloc(6);
    h.writeUInt16BE(0, 0);
    h.writeUInt16BE(type, 2);
    h.writeUInt16BE(6 + payload.length, 4);
    chunks.push(h, payload);
  };
  const u8 = (n: number) => Buffer.from([n]);
  const u16 = (n: number) => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    return b;
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  chunk(0x0001, u8(v6 ? 10 : 2));
  chunk(0x0002, u8(e.transport === 'udp' ? 17 : 6));
  chunk(v6 ? 0x0005 : 0x0003, ipBytes(src.address, v6));
  chunk(v6 ? 0x0006 : 0x0004, ipBytes(dst.address, v6));
  chunk(0x0007, u16(src.port));
  chunk(0x0008, u16(dst.port));
  chunk(0x0009, u32(Math.floor(e.time / 1000)));
  chunk(0x000a, u32((e.time % 1000) * 1000));
  chunk(0x000b, u8(1)); // SIP
  chunk(0x000c, u32(target.captureId));
  if (target.authKey) chunk(0x000e, Buffer.from(target.authKey));
  chunk(0x000f, e.data);
  if (e.callId) chunk(0x0011, Buffer.from(e.callId));
  const body = Buffer.concat(chunks);
  const head = Buffer.alloc(6);
  head.write('HEP3', 0, 'latin1');
  head.writeUInt16BE(6 + body.length, 4);
  return Buffer.concat([head, body]);
}

function ipBytes(address: string, v6: boolean): Buffer {
  if (!v6) return Buffer.from(address.split('.').map(Number));
  const a = isIPv6(address) ? address : `::ffff:${address}`;
  const [head, tail] = a.split('::');
  const parse = (s: string) => (s ? s.split(':') : []);
  let groups = parse(head);
  let rest = tail === undefined ? [] : parse(tail);
  const last = (rest.length ? rest : groups).at(-1) ?? '';
  if (last.includes('.')) {
    const q = last.split('.').map(Number);
    const repl = [((q[0] << 8) | q[1]).toString(16), ((q[2] << 8) | q[3]).toString(16)];
    if (rest.length) rest = [...rest.slice(0, -1), ...repl];
    else groups = [...groups.slice(0, -1), ...repl];
  }
  const zeros = tail === undefined ? [] : Array(8 - groups.length - rest.length).fill('0');
  const all = [...groups, ...zeros, ...rest];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return b;
}

export class Tracer {
  private readonly ring: TraceEntry[] = [];
  private head = 0;
  private readonly live = new Set<{ filter: TraceFilter; send: (e: TraceEntry) => void }>();
  private hepSocket?: Socket;
  /** Store everything (global switch). */
  global: boolean;
  /** Store what concerns these users or numbers (per-subscriber switch). */
  readonly users = new Set<string>();

  constructor(
    private readonly opts: {
      capacity: number;
      retentionMs: number;
      global: boolean;
      hep?: HepTarget;
      local: () => { address: string; port: number };
      now?: () => number;
    },
  ) {
    this.global = opts.global;
    if (opts.hep) this.hepSocket = createSocket(isIPv6(opts.hep.host) ? 'udp6' : 'udp4');
  }

  /** The transport tap: cheap when nobody traces (no store, no HEP, no live viewer). */
  tap = (ev: TapEvent): void => {
    const storing = this.global || this.users.size > 0;
    if (!storing && !this.hepSocket && this.live.size === 0) return;
    const text = headerText(ev.data);
    const nl = text.indexOf('\r\n');
    const entry: TraceEntry = {
      time: ev.time,
      dir: ev.dir,
      transport: ev.transport,
      address: ev.address,
      port: ev.port,
      callId: CALL_ID.exec(text)?.[1] ?? '',
      summary: nl < 0 ? text : text.slice(0, nl),
      data: ev.data,
    };
    if (this.hepSocket && this.opts.hep) {
      const h = this.opts.hep;
      this.hepSocket.send(encodeHep(entry, this.opts.local(), h), h.port, h.host);
    }
    if (storing && (this.global || [...this.users].some((u) => matches(entry, { number: u }))))
      this.store(entry);
    for (const l of this.live) if (matches(entry, l.filter)) l.send(entry);
  };

  private store(e: TraceEntry): void {
    if (this.ring.length < this.opts.capacity) this.ring.push(e);
    else {
      this.ring[this.head] = e;
      this.head = (this.head + 1) % this.opts.capacity;
    }
  }

  /** Stored messages matching the filter, oldest first, within the retention window. */
  search(f: TraceFilter, limit = 500): TraceEntry[] {
    const cutoff = (this.opts.now ?? Date.now)() - this.opts.retentionMs;
    const ordered = [...this.ring.slice(this.head), ...this.ring.slice(0, this.head)];
    return ordered.filter((e) => e.time >= cutoff && matches(e, f)).slice(-limit);
  }

  /** Follow messages as they pass; returns the unsubscribe function. */
  follow(filter: TraceFilter, send: (e: TraceEntry) => void): () => void {
    const l = { filter, send };
    this.live.add(l);
    return () => void this.live.delete(l);
  }

  close(): void {
    this.hepSocket?.close();
    this.live.clear();
  }
}

/** A trace entry as JSON for people and tools (credentials masked). */
export const entryJson = (e: TraceEntry) => ({
  time: new Date(e.time).toISOString(),
  dir: e.dir,
  transport: e.transport,
  peer: `${e.address}:${e.port}`,
  callId: e.callId,
  summary: e.summary,
  message: maskCredentials(e.data.toString('utf8')),
});
