/**
 * SIP digest authentication over RADIUS, for a Kamailio or OpenSIPS that keeps
 * authenticating its users against Switchboard during a migration. Two wire forms:
 *
 * - RFC 5090: Digest-Response (103), Digest-Realm (104), Digest-Nonce (105),
 *   Digest-Method (108), Digest-URI (109), Digest-Qop (110), Digest-Algorithm (111),
 *   Digest-Entity-Body-Hash (112), Digest-CNonce (113), Digest-Nonce-Count (114),
 *   Digest-Username (115).
 * - draft-sterman-aaa-sip, as Kamailio's auth_radius sends it: Digest-Response (206)
 *   and Digest-Attributes (207), each holding one sub-attribute: 1 Realm, 2 Nonce,
 *   3 Method, 4 URI, 5 QOP, 6 Algorithm, 7 Body-Digest, 8 CNonce, 9 Nonce-Count,
 *   10 User-Name.
 *
 * The nonce is the SIP server's (it challenged the UA and checks staleness and
 * replay); this server only checks the response against the subscriber's HA1.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { RawAttribute } from '@switchboard/radius';

export interface DigestParams {
  form: 'rfc5090' | 'sterman';
  response: string;
  username: string;
  realm: string;
  nonce: string;
  method: string;
  uri: string;
  qop?: string;
  algorithm?: string;
  cnonce?: string;
  nc?: string;
  /** H(entity-body), hex, for qop=auth-int. */
  bodyHash?: string;
}

type Field = Exclude<keyof DigestParams, 'form'>;

const RFC5090: Record<number, Field> = {
  103: 'response',
  104: 'realm',
  105: 'nonce',
  108: 'method',
  109: 'uri',
  110: 'qop',
  111: 'algorithm',
  112: 'bodyHash',
  113: 'cnonce',
  114: 'nc',
  115: 'username',
};
const STERMAN_SUB: Record<number, Field> = {
  1: 'realm',
  2: 'nonce',
  3: 'method',
  4: 'uri',
  5: 'qop',
  6: 'algorithm',
  7: 'bodyHash',
  8: 'cnonce',
  9: 'nc',
  10: 'username',
};
const ATTR_STERMAN_RESPONSE = 206;
const ATTR_STERMAN_ATTRIBUTES = 207;
const ATTR_USER_NAME = 1;

const REQUIRED: Field[] = ['response', 'username', 'realm', 'nonce', 'method', 'uri'];

/** The digest parameters of an Access-Request, or undefined when it carries no complete digest. */
export function digestParamsOf(attrs: readonly RawAttribute[]): DigestParams | undefined {
  const std = attrs.filter((a) => a.vendor === undefined);
  const sterman = std.some((a) => a.type === ATTR_STERMAN_RESPONSE);
  const p: Partial<DigestParams> = { form: sterman ? 'sterman' : 'rfc5090' };
  for (const a of std) {
    if (sterman) {
      if (a.type === ATTR_STERMAN_RESPONSE) p.response = a.value.toString('utf8');
      else if (a.type === ATTR_STERMAN_ATTRIBUTES) {
        // One or more sub-attributes: type, length (counting both), value.
        for (let off = 0; off + 2 <= a.value.length;) {
          const t = a.value[off];
          const l = a.value[off + 1];
          if (l < 2 || off + l > a.value.length) break;
          const f = STERMAN_SUB[t];
          if (f) p[f] = a.value.toString('utf8', off + 2, off + l);
          off += l;
        }
      }
    } else {
      const f = RFC5090[a.type];
      if (f) p[f] = a.value.toString('utf8');
    }
  }
  // Kamailio puts the user in User-Name (with or without the realm) and may leave Digest-User-Name out.
  if (p.username === undefined) {
    const u = std.find((a) => a.type === ATTR_USER_NAME)?.value.toString('utf8');
    if (u !== undefined) p.username = u.split('@')[0];
  }
  return REQUIRED.every((f) => p[f] !== undefined) ? (p as DigestParams) : undefined;
}

/** What the digest is checked against: the `subscribers` record of the user. */
export interface DigestSubscriber {
  ha1: string;
  ha1Sha256?: string;
  enabled: boolean;
}

const HASHES: Record<string, { node: string; ha1: (s: DigestSubscriber) => string | undefined }> = {
  MD5: { node: 'md5', ha1: (s) => s.ha1 },
  'SHA-256': { node: 'sha256', ha1: (s) => s.ha1Sha256 },
};

/** RFC 7616 §3.4.1 request-digest from HA1 (RFC 2069 form without qop); undefined for an unsupported algorithm. */
export function expectedResponse(p: DigestParams, sub: DigestSubscriber): string | undefined {
  const alg = (p.algorithm ?? 'MD5').toUpperCase();
  const sess = alg.endsWith('-SESS');
  const hash = HASHES[sess ? alg.slice(0, -5) : alg];
  const ha1 = hash?.ha1(sub);
  if (!hash || !ha1) return undefined;
  const h = (s: string) => createHash(hash.node).update(s).digest('hex');
  const a1 = sess ? h(`${ha1.toLowerCase()}:${p.nonce}:${p.cnonce ?? ''}`) : ha1.toLowerCase();
  const qop = p.qop?.toLowerCase();
  if (qop && qop !== 'auth' && qop !== 'auth-int') return undefined;
  if (qop === 'auth-int' && !p.bodyHash) return undefined;
  const ha2 = h(qop === 'auth-int' ? `${p.method}:${p.uri}:${p.bodyHash}` : `${p.method}:${p.uri}`);
  return qop ? h(`${a1}:${p.nonce}:${p.nc}:${p.cnonce}:${qop}:${ha2}`) : h(`${a1}:${p.nonce}:${ha2}`);
}

/** Accept only an enabled subscriber whose response matches. */
export function checkDigest(p: DigestParams, sub: DigestSubscriber | undefined): boolean {
  if (!sub || !sub.enabled) return false;
  const want = expectedResponse(p, sub);
  if (!want) return false;
  const a = Buffer.from(want);
  const b = Buffer.from(p.response.toLowerCase());
  return a.length === b.length && timingSafeEqual(a, b);
}
