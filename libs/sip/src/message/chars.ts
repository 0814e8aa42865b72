/** Character classes of RFC 3261 §25 as lookup tables over byte / char codes 0..127. */

function table(chars: string, ranges = true): Uint8Array {
  const t = new Uint8Array(256);
  if (ranges) {
    for (let c = 48; c <= 57; c++) t[c] = 1;
    for (let c = 65; c <= 90; c++) t[c] = 1;
    for (let c = 97; c <= 122; c++) t[c] = 1;
  }
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export const TOKEN = table("-.!%*_+`'~");
/** unreserved = alphanum / mark */
export const UNRESERVED = table("-_.!~*'()");
/** SIP URI user: unreserved / escaped / user-unreserved (& = + $ , ; ? /) */
export const USER = table("-_.!~*'()%&=+$,;?/");
/** password: unreserved / escaped / & = + $ , */
export const PASSWORD = table("-_.!~*'()%&=+$,");
/** paramchar = param-unreserved / unreserved / escaped */
export const PARAMCHAR = table("-_.!~*'()%[]/:&+$");
/** hname / hvalue chars: hnv-unreserved / unreserved / escaped */
export const HNV = table("-_.!~*'()%[]/?:+$");
/** hostname (tolerant: underscore accepted, as Kamailio does) */
export const HOSTCHAR = table('-._');
/** header parameter values: token, host (IPv6 with or without brackets) */
export const GENVALUE = table("-.!%*_+`'~:[]");
/** tel URI number characters (global and local, with visual separators) */
export const TELCHAR = table('+-.()*#');
/** URI scheme characters after the first letter */
export const SCHEME = table('+-.');

export const isWs = (c: number) => c === 32 || c === 9;
export const isLws = (c: number) => c === 32 || c === 9 || c === 13 || c === 10;

/** Index of the first non-SP/HT char at or after i, below n (default: the end of s). */
export function skipWs(s: string, i: number, n = s.length): number {
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9) break;
    i++;
  }
  return i;
}

/** Index of the first char at or after i, below n (default: the end of s), not in table t. */
export function scan(s: string, i: number, t: Uint8Array, n = s.length): number {
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c > 255 || t[c] !== 1) break;
    i++;
  }
  return i;
}

/*
 * Byte scanners. The parsers of header values and URIs read codes from a byte array
 * `b` where b[d + k] is the code of char k of the text they slice values from: the
 * received buffer itself when the header section is ASCII (d = 0 against the decoded
 * section), else strBytes(text). Typed-array reads are about twice as fast as
 * charCodeAt in V8. Callers bound every read by n (bytes past n belong to something else).
 */

/** Index of the first byte at or after i, below n, that is not SP/HT. */
export function skipWsB(b: Uint8Array, d: number, i: number, n: number): number {
  while (i < n) {
    const c = b[i + d];
    if (c !== 32 && c !== 9) break;
    i++;
  }
  return i;
}

/** Index of the first byte at or after i, below n, not in table t. */
export function scanB(b: Uint8Array, d: number, i: number, t: Uint8Array, n: number): number {
  while (i < n && t[b[i + d]] === 1) i++;
  return i;
}

let SCRATCH = new Uint8Array(512);
/**
 * The codes of s as bytes for the byte scanners: chars from U+0080 up as 0x80, which is
 * in no table and equals no delimiter, as such chars are for the string scanners. A
 * shared buffer: valid until the next call (parsing is synchronous).
 */
export function strBytes(s: string): Uint8Array {
  const n = s.length;
  if (n > SCRATCH.length) SCRATCH = new Uint8Array(Math.max(n, SCRATCH.length * 2));
  const b = SCRATCH;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    b[i] = c < 128 ? c : 128;
  }
  return b;
}
/** true when b is strBytes' shared buffer (not to be kept) */
export function isScratch(b: Uint8Array): boolean {
  return b === SCRATCH;
}

const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[65 + c] = 10 + c;
  HEX[97 + c] = 10 + c;
}
export function hexVal(c: number): number {
  return c < 256 ? HEX[c] : -1;
}

/** Checks that every % in s[from,to) starts a valid %HH escape. */
export function escapesValid(s: string, from = 0, to = s.length): boolean {
  for (let i = s.indexOf('%', from); i >= 0 && i < to; i = s.indexOf('%', i + 1)) {
    if (i + 2 >= to) return false;
    if (hexVal(s.charCodeAt(i + 1)) < 0 || hexVal(s.charCodeAt(i + 2)) < 0) return false;
  }
  return true;
}

/**
 * Percent-decodes to a "binary" string (one char per octet, latin1), so that
 * %00 and raw characters compare exactly. Raw non-ASCII chars are UTF-8 encoded first.
 */
export function unescapeBinary(s: string): string {
  if (s.indexOf('%') < 0 && !/[\u0080-\uffff]/.test(s)) return s;
  const bytes = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 37 && i + 2 < bytes.length && hexVal(bytes[i + 1]) >= 0 && hexVal(bytes[i + 2]) >= 0) {
      out.push(hexVal(bytes[i + 1]) * 16 + hexVal(bytes[i + 2]));
      i += 2;
    } else out.push(b);
  }
  return Buffer.from(out).toString('latin1');
}

/** Percent-decodes and reads the octets as UTF-8 (for display and use). */
export function unescape(s: string): string {
  if (s.indexOf('%') < 0) return s;
  return Buffer.from(unescapeBinary(s), 'latin1').toString('utf8');
}
