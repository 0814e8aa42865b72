/**
 * The facts services publish for each other on the event bus: topic names,
 * keys and record shapes (JSON). A topic's owner writes it; everyone else reads.
 */

export const TOPICS = {
  /** Compacted, key = AoR; owner: portal. */
  subscribers: 'subscribers',
  /** Compacted, key = AoR; owner: registrar. */
  location: 'location',
  /** Compacted, key = entity id; owner: portal. */
  routing: 'routing',
  /** Key = Call-ID; owner: accounting. */
  accounting: 'accounting',
  /** Key = Call-ID; owner: media-proxy. */
  mediaEvents: 'media-events',
  /** Key = account; owner: rating. */
  cdrs: 'cdrs',
} as const;

/** `subscribers` record: what the proxy needs to authenticate and route for one account. Never a plaintext password. */
export interface SubscriberRecord {
  aor: string;
  username: string;
  domain: string;
  /** HA1 = MD5(username:domain:password), hex; the digest realm is the domain. */
  ha1: string;
  /** HA1 with SHA-256 (RFC 7616 / RFC 8760), hex. */
  ha1Sha256: string;
  enabled: boolean;
  displayName?: string;
  /** Privileges the proxy enforces, e.g. 'set-caller-id', 'pstn', 'international'. */
  privileges: string[];
  /** Other AoRs (aliases, DIDs) that reach this subscriber. */
  aliases?: string[];
  ratePlan?: string;
}

/** `location` record: every live binding of one AoR (a tombstone when none is left). */
export interface LocationRecord {
  aor: string;
  bindings: LocationBinding[];
}

export interface LocationBinding {
  aor: string;
  contact: string;
  /** Absolute expiry, unix seconds. */
  expires: number;
  /** Thousandths; absent means 1.0. */
  q?: number;
  callId: string;
  cseq: number;
  path: string[];
  instanceId: string;
  regId: number;
  received?: { address: string; port: number; transport: string; flowId: string; localSocket: string };
  userAgent: string;
  updatedAt: number;
}

/** `routing` record kinds the proxy reads (key = `${kind}:${id}`). */
export type RoutingRecord =
  | { kind: 'domain'; id: string; domain: string }
  | { kind: 'trusted'; id: string; cidr: string; description?: string }
  | { kind: 'gateway'; id: string; address: string; transport?: string; prefix?: string; strip?: number };

export const encodeRecord = (r: unknown): string => JSON.stringify(r);
export function decodeRecord<T>(value: Buffer | null): T | null {
  return value === null ? null : (JSON.parse(value.toString('utf8')) as T);
}
