/**
 * Parsing and formatting of HTTP/SIP authentication header values
 * (RFC 3261 §25.1 auth grammar, RFC 7616 §3.3/§3.4, RFC 7235 §2.1):
 *
 *   challenge   = auth-scheme 1*SP auth-param *(COMMA auth-param)
 *   auth-param  = token LWS "=" LWS ( token / quoted-string )
 *
 * Works on header VALUES only (what follows "WWW-Authenticate:" or
 * "Authorization:"), so it is independent of the SIP message parser.
 * Parameter names and the scheme are case-insensitive; quoted strings may
 * hold backslash escapes; line folding (CRLF followed by whitespace) is
 * whitespace.
 */
import { DomainError } from '@switchboard/platform';
import { TOKEN, scan, skipWs } from '../message/chars';

/** A header value that is not a valid challenge or credentials list. */
export class DigestParseError extends DomainError {
  constructor(message: string, field?: string) {
    super('invalid_argument', message, field);
    this.name = 'DigestParseError';
  }
}

/** One scheme with its parameters; names are lower-cased, values unquoted. */
export interface AuthParams {
  scheme: string;
  params: Map<string, string>;
  /** Names of the parameters whose value was a quoted-string. */
  quoted: Set<string>;
}

/** Longest header value we look at; a limit against pathological input. */
export const MAX_AUTH_HEADER_LENGTH = 8192;

/** What ends an unquoted value: ",", a double quote or whitespace (as /[,\s"]/). */
const endsBare = (c: number): boolean =>
  c === 44 || c === 34 || c === 32 || (c >= 9 && c <= 13) || (c >= 128 && /\s/.test(String.fromCharCode(c)));

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string {
    return this.s[this.pos] ?? '';
  }
  skipWs(): boolean {
    const start = this.pos;
    this.pos = skipWs(this.s, start);
    return this.pos > start;
  }
  token(): string {
    const start = this.pos;
    this.pos = scan(this.s, start, TOKEN);
    return this.s.slice(start, this.pos);
  }
  /** An unquoted value: tolerant of non-token characters some UAs send (uri=sip:a@b), up to "," or whitespace. */
  bare(): string {
    const start = this.pos;
    while (this.pos < this.s.length && !endsBare(this.s.charCodeAt(this.pos))) this.pos++;
    return this.s.slice(start, this.pos);
  }
  /** A quoted-string's value, its backslash escapes undone: slices between them, not a string per character. */
  quoted(): string {
    // at the opening quote
    let from = ++this.pos;
    let out = '';
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c === 34) {
        out += this.s.slice(from, this.pos++);
        return out;
      }
      if (c === 92) {
        if (this.pos + 1 >= this.s.length) break;
        out += this.s.slice(from, this.pos) + this.s[this.pos + 1];
        this.pos += 2;
        from = this.pos;
        continue;
      }
      this.pos++;
    }
    throw new DigestParseError('unterminated quoted-string in authentication header');
  }
}

/** Replace line folding (CRLF + whitespace) by a space; refuse bare line breaks. */
function unfold(value: string): string {
  if (value.length > MAX_AUTH_HEADER_LENGTH) throw new DigestParseError('authentication header too long');
  if (!value.includes('\n') && !value.includes('\r')) return value;
  const s = value.replace(/\r?\n[ \t]+/g, ' ');
  if (/[\r\n]/.test(s)) throw new DigestParseError('line break without folding in authentication header');
  return s;
}

/**
 * Parse a header value holding one or more challenges (or one set of credentials).
 * "Digest a=1, b=2, Basic realm=x" gives two entries: a new scheme starts where a
 * token is followed by whitespace and another token instead of "=".
 */
export function parseAuthHeader(value: string): AuthParams[] {
  const c = new Cursor(unfold(value));
  const out: AuthParams[] = [];
  c.skipWs();
  while (!c.done) {
    const scheme = c.token();
    if (!scheme) throw new DigestParseError(`expected an authentication scheme at offset ${c.pos}`);
    const entry: AuthParams = { scheme, params: new Map(), quoted: new Set() };
    out.push(entry);
    if (!c.skipWs() && !c.done && c.peek() !== ',') {
      throw new DigestParseError(`expected whitespace after scheme "${scheme}"`);
    }
    // parameters until the end or the start of another scheme
    for (;;) {
      c.skipWs();
      while (c.peek() === ',') {
        c.pos++;
        c.skipWs();
      }
      if (c.done) break;
      const save = c.pos;
      const name = c.token();
      if (!name) throw new DigestParseError(`expected a parameter name at offset ${c.pos}`);
      c.skipWs();
      if (c.peek() !== '=') {
        // "token SP token": the start of the next challenge
        c.pos = save;
        break;
      }
      c.pos++;
      c.skipWs();
      const key = name.toLowerCase();
      let v: string;
      if (c.peek() === '"') {
        v = c.quoted();
        entry.quoted.add(key);
      } else {
        v = c.bare();
        if (!v) throw new DigestParseError(`empty value for parameter "${name}"`, key);
      }
      if (entry.params.has(key)) throw new DigestParseError(`duplicate parameter "${name}"`, key);
      entry.params.set(key, v);
      c.skipWs();
      if (!c.done && c.peek() !== ',')
        throw new DigestParseError(`expected "," after parameter "${name}"`, key);
    }
  }
  if (out.length === 0) throw new DigestParseError('empty authentication header');
  return out;
}

/** Quote a value as a quoted-string, escaping backslash and double quote. */
export function quote(v: string): string {
  if (!v.includes('"') && !v.includes('\\')) return `"${v}"`;
  return `"${v.replace(/[\\"]/g, (m) => `\\${m}`)}"`;
}

/** Format "Scheme p1=v1, p2=\"v2\"": values in `quotedNames` are quoted, others written as tokens. */
export function formatAuthHeader(
  scheme: string,
  params: [name: string, value: string, quoted: boolean][],
): string {
  return `${scheme} ${params.map(([n, v, q]) => `${n}=${q ? quote(v) : v}`).join(', ')}`;
}
