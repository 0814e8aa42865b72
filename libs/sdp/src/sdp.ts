/**
 * SDP (RFC 4566) parse and serialize.
 *
 * The model is line-based: a session section and one section per m= line,
 * each an ordered list of `type=value` lines kept verbatim. Typed accessors
 * (origin, connection, rtpmap, direction, rtcp, ...) read and write those
 * lines, so attribute order and lines this code does not know survive, and
 * serialize(parse(x)) === x for well-formed input with CRLF line endings
 * (LF-only input is accepted and written back with CRLF).
 *
 * Objects returned by getters are copies: change a value through its setter
 * (`m.port = 4000`, `sdp.origin = { ...sdp.origin, sessionVersion: '2' }`).
 */
import { DomainError } from '@switchboard/platform';

/** Longest SDP body accepted. */
export const MAX_SDP_LENGTH = 65_536;
/** Most lines accepted in one SDP body. */
export const MAX_SDP_LINES = 2_048;

/** An SDP body that cannot be parsed; `line` is 1-based. */
export class SdpParseError extends DomainError {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super('invalid_argument', line ? `SDP line ${line}: ${message}` : `SDP: ${message}`, 'sdp');
    this.name = 'SdpParseError';
  }
}

export interface SdpLine {
  /** The single character before '=' (v, o, s, c, m, a, ... or an unknown one). */
  type: string;
  /** Everything after '=', verbatim. */
  value: string;
}

export type AddrType = 'IP4' | 'IP6';
export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
export const DIRECTIONS: readonly Direction[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

/** o= (RFC 4566 §5.2). Ids and versions are strings: they may exceed 2^53. */
export interface Origin {
  username: string;
  sessionId: string;
  sessionVersion: string;
  netType: string;
  addrType: string;
  address: string;
}

/** c= (RFC 4566 §5.7). ttl only for IP4 multicast; count for multicast groups. */
export interface Connection {
  netType: string;
  addrType: string;
  address: string;
  ttl?: number;
  count?: number;
}

export interface Bandwidth {
  type: string;
  value: number;
}

export interface Timing {
  start: string;
  stop: string;
  /** r= lines following this t=, verbatim. */
  repeats: string[];
}

/** m= (RFC 4566 §5.14). */
export interface MediaLine {
  media: string;
  port: number;
  portCount?: number;
  proto: string;
  formats: string[];
}

export interface Attribute {
  name: string;
  /** undefined for a property attribute (a=rtcp-mux). */
  value?: string;
}

export interface RtpMap {
  payloadType: number;
  encoding: string;
  clockRate: number;
  channels?: number;
}

/** a=rtcp (RFC 3605). */
export interface Rtcp {
  port: number;
  netType?: string;
  addrType?: string;
  address?: string;
}

/** Attributes that belong to ICE (RFC 8839), removed by stripIce(). */
export const ICE_ATTRIBUTES: readonly string[] = [
  'candidate',
  'remote-candidates',
  'end-of-candidates',
  'ice-ufrag',
  'ice-pwd',
  'ice-options',
  'ice-lite',
  'ice-mismatch',
  'ice-pacing',
];

// Order of line types inside a section (RFC 4566 §5), used to place new lines.
const SESSION_ORDER = 'vosiuepcbtrzka';
const MEDIA_ORDER = 'micbka';

function rank(order: string, type: string): number {
  const i = order.indexOf(type);
  return i < 0 ? order.length : i;
}

const ws = /[ \t]+/;

export function parseOrigin(value: string, lineNo?: number): Origin {
  const f = value.trim().split(ws);
  if (f.length !== 6) throw new SdpParseError(`o= needs 6 fields, got ${f.length}`, lineNo);
  const [username, sessionId, sessionVersion, netType, addrType, address] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!/^\d+$/.test(sessionId) || !/^\d+$/.test(sessionVersion)) {
    throw new SdpParseError('o= session id and version must be numeric', lineNo);
  }
  return { username, sessionId, sessionVersion, netType, addrType, address };
}

export function formatOrigin(o: Origin): string {
  return `${o.username} ${o.sessionId} ${o.sessionVersion} ${o.netType} ${o.addrType} ${o.address}`;
}

export function parseConnection(value: string, lineNo?: number): Connection {
  const f = value.trim().split(ws);
  if (f.length !== 3) throw new SdpParseError(`c= needs 3 fields, got ${f.length}`, lineNo);
  const [netType, addrType, addr] = f as [string, string, string];
  const parts = addr.split('/');
  const c: Connection = { netType, addrType, address: parts[0]! };
  if (!c.address) throw new SdpParseError('c= empty address', lineNo);
  const num = (s: string) => {
    if (!/^\d+$/.test(s)) throw new SdpParseError(`c= bad number "${s}"`, lineNo);
    return Number(s);
  };
  if (addrType.toUpperCase() === 'IP4') {
    if (parts[1] !== undefined) c.ttl = num(parts[1]);
    if (parts[2] !== undefined) c.count = num(parts[2]);
    if (parts.length > 3) throw new SdpParseError('c= too many "/" parts', lineNo);
  } else {
    if (parts[1] !== undefined) c.count = num(parts[1]);
    if (parts.length > 2) throw new SdpParseError('c= too many "/" parts', lineNo);
  }
  return c;
}

export function formatConnection(c: Connection): string {
  let a = c.address;
  if (c.addrType.toUpperCase() === 'IP4') {
    if (c.ttl !== undefined) a += `/${c.ttl}`;
    if (c.ttl !== undefined && c.count !== undefined) a += `/${c.count}`;
  } else if (c.count !== undefined) {
    a += `/${c.count}`;
  }
  return `${c.netType} ${c.addrType} ${a}`;
}

export function parseMediaLine(value: string, lineNo?: number): MediaLine {
  const f = value.trim().split(ws);
  if (f.length < 3) throw new SdpParseError('m= needs media, port and proto', lineNo);
  const [media, portField, proto, ...formats] = f as [string, string, string, ...string[]];
  const m = /^(\d+)(?:\/(\d+))?$/.exec(portField);
  if (!m) throw new SdpParseError(`m= bad port "${portField}"`, lineNo);
  const port = Number(m[1]);
  if (port > 65535) throw new SdpParseError(`m= port out of range "${portField}"`, lineNo);
  const out: MediaLine = { media, port, proto, formats };
  if (m[2] !== undefined) out.portCount = Number(m[2]);
  return out;
}

export function formatMediaLine(m: MediaLine): string {
  const port = m.portCount !== undefined ? `${m.port}/${m.portCount}` : `${m.port}`;
  return [m.media, port, m.proto, ...m.formats].join(' ');
}

function parseAttribute(value: string): Attribute {
  const i = value.indexOf(':');
  return i < 0 ? { name: value } : { name: value.slice(0, i), value: value.slice(i + 1) };
}

function formatAttribute(name: string, value?: string): string {
  return value === undefined ? name : `${name}:${value}`;
}

/** Behaviour shared by the session section and media sections. */
abstract class Section {
  constructor(
    public lines: SdpLine[],
    private readonly order: string,
  ) {}

  protected firstValue(type: string): string | undefined {
    return this.lines.find((l) => l.type === type)?.value;
  }

  protected values(type: string): string[] {
    return this.lines.filter((l) => l.type === type).map((l) => l.value);
  }

  /** Insert a line where RFC 4566 puts its type: after the last line of the same or an earlier type. */
  insertLine(line: SdpLine): void {
    const r = rank(this.order, line.type);
    let at = this.lines.length;
    for (let i = this.lines.length - 1; i >= 0; i--) {
      if (rank(this.order, this.lines[i]!.type) <= r) {
        at = i + 1;
        break;
      }
      at = i;
    }
    this.lines.splice(at, 0, line);
  }

  /** Replace the first line of this type (keeping its place), or insert one. */
  protected setFirst(type: string, value: string | undefined): void {
    const i = this.lines.findIndex((l) => l.type === type);
    if (value === undefined) {
      if (i >= 0) this.lines.splice(i, 1);
      return;
    }
    if (i >= 0) this.lines[i] = { type, value };
    else this.insertLine({ type, value });
  }

  get info(): string | undefined {
    return this.firstValue('i');
  }
  set info(v: string | undefined) {
    this.setFirst('i', v);
  }

  get key(): string | undefined {
    return this.firstValue('k');
  }
  set key(v: string | undefined) {
    this.setFirst('k', v);
  }

  /** The first c= of this section (media sections may carry several for multicast). */
  get connection(): Connection | undefined {
    const v = this.firstValue('c');
    return v === undefined ? undefined : parseConnection(v);
  }
  set connection(c: Connection | undefined) {
    this.setFirst('c', c === undefined ? undefined : formatConnection(c));
  }

  get connections(): Connection[] {
    return this.values('c').map((v) => parseConnection(v));
  }

  get bandwidths(): Bandwidth[] {
    return this.values('b').flatMap((v) => {
      const i = v.indexOf(':');
      return i < 0 ? [] : [{ type: v.slice(0, i), value: Number(v.slice(i + 1)) }];
    });
  }

  /** All a= lines in order. */
  get attributes(): Attribute[] {
    return this.values('a').map(parseAttribute);
  }

  hasAttribute(name: string): boolean {
    return this.attributes.some((a) => a.name === name);
  }

  /** Value of the first a=name (undefined when absent; '' for a property attribute). */
  attribute(name: string): string | undefined {
    const a = this.attributes.find((x) => x.name === name);
    return a === undefined ? undefined : (a.value ?? '');
  }

  /** Values of every a=name, in order. */
  attributeValues(name: string): string[] {
    return this.attributes.filter((a) => a.name === name).map((a) => a.value ?? '');
  }

  /** Append an a= line after the last a= line (before unknown trailing lines). */
  addAttribute(name: string, value?: string): void {
    this.insertLine({ type: 'a', value: formatAttribute(name, value) });
  }

  /** Set the first a=name in place (removing any others), or add it. */
  setAttribute(name: string, value?: string): void {
    let done = false;
    const out: SdpLine[] = [];
    for (const l of this.lines) {
      if (l.type !== 'a' || parseAttribute(l.value).name !== name) out.push(l);
      else if (!done) {
        out.push({ type: 'a', value: formatAttribute(name, value) });
        done = true;
      }
    }
    this.lines = out;
    if (!done) this.addAttribute(name, value);
  }

  /** Remove a=name lines (those whose value passes `filter`, if given); returns how many. */
  removeAttribute(name: string, filter?: (value: string | undefined) => boolean): number {
    const before = this.lines.length;
    this.lines = this.lines.filter((l) => {
      if (l.type !== 'a') return true;
      const a = parseAttribute(l.value);
      return !(a.name === name && (!filter || filter(a.value)));
    });
    return before - this.lines.length;
  }

  /** The direction attribute of this section (the last one wins), undefined when absent. */
  get direction(): Direction | undefined {
    let d: Direction | undefined;
    for (const a of this.attributes)
      if ((DIRECTIONS as readonly string[]).includes(a.name)) d = a.name as Direction;
    return d;
  }
  set direction(d: Direction | undefined) {
    const first = this.lines.findIndex(
      (l) => l.type === 'a' && (DIRECTIONS as readonly string[]).includes(parseAttribute(l.value).name),
    );
    this.lines = this.lines.filter(
      (l, i) =>
        i === first ||
        !(l.type === 'a' && (DIRECTIONS as readonly string[]).includes(parseAttribute(l.value).name)),
    );
    if (d === undefined) {
      if (first >= 0) this.lines.splice(first, 1);
    } else if (first >= 0) {
      this.lines[first] = { type: 'a', value: d };
    } else {
      this.addAttribute(d);
    }
  }

  get iceUfrag(): string | undefined {
    return this.attribute('ice-ufrag');
  }
  get icePwd(): string | undefined {
    return this.attribute('ice-pwd');
  }
  /** ice-options tokens. */
  get iceOptions(): string[] {
    return this.attributeValues('ice-options').flatMap((v) => v.trim().split(ws).filter(Boolean));
  }
  /** a=fingerprint values, verbatim. */
  get fingerprints(): string[] {
    return this.attributeValues('fingerprint');
  }

  /** Remove this section's ICE attributes (candidates, ufrag/pwd, options, ...). */
  stripIce(): void {
    this.lines = this.lines.filter(
      (l) => !(l.type === 'a' && ICE_ATTRIBUTES.includes(parseAttribute(l.value).name)),
    );
  }
}

/** One m= section; lines[0] is the m= line. */
export class MediaDescription extends Section {
  constructor(lines: SdpLine[]) {
    super(lines, MEDIA_ORDER);
  }

  get mediaLine(): MediaLine {
    return parseMediaLine(this.lines[0]!.value);
  }
  set mediaLine(m: MediaLine) {
    this.lines[0] = { type: 'm', value: formatMediaLine(m) };
  }

  get media(): string {
    return this.mediaLine.media;
  }
  get port(): number {
    return this.mediaLine.port;
  }
  set port(port: number) {
    this.mediaLine = { ...this.mediaLine, port };
  }
  get portCount(): number | undefined {
    return this.mediaLine.portCount;
  }
  get proto(): string {
    return this.mediaLine.proto;
  }
  get formats(): string[] {
    return this.mediaLine.formats;
  }
  /** A port of 0 rejects or disables the stream (RFC 3264 §6). */
  get rejected(): boolean {
    return this.port === 0;
  }
  /** True for RTP-based protocols (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, ...). */
  get isRtp(): boolean {
    return /(^|\/)RTP\//i.test(this.proto);
  }

  /** a=rtpmap entries by payload type. */
  get rtpmaps(): Map<number, RtpMap> {
    const out = new Map<number, RtpMap>();
    for (const v of this.attributeValues('rtpmap')) {
      const m = /^(\d+)\s+([^/\s]+)\/(\d+)(?:\/(\d+))?/.exec(v.trim());
      if (!m) continue;
      const r: RtpMap = { payloadType: Number(m[1]), encoding: m[2]!, clockRate: Number(m[3]) };
      if (m[4] !== undefined) r.channels = Number(m[4]);
      if (!out.has(r.payloadType)) out.set(r.payloadType, r);
    }
    return out;
  }

  rtpmap(payloadType: number | string): RtpMap | undefined {
    return this.rtpmaps.get(Number(payloadType));
  }

  /** The format parameters of a=fmtp:<pt>, verbatim (e.g. "0-15" or "minptime=10;useinbandfec=1"). */
  fmtp(payloadType: number | string): string | undefined {
    const pt = String(payloadType);
    for (const v of this.attributeValues('fmtp')) {
      const m = /^(\S+)\s+(.*)$/.exec(v);
      if (m && m[1] === pt) return m[2];
    }
    return undefined;
  }

  /** a=rtcp (RFC 3605), undefined when absent or unparseable. */
  get rtcp(): Rtcp | undefined {
    const v = this.attribute('rtcp');
    if (v === undefined) return undefined;
    const f = v.trim().split(ws);
    if (!/^\d+$/.test(f[0] ?? '')) return undefined;
    const r: Rtcp = { port: Number(f[0]) };
    if (f.length >= 4) {
      r.netType = f[1];
      r.addrType = f[2];
      r.address = f[3];
    }
    return r;
  }
  set rtcp(r: Rtcp | undefined) {
    if (r === undefined) {
      this.removeAttribute('rtcp');
      return;
    }
    const v = r.address ? `${r.port} ${r.netType ?? 'IN'} ${r.addrType ?? 'IP4'} ${r.address}` : `${r.port}`;
    this.setAttribute('rtcp', v);
  }

  /** a=rtcp-mux (RFC 5761). */
  get rtcpMux(): boolean {
    return this.hasAttribute('rtcp-mux');
  }
  set rtcpMux(on: boolean) {
    if (on && !this.rtcpMux) this.addAttribute('rtcp-mux');
    if (!on) this.removeAttribute('rtcp-mux');
  }

  /** a=candidate values, verbatim. */
  get iceCandidates(): string[] {
    return this.attributeValues('candidate');
  }

  get ptime(): number | undefined {
    const v = this.attribute('ptime');
    return v === undefined || !/^\d+(\.\d+)?$/.test(v.trim()) ? undefined : Number(v.trim());
  }
  get maxptime(): number | undefined {
    const v = this.attribute('maxptime');
    return v === undefined || !/^\d+(\.\d+)?$/.test(v.trim()) ? undefined : Number(v.trim());
  }
  /** a=crypto values (RFC 4568), verbatim. */
  get crypto(): string[] {
    return this.attributeValues('crypto');
  }
  get mid(): string | undefined {
    return this.attribute('mid');
  }
}

/** A whole SDP body. */
export class SessionDescription extends Section {
  constructor(
    lines: SdpLine[],
    public media: MediaDescription[],
  ) {
    super(lines, SESSION_ORDER);
  }

  get version(): number {
    return Number(this.firstValue('v'));
  }

  get origin(): Origin {
    const v = this.firstValue('o');
    if (v === undefined) throw new SdpParseError('no o= line');
    return parseOrigin(v);
  }
  set origin(o: Origin) {
    this.setFirst('o', formatOrigin(o));
  }

  /** s= */
  get name(): string | undefined {
    return this.firstValue('s');
  }
  set name(v: string | undefined) {
    this.setFirst('s', v);
  }

  get uri(): string | undefined {
    return this.firstValue('u');
  }
  get emails(): string[] {
    return this.values('e');
  }
  get phones(): string[] {
    return this.values('p');
  }
  get zone(): string | undefined {
    return this.firstValue('z');
  }

  /** t= lines with their r= lines. */
  get timings(): Timing[] {
    const out: Timing[] = [];
    for (const l of this.lines) {
      if (l.type === 't') {
        const [start = '0', stop = '0'] = l.value.trim().split(ws);
        out.push({ start, stop, repeats: [] });
      } else if (l.type === 'r' && out.length > 0) {
        out[out.length - 1]!.repeats.push(l.value);
      }
    }
    return out;
  }

  /** Remove ICE attributes at session level and in every media section. */
  override stripIce(): void {
    super.stripIce();
    for (const m of this.media) m.stripIce();
  }

  /** Deep copy. */
  clone(): SessionDescription {
    return new SessionDescription(
      this.lines.map((l) => ({ ...l })),
      this.media.map((m) => new MediaDescription(m.lines.map((l) => ({ ...l })))),
    );
  }

  override toString(): string {
    return serialize(this);
  }
}

/** Parse an SDP body. Throws SdpParseError when it is not SDP. */
export function parse(text: string): SessionDescription {
  if (text.length > MAX_SDP_LENGTH) throw new SdpParseError(`body longer than ${MAX_SDP_LENGTH} characters`);
  const raw = text.split('\n');
  if (raw.length > MAX_SDP_LINES + 1) throw new SdpParseError(`more than ${MAX_SDP_LINES} lines`);
  const session: SdpLine[] = [];
  const media: MediaDescription[] = [];
  let current = session;
  raw.forEach((r, idx) => {
    const lineNo = idx + 1;
    const line = r.endsWith('\r') ? r.slice(0, -1) : r;
    if (line.trim() === '') return; // blank lines (often a trailing one) are dropped
    if (line.length < 2 || line[1] !== '=' || !/[a-zA-Z]/.test(line[0]!)) {
      throw new SdpParseError(`not a "<type>=<value>" line: ${JSON.stringify(line.slice(0, 40))}`, lineNo);
    }
    const l: SdpLine = { type: line[0]!, value: line.slice(2) };
    if (session.length === 0) {
      if (l.type !== 'v') throw new SdpParseError('the first line must be v=', lineNo);
      if (l.value.trim() !== '0') throw new SdpParseError(`unsupported version "${l.value}"`, lineNo);
    }
    if (l.type === 'o') parseOrigin(l.value, lineNo);
    if (l.type === 'c') parseConnection(l.value, lineNo);
    if (l.type === 'm') {
      parseMediaLine(l.value, lineNo);
      current = [];
      media.push(new MediaDescription(current));
    }
    current.push(l);
  });
  if (session.length === 0) throw new SdpParseError('empty body');
  if (!session.some((l) => l.type === 'o')) throw new SdpParseError('no o= line');
  return new SessionDescription(session, media);
}

/** Write an SDP body with CRLF line endings. */
export function serialize(sdp: SessionDescription): string {
  const all = [...sdp.lines, ...sdp.media.flatMap((m) => m.lines)];
  return all.map((l) => `${l.type}=${l.value}\r\n`).join('');
}
