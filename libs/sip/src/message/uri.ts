/**
 * URIs: sip / sips (RFC 3261 §19.1, §25), tel (RFC 3966), and any other scheme
 * kept opaque (RFC 4475 §3.3.2: parse, then answer 416). Comparison per §19.1.4.
 */
import {
  HNV,
  HOSTCHAR,
  PARAMCHAR,
  PASSWORD,
  SCHEME,
  TELCHAR,
  USER,
  escapesValid,
  scan,
  scanB,
  strBytes,
  unescape,
  unescapeBinary,
} from './chars';
import { badUri } from './errors';
import { MAX_PARAMS } from './limits';
import { Params } from './params';

export type HostType = 'ipv4' | 'ipv6' | 'name';

export interface SipUriInit {
  scheme?: 'sip' | 'sips';
  user?: string | null;
  password?: string | null;
  host: string;
  port?: number | null;
  params?: Params;
  headers?: Array<[string, string]>;
}

export class SipUri {
  readonly scheme: 'sip' | 'sips';
  /** user part as written (escaped), or null */
  user: string | null;
  password: string | null;
  /** host as written; IPv6 keeps its brackets */
  host: string;
  port: number | null;
  private _params: Params | undefined;
  private _headers: Array<[string, string]> | undefined;
  /** validated, not yet split ";params" and "name=value&..." texts of a parsed URI */
  private _praw: string;
  private _hraw: string;

  constructor(init: SipUriInit);
  /** @internal positional form used by the parser */
  constructor(
    scheme: 'sip' | 'sips',
    user: string | null,
    password: string | null,
    host: string,
    port: number | null,
    praw: string,
    hraw: string,
  );
  constructor(
    init: SipUriInit | 'sip' | 'sips',
    user: string | null = null,
    password: string | null = null,
    host = '',
    port: number | null = null,
    praw = '',
    hraw = '',
  ) {
    if (typeof init === 'string') {
      this.scheme = init;
      this.user = user;
      this.password = password;
      this.host = host;
      this.port = port;
      this._params = undefined;
      this._headers = undefined;
      this._praw = praw;
      this._hraw = hraw;
    } else {
      this.scheme = init.scheme ?? 'sip';
      this.user = init.user ?? null;
      this.password = init.password ?? null;
      this.host = init.host;
      this.port = init.port ?? null;
      this._params = init.params ?? new Params();
      this._headers = init.headers ?? [];
      this._praw = '';
      this._hraw = '';
    }
  }
  /** URI parameters (parsed on first use) */
  get params(): Params {
    if (this._params === undefined) {
      this._params = new Params();
      if (this._praw) parseUriParams(this._praw, 0, this._params);
    }
    return this._params;
  }
  set params(p: Params) {
    this._params = p;
  }
  /** URI headers (`?name=value&...`), as written (escaped) */
  get headers(): Array<[string, string]> {
    if (this._headers === undefined) {
      this._headers = [];
      if (this._hraw) {
        for (const part of this._hraw.split('&')) {
          const eq = part.indexOf('=');
          this._headers.push([part.slice(0, eq), part.slice(eq + 1)]);
        }
      }
    }
    return this._headers;
  }
  set headers(h: Array<[string, string]>) {
    this._headers = h;
  }
  get hasHeaders(): boolean {
    return this._headers === undefined ? this._hraw.length > 0 : this._headers.length > 0;
  }
  get isSip(): true {
    return true;
  }
  /** user part with %HH decoded (UTF-8) */
  get userDecoded(): string | null {
    return this.user === null ? null : unescape(this.user);
  }
  get hostType(): HostType {
    return hostType(this.host);
  }
  /** host without IPv6 brackets, lower-cased */
  get hostname(): string {
    const h = this.host;
    return (h.charCodeAt(0) === 91 ? h.slice(1, -1) : h).toLowerCase();
  }
  param(name: string): string | null | undefined {
    return this.params.get(name);
  }
  get transport(): string | undefined {
    const t = this.params.get('transport');
    return t ? t.toLowerCase() : undefined;
  }
  get lr(): boolean {
    return this.params.has('lr');
  }
  get maddr(): string | undefined {
    return this.params.get('maddr') ?? undefined;
  }
  /** RFC 5626 ;ob (outbound) flag */
  get ob(): boolean {
    return this.params.has('ob');
  }
  clone(): SipUri {
    return new SipUri({
      scheme: this.scheme,
      user: this.user,
      password: this.password,
      host: this.host,
      port: this.port,
      params: this.params.clone(),
      headers: this.headers.map(([n, v]) => [n, v] as [string, string]),
    });
  }
  toString(): string {
    let s = this.scheme + ':';
    if (this.user !== null) {
      s += this.user;
      if (this.password !== null) s += ':' + this.password;
      s += '@';
    }
    s += this.host;
    if (this.port !== null) s += ':' + this.port;
    s += this._params === undefined ? this._praw : this._params.toString();
    if (this._headers === undefined) {
      if (this._hraw) s += '?' + this._hraw;
    } else if (this._headers.length) s += '?' + this._headers.map(([n, v]) => `${n}=${v}`).join('&');
    return s;
  }
}

export class TelUri {
  readonly scheme = 'tel' as const;
  /** number as written, visual separators included */
  number: string;
  params: Params;
  constructor(number: string, params: Params = new Params()) {
    this.number = number;
    this.params = params;
  }
  get isGlobal(): boolean {
    return this.number.charCodeAt(0) === 43;
  }
  /** number without visual separators ( - . ( ) ) */
  get digits(): string {
    return this.number.replace(/[-.()]/g, '');
  }
  get phoneContext(): string | undefined {
    return this.params.get('phone-context') ?? undefined;
  }
  clone(): TelUri {
    return new TelUri(this.number, this.params.clone());
  }
  toString(): string {
    return 'tel:' + this.number + this.params.toString();
  }
}

/** A URI of a scheme this stack doesn't interpret: kept opaque. */
export class AbsoluteUri {
  readonly scheme: string;
  readonly opaque: string;
  constructor(scheme: string, opaque: string) {
    this.scheme = scheme;
    this.opaque = opaque;
  }
  clone(): AbsoluteUri {
    return this;
  }
  toString(): string {
    return this.scheme + ':' + this.opaque;
  }
}

export type Uri = SipUri | TelUri | AbsoluteUri;

export function isSipUri(u: Uri | null | undefined): u is SipUri {
  return u instanceof SipUri;
}

export function hostType(h: string): HostType {
  if (h.charCodeAt(0) === 91) return 'ipv6';
  return isIPv4(h) ? 'ipv4' : 'name';
}

export function isIPv4(h: string): boolean {
  const parts = h.split('.');
  if (parts.length !== 4) return false;
  for (const p of parts) {
    if (p.length === 0 || p.length > 3) return false;
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c < 48 || c > 57) return false;
    }
    if (+p > 255) return false;
  }
  return true;
}

/**
 * IPv6 address check, tolerant of the RFC 3261 ABNF bug (RFC 5118 §4.10: `2001:db8:::192.0.2.1`).
 * Hex groups of 1..4 digits, at least two colons, an optional trailing dotted IPv4.
 */
export function isIPv6(h: string): boolean {
  if (h.length < 2 || h.length > 64) return false;
  let colons = 0;
  let group = 0;
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c === 58) {
      colons++;
      group = 0;
    } else if ((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)) {
      if (++group > 4) return false;
    } else if (c === 46) {
      // embedded IPv4 must be the tail
      const tail = h.slice(h.lastIndexOf(':') + 1);
      return colons >= 2 && i > h.lastIndexOf(':') && isIPv4(tail);
    } else return false;
  }
  return colons >= 2 && colons <= 8;
}

/** Results of parseHostPort (module state: no tuple allocated per call). */
export const hostPort = { host: '', port: null as number | null, end: 0 };

/** Parses host[:port] at s[i..n) into `hostPort` (codes read from b[d + k], see chars.ts). */
export function parseHostPort(b: Uint8Array, d: number, s: string, i: number, what: string, n: number): void {
  let host: string;
  if (i < n && b[i + d] === 91) {
    const close = s.indexOf(']', i);
    if (close < 0 || close >= n) throw badUri(`${what}: unterminated IPv6 reference`);
    host = s.slice(i, close + 1);
    if (!isIPv6(host.slice(1, -1))) throw badUri(`${what}: bad IPv6 address`);
    i = close + 1;
  } else {
    const e = scanB(b, d, i, HOSTCHAR, n);
    if (e === i) throw badUri(`${what}: empty host`);
    host = s.slice(i, e);
    i = e;
  }
  let port: number | null = null;
  if (i < n && b[i + d] === 58) {
    let e = i + 1;
    let v = 0;
    while (e < n) {
      const c = b[e + d];
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      e++;
    }
    if (e === i + 1 || e - i - 1 > 5 || v > 65535) throw badUri(`${what}: bad port`);
    port = v;
    i = e;
  }
  hostPort.host = host;
  hostPort.port = port;
  hostPort.end = i;
}

/** Validates `;name[=value]...` at [i..n) without allocating; returns the end index. */
function scanUriParams(b: Uint8Array, d: number, i: number, n: number): number {
  let count = 0;
  while (i < n && b[i + d] === 59) {
    const ns = i + 1;
    const ne = scanB(b, d, ns, PARAMCHAR, n);
    if (ne === ns) throw badUri('empty URI parameter name');
    i = ne;
    if (i < n && b[i + d] === 61) i = scanB(b, d, i + 1, PARAMCHAR, n);
    if (++count > MAX_PARAMS) throw badUri('too many URI parameters');
  }
  return i;
}

/** Parses `;name[=value]...` URI parameters at s[i..], stops at '?' or end. */
function parseUriParams(s: string, i: number, params: Params): number {
  const n = s.length;
  while (i < n && s.charCodeAt(i) === 59) {
    const ns = i + 1;
    const ne = scan(s, ns, PARAMCHAR);
    if (ne === ns) throw badUri('empty URI parameter name');
    let value: string | null = null;
    i = ne;
    if (s.charCodeAt(i) === 61) {
      const ve = scan(s, i + 1, PARAMCHAR);
      value = s.slice(i + 1, ve);
      i = ve;
    }
    if (params.list.length >= MAX_PARAMS) throw badUri('too many URI parameters');
    params.list.push([s.slice(ns, ne), value]);
  }
  return i;
}

/** Parses any URI; unknown schemes give an AbsoluteUri. Throws SipParseError('bad_uri'). */
export function parseUri(s: string): Uri {
  return parseUriB(strBytes(s), 0, s);
}

/** @internal parseUri with the codes of s read from b[d + k] (see chars.ts) */
export function parseUriB(b: Uint8Array, d: number, s: string): Uri {
  const n = s.length;
  // "sip:" as written (the usual case): no search for the colon
  if (n > 4 && b[d] === 115 && b[d + 1] === 105 && b[d + 2] === 112 && b[d + 3] === 58)
    return parseSip(b, d, s, 4, 'sip');
  const colon = s.indexOf(':');
  if (colon <= 0) throw badUri(`no scheme in URI "${s.slice(0, 64)}"`);
  const c0 = b[d] | 0x20;
  if (c0 < 97 || c0 > 122 || scanB(b, d, 1, SCHEME, n) !== colon) throw badUri('bad URI scheme');
  if (colon === 3 && s.startsWith('sip')) return parseSip(b, d, s, 4, 'sip');
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSip(b, d, s, colon + 1, scheme);
  if (scheme === 'tel') return parseTel(s, colon + 1);
  const opaque = s.slice(colon + 1);
  if (opaque.length === 0) throw badUri('empty URI');
  for (let i = 0; i < opaque.length; i++) {
    const c = opaque.charCodeAt(i);
    if (c <= 32 || c === 127 || c === 34 || c === 60 || c === 62) throw badUri('bad character in URI');
  }
  return new AbsoluteUri(scheme, opaque);
}

/** Parses a sip: or sips: URI; anything else is a bad_uri. */
export function parseSipUri(s: string): SipUri {
  const u = parseUri(s);
  if (!(u instanceof SipUri)) throw badUri(`not a SIP URI: ${u.scheme}`);
  return u;
}

/** s[ps, pe): ";lr" (loose routing: every Route and Record-Route) as a constant, others sliced. */
function uriParamsText(b: Uint8Array, d: number, s: string, ps: number, pe: number): string {
  const k = ps + d;
  if (pe - ps === 3 && b[k] === 59 && b[k + 1] === 108 && b[k + 2] === 114) return ';lr';
  return s.slice(ps, pe);
}

/** true when b[d + from, d + to) holds a '%' */
function hasPct(b: Uint8Array, d: number, from: number, to: number): boolean {
  for (let k = from + d; k < to + d; k++) if (b[k] === 37) return true;
  return false;
}

function parseSip(b: Uint8Array, d: number, s: string, i: number, scheme: 'sip' | 'sips'): SipUri {
  const n = s.length;
  const start = i;
  let user: string | null = null;
  let password: string | null = null;
  const at = s.indexOf('@', i);
  if (at >= 0) {
    const ue = scanB(b, d, i, USER, n);
    if (ue === at) {
      user = s.slice(i, at);
    } else if (ue < n && b[ue + d] === 58) {
      const pe = scanB(b, d, ue + 1, PASSWORD, n);
      if (pe !== at) throw badUri('bad character in URI password');
      user = s.slice(i, ue);
      password = s.slice(ue + 1, at);
    } else throw badUri('bad character in URI user part');
    if (user.length === 0) throw badUri('empty URI user part');
    i = at + 1;
  }
  const hostStart = i;
  parseHostPort(b, d, s, i, 'URI host', n);
  const host = hostPort.host;
  const port = hostPort.port;
  const ps = hostPort.end;
  const pe = scanUriParams(b, d, ps, n);
  i = pe;
  let hraw = '';
  if (i < n && b[i + d] === 63) {
    const hs = i + 1;
    i = hs;
    for (let count = 0; ; count++) {
      const ns = i;
      const ne = scanB(b, d, ns, HNV, n);
      if (ne === ns || ne >= n || b[ne + d] !== 61) throw badUri('bad URI header');
      i = scanB(b, d, ne + 1, HNV, n);
      if (count > MAX_PARAMS) throw badUri('too many URI headers');
      if (i < n && b[i + d] === 38) {
        i++;
        continue;
      }
      break;
    }
    hraw = s.slice(hs, i);
  }
  if (i !== n) throw badUri(`unexpected character in URI at ${i}`);
  // a '%' can only be in the userinfo, the parameters and the headers (not in host or port)
  if ((hasPct(b, d, start, hostStart) || hasPct(b, d, ps, n)) && !escapesValid(s, 0, n))
    throw badUri('bad %-escape in URI');
  return new SipUri(scheme, user, password, host, port, pe > ps ? uriParamsText(b, d, s, ps, pe) : '', hraw);
}

function parseTel(s: string, i: number): TelUri {
  const e = scan(s, i, TELCHAR);
  if (e === i) throw badUri('empty tel number');
  const number = s.slice(i, e);
  const params = new Params();
  const pe = parseUriParams(s, e, params);
  if (pe !== s.length) throw badUri('bad character in tel URI');
  if (!escapesValid(s, e, s.length)) throw badUri('bad %-escape in tel URI');
  return new TelUri(number, params);
}

// ---- comparison (RFC 3261 §19.1.4, RFC 3966 §4) ----

const MUST_MATCH = ['user', 'ttl', 'method', 'maddr', 'transport'];

function paramMap(p: Params): Map<string, string | null> {
  const m = new Map<string, string | null>();
  for (const [n, v] of p.list)
    m.set(unescapeBinary(n).toLowerCase(), v === null ? null : unescapeBinary(v).toLowerCase());
  return m;
}

function sipUriEquals(a: SipUri, b: SipUri): boolean {
  if (a.scheme !== b.scheme) return false;
  if ((a.user === null) !== (b.user === null)) return false;
  if (a.user !== null && unescapeBinary(a.user) !== unescapeBinary(b.user!)) return false;
  if ((a.password === null) !== (b.password === null)) return false;
  if (a.password !== null && unescapeBinary(a.password) !== unescapeBinary(b.password!)) return false;
  if (a.hostname !== b.hostname) return false;
  if (a.port !== b.port) return false;
  const pa = paramMap(a.params);
  const pb = paramMap(b.params);
  for (const name of MUST_MATCH) {
    if (pa.get(name) !== pb.get(name)) return false;
  }
  for (const [name, v] of pa) {
    if (pb.has(name) && pb.get(name) !== v) return false;
  }
  if (a.headers.length !== b.headers.length) return false;
  const hb = new Map(b.headers.map(([n, v]) => [unescapeBinary(n).toLowerCase(), unescapeBinary(v)]));
  for (const [n, v] of a.headers) {
    if (hb.get(unescapeBinary(n).toLowerCase()) !== unescapeBinary(v)) return false;
  }
  return true;
}

function telUriEquals(a: TelUri, b: TelUri): boolean {
  if (a.digits.toLowerCase() !== b.digits.toLowerCase()) return false;
  if (a.params.size !== b.params.size) return false;
  for (const [n, v] of a.params.list) {
    const w = b.params.get(n);
    if (w === undefined || (v === null ? null : v.toLowerCase()) !== (w === null ? null : w.toLowerCase()))
      return false;
  }
  return true;
}

/** URI equivalence per RFC 3261 §19.1.4 (sip/sips), RFC 3966 §4 (tel), exact text otherwise. */
export function uriEquals(a: Uri | string, b: Uri | string): boolean {
  const ua = typeof a === 'string' ? parseUri(a) : a;
  const ub = typeof b === 'string' ? parseUri(b) : b;
  if (ua instanceof SipUri) return ub instanceof SipUri && sipUriEquals(ua, ub);
  if (ua instanceof TelUri) return ub instanceof TelUri && telUriEquals(ua, ub);
  return (
    !(ub instanceof SipUri) && !(ub instanceof TelUri) && ua.scheme === ub.scheme && ua.opaque === ub.opaque
  );
}
