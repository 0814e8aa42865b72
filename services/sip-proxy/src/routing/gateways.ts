/**
 * PSTN routes and gateways (like Kamailio's lcr/drouting): routes by longest
 * E.164 prefix, their gateways ordered by priority and then by weight, and the
 * health of each gateway (marked down after failures, up again when it answers
 * a probe).
 */
import type { GatewayRecord, RouteRecord, RoutingRecord } from '@switchboard/contracts';

export interface GatewayHop {
  gateway: GatewayRecord;
  /** The Request-URI for this gateway: the number after strip and prefix. */
  uri: string;
}

export interface GatewayHealth {
  down: boolean;
  failures: number;
  /** Unix ms of the last state change. */
  since: number;
}

/** A route's prefix as the digits a number starts with. */
const digits = (prefix: string) => (prefix.startsWith('+') ? prefix.slice(1) : prefix);

export class GatewayTable {
  private readonly gateways = new Map<string, GatewayRecord>();
  private readonly routes = new Map<string, RouteRecord>();
  /**
   * The routes by prefix (without its '+'), then by id: a call looks up each prefix of its number,
   * longest first, instead of reading every route (an LCR table holds tens of thousands).
   */
  private readonly byPrefix = new Map<string, Map<string, RouteRecord>>();
  private readonly health = new Map<string, GatewayHealth>();
  /** Gateways by host: asked for every request's source (trust, calls from the PSTN). */
  private byHost = new Map<string, GatewayRecord[]>();

  constructor(
    /** Consecutive failures (timeouts, 408, 5xx) after which a gateway is marked down. */
    private readonly maxFailures = 3,
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** Applies a `routing` topic record (null deletes `key`). */
  apply(key: string, rec: RoutingRecord | null): void {
    const [kind, id] = [key.slice(0, key.indexOf(':')), key.slice(key.indexOf(':') + 1)];
    if (kind === 'gateway') {
      if (rec) this.gateways.set(id, rec as GatewayRecord);
      else {
        this.gateways.delete(id);
        this.health.delete(id);
      }
      this.byHost = new Map();
      for (const g of this.gateways.values()) {
        const h = hostOf(g.address);
        const same = this.byHost.get(h);
        if (same) same.push(g);
        else this.byHost.set(h, [g]);
      }
    } else if (kind === 'route') {
      const old = this.routes.get(id);
      const r = rec as RouteRecord | null;
      if (old && (!r || digits(old.prefix) !== digits(r.prefix))) {
        const same = this.byPrefix.get(digits(old.prefix))!;
        same.delete(id);
        if (same.size === 0) this.byPrefix.delete(digits(old.prefix));
      }
      if (r) {
        this.routes.set(id, r);
        const p = digits(r.prefix);
        const same = this.byPrefix.get(p) ?? new Map<string, RouteRecord>();
        this.byPrefix.set(p, same.set(id, r));
      } else this.routes.delete(id);
    }
  }

  get(id: string): GatewayRecord | undefined {
    return this.gateways.get(id);
  }

  all(): GatewayRecord[] {
    return [...this.gateways.values()];
  }

  /**
   * The gateway a source belongs to (calls from the PSTN), if any: its host,
   * and its port too when the gateway's address names one.
   */
  byAddress(address: string, port?: number): GatewayRecord | undefined {
    for (const g of this.byHost.get(address.toLowerCase()) ?? []) {
      const p = portOf(g.address);
      if (p === undefined || p === port) return g;
    }
    return undefined;
  }

  /**
   * The gateways to try for an E.164 number, in order: the routes with the
   * longest matching prefix (for this domain or every domain), higher route
   * priority first; within a route, gateway priority then a weighted shuffle.
   * Disabled and down gateways are left out. Empty: no route.
   */
  select(number: string, domain: string): { hops: GatewayHop[]; routed: boolean } {
    let best: RouteRecord[] = [];
    for (let len = number.length; len >= 0 && best.length === 0; len--) {
      for (const r of this.byPrefix.get(number.slice(0, len))?.values() ?? []) {
        if (!r.domain || r.domain.toLowerCase() === domain) best.push(r);
      }
    }
    // A domain's own routes for a prefix replace the ones for every domain.
    if (best.some((r) => r.domain)) best = best.filter((r) => r.domain);
    best.sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
    const seen = new Set<string>();
    const hops: GatewayHop[] = [];
    for (const r of best) {
      const gws = r.gatewayIds
        .map((id) => this.gateways.get(id))
        .filter((g): g is GatewayRecord => g !== undefined && g.enabled !== false && !seen.has(g.id));
      for (const g of this.order(gws)) {
        seen.add(g.id);
        if (this.health.get(g.id)?.down) continue;
        hops.push({ gateway: g, uri: gatewayUri(g, number) });
      }
    }
    return { hops, routed: best.length > 0 };
  }

  /** Priority groups, each shuffled by weight (a gateway of weight 2 comes first twice as often). */
  private order(gws: GatewayRecord[]): GatewayRecord[] {
    const byPrio = new Map<number, GatewayRecord[]>();
    for (const g of gws) byPrio.set(g.priority ?? 0, [...(byPrio.get(g.priority ?? 0) ?? []), g]);
    const out: GatewayRecord[] = [];
    for (const prio of [...byPrio.keys()].sort((a, b) => a - b)) {
      const left = [...byPrio.get(prio)!];
      while (left.length) {
        const total = left.reduce((s, g) => s + (g.weight ?? 1), 0);
        let x = this.random() * total;
        let i = 0;
        while (i < left.length - 1 && (x -= left[i].weight ?? 1) >= 0) i++;
        out.push(left.splice(i, 1)[0]);
      }
    }
    return out;
  }

  /** A gateway failed a call (timeout, 408, 5xx); returns true when this marks it down. */
  failed(id: string): boolean {
    const h = this.health.get(id) ?? { down: false, failures: 0, since: this.now() };
    h.failures++;
    const wasDown = h.down;
    if (h.failures >= this.maxFailures && !h.down) {
      h.down = true;
      h.since = this.now();
    }
    this.health.set(id, h);
    return h.down && !wasDown;
  }

  /** A gateway answered (a call or a probe); returns true when this brings it back up. */
  answered(id: string): boolean {
    const h = this.health.get(id);
    if (!h) return false;
    this.health.delete(id);
    return h.down;
  }

  isDown(id: string): boolean {
    return this.health.get(id)?.down ?? false;
  }

  /** Gateways marked down (to probe). */
  down(): GatewayRecord[] {
    return [...this.health.entries()]
      .filter(([, h]) => h.down)
      .map(([id]) => this.gateways.get(id))
      .filter((g): g is GatewayRecord => g !== undefined);
  }
}

/** host of "host", "host:port" or "[v6]:port", lower-case, without brackets. */
export function hostOf(address: string): string {
  const m = /^\[([^\]]+)\]|^([^:]+)(?::\d+)?$/.exec(address);
  return (m?.[1] ?? m?.[2] ?? address).toLowerCase();
}

function portOf(address: string): number | undefined {
  const m = /:(\d+)$/.exec(address.replace(/^\[[^\]]*\]/, (b) => b.replace(/:/g, '')));
  return m ? Number(m[1]) : undefined;
}

/** The Request-URI of a call to `number` through gateway `g`. */
export function gatewayUri(g: GatewayRecord, number: string): string {
  const user = (g.prefix ?? '') + number.slice(g.strip ?? 0);
  const t = g.transport && g.transport !== 'udp' ? `;transport=${g.transport}` : '';
  return `sip:${user}@${g.address}${t}`;
}
