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
  /** Key = AoR; owner: sip-proxy (feature codes dialled by phones); the portal applies them. */
  featureRequests: 'feature-requests',
} as const;

/**
 * The largest gRPC message that carries a rate plan's CSV (RatingAdmin ImportRatePlan and
 * ExportRatePlan): a carrier's deck of up to 10 million characters, as the portal takes it, in
 * UTF-8. gRPC's default of 4 MB is set to this on the rating server and the portal's client.
 */
export const RATE_PLAN_MAX_BYTES = 64 * 1024 * 1024;

/** `feature-requests` record: a subscriber dialled a feature code (*72<number>, *73 ...). */
export interface FeatureRequest {
  aor: string;
  kind: 'forwarding';
  condition: ForwardingCondition;
  /** The new target (a number or SIP URI); null turns the forwarding off. */
  target: string | null;
  /** Unix ms. */
  at: number;
}

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
  /** Privileges the proxy enforces: call classes 'national', 'international', 'premium' (on-net calls need none), and 'set-caller-id'. */
  privileges: string[];
  /** Other AoRs (aliases, DIDs) that reach this subscriber. */
  aliases?: string[];
  ratePlan?: string;
  /** The DID (E.164 with +) presented as caller ID on PSTN calls; absent: the first DID. */
  callerId?: string;
  /** Call forwarding rules (the proxy applies them); target is a SIP URI or a number. */
  forwarding?: ForwardingRule[];
  /** Block/allow list entries: incoming (callers) and outgoing (dialled numbers). */
  blockList?: BlockListEntry[];
  /** Short codes the subscriber dials, expanded to a number or URI before routing. */
  speedDials?: { code: string; target: string }[];
}

export type ForwardingCondition = 'always' | 'busy' | 'no-answer' | 'unavailable';
export interface ForwardingRule {
  condition: ForwardingCondition | string;
  /** A SIP URI (sip:voicemail@<domain> is the subscriber's own mailbox) or a number. */
  target: string;
  /** Seconds of ringing before a no-answer forward. */
  timeout?: number;
}
export interface BlockListEntry {
  direction: 'incoming' | 'outgoing' | string;
  /** A number, a number prefix ending in *, a SIP URI, or `anonymous`. */
  pattern: string;
  action: 'block' | 'allow' | string;
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
  | {
      kind: 'domain';
      id: string;
      domain: string;
      /** How the domain's phones dial numbers; absent: the proxy's configured dial plan. */
      dialPlan?: { countryCode: string; nationalPrefix: string; internationalPrefix: string };
    }
  | { kind: 'trusted'; id: string; cidr: string; description?: string }
  | GatewayRecord
  | RouteRecord;

/** A PSTN gateway or SIP trunk. */
export interface GatewayRecord {
  kind: 'gateway';
  id: string;
  name?: string;
  /** host or host:port. */
  address: string;
  transport?: string;
  /** Digits put before the number sent to this gateway (after `strip`). */
  prefix?: string;
  /** Leading digits removed from the E.164 number first. */
  strip?: number;
  /** Relative share among gateways of one route with the same priority (default 1). */
  weight?: number;
  /** Lower first (default 0). */
  priority?: number;
  /** A disabled gateway is never tried (default enabled). */
  enabled?: boolean;
  /** Digest credentials the gateway challenges for (and registers with, when `register`). */
  username?: string;
  password?: string;
  /** The proxy registers to this trunk (like the uac module's registrations). */
  register?: boolean;
}

/** Numbers starting with `prefix` (E.164 digits, optional leading +) go to these gateways. */
export interface RouteRecord {
  kind: 'route';
  id: string;
  name?: string;
  prefix: string;
  gatewayIds: string[];
  /** Higher first among routes with the same prefix. */
  priority?: number;
  /** Only for callers of this domain (default every domain). */
  domain?: string;
}

export const encodeRecord = (r: unknown): string => JSON.stringify(r);
export function decodeRecord<T>(value: Buffer | null): T | null {
  return value === null ? null : (JSON.parse(value.toString('utf8')) as T);
}
