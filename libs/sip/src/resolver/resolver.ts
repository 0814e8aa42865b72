/**
 * RFC 3263 "Locating SIP Servers": turn a SIP URI into an ordered list of
 * (transport, address, port) targets via NAPTR → SRV → A/AAAA.
 *
 * DNS sits behind `DnsLookup` (node:dns/promises `Resolver` satisfies it), so
 * the logic is tested without a network.
 */
import { Resolver as NodeDnsResolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { SipUri } from '../message';

export type SipTransportName = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

export interface NaptrRecord {
  flags: string;
  service: string;
  regexp: string;
  replacement: string;
  order: number;
  preference: number;
}
export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/** The subset of node:dns/promises the resolver uses. */
export interface DnsLookup {
  resolveNaptr(name: string): Promise<NaptrRecord[]>;
  resolveSrv(name: string): Promise<SrvRecord[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
}

/** What the resolver needs from a SIP URI (the message layer's URI maps onto this). */
export interface ResolveInput {
  host: string;
  port?: number;
  /** `transport=` URI parameter, lower case. */
  transport?: string;
  /** `sips:` scheme. */
  secure?: boolean;
  /** `maddr=` overrides host (RFC 3261 §19.1.1). */
  maddr?: string;
}

/** RFC 3263 §4 inputs from a SIP/SIPS URI: host (or maddr), port, transport param, scheme. */
export function resolveInputFromUri(uri: SipUri): ResolveInput {
  const t = uri.params.get('transport');
  const maddr = uri.params.get('maddr');
  return {
    host: uri.host,
    port: uri.port ?? undefined,
    transport: t ? t.toLowerCase() : undefined,
    secure: uri.scheme === 'sips',
    maddr: maddr ?? undefined,
  };
}

export interface Target {
  transport: SipTransportName;
  /** Numeric IP address. */
  address: string;
  port: number;
  /** The DNS name the address came from (for TLS SNI / certificate checks). */
  hostname: string;
}

export interface ResolverOptions {
  dns?: DnsLookup;
  /** Transports this element can send over, in preference order. */
  transports?: SipTransportName[];
  /** Resolve AAAA as well as A. Default true. */
  ipv6?: boolean;
  /** Random in [0,1), for SRV weight selection (RFC 2782). */
  random?: () => number;
}

const DEFAULT_PORT: Record<SipTransportName, number> = { udp: 5060, tcp: 5060, ws: 80, tls: 5061, wss: 443 };
const SECURE: Record<SipTransportName, boolean> = { udp: false, tcp: false, ws: false, tls: true, wss: true };

/** NAPTR service field → transport (RFC 3263 §4.1, RFC 7118 §8). */
const NAPTR_SERVICE: Record<string, SipTransportName> = {
  'SIP+D2U': 'udp',
  'SIP+D2T': 'tcp',
  'SIPS+D2T': 'tls',
  'SIP+D2W': 'ws',
  'SIPS+D2W': 'wss',
};

/** SRV owner-name prefix per transport (RFC 3263 §4.2). */
const SRV_PREFIX: Record<SipTransportName, string> = {
  udp: '_sip._udp.',
  tcp: '_sip._tcp.',
  tls: '_sips._tcp.',
  ws: '_sip._ws.',
  wss: '_sips._ws.',
};

export function defaultPort(t: SipTransportName): number {
  return DEFAULT_PORT[t];
}

/**
 * RFC 3263 §4.1/§4.2: the target of a URI whose host (or maddr) is an IP address, known without
 * DNS (what `resolve` answers for it, at once); undefined for a name.
 */
export function literalTarget(uri: ResolveInput): Target | undefined {
  const host = bare(uri.maddr ?? uri.host);
  if (!isIP(host)) return undefined;
  let t = asTransport(uri.transport);
  // RFC 3263 §4.1: sips over tcp is tls (over ws, wss); no transport: udp, or tls for sips.
  if (uri.secure && t === 'tcp') t = 'tls';
  if (uri.secure && t === 'ws') t = 'wss';
  t ??= uri.secure ? 'tls' : 'udp';
  return { transport: t, address: host, port: uri.port ?? DEFAULT_PORT[t], hostname: host };
}

function asTransport(s: string | undefined): SipTransportName | undefined {
  if (!s) return undefined;
  const t = s.toLowerCase();
  return t === 'udp' || t === 'tcp' || t === 'tls' || t === 'ws' || t === 'wss' ? t : undefined;
}

/** Strip IPv6 brackets: "[::1]" → "::1". */
function bare(host: string): string {
  return host.length > 1 && host[0] === '[' && host[host.length - 1] === ']' ? host.slice(1, -1) : host;
}

const NO_DATA = new Set([
  'ENODATA',
  'ENOTFOUND',
  'ESERVFAIL',
  'ENOTIMP',
  'EREFUSED',
  'ECONNREFUSED',
  'ETIMEOUT',
  'EBADRESP',
]);

async function quiet<T>(p: Promise<T[]>): Promise<T[]> {
  try {
    return await p;
  } catch (e) {
    if (NO_DATA.has((e as { code?: string }).code ?? '')) return [];
    throw e;
  }
}

/**
 * RFC 2782 ordering: ascending priority; within a priority, a weighted random
 * permutation (records of weight 0 first in the running sum, as the RFC says).
 */
export function orderSrv(records: SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const r of records) {
    const list = byPriority.get(r.priority);
    if (list) list.push(r);
    else byPriority.set(r.priority, [r]);
  }
  const out: SrvRecord[] = [];
  for (const prio of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = byPriority
      .get(prio)!
      .slice()
      .sort((a, b) => a.weight - b.weight);
    while (pool.length > 0) {
      const total = pool.reduce((s, r) => s + r.weight, 0);
      const pick = random() * (total + 1);
      let sum = 0;
      let idx = pool.length - 1;
      for (let i = 0; i < pool.length; i++) {
        sum += pool[i].weight;
        if (sum >= pick) {
          idx = i;
          break;
        }
      }
      out.push(pool.splice(idx, 1)[0]);
    }
  }
  return out;
}

export class SipResolver {
  private readonly dns: DnsLookup;
  private readonly transports: SipTransportName[];
  private readonly ipv6: boolean;
  private readonly random: () => number;

  constructor(opts: ResolverOptions = {}) {
    this.dns = opts.dns ?? new NodeDnsResolver();
    this.transports = opts.transports ?? ['udp', 'tcp', 'tls'];
    this.ipv6 = opts.ipv6 ?? true;
    this.random = opts.random ?? Math.random;
  }

  /** Ordered targets for a URI, best first. Empty if nothing resolves. */
  async resolve(uri: ResolveInput): Promise<Target[]> {
    const host = bare(uri.maddr ?? uri.host);
    const explicit = asTransport(uri.transport);
    let secure = uri.secure === true;
    // RFC 3263 §4.1: sips with transport=udp makes no sense; treat tcp as tls.
    let transport: SipTransportName | undefined = explicit;
    if (secure && transport === 'tcp') transport = 'tls';
    if (secure && transport === 'ws') transport = 'wss';
    if (transport && SECURE[transport]) secure = true;

    // RFC 3263 §4.1/§4.2: numeric IP → no DNS at all.
    const literal = literalTarget(uri);
    if (literal) return [literal];
    // Explicit port → A/AAAA only (§4.2), transport from param or default.
    if (uri.port !== undefined) {
      const t = transport ?? (secure ? 'tls' : 'udp');
      return this.hosts(host, t, uri.port);
    }
    // Explicit transport, no port → SRV for that transport, then A/AAAA.
    if (transport) {
      const viaSrv = await this.srv(host, transport);
      return viaSrv.length > 0 ? viaSrv : this.hosts(host, transport, DEFAULT_PORT[transport]);
    }
    // §4.1 NAPTR.
    const allowed = this.transports.filter((t) => !secure || SECURE[t]);
    const naptr = (await quiet(this.dns.resolveNaptr(host)))
      .filter(
        (r) => r.flags.toLowerCase() === 's' && allowed.includes(NAPTR_SERVICE[r.service.toUpperCase()]),
      )
      .sort((a, b) => a.order - b.order || a.preference - b.preference);
    const out: Target[] = [];
    for (const r of naptr) {
      const t = NAPTR_SERVICE[r.service.toUpperCase()];
      out.push(...(await this.srvName(r.replacement, t)));
    }
    if (out.length > 0) return out;
    // No NAPTR: SRV for each supported transport, in our preference order (§4.1).
    for (const t of allowed) out.push(...(await this.srv(host, t)));
    if (out.length > 0) return out;
    // No SRV: A/AAAA with udp (tls for sips), default port.
    const t = secure ? 'tls' : allowed.includes('udp') ? 'udp' : (allowed[0] ?? 'udp');
    return this.hosts(host, t, DEFAULT_PORT[t]);
  }

  private srv(host: string, t: SipTransportName): Promise<Target[]> {
    return this.srvName(SRV_PREFIX[t] + host, t);
  }

  private async srvName(name: string, t: SipTransportName): Promise<Target[]> {
    const recs = orderSrv(await quiet(this.dns.resolveSrv(name)), this.random);
    const out: Target[] = [];
    for (const r of recs) {
      if (r.name === '.' || r.name === '') continue; // "service not available" (RFC 2782)
      out.push(...(await this.hosts(r.name, t, r.port)));
    }
    return out;
  }

  private async hosts(name: string, t: SipTransportName, port: number): Promise<Target[]> {
    if (isIP(name)) return [{ transport: t, address: name, port, hostname: name }];
    const [v4, v6] = await Promise.all([
      quiet(this.dns.resolve4(name)),
      this.ipv6 ? quiet(this.dns.resolve6(name)) : Promise.resolve([] as string[]),
    ]);
    const out: Target[] = [];
    for (const a of v4) out.push({ transport: t, address: a, port, hostname: name });
    for (const a of v6) out.push({ transport: t, address: a, port, hostname: name });
    return out;
  }
}

/** The outcome of one attempt, as the failover helper judges it. */
export type AttemptResult<R> = { ok: true; value: R; status?: number } | { ok: false; error: unknown };

/**
 * RFC 3263 §4.3: try targets in order; move to the next on a transport error
 * (rejected attempt) or on a 503/408 final status. Returns the first answer
 * that is not a reason to fail over, or the last one if every target failed.
 */
export async function withFailover<R>(
  targets: Target[],
  attempt: (t: Target) => Promise<R>,
  statusOf: (r: R) => number | undefined = () => undefined,
): Promise<{ target: Target; result: AttemptResult<R> }> {
  if (targets.length === 0) throw new Error('no targets to try');
  let last: { target: Target; result: AttemptResult<R> } | undefined;
  for (const target of targets) {
    try {
      const value = await attempt(target);
      const status = statusOf(value);
      last = { target, result: { ok: true, value, status } };
      if (status !== 503 && status !== 408) return last;
    } catch (error) {
      last = { target, result: { ok: false, error } };
    }
  }
  return last!;
}
