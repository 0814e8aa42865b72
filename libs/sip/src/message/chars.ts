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
