/**
 * Subscribers' call features (forwarding, block/allow lists, speed dials) and
 * routing entities (gateways, routes, trusted addresses, RADIUS clients): each
 * kind is a zod schema, a key unique within its kind, and how it is published.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const Target = z
  .string()
  .regex(/^(sips?:[^\s<>"]{1,256}|\+?[0-9*#]{1,32})$/, 'a SIP URI (sip:user@host) or a number');
const Uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'an id');
const Name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, 'letters, digits, space and . _ - (at most 64)');

export const Forwarding = z.strictObject({
  condition: z.enum(['always', 'busy', 'no-answer', 'unavailable']),
  target: Target,
  /** Seconds of ringing before a no-answer forward. */
  timeout: z.int().min(5).max(180).optional(),
  enabled: z.boolean().optional(),
});
export const BlockEntry = z.strictObject({
  direction: z.enum(['incoming', 'outgoing']),
  /** A number prefix (digits, optional leading +, ending in * for a prefix) or a SIP URI. */
  pattern: z
    .string()
    .regex(
      /^(sips?:[^\s<>"]{1,256}|\+?[0-9]{0,32}\*?|anonymous)$/,
      'a number, a number prefix ending in *, a SIP URI or anonymous',
    ),
  action: z.enum(['block', 'allow']).optional(),
});
export const SpeedDial = z.strictObject({
  code: z.string().regex(/^[0-9]{1,3}$/, '1 to 3 digits'),
  target: Target,
});

export interface FeatureKind {
  kind: 'forwarding' | 'block' | 'speed-dial';
  /** The path segment under /api/v1/subscribers/{id}/. */
  path: string;
  /** Singular noun for messages. */
  noun: string;
  schema: z.ZodObject;
  key(data: Record<string, unknown>): string;
}

export const FEATURE_KINDS: readonly FeatureKind[] = [
  {
    kind: 'forwarding',
    path: 'forwarding',
    noun: 'forwarding rule',
    schema: Forwarding,
    key: (d) => String(d.condition),
  },
  {
    kind: 'block',
    path: 'blocklist',
    noun: 'block/allow list entry',
    schema: BlockEntry,
    key: (d) => `${d.direction} ${d.pattern}`,
  },
  {
    kind: 'speed-dial',
    path: 'speed-dials',
    noun: 'speed dial',
    schema: SpeedDial,
    key: (d) => String(d.code),
  },
];

/** What a subscriber's record carries of its features (the proxy's view). */
export interface FeatureFields {
  forwarding: { condition: string; target: string; timeout?: number }[];
  blockList: { direction: string; pattern: string; action: string }[];
  speedDials: { code: string; target: string }[];
}

export function featureFields(rows: { kind: string; data: Record<string, unknown> }[]): FeatureFields {
  const out: FeatureFields = { forwarding: [], blockList: [], speedDials: [] };
  for (const { kind, data } of rows) {
    if (kind === 'forwarding' && data.enabled !== false) {
      out.forwarding.push({
        condition: String(data.condition),
        target: String(data.target),
        ...(data.condition === 'no-answer' ? { timeout: Number(data.timeout ?? 20) } : {}),
      });
    } else if (kind === 'block') {
      out.blockList.push({
        direction: String(data.direction),
        pattern: String(data.pattern),
        action: String(data.action ?? 'block'),
      });
    } else if (kind === 'speed-dial') {
      out.speedDials.push({ code: String(data.code), target: String(data.target) });
    }
  }
  return out;
}

// --- routing entities ---------------------------------------------------------

const HostPort = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?$/, 'host or host:port ([v6]:port)');
const Cidr = z.string().refine((s) => {
  const [addr, bits, ...rest] = s.split('/');
  const v = isIP(addr);
  if (!v || rest.length) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (v === 4 ? 32 : 128);
}, 'an IP address or CIDR such as 192.0.2.0/24');

export const Gateway = z.strictObject({
  name: Name,
  address: HostPort,
  transport: z.enum(['udp', 'tcp', 'tls']).optional(),
  /** Digits put before the number sent to this gateway. */
  prefix: z
    .string()
    .regex(/^\+?[0-9]{0,16}$/, 'digits')
    .optional(),
  /** Leading digits removed from the number first. */
  strip: z.int().min(0).max(16).optional(),
  /** Share among the gateways of one route with the same priority. */
  weight: z.int().min(1).max(1000).optional(),
  /** Lower first among the gateways of one route. */
  priority: z.int().min(0).max(1000).optional(),
  enabled: z.boolean().optional(),
  /** Digest credentials the gateway challenges for (and registers with, when register is true). */
  username: z.string().min(1).max(128).optional(),
  password: z.string().min(1).max(128).optional(),
  register: z.boolean().optional(),
});
export const Route = z.strictObject({
  name: Name,
  /** Number prefix this route serves ('' for every number). */
  prefix: z.string().regex(/^\+?[0-9]{0,32}$/, 'digits, optionally after +'),
  /** Gateways to try, in order. */
  gatewayIds: z.array(Uuid).min(1).max(16),
  /** Higher first among routes with the same prefix. */
  priority: z.int().min(0).max(1000).optional(),
  /** Only for callers of this SIP domain (default: every domain). */
  domain: z
    .string()
    .regex(/^[A-Za-z0-9.-]{1,253}$/, 'a domain name')
    .optional(),
});
export const Trusted = z.strictObject({ cidr: Cidr, description: z.string().max(256).optional() });
export const RadiusClient = z.strictObject({
  name: Name,
  cidr: Cidr,
  secret: z.string().min(8, 'at least 8 characters').max(128),
});

export interface RoutingKind {
  kind: 'gateway' | 'route' | 'trusted' | 'radius-client';
  path: string;
  noun: string;
  tag: string;
  schema: z.ZodObject;
  key(data: Record<string, unknown>): string;
  /** Fields never shown back by the API (kept and published only). */
  secret?: string[];
}

export const ROUTING_KINDS: readonly RoutingKind[] = [
  {
    kind: 'gateway',
    path: 'gateways',
    noun: 'gateway',
    tag: 'gateways',
    schema: Gateway,
    key: (d) => String(d.name),
    secret: ['password'],
  },
  { kind: 'route', path: 'routes', noun: 'route', tag: 'routes', schema: Route, key: (d) => String(d.name) },
  {
    kind: 'trusted',
    path: 'trusted-addresses',
    noun: 'trusted address',
    tag: 'trusted-addresses',
    schema: Trusted,
    key: (d) => String(d.cidr),
  },
  {
    kind: 'radius-client',
    path: 'radius-clients',
    noun: 'RADIUS client',
    tag: 'radius-clients',
    schema: RadiusClient,
    key: (d) => String(d.name),
    secret: ['secret'],
  },
];

/** The PATCH body of a kind: every field optional; optional fields may be null to remove them. */
export function patchSchema(schema: z.ZodObject): z.ZodObject {
  const shape: Record<string, z.ZodType> = {};
  for (const [k, v] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    shape[k] = v.safeParse(undefined).success ? v.nullable().optional() : v.optional();
  }
  return z.strictObject(shape);
}
