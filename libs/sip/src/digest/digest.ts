/**
 * SIP Digest authentication: RFC 2617 / RFC 7616 computation, with the SIP
 * rules of RFC 3261 §22 and RFC 8760 (SHA-256 and SHA-512/256, one challenge
 * header per algorithm in order of preference).
 *
 * Everything here works on header VALUE strings plus the request method and
 * Request-URI, so it does not depend on the SIP message parser.
 *
 * Credentials are checked against HA1 only (H(username:realm:password)); the
 * plaintext password is never needed on the server side.
 *
 * User enumeration: verify() returns 'unknown_user' for a user it cannot find
 * and 'bad_response' for a wrong password, so that logs can tell them apart.
 * The CALLER MUST answer both the same way on the wire (a fresh challenge, or
 * 403 after too many tries), and verify() does the same hashing work for an
 * unknown user as for a known one, so timing does not tell them apart either.
 */
import { hash, randomBytes } from 'node:crypto';
import { detach } from '../message/detach';
import { DigestParseError, formatAuthHeader, parseAuthHeader, type AuthParams } from './params';

export type DigestHashName = 'MD5' | 'SHA-256' | 'SHA-512-256';
export type DigestAlgorithm = DigestHashName | 'MD5-sess' | 'SHA-256-sess' | 'SHA-512-256-sess';
export type DigestQop = 'auth' | 'auth-int';

const NODE_HASH: Record<DigestHashName, string> = {
  MD5: 'md5',
  'SHA-256': 'sha256',
  'SHA-512-256': 'sha512-256',
};
/** Strength order for a client choosing among offered challenges (RFC 8760 §2.4: use the strongest it supports). */
const STRENGTH: Record<DigestHashName, number> = { MD5: 1, 'SHA-256': 2, 'SHA-512-256': 3 };

/** Map an algorithm token (case-insensitive) to its canonical name, or undefined when unknown. */
export function normalizeAlgorithm(token: string | undefined): DigestAlgorithm | undefined {
  if (token === undefined) return 'MD5'; // RFC 2617 §3.2.1: absent means MD5
  const t = token.toUpperCase();
  const all: DigestAlgorithm[] = [
    'MD5',
    'MD5-sess',
    'SHA-256',
    'SHA-256-sess',
    'SHA-512-256',
    'SHA-512-256-sess',
  ];
  return all.find((a) => a.toUpperCase() === t);
}

/** The hash behind an algorithm ("SHA-256-sess" → "SHA-256"). */
export function hashOf(alg: DigestAlgorithm): DigestHashName {
  return alg.replace(/-sess$/, '') as DigestHashName;
}

function h(alg: DigestHashName, data: string | Buffer): string {
  // One-shot: a Hash object costs about twice as much for inputs this short.
  return hash(NODE_HASH[alg], data, 'hex');
}

/** HA1 for provisioning: H(username ":" realm ":" password) with the algorithm's hash (hex, lower case). */
export function ha1(
  username: string,
  realm: string,
  password: string,
  algorithm: DigestAlgorithm = 'MD5',
): string {
  return h(hashOf(algorithm), `${username}:${realm}:${password}`);
}

/** The inputs of one response computation (RFC 7616 §3.4.1). */
export interface ResponseInput {
  algorithm: DigestAlgorithm;
  /** H(username:realm:password) for the algorithm's hash. */
  ha1: string;
  nonce: string;
  method: string;
  uri: string;
  qop?: DigestQop;
  cnonce?: string;
  /** 8 hex digits, as sent. */
  nc?: string;
  /** Message body for qop=auth-int. */
  entityBody?: string | Buffer;
}

/** request-digest of RFC 7616 §3.4.1; without qop the RFC 2069 form KD(HA1, nonce:HA2). */
export function computeResponse(i: ResponseInput): string {
  const alg = hashOf(i.algorithm);
  let a1 = i.ha1.toLowerCase();
  if (i.algorithm.endsWith('-sess')) a1 = h(alg, `${a1}:${i.nonce}:${i.cnonce ?? ''}`);
  const a2 =
    i.qop === 'auth-int' ? `${i.method}:${i.uri}:${h(alg, i.entityBody ?? '')}` : `${i.method}:${i.uri}`;
  const ha2 = h(alg, a2);
  if (i.qop) return h(alg, `${a1}:${i.nonce}:${i.nc}:${i.cnonce}:${i.qop}:${ha2}`);
  return h(alg, `${a1}:${i.nonce}:${ha2}`);
}

// ---------------------------------------------------------------------------
// Parsing

/** Credentials from an Authorization / Proxy-Authorization value. */
export interface DigestCredentials {
  username: string;
  realm: string;
  nonce: string;
  uri: string;
  response: string;
  /** As sent (undefined when absent, meaning MD5). */
  algorithm?: string;
  cnonce?: string;
  qop?: string;
  nc?: string;
  opaque?: string;
  /** Every parameter, names lower-cased. */
  params: Map<string, string>;
}

/** A challenge from a WWW-Authenticate / Proxy-Authenticate value. */
export interface DigestChallenge {
  realm: string;
  nonce: string;
  algorithm?: string;
  /** qop-options split on commas; empty when absent (RFC 2069 server). */
  qop: string[];
  opaque?: string;
  stale: boolean;
  domain?: string;
  params: Map<string, string>;
}

function requireParam(p: AuthParams, name: string): string {
  const v = p.params.get(name);
  if (v === undefined) throw new DigestParseError(`missing "${name}" in Digest credentials`, name);
  return v;
}

/** Parse a credentials value ("Digest username=..., ..."). Throws DigestParseError when malformed. */
export function parseCredentials(value: string): DigestCredentials {
  const all = parseAuthHeader(value);
  if (all.length !== 1) throw new DigestParseError('expected exactly one set of credentials');
  const p = all[0]!;
  if (p.scheme.toLowerCase() !== 'digest')
    throw new DigestParseError(`unsupported scheme "${p.scheme}"`, 'scheme');
  const c: DigestCredentials = {
    username: requireParam(p, 'username'),
    realm: requireParam(p, 'realm'),
    nonce: requireParam(p, 'nonce'),
    uri: requireParam(p, 'uri'),
    response: requireParam(p, 'response'),
    algorithm: p.params.get('algorithm'),
    cnonce: p.params.get('cnonce'),
    qop: p.params.get('qop'),
    nc: p.params.get('nc'),
    opaque: p.params.get('opaque'),
    params: p.params,
  };
  if (c.qop !== undefined) {
    // RFC 2617 §3.2.2: with qop, cnonce and nc MUST be present
    if (c.cnonce === undefined) throw new DigestParseError('qop without cnonce', 'cnonce');
    if (c.nc === undefined) throw new DigestParseError('qop without nc', 'nc');
    if (!/^[0-9a-fA-F]{8}$/.test(c.nc)) throw new DigestParseError('nc must be 8 hex digits', 'nc');
  }
  return c;
}

/** Parse one or more challenge values; non-Digest schemes are skipped. */
export function parseChallenges(values: string | readonly string[]): DigestChallenge[] {
  const out: DigestChallenge[] = [];
  for (const v of typeof values === 'string' ? [values] : values) {
    for (const p of parseAuthHeader(v)) {
      if (p.scheme.toLowerCase() !== 'digest') continue;
      out.push({
        realm: requireParam(p, 'realm'),
        nonce: requireParam(p, 'nonce'),
        algorithm: p.params.get('algorithm'),
        qop: (p.params.get('qop') ?? '')
          .split(',')
          .map((s) => s.trim().toLowerCase())
          .filter(Boolean),
        opaque: p.params.get('opaque'),
        stale: (p.params.get('stale') ?? '').toLowerCase() === 'true',
        domain: p.params.get('domain'),
        params: p.params,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Server

export interface DigestClock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface DigestServerOptions {
  /** Default realm for challenge() and verify(); a per-call realm overrides it. */
  realm?: string;
  /** Key of the nonce HMAC. Servers that share it accept each other's nonces. */
  secret: string | Buffer;
  /** How long a nonce is fresh; an older authentic nonce gives 'stale'. */
  nonceLifetimeSec: number;
  clock: DigestClock;
  /** Algorithms offered, strongest first (RFC 8760 §2.4). Default SHA-256 then MD5. */
  algorithms?: DigestHashName[];
  /** qop-options offered. Default ['auth']. */
  qop?: DigestQop[];
  /** Bound of the nonce-count map. Default 100 000. */
  maxTrackedNonces?: number;
  /** Source of nonce randomness (tests inject a fixed one). */
  random?: (n: number) => Buffer;
}

export type VerifyFailure =
  | 'stale'
  | 'bad_response'
  | 'bad_nonce'
  | 'unknown_user'
  | 'replay'
  | 'realm_mismatch'
  | 'uri_mismatch'
  | 'malformed';

export type VerifyResult =
  | { ok: true; username: string; algorithm: DigestAlgorithm; realm: string }
  | { ok: false; reason: VerifyFailure; username?: string };

export interface VerifyInput {
  /** The Authorization / Proxy-Authorization value, or already parsed credentials. */
  credentials: string | DigestCredentials;
  method: string;
  /** The Request-URI; when given, the credentials' uri must equal it. */
  requestUri?: string;
  /** Expected realm; defaults to the server's realm, else the one the nonce was issued for. */
  realm?: string;
  /** HA1 per hash for this user, e.g. from the subscriber replica. */
  ha1ByAlgorithm?: Partial<Record<DigestHashName, string>>;
  /** Or a lookup; undefined means no such user. */
  lookupHa1?: (username: string, realm: string, algorithm: DigestHashName) => string | undefined;
  /** Body for qop=auth-int (empty when absent). */
  entityBody?: string | Buffer;
}

const TS_CHARS = 12;
const RAND_LEN = 16;
/** The timestamp and the random part: what the MAC covers. */
const HEAD_CHARS = TS_CHARS + 22;
const NONCE = /^[0-9a-f]{12}[A-Za-z0-9_-]{65}$/;

interface NonceState {
  lastNc: number;
  expiresAt: number;
}

/**
 * Stateless-nonce digest server. A nonce is text:
 *   hex(timestamp, ms, 12 digits) || base64url(random(16)) || MAC
 * with MAC = base64url(SHA-256(k || "o" || base64url(SHA-256(k || "i" || head || realm))))
 * (k the secret in hex, head the first 34 characters): HMAC's nested shape, on text, so that
 * making and checking one takes two one-shot hashes and no Hmac object or Buffer (these were
 * a tenth of a REGISTER's CPU in the proxy). It is verified without server state. The only
 * state is the nonce-count map for replay protection: bounded, and forgetting nonces once
 * expired.
 */
export class DigestServer {
  private readonly secret: Buffer;
  private readonly secretHex: string;
  private readonly lifetimeMs: number;
  private readonly algorithms: DigestHashName[];
  private readonly qop: DigestQop[];
  private readonly maxTracked: number;
  private readonly random: (n: number) => Buffer;
  /** Seeded nonces (see createNonce) are the same within buckets of this many ms. */
  private readonly seedBucketMs: number;
  /** nonce → last nc seen; insertion order ≈ age. */
  private readonly seen = new Map<string, NonceState>();
  /** Nonces issued at or before this time were evicted early: treat them as stale. */
  private evictedUpTo = -1;

  constructor(private readonly opts: DigestServerOptions) {
    this.secret = typeof opts.secret === 'string' ? Buffer.from(opts.secret, 'utf8') : opts.secret;
    if (this.secret.length === 0)
      throw new DigestParseError('DigestServer secret must not be empty', 'secret');
    this.secretHex = this.secret.toString('hex');
    this.lifetimeMs = opts.nonceLifetimeSec * 1000;
    this.algorithms = opts.algorithms ?? ['SHA-256', 'MD5'];
    this.qop = opts.qop ?? ['auth'];
    this.maxTracked = opts.maxTrackedNonces ?? 100_000;
    this.random = opts.random ?? randomBytes;
    // At most a second, as Kamailio's nonces carry their time in seconds: evicting the oldest
    // tracked nonce turns its whole bucket stale (acceptNc), and with longer buckets that was
    // every nonce just issued.
    this.seedBucketMs = Math.max(1, Math.min(1_000, this.lifetimeMs / 10));
  }

  /** Number of nonces whose nonce-count is being tracked (for metrics and tests). */
  get trackedNonces(): number {
    return this.seen.size;
  }

  /**
   * A fresh nonce for a realm. With a `seed` (what identifies a request and its retransmissions)
   * the nonce is the same for that seed within a time bucket (a tenth of the lifetime, at most
   * 1 s; the nonce counts as issued at the bucket's start): a challenge sent without a
   * transaction then answers a retransmission with the same bytes, as a transaction would. The
   * random part is then a hash of the seed keyed by the secret: as unpredictable without it.
   */
  createNonce(realm: string, seed?: string): string {
    const now = Math.floor(this.opts.clock.now());
    const issued = seed === undefined ? now : now - (now % this.seedBucketMs);
    // Keyed by the secret, truncated (no length extension): unpredictable without it. The MAC
    // is what makes the nonce authentic.
    const random =
      seed === undefined
        ? this.random(RAND_LEN).toString('base64url')
        : hash('sha256', `${this.secretHex}\n${issued}\n${seed}`, 'base64url').slice(0, 22);
    const head = issued.toString(16).padStart(TS_CHARS, '0') + random;
    return head + this.mac(head, realm);
  }

  /**
   * The WWW-Authenticate (401) or Proxy-Authenticate (407) values to send: one
   * per algorithm, strongest first, sharing one nonce.
   */
  challenge(args: { realm?: string; stale?: boolean; opaque?: string; seed?: string } = {}): string[] {
    const realm = this.realmFor(args.realm);
    const nonce = this.createNonce(realm, args.seed);
    return this.algorithms.map((alg) => {
      const params: [string, string, boolean][] = [
        ['realm', realm, true],
        ['nonce', nonce, true],
      ];
      if (args.opaque !== undefined) params.push(['opaque', args.opaque, true]);
      params.push(['algorithm', alg, false]);
      params.push(['qop', this.qop.join(','), true]);
      if (args.stale) params.push(['stale', 'true', false]);
      return formatAuthHeader('Digest', params);
    });
  }

  /** Check credentials. See the module comment on user enumeration. */
  verify(input: VerifyInput): VerifyResult {
    let c: DigestCredentials;
    try {
      c = typeof input.credentials === 'string' ? parseCredentials(input.credentials) : input.credentials;
    } catch (e) {
      if (e instanceof DigestParseError) return { ok: false, reason: 'malformed' };
      throw e;
    }
    const algorithm = normalizeAlgorithm(c.algorithm);
    const qop = c.qop?.toLowerCase();
    if (!algorithm || (qop !== undefined && qop !== 'auth' && qop !== 'auth-int')) {
      return { ok: false, reason: 'malformed', username: c.username };
    }
    const expectedRealm = input.realm ?? this.opts.realm;
    if (expectedRealm !== undefined && c.realm !== expectedRealm) {
      return { ok: false, reason: 'realm_mismatch', username: c.username };
    }
    const issuedAt = this.checkNonce(c.nonce, c.realm);
    if (input.requestUri !== undefined && c.uri !== input.requestUri) {
      return { ok: false, reason: 'uri_mismatch', username: c.username };
    }

    const hashName = hashOf(algorithm);
    const stored = input.ha1ByAlgorithm
      ? input.ha1ByAlgorithm[hashName]
      : input.lookupHa1?.(c.username, c.realm, hashName);
    // Unknown user: hash against a dummy HA1 anyway so the work done is the same.
    const dummyHa1 = h(hashName, `${c.username}:${c.realm}:${this.secretHex}`);
    const userHa1 = stored ?? dummyHa1;
    const expected = computeResponse({
      algorithm,
      ha1: userHa1,
      nonce: c.nonce,
      method: input.method,
      uri: c.uri,
      qop: qop as DigestQop | undefined,
      cnonce: c.cnonce,
      nc: c.nc,
      entityBody: input.entityBody,
    });
    const match = constantTimeHexEqual(expected, c.response);
    if (stored === undefined) return { ok: false, reason: 'unknown_user', username: c.username };
    if (!match)
      return {
        ok: false,
        reason: issuedAt === undefined ? 'bad_nonce' : 'bad_response',
        username: c.username,
      };

    // The response is right, so the client knows the password: a nonce that is not ours (made
    // with another secret: before a restart, or by another proxy) or has expired is only stale
    // (RFC 7616 §3.3: "invalid but with a valid digest for that nonce", stale=true).
    if (issuedAt === undefined) return { ok: false, reason: 'stale', username: c.username };
    const now = this.opts.clock.now();
    const expiresAt = issuedAt + this.lifetimeMs;
    if (now >= expiresAt) return { ok: false, reason: 'stale', username: c.username };

    if (qop !== undefined) {
      const nc = parseInt(c.nc!, 16);
      if (!this.acceptNc(c.nonce, nc, issuedAt, expiresAt, now)) {
        // An early-evicted nonce is stale (the client retries with a new one); a reused nc is a replay.
        return { ok: false, reason: this.seen.has(c.nonce) ? 'replay' : 'stale', username: c.username };
      }
    }
    // Without qop (RFC 2069) there is no nonce-count: the nonce may be reused until it expires.
    return { ok: true, username: c.username, algorithm, realm: c.realm };
  }

  private realmFor(realm: string | undefined): string {
    const r = realm ?? this.opts.realm;
    if (r === undefined)
      throw new DigestParseError('no realm given and no default realm configured', 'realm');
    return r;
  }

  private mac(head: string, realm: string): string {
    const inner = hash('sha256', `${this.secretHex}\ni\n${head}\n${realm}`, 'base64url');
    return hash('sha256', `${this.secretHex}\no\n${inner}`, 'base64url');
  }

  /** The issue time of an authentic nonce for this realm, else undefined. */
  private checkNonce(nonce: string, realm: string): number | undefined {
    if (!NONCE.test(nonce)) return undefined;
    const head = nonce.slice(0, HEAD_CHARS);
    if (!constantTimeEqual(this.mac(head, realm), nonce.slice(HEAD_CHARS))) return undefined;
    return parseInt(nonce.slice(0, TS_CHARS), 16);
  }

  /** Record nc for a nonce; false when it is not greater than the last one seen (or the nonce was evicted). */
  private acceptNc(nonce: string, nc: number, issuedAt: number, expiresAt: number, now: number): boolean {
    const st = this.seen.get(nonce);
    if (st) {
      if (nc <= st.lastNc) return false;
      st.lastNc = nc;
      return true;
    }
    if (issuedAt <= this.evictedUpTo) return false;
    this.sweep(now);
    if (this.seen.size >= this.maxTracked) {
      // Full of live nonces: forget the oldest, and refuse its era as stale from now on.
      const [oldest, state] = this.seen.entries().next().value as [string, NonceState];
      this.seen.delete(oldest);
      this.evictedUpTo = Math.max(this.evictedUpTo, state.expiresAt - this.lifetimeMs);
      if (issuedAt <= this.evictedUpTo) return false;
    }
    // The nonce is a slice of the request's text: kept as it is, it would keep the whole request.
    this.seen.set(detach(nonce), { lastNc: nc, expiresAt });
    return true;
  }

  /** Drop expired nonces from the front of the map (the oldest first-seen). */
  private sweep(now: number): void {
    for (const [k, v] of this.seen) {
      if (v.expiresAt > now) break;
      this.seen.delete(k);
    }
  }
}

/** Whether two strings are equal, in time that depends on the first one's length only. */
function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function constantTimeHexEqual(expectedHex: string, given: string): boolean {
  return constantTimeEqual(expectedHex, given.toLowerCase());
}

// ---------------------------------------------------------------------------
// Client

export interface AnswerChallengeInput {
  /** One or more WWW-Authenticate / Proxy-Authenticate values. */
  challengeValue: string | readonly string[];
  method: string;
  /** digest-uri: the Request-URI of the request being authorized. */
  uri: string;
  username: string;
  password?: string;
  /** Precomputed HA1 per hash, instead of the password. */
  ha1?: Partial<Record<DigestHashName, string>>;
  /** Client nonce; random when absent. */
  cnonce?: string;
  /** Nonce count for this nonce (1 for the first request). Default 1. */
  nc?: number;
  /** Body for qop=auth-int. */
  entityBody?: string | Buffer;
}

/** The strongest Digest challenge whose algorithm we support (and have an HA1 for). */
export function pickChallenge(
  challenges: readonly DigestChallenge[],
  usable: (hash: DigestHashName) => boolean = () => true,
): { challenge: DigestChallenge; algorithm: DigestAlgorithm } | undefined {
  let best: { challenge: DigestChallenge; algorithm: DigestAlgorithm } | undefined;
  for (const ch of challenges) {
    const alg = normalizeAlgorithm(ch.algorithm);
    if (!alg || !usable(hashOf(alg))) continue;
    if (!best || STRENGTH[hashOf(alg)] > STRENGTH[hashOf(best.algorithm)])
      best = { challenge: ch, algorithm: alg };
  }
  return best;
}

/** Build the Authorization / Proxy-Authorization value answering a challenge. */
export function answerChallenge(input: AnswerChallengeInput): string {
  if (input.password === undefined && input.ha1 === undefined) {
    throw new DigestParseError('answerChallenge needs a password or an HA1', 'password');
  }
  const usable = (hash: DigestHashName) => input.password !== undefined || input.ha1?.[hash] !== undefined;
  const picked = pickChallenge(parseChallenges(input.challengeValue), usable);
  if (!picked) throw new DigestParseError('no supported Digest challenge offered', 'algorithm');
  const { challenge: ch, algorithm } = picked;
  const hash = hashOf(algorithm);
  const userHa1 =
    input.password !== undefined ? ha1(input.username, ch.realm, input.password, hash) : input.ha1![hash]!;

  const qop: DigestQop | undefined = ch.qop.includes('auth')
    ? 'auth'
    : ch.qop.includes('auth-int')
      ? 'auth-int'
      : undefined;
  if (ch.qop.length > 0 && !qop) throw new DigestParseError(`unsupported qop "${ch.qop.join(',')}"`, 'qop');
  const needsCnonce = qop !== undefined || algorithm.endsWith('-sess');
  const cnonce = needsCnonce ? (input.cnonce ?? randomBytes(12).toString('base64url')) : undefined;
  const nc = qop ? (input.nc ?? 1).toString(16).padStart(8, '0') : undefined;

  const response = computeResponse({
    algorithm,
    ha1: userHa1,
    nonce: ch.nonce,
    method: input.method,
    uri: input.uri,
    qop,
    cnonce,
    nc,
    entityBody: input.entityBody,
  });
  const params: [string, string, boolean][] = [
    ['username', input.username, true],
    ['realm', ch.realm, true],
    ['nonce', ch.nonce, true],
    ['uri', input.uri, true],
    ['response', response, true],
  ];
  if (ch.algorithm !== undefined) params.push(['algorithm', ch.algorithm, false]);
  if (cnonce !== undefined) params.push(['cnonce', cnonce, true]);
  if (ch.opaque !== undefined) params.push(['opaque', ch.opaque, true]);
  if (qop) {
    params.push(['qop', qop, false]);
    params.push(['nc', nc!, false]);
  }
  return formatAuthHeader('Digest', params);
}
