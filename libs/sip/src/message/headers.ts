/**
 * Header names (full and compact forms) and the parsers of header values:
 * lists, parameters, Via, CSeq, name-addr / addr-spec (From, To, Contact, Route ...).
 * Values reach these parsers unfolded (CRLF + WS replaced by one SP) and trimmed.
 */
import { GENVALUE, TOKEN, isScratch, scan, scanB, skipWs, skipWsB, strBytes } from './chars';
import { SipParseError, badHeader } from './errors';
import { MAX_CSEQ, MAX_HEADER_VALUES, MAX_PARAMS } from './limits';
import { Params, unquote } from './params';
import { hostPort, parseHostPort, parseUri, parseUriB, SipUri, type Uri } from './uri';

/** Ids of the headers indexed up front (routing set). 0 = any other header. */
export const HID = {
  other: 0,
  via: 1,
  from: 2,
  to: 3,
  callId: 4,
  cseq: 5,
  maxForwards: 6,
  route: 7,
  recordRoute: 8,
  contact: 9,
  contentLength: 10,
  contentType: 11,
  expires: 12,
  authorization: 13,
  proxyAuthorization: 14,
} as const;
export type HeaderId = (typeof HID)[keyof typeof HID];

export interface HeaderName {
  /** lower-case full name: the key every lookup uses */
  key: string;
  /** canonical spelling used when this stack writes the header */
  canonical: string;
  id: HeaderId;
  /** position in KNOWN_HEADERS (-1 for names this stack doesn't know) */
  index: number;
}

/** Every header name this stack knows, by HeaderName.index. */
export const KNOWN_HEADERS: HeaderName[] = [];

const CANONICAL: Array<[string, HeaderId, string?]> = [
  ['Via', HID.via, 'v'],
  ['From', HID.from, 'f'],
  ['To', HID.to, 't'],
  ['Call-ID', HID.callId, 'i'],
  ['CSeq', HID.cseq],
  ['Max-Forwards', HID.maxForwards],
  ['Route', HID.route],
  ['Record-Route', HID.recordRoute],
  ['Contact', HID.contact, 'm'],
  ['Content-Length', HID.contentLength, 'l'],
  ['Content-Type', HID.contentType, 'c'],
  ['Expires', HID.expires],
  ['Authorization', HID.authorization],
  ['Proxy-Authorization', HID.proxyAuthorization],
  // compact forms from the IANA SIP header registry
  ['Accept-Contact', HID.other, 'a'],
  ['Referred-By', HID.other, 'b'],
  ['Request-Disposition', HID.other, 'd'],
  ['Content-Encoding', HID.other, 'e'],
  ['Reject-Contact', HID.other, 'j'],
  ['Supported', HID.other, 'k'],
  ['Identity-Info', HID.other, 'n'],
  ['Event', HID.other, 'o'],
  ['Refer-To', HID.other, 'r'],
  ['Subject', HID.other, 's'],
  ['Allow-Events', HID.other, 'u'],
  ['Session-Expires', HID.other, 'x'],
  ['Identity', HID.other, 'y'],
  // other names this stack writes, for canonical spelling
  ['WWW-Authenticate', HID.other],
  ['Proxy-Authenticate', HID.other],
  ['Authentication-Info', HID.other],
  ['Allow', HID.other],
  ['Accept', HID.other],
  ['Unsupported', HID.other],
  ['Require', HID.other],
  ['Proxy-Require', HID.other],
  ['Path', HID.other],
  ['Retry-After', HID.other],
  ['User-Agent', HID.other],
  ['Server', HID.other],
  ['Warning', HID.other],
  ['Min-Expires', HID.other],
  ['Timestamp', HID.other],
  ['Date', HID.other],
  ['RSeq', HID.other],
  ['RAck', HID.other],
  ['P-Asserted-Identity', HID.other],
  ['Privacy', HID.other],
];

/** @internal KNOWN_HEADERS[i].id by i (for the parser: no object read per field) */
export const KNOWN_IDS = new Uint8Array(CANONICAL.length);

const BY_LOWER = new Map<string, HeaderName>();
for (const [canonical, id, compact] of CANONICAL) {
  const h: HeaderName = { key: canonical.toLowerCase(), canonical, id, index: KNOWN_HEADERS.length };
  KNOWN_IDS[h.index] = id;
  KNOWN_HEADERS.push(h);
  BY_LOWER.set(h.key, h);
  if (compact) BY_LOWER.set(compact, h);
}
/*
 * Header-name recognition for the parser, in one pass over the bytes: a trie of the known
 * names (full and compact, any case) walked byte by byte while the name is scanned as a
 * token; a byte that no known name continues with leads to the dead state 0, where the
 * walk goes on to the end of the token. Each byte costs three table reads, and a name
 * is read once whatever the number of known names that share its first letters.
 */
/** byte -> class: 0 ends a token; 1-26 letters (either case); 27 '-'; 28 any other token char */
const NAME_CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) if (TOKEN[c] === 1) NAME_CLASS[c] = 28;
for (let c = 0; c < 26; c++) NAME_CLASS[65 + c] = NAME_CLASS[97 + c] = c + 1;
NAME_CLASS[45] = 27;
/**
 * trie transitions: state s, class c -> NAME_NEXT[s | c]. States are kept multiplied by 32
 * (0: dead, 32: root), so that a step is one OR and one read.
 */
let NAME_NEXT = new Int16Array(0);
/** state >> 5 -> KNOWN_HEADERS index of the name ending there, or -1 */
let NAME_ACCEPT = new Int16Array(0);
{
  const next: number[] = new Array<number>(64).fill(0);
  const accept: number[] = [-1, -1];
  for (const [lower, h] of BY_LOWER) {
    let s = 1;
    for (let i = 0; i < lower.length; i++) {
      const c = NAME_CLASS[lower.charCodeAt(i)];
      if (c === 0 || c === 28) throw new Error(`header name ${lower}: letters and '-' only`);
      let t = next[(s << 5) | c];
      if (t === 0) {
        t = accept.length;
        accept.push(-1);
        for (let k = 0; k < 32; k++) next.push(0);
        next[(s << 5) | c] = t;
      }
      s = t;
    }
    accept[s] = h.index;
  }
  if (accept.length << 5 > 0x7fff) throw new Error('header name trie: too many states for Int16Array');
  NAME_NEXT = Int16Array.from(next, (t) => t << 5);
  NAME_ACCEPT = Int16Array.from(accept);
}
/** @internal end of the token read by the last knownNameAt call */
export let NAME_END = 0;

/**
 * @internal Reads the token at buf[pos..len) (its end in NAME_END) and returns the
 * KNOWN_HEADERS index of the known header name it spells (any case, full or compact), or -1.
 */
export function knownNameAt(buf: Uint8Array, pos: number, len: number): number {
  let s = 32;
  let p = pos;
  while (p < len) {
    const c = NAME_CLASS[buf[p]];
    if (c === 0) break;
    s = NAME_NEXT[s | c];
    p++;
  }
  NAME_END = p;
  return p === pos ? -1 : NAME_ACCEPT[s >> 5];
}

/** As-written spellings seen on the wire, to skip toLowerCase on the hot path. Bounded. */
const SEEN = new Map<string, HeaderName>();
for (const [k, v] of BY_LOWER) {
  SEEN.set(k, v);
  SEEN.set(v.canonical, v);
  if (k.length === 1) SEEN.set(k.toUpperCase(), v);
}
const SEEN_MAX = 4096;

/** Resolves a header name as written (any case, compact or full) to its key. */
export function headerName(written: string): HeaderName {
  const hit = SEEN.get(written);
  if (hit) return hit;
  const lower = written.toLowerCase();
  let h = BY_LOWER.get(lower);
  if (!h) {
    h = { key: lower, canonical: written, id: HID.other, index: -1 };
    return h;
  }
  if (SEEN.size < SEEN_MAX) SEEN.set(written, h);
  return h;
}

/** Headers whose value may be a comma-separated list this stack splits. */
export const LIST_HEADERS = new Set([
  'via',
  'route',
  'record-route',
  'contact',
  'path',
  'allow',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'accept',
  'accept-encoding',
  'accept-language',
  'allow-events',
  'content-encoding',
  'in-reply-to',
  'warning',
  'call-info',
  'alert-info',
  'error-info',
  'reply-to',
  'p-asserted-identity',
  'service-route',
  'accept-contact',
  'reject-contact',
]);

// ---------------------------------------------------------------- lists

/** Index past a quoted-string starting at s[i] === '"', below n. Throws on a missing close quote. */
export function skipQuoted(s: string, i: number, header: string, n = s.length): number {
  for (i++; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i + 1;
  }
  throw badHeader(header, 'unterminated quoted string');
}

/** skipQuoted on bytes (see chars.ts); QUOTED_ESC tells whether the string held a backslash. */
function skipQuotedB(b: Uint8Array, d: number, i: number, header: string, n: number): number {
  QUOTED_ESC = false;
  for (i++; i < n; i++) {
    const c = b[i + d];
    if (c === 92) {
      QUOTED_ESC = true;
      i++;
    } else if (c === 34) return i + 1;
  }
  throw badHeader(header, 'unterminated quoted string');
}
let QUOTED_ESC = false;

/** Finds the first top-level comma at or after i (not inside quotes or <>), or -1. */
export function findComma(s: string, i: number, header: string): number {
  const n = s.length;
  let angle = false;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 34 && !angle) {
      i = skipQuoted(s, i, header);
      continue;
    }
    if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && !angle) return i;
    i++;
  }
  if (angle) throw badHeader(header, 'unterminated <');
  return -1;
}

/** Splits a header value on top-level commas; trims; empty elements are errors. */
export function splitList(s: string, header: string, max = MAX_HEADER_VALUES): string[] {
  if (s.indexOf(',') < 0 && s.indexOf('"') < 0) {
    // one element (an unclosed <> is left to the value parsers)
    const one = s.trim();
    if (one.length === 0) throw badHeader(header, 'empty list element');
    return [one];
  }
  const out: string[] = [];
  let start = 0;
  for (;;) {
    const c = findComma(s, start, header);
    const part = (c < 0 ? s.slice(start) : s.slice(start, c)).trim();
    if (part.length === 0) throw badHeader(header, 'empty list element');
    out.push(part);
    if (out.length > max) throw new SipParseError('too_large', `${header}: too many values`, 513, header);
    if (c < 0) return out;
    start = c + 1;
  }
}

// ---------------------------------------------------------------- parameters

/** s[ns, e): the usual parameter names as constants (no string made per message), others sliced. */
function paramName(b: Uint8Array, d: number, s: string, ns: number, e: number): string {
  const k = ns + d;
  switch (e - ns) {
    case 2:
      if (b[k] === 108 && b[k + 1] === 114) return 'lr';
      break;
    case 3:
      if (b[k] === 116 && b[k + 1] === 97 && b[k + 2] === 103) return 'tag';
      break;
    case 5:
      if (b[k] === 114 && b[k + 1] === 112 && b[k + 2] === 111 && b[k + 3] === 114 && b[k + 4] === 116)
        return 'rport';
      break;
    case 6:
      if (
        b[k] === 98 &&
        b[k + 1] === 114 &&
        b[k + 2] === 97 &&
        b[k + 3] === 110 &&
        b[k + 4] === 99 &&
        b[k + 5] === 104
      )
        return 'branch';
      break;
  }
  return s.slice(ns, e);
}

type Param = [string, string | null];
/** the Params made by the last parseParams call */
let PARAMS_OUT = new Params();

/**
 * Parses header parameters `*( SWS ";" SWS name [ SWS "=" SWS value ] )` at s[i..n)
 * (codes read from b[d + k], see chars.ts) into a new Params, left in PARAMS_OUT.
 * Values are token / host (IPv6 with or without brackets) / quoted-string, kept as written.
 * Returns the index after the last parameter (trailing WS skipped).
 */
export function parseParams(
  b: Uint8Array,
  d: number,
  s: string,
  i: number,
  header: string,
  n: number,
): number {
  // the first two are kept apart and the list made at its size at the end: an array grown
  // from empty by push costs more than a short parameter itself
  let p0: Param | null = null;
  let p1: Param | null = null;
  let more: Param[] | null = null;
  let count = 0;
  for (;;) {
    i = skipWsB(b, d, i, n);
    if (i >= n || b[i + d] !== 59) break;
    i = skipWsB(b, d, i + 1, n);
    const ns = i;
    i = scanB(b, d, i, TOKEN, n);
    if (i === ns) throw badHeader(header, 'empty parameter name');
    const name = paramName(b, d, s, ns, i);
    let value: string | null = null;
    const j = skipWsB(b, d, i, n);
    if (j < n && b[j + d] === 61) {
      i = skipWsB(b, d, j + 1, n);
      const vs = i;
      if (i < n && b[i + d] === 34) i = skipQuotedB(b, d, i, header, n);
      else i = scanB(b, d, i, GENVALUE, n);
      if (i === vs) throw badHeader(header, `empty value for parameter ${name}`);
      value = s.slice(vs, i);
    }
    if (count >= MAX_PARAMS)
      throw new SipParseError('too_large', `${header}: too many parameters`, 513, header);
    count++;
    if (p0 === null) p0 = [name, value];
    else if (p1 === null) p1 = [name, value];
    else if (more === null) more = [p0, p1, [name, value]];
    else more.push([name, value]);
  }
  PARAMS_OUT = new Params(more !== null ? more : p1 !== null ? [p0!, p1] : p0 !== null ? [p0] : []);
  return i;
}

/**
 * Where checkParams found the first `tag` parameter (name in any case): the value at
 * s[TAG_START, TAG_END) as written, TAG_START -1 when there is none or it has no value.
 */
export let TAG_START = -1;
export let TAG_END = -1;
/** The same for the first `branch` parameter (Via). */
let BRANCH_START = -1;
let BRANCH_END = -1;

/**
 * parseParams without building anything: the same checks and errors (a header the parser
 * validates up front and builds on first use), and where the first `tag` value is.
 */
export function checkParams(
  b: Uint8Array,
  d: number,
  s: string,
  i: number,
  header: string,
  n: number,
): number {
  let count = 0;
  let tagSeen = false;
  let branchSeen = false;
  TAG_START = TAG_END = BRANCH_START = BRANCH_END = -1;
  for (;;) {
    i = skipWsB(b, d, i, n);
    if (i >= n || b[i + d] !== 59) break;
    i = skipWsB(b, d, i + 1, n);
    const ns = i;
    i = scanB(b, d, i, TOKEN, n);
    if (i === ns) throw badHeader(header, 'empty parameter name');
    const ne = i;
    const j = skipWsB(b, d, i, n);
    let vs = -1;
    if (j < n && b[j + d] === 61) {
      i = skipWsB(b, d, j + 1, n);
      vs = i;
      if (i < n && b[i + d] === 34) i = skipQuotedB(b, d, i, header, n);
      else i = scanB(b, d, i, GENVALUE, n);
      if (i === vs) throw badHeader(header, `empty value for parameter ${paramName(b, d, s, ns, ne)}`);
    }
    if (count >= MAX_PARAMS)
      throw new SipParseError('too_large', `${header}: too many parameters`, 513, header);
    count++;
    // Params.get('tag'): the first name equal to it in any case
    if (
      !tagSeen &&
      ne - ns === 3 &&
      (b[ns + d] | 0x20) === 116 &&
      (b[ns + d + 1] | 0x20) === 97 &&
      (b[ns + d + 2] | 0x20) === 103
    ) {
      tagSeen = true;
      if (vs >= 0) {
        TAG_START = vs;
        TAG_END = i;
      }
    } else if (
      !branchSeen &&
      ne - ns === 6 &&
      (b[ns + d] | 0x20) === 98 &&
      (b[ns + d + 1] | 0x20) === 114 &&
      (b[ns + d + 2] | 0x20) === 97 &&
      (b[ns + d + 3] | 0x20) === 110 &&
      (b[ns + d + 4] | 0x20) === 99 &&
      (b[ns + d + 5] | 0x20) === 104
    ) {
      branchSeen = true;
      if (vs >= 0) {
        BRANCH_START = vs;
        BRANCH_END = i;
      }
    }
  }
  return i;
}

// ---------------------------------------------------------------- Via

/** the constructor's mark for parameters left to parse on first use */
const LAZY_PARAMS = new Params();

/** RFC 3261 branch magic cookie. */
export const BRANCH_MAGIC = 'z9hG4bK';

export class Via {
  /** "SIP/2.0" as normalised from the header */
  protocol: string;
  /** transport upper-cased: UDP, TCP, TLS, SCTP, WS, WSS ... */
  transport: string;
  host: string;
  port: number | null;
  private _params: Params | undefined;
  /**
   * A Via parsed in place: its parameters, checked, are at _ps[_pi, _pn) (codes in
   * _pb[_pd + k]) and parsed on first use; the branch found by the check (null: none).
   */
  private _pb: Uint8Array | null;
  private _pd: number;
  private _ps: string;
  private _pi: number;
  private _pn: number;
  private _branch: string | null | undefined;
  constructor(
    transport: string,
    host: string,
    port: number | null = null,
    params = new Params(),
    protocol = 'SIP/2.0',
  ) {
    this.protocol = protocol;
    this.transport = transport;
    this.host = host;
    this.port = port;
    this._params = params === LAZY_PARAMS ? undefined : params;
    this._pb = null;
    this._pd = 0;
    this._ps = '';
    this._pi = 0;
    this._pn = 0;
    this._branch = undefined;
  }
  get params(): Params {
    if (this._params !== undefined) return this._params;
    parseParams(this._pb!, this._pd, this._ps, this._pi, 'via', this._pn);
    this._pb = null;
    this._ps = '';
    return (this._params = PARAMS_OUT);
  }
  set params(p: Params) {
    this._params = p;
    this._pb = null;
    this._ps = '';
  }
  get branch(): string | undefined {
    if (this._params === undefined) return this._branch ?? undefined;
    return this._params.get('branch') ?? undefined;
  }
  /** @internal parameters at s[i, n) (checked), parsed on first use */
  _lazy(b: Uint8Array, d: number, s: string, i: number, n: number, branch: string | null): void {
    this._pb = b;
    this._pd = d;
    this._ps = s;
    this._pi = i;
    this._pn = n;
    this._branch = branch;
  }
  /** received= (RFC 3261 §18.2.1), raw; may be an IPv6 address with or without brackets. */
  get received(): string | undefined {
    return this.params.get('received') ?? undefined;
  }
  /** RFC 3581: undefined = no rport; null = rport without value (asks for it); number = filled in. */
  get rport(): number | null | undefined {
    const v = this.params.get('rport');
    if (v === undefined || v === null) return v;
    const n = Number(v);
    return Number.isInteger(n) && n >= 0 && n <= 65535 ? n : undefined;
  }
  get maddr(): string | undefined {
    return this.params.get('maddr') ?? undefined;
  }
  get ttl(): number | undefined {
    const v = this.params.get('ttl');
    return v ? Number(v) : undefined;
  }
  /** True when the branch starts with the RFC 3261 magic cookie and has something after it. */
  get isRfc3261Branch(): boolean {
    const b = this.branch;
    return b !== undefined && b.length > BRANCH_MAGIC.length && b.startsWith(BRANCH_MAGIC);
  }
  /** sent-by as "host:port" (port omitted when absent) */
  get sentBy(): string {
    return this.port === null ? this.host : `${this.host}:${this.port}`;
  }
  clone(): Via {
    return new Via(this.transport, this.host, this.port, this.params.clone(), this.protocol);
  }
  toString(): string {
    return `${this.protocol}/${this.transport} ${this.sentBy}${this.params.toString()}`;
  }
}

const TRANSPORTS = ['UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS'];
function upperTransport(b: Uint8Array, d: number, s: string, i: number, e: number): string {
  const k = i + d;
  // UDP / TCP / TLS as written: no string compared
  if (e - i === 3) {
    const c0 = b[k];
    const c1 = b[k + 1];
    const c2 = b[k + 2];
    if (c0 === 85 && c1 === 68 && c2 === 80) return 'UDP';
    if (c0 === 84 && c1 === 67 && c2 === 80) return 'TCP';
    if (c0 === 84 && c1 === 76 && c2 === 83) return 'TLS';
  }
  for (let j = 0; j < TRANSPORTS.length; j++) {
    const t = TRANSPORTS[j];
    if (t.length === e - i && s.startsWith(t, i)) return t;
  }
  return s.slice(i, e).toUpperCase();
}

function expectSlash(b: Uint8Array, d: number, i: number, n: number): number {
  i = skipWsB(b, d, i, n);
  if (i >= n || b[i + d] !== 47) throw badHeader('via', 'expected /');
  return skipWsB(b, d, i + 1, n);
}

/** Parses one via-parm (one comma-separated Via value). */
export function parseVia(s: string): Via {
  const r = parseViaAt(strBytes(s), 0, s, 0, s.length, 0);
  if (VIA_END !== s.length) throw badHeader('via', `unexpected character at ${VIA_END}`);
  return r;
}

let VIA_END = 0;
/**
 * Parses the via-parm at s[i..n); stops at n or before a top-level comma (end index in VIA_END).
 * `base`: where the value starts in s (error positions are relative to it). Codes are
 * read from b[d + k] (see chars.ts).
 */
export function parseViaAt(b: Uint8Array, d: number, s: string, i: number, n: number, base: number): Via {
  i = skipWsB(b, d, i, n);
  let e: number;
  let transport: string;
  let protocol = 'SIP/2.0';
  const k = i + d;
  if (
    i + 8 <= n &&
    b[k] === 83 && // S
    b[k + 1] === 73 && // I
    b[k + 2] === 80 && // P
    b[k + 3] === 47 && // /
    b[k + 4] === 50 && // 2
    b[k + 5] === 46 && // .
    b[k + 6] === 48 && // 0
    b[k + 7] === 47 // /
  ) {
    // the usual spelling
    i += 8;
    e = scanB(b, d, i, TOKEN, n);
    if (e === i) throw badHeader('via', 'missing transport');
    transport = upperTransport(b, d, s, i, e);
  } else {
    [protocol, transport, e] = viaProtocol(b, d, s, i, n);
  }
  return viaRest(b, d, s, e, transport, protocol, n, base);
}

function viaProtocol(b: Uint8Array, d: number, s: string, i: number, n: number): [string, string, number] {
  let e = scanB(b, d, i, TOKEN, n);
  const name = s.slice(i, e);
  if (name.length !== 3 || (name !== 'SIP' && name.toUpperCase() !== 'SIP'))
    throw badHeader('via', 'protocol is not SIP');
  i = expectSlash(b, d, e, n);
  e = scanB(b, d, i, TOKEN, n);
  const version = s.slice(i, e);
  if (version.length === 0) throw badHeader('via', 'missing version');
  i = expectSlash(b, d, e, n);
  e = scanB(b, d, i, TOKEN, n);
  if (e === i) throw badHeader('via', 'missing transport');
  const transport = upperTransport(b, d, s, i, e);
  const protocol = name === 'SIP' && version === '2.0' ? 'SIP/2.0' : `${name.toUpperCase()}/${version}`;
  return [protocol, transport, e];
}

function viaRest(
  b: Uint8Array,
  d: number,
  s: string,
  e: number,
  transport: string,
  protocol: string,
  n: number,
  base: number,
): Via {
  let i = skipWsB(b, d, e, n);
  if (i === e) throw badHeader('via', 'missing space before sent-by');
  try {
    parseHostPort(b, d, s, i, 'Via sent-by', n);
  } catch (err) {
    throw err instanceof SipParseError ? badHeader('via', err.message) : err;
  }
  const host = hostPort.host;
  const port = hostPort.port;
  i = hostPort.end;
  if (isScratch(b)) {
    // strBytes' buffer is gone at the next call: parameters parsed now
    i = parseParams(b, d, s, i, 'via', n);
    const params = PARAMS_OUT;
    if (i !== n && b[i + d] !== 44) throw badHeader('via', `unexpected character at ${i - base}`);
    VIA_END = i - base;
    return new Via(transport, host, port, params, protocol);
  }
  // in the received message: the parameters checked now (the same errors), parsed when used
  const ps = i;
  i = checkParams(b, d, s, i, 'via', n);
  if (i !== n && b[i + d] !== 44) throw badHeader('via', `unexpected character at ${i - base}`);
  VIA_END = i - base;
  const v = new Via(transport, host, port, LAZY_PARAMS, protocol);
  v._lazy(b, d, s, ps, i, BRANCH_START < 0 ? null : s.slice(BRANCH_START, BRANCH_END));
  return v;
}

// ---------------------------------------------------------------- CSeq

export interface CSeq {
  seq: number;
  method: string;
}

export function parseCSeq(s: string): CSeq {
  let i = 0;
  let seq = 0;
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    i++;
  }
  if (i === 0) throw badHeader('cseq', 'missing sequence number');
  if (seq > MAX_CSEQ) throw badHeader('cseq', 'sequence number over 2**32-1');
  const j = skipWs(s, i);
  if (j === i) throw badHeader('cseq', 'missing space');
  const e = scan(s, j, TOKEN);
  if (e === j || e !== n) throw badHeader('cseq', 'bad method');
  return { seq, method: s.slice(j, e) };
}

/** Parses a non-negative decimal header value (Max-Forwards, Expires, Content-Length ...). */
export function parseUint(s: string, header: string, max = 0xffffffff): number {
  const n = s.length;
  if (n === 0 || n > 10) throw badHeader(header, 'not a number');
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) throw badHeader(header, 'not a number');
    v = v * 10 + (c - 48);
  }
  if (v > max) throw badHeader(header, 'value too large');
  return v;
}

// ---------------------------------------------------------------- name-addr / addr-spec

export class NameAddr {
  /** display name, unquoted, or null */
  displayName: string | null;
  params: Params;
  private _uri: Uri | undefined;
  private _uriText: string | undefined;
  /** @internal bytes of the URI text (the received buffer): _ub[_ud + k] is the code of char k */
  _ub: Uint8Array | null;
  /** @internal */
  _ud: number;
  /** `uri` may be the URI text: it is then parsed on first use (as Kamailio's parse_to does, the header is checked, the URI on demand). */
  constructor(uri: Uri | string, displayName: string | null = null, params = new Params()) {
    if (typeof uri === 'string') {
      this._uriText = uri;
      this._uri = undefined;
    } else {
      this._uri = uri;
      this._uriText = undefined;
    }
    this.displayName = displayName;
    this.params = params;
    this._ub = null;
    this._ud = 0;
  }
  /** The URI (parsed on first use; throws SipParseError('bad_uri')). */
  get uri(): Uri {
    if (this._uri !== undefined) return this._uri;
    const b = this._ub;
    if (b === null) return (this._uri = parseUri(this._uriText!));
    this._ub = null;
    return (this._uri = parseUriB(b, this._ud, this._uriText!));
  }
  set uri(u: Uri) {
    this._uri = u;
    this._uriText = undefined;
  }
  /** The URI as text, without parsing it. */
  get uriText(): string {
    return this._uri === undefined ? this._uriText! : this._uri.toString();
  }
  get tag(): string | undefined {
    return this.params.get('tag') ?? undefined;
  }
  get sipUri(): SipUri | undefined {
    return this.uri instanceof SipUri ? this.uri : undefined;
  }
  clone(): NameAddr {
    return new NameAddr(this.uri.clone(), this.displayName, this.params.clone());
  }
  toString(): string {
    let s = '';
    if (this.displayName !== null && this.displayName !== '') {
      s =
        (/^[-.!%*_+`'~A-Za-z0-9]+( [-.!%*_+`'~A-Za-z0-9]+)*$/.test(this.displayName)
          ? this.displayName
          : '"' + this.displayName.replace(/(["\\])/g, '\\$1') + '"') + ' ';
    }
    return `${s}<${this.uriText}>${this.params.toString()}`;
  }
}

/** Contact value: a name-addr, or `*` (REGISTER removal). */
export class Contact extends NameAddr {
  get expires(): number | undefined {
    const v = this.params.get('expires');
    if (v == null) return undefined;
    const n = Number(unquote(v));
    return Number.isFinite(n) && n >= 0 ? Math.min(n, 0xffffffff) : undefined;
  }
  get q(): number | undefined {
    const v = this.params.get('q');
    return v == null ? undefined : Number(v);
  }
  /** RFC 5626 +sip.instance, unquoted (e.g. "<urn:uuid:...>") */
  get instance(): string | undefined {
    const v = this.params.get('+sip.instance');
    return v == null ? undefined : unquote(v);
  }
  /** RFC 5626 reg-id */
  get regId(): number | undefined {
    const v = this.params.get('reg-id');
    return v == null ? undefined : Number(v);
  }
  override clone(): Contact {
    return new Contact(this.uri.clone(), this.displayName, this.params.clone());
  }
}

/** scheme ":" with a letter first, at [us, ue) (us < ue): the URI itself is parsed when used. */
function isUriStart(b: Uint8Array, d: number, us: number, ue: number): boolean {
  const c = b[us + d] | 0x20;
  if (c < 97 || c > 122) return false;
  // scheme chars (token chars, '+' among them) up to the ':', with something after it
  let i = us + 1;
  while (i < ue && TOKEN[b[i + d]] === 1) i++;
  return i < ue - 1 && b[i + d] === 58;
}

/** token chars, SP and HT: an unquoted display name */
const DISPLAY = TOKEN.slice();
DISPLAY[32] = DISPLAY[9] = 1;

/**
 * Parses a name-addr or addr-spec followed by header parameters (From, To, Contact, Route ...).
 * An addr-spec (no <>) may not contain ',', '?' or ';' in its URI (RFC 3261 §20).
 */
export function parseNameAddr<T extends NameAddr>(
  s: string,
  header: string,
  Ctor: new (uri: Uri | string, displayName: string | null, params: Params) => T,
): T {
  return parseNameAddrAt(strBytes(s), 0, s, 0, s.length, header, Ctor);
}

/**
 * parseNameAddr on s[start, n) (a value inside a larger text; error positions relative to
 * start), codes read from b[d + k] (see chars.ts).
 */
export function parseNameAddrAt<T extends NameAddr>(
  b: Uint8Array,
  d: number,
  s: string,
  start: number,
  n: number,
  header: string,
  Ctor: new (uri: Uri | string, displayName: string | null, params: Params) => T,
): T {
  return nameAddrAt(b, d, s, start, n, header, Ctor, false)!;
}

/**
 * parseNameAddrAt of a NameAddr when it is all of s[start, n), null when something follows
 * it (a list's comma, ...): errors in the value itself are thrown as there.
 */
export function parseOneNameAddrAt(
  b: Uint8Array,
  d: number,
  s: string,
  start: number,
  n: number,
  header: string,
): NameAddr | null {
  return nameAddrAt(b, d, s, start, n, header, NameAddr, true);
}

/**
 * parseNameAddrAt without building the value: the same checks and errors; where its first
 * `tag` parameter's value is, in TAG_START / TAG_END (see checkParams).
 */
export function checkNameAddrAt(
  b: Uint8Array,
  d: number,
  s: string,
  start: number,
  n: number,
  header: string,
): void {
  nameAddrAt(b, d, s, start, n, header, null, false);
}

/**
 * parseNameAddrAt, or its checks only when Ctor is null; `prefix`: null instead of an error
 * when the value does not end where the name-addr and its parameters do.
 */
function nameAddrAt<T extends NameAddr>(
  b: Uint8Array,
  d: number,
  s: string,
  start: number,
  n: number,
  header: string,
  Ctor: (new (uri: Uri | string, displayName: string | null, params: Params) => T) | null,
  prefix: boolean,
): T | null {
  let i = skipWsB(b, d, start, n);
  let display: string | null = null;
  let us: number;
  let ue: number;
  if (i < n && b[i + d] === 34) {
    const e = skipQuotedB(b, d, i, header, n);
    if (Ctor !== null) display = QUOTED_ESC ? unquote(s.slice(i, e)) : s.slice(i + 1, e - 1);
    i = skipWsB(b, d, e, n);
    if (i >= n || b[i + d] !== 60) throw badHeader(header, 'expected < after display name');
  } else {
    let j = i;
    while (j < n && DISPLAY[b[j + d]] === 1) j++;
    if (j < n && b[j + d] === 60) {
      if (j > i && Ctor !== null) {
        const t = s.slice(i, j).trim();
        display = t.length ? t.replace(/[ \t]+/g, ' ') : null;
      }
      i = j;
    }
  }
  if (i < n && b[i + d] === 60) {
    const close = s.indexOf('>', i + 1);
    if (close < 0 || close >= n) throw badHeader(header, 'unterminated <');
    us = i + 1;
    ue = close;
    if (us === ue || isWsB(b[us + d]) || isWsB(b[ue - 1 + d]))
      throw badHeader(header, 'whitespace inside <>');
    i = close + 1;
  } else {
    let j = i;
    while (j < n) {
      const c = b[j + d];
      if (c === 59 || c === 32 || c === 9) break;
      j++;
    }
    us = i;
    ue = j;
    if (us === ue) throw badHeader(header, 'missing URI');
    for (let k = us; k < ue; k++) {
      const c = b[k + d];
      if (c === 63 || c === 44) throw badHeader(header, 'URI with ? or , must be enclosed in <>');
    }
    i = j;
  }
  if (!isUriStart(b, d, us, ue)) throw badHeader(header, `not a URI: ${s.slice(us, ue).slice(0, 40)}`);
  if (Ctor === null) {
    i = checkParams(b, d, s, i, header, n);
    if (i !== n) throw badHeader(header, `unexpected character at ${i - start}`);
    return null;
  }
  const uriStr = s.slice(us, ue);
  i = parseParams(b, d, s, i, header, n);
  const params = PARAMS_OUT;
  if (i !== n) {
    if (prefix) return null;
    throw badHeader(header, `unexpected character at ${i - start}`);
  }
  const r = new Ctor(uriStr, display, params);
  if (!isScratch(b)) {
    r._ub = b;
    r._ud = d + us;
  }
  return r;
}

const isWsB = (c: number) => c === 32 || c === 9;

export function parseContactValue(s: string): Contact {
  return parseNameAddr(s, 'contact', Contact);
}
