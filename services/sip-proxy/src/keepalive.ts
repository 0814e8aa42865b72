/**
 * Keepalives to NATed contacts (Kamailio nathelper's natping): every UDP
 * binding whose REGISTER came through a NAT (the binding has `received`) gets
 * an OPTIONS, or a CRLF ping, sent from the proxy's socket to the address its
 * packets came from, once per interval, so the NAT keeps the UDP mapping open
 * and calls still reach the phone.
 *
 * The bindings are spread over the interval (one slot per second, a binding's
 * slot picked by a hash of AoR and Contact), as nathelper's natping_processes
 * split the table: no burst of pings every interval. They are kept indexed by
 * slot as the location replica changes, so a slot's tick visits only its own
 * bindings (scanning all of them every second held the event loop ~100 ms with
 * 100,000 NATed phones).
 *
 * Pings are stateless: no transaction is kept. An answer to an OPTIONS comes
 * back with only the proxy's Via and is dropped as a stray response.
 */
import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { int, oneOf } from '@switchboard/platform';
import { newBranch, type Clock } from '@switchboard/sip';
import type { LocationBinding, LocationRecord } from '@switchboard/contracts';

export const natPingConfig = {
  natPingIntervalSec: int(
    'SWITCHBOARD_SIP_NAT_PING_INTERVAL',
    30,
    'Seconds between keepalives to each NATed UDP contact, spread over the interval (0 disables)',
    0,
    86400,
  ),
  natPingMethod: oneOf(
    'SWITCHBOARD_SIP_NAT_PING_METHOD',
    'auto',
    ['auto', 'options', 'crlf'] as const,
    'Keepalive to NATed contacts: OPTIONS, a CRLF ping, or auto (CRLF for RFC 5626 outbound contacts, OPTIONS otherwise)',
  ),
};

export type NatPingMethod = 'auto' | 'options' | 'crlf';

export interface KeepaliveDeps {
  /** Send one datagram from the proxy's UDP socket. */
  send(data: Buffer, target: { transport: 'udp'; address: string; port: number }): void;
  /** The proxy's advertised UDP address for a family, for the Via (answers come back to it). */
  local(family: 4 | 6): { host: string; port: number } | undefined;
  /** Domain put in the From of the OPTIONS. */
  domain: string;
  clock: Clock;
  registry?: Registry;
}

export interface KeepaliveOptions {
  intervalSec: number;
  method: NatPingMethod;
  /** Length of one slot of the spread (default 1 s; the interval has max(1, interval/slot) slots). */
  slotMs?: number;
}

const CRLF_PING = Buffer.from('\r\n\r\n');

/** FNV-1a, 32 bits: a stable slot for a binding across ticks and processes. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A binding whose REGISTER came through a NAT over UDP: the ones kept open by pings. */
const isNatedUdp = (b: LocationBinding) => b.received?.transport === 'udp';

/** An RFC 5626 outbound registration: the UA keeps a flow (+sip.instance and reg-id). */
const isOutbound = (b: LocationBinding) => b.instanceId !== '' && b.regId > 0;

export class NatKeepalive {
  private readonly slots: number;
  private readonly slotMs: number;
  /** The NATed UDP bindings (the only ones pinged), by slot. */
  private readonly bySlot: Set<LocationBinding>[];
  private slot = 0;
  private timer: unknown;
  private running = false;
  private cseq = 0;
  private readonly callId = randomBytes(8).toString('hex');
  private readonly pings: Counter<'method'> | undefined;

  constructor(
    private readonly d: KeepaliveDeps,
    private readonly o: KeepaliveOptions,
  ) {
    const intervalMs = o.intervalSec * 1000;
    const slotMs = Math.max(1, o.slotMs ?? 1000);
    this.slots = Math.max(1, Math.round(intervalMs / slotMs));
    this.slotMs = intervalMs / this.slots;
    this.bySlot = Array.from({ length: this.slots }, () => new Set<LocationBinding>());
    this.pings = d.registry
      ? new Counter({
          name: 'switchboard_sip_nat_pings_total',
          help: 'Keepalives sent to NATed contacts, by method (OPTIONS, CRLF)',
          labelNames: ['method'],
          registers: [d.registry],
        })
      : undefined;
  }

  /** An AoR's bindings changed in the location replica: `prev` replaced by `next` (either may be absent). */
  update(prev: readonly LocationBinding[] | undefined, next: readonly LocationBinding[] | undefined): void {
    if (prev) for (const b of prev) if (isNatedUdp(b)) this.bySlot[this.slotOf(b)].delete(b);
    if (next) for (const b of next) if (isNatedUdp(b)) this.bySlot[this.slotOf(b)].add(b);
  }

  /** Start pinging (nothing when the interval is 0). */
  start(): void {
    if (this.o.intervalSec <= 0 || this.running) return;
    this.running = true;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) this.d.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = this.d.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.running) return;
      this.tick();
      this.schedule();
    }, this.slotMs);
  }

  /** One slot: ping the live NATed UDP bindings that fall in it. Returns how many were pinged. */
  tick(): number {
    const slot = this.slot;
    this.slot = (this.slot + 1) % this.slots;
    const nowSec = Math.floor(this.d.clock.now() / 1000);
    let n = 0;
    for (const b of this.bySlot[slot]) if (b.expires > nowSec && this.ping(b, b.received!)) n++;
    return n;
  }

  private slotOf(b: LocationBinding): number {
    return this.slots > 1 ? hash(`${b.aor} ${b.contact}`) % this.slots : 0;
  }

  private ping(b: LocationBinding, r: NonNullable<LocationBinding['received']>): boolean {
    const crlf = this.o.method === 'crlf' || (this.o.method === 'auto' && isOutbound(b));
    const target = { transport: 'udp' as const, address: r.address, port: r.port };
    if (crlf) {
      this.d.send(CRLF_PING, target);
      this.pings?.inc({ method: 'CRLF' });
      return true;
    }
    const v6 = isIPv6(r.address);
    const local = this.d.local(v6 ? 6 : 4);
    if (!local) return false;
    const host = isIPv6(local.host) ? `[${local.host}]` : local.host;
    this.cseq = (this.cseq % 2_000_000_000) + 1;
    const msg =
      `OPTIONS ${b.contact} SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP ${host}:${local.port};branch=${newBranch()};rport\r\n` +
      `Max-Forwards: 70\r\n` +
      `From: <sip:pinger@${this.d.domain}>;tag=${this.callId}\r\n` +
      `To: <${b.contact}>\r\n` +
      `Call-ID: ${this.callId}-${this.cseq}@${host}\r\n` +
      `CSeq: ${this.cseq} OPTIONS\r\n` +
      `Content-Length: 0\r\n\r\n`;
    this.d.send(Buffer.from(msg), target);
    this.pings?.inc({ method: 'OPTIONS' });
    return true;
  }
}

/**
 * The proxy's wiring: bindings from the location replica (indexed now, then kept up to date
 * through its onChange, which this takes), pings from its UDP socket.
 */
export function natKeepaliveFor(
  location: {
    values(): Iterable<LocationRecord>;
    onChange?: (key: string, value: LocationRecord | null, prev: LocationRecord | undefined) => void;
  },
  transport: {
    send(data: Buffer, target: { transport: 'udp'; address: string; port: number }): void;
    localFor(t: 'udp', family: 4 | 6): { host: string; port: number } | undefined;
  },
  advertised: (host: string, family: 4 | 6) => string,
  config: { domain: string; natPingIntervalSec: number; natPingMethod: NatPingMethod },
  clock: Clock,
  registry: Registry,
): NatKeepalive {
  const ka = new NatKeepalive(
    {
      send: (data, target) => transport.send(data, target),
      local: (family) => {
        const b = transport.localFor('udp', family);
        return b && { host: advertised(b.host, family), port: b.port };
      },
      domain: config.domain,
      clock,
      registry,
    },
    { intervalSec: config.natPingIntervalSec, method: config.natPingMethod },
  );
  // What the replica holds now, then each change (no await in between: nothing is missed).
  for (const r of location.values()) ka.update(undefined, r.bindings);
  location.onChange = (_key, rec, prev) => ka.update(prev?.bindings, rec?.bindings);
  return ka;
}
