/**
 * RADIUS clients (NAS): who may send accounting, and with which shared secret.
 * A client is an address or a CIDR; the most specific match wins.
 */
import { BlockList, isIP } from 'node:net';
import type { Queryable } from '@switchboard/platform';

export interface NasClient {
  /** Bounded label for metrics and the record's `client` field (the CIDR for seeded clients). */
  name: string;
  cidr: string;
  secret: string;
  /** Access-Requests must carry a Message-Authenticator (default true; see migration 002). */
  requireMessageAuthenticator?: boolean;
}

interface Parsed {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

/** "10.0.0.0/8", "192.0.2.1" (a /32), "2001:db8::/32"; throws on anything else. */
export function parseCidr(text: string): Parsed {
  const [address, len, ...rest] = text.trim().split('/');
  const v = isIP(address);
  if (!v || rest.length) throw new Error(`bad address or CIDR "${text}"`);
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!/^\d+$/.test(len ?? String(max)) || prefix > max) throw new Error(`bad prefix length in "${text}"`);
  return { family: v === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

/** "127.0.0.1/32=secret,10.0.0.0/8=other": each client named after its CIDR. Secrets may not hold a comma. */
export function parseClientsSetting(raw: string): NasClient[] {
  const out: NasClient[] = [];
  for (const item of raw.split(',')) {
    const s = item.trim();
    if (!s) continue;
    const eq = s.indexOf('=');
    if (eq <= 0 || eq === s.length - 1) throw new Error(`expected CIDR=secret, got "${s}"`);
    const cidr = s.slice(0, eq).trim();
    parseCidr(cidr);
    out.push({ name: cidr, cidr, secret: s.slice(eq + 1) });
  }
  return out;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d, from a dual-stack socket) as plain IPv4. */
export const unmapIPv4 = (addr: string): string =>
  /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(addr) ? addr.slice(7) : addr;

export class ClientTable {
  private readonly entries: Array<{
    client: NasClient;
    prefix: number;
    list: BlockList;
    family: 'ipv4' | 'ipv6';
  }>;
  private readonly cache = new Map<string, NasClient | null>();

  constructor(clients: readonly NasClient[]) {
    this.entries = clients
      .map((client) => {
        const p = parseCidr(client.cidr);
        const list = new BlockList();
        list.addSubnet(p.address, p.prefix, p.family);
        return { client, prefix: p.prefix, list, family: p.family };
      })
      .sort((a, b) => b.prefix - a.prefix);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The most specific client covering this source address, if any. */
  match(address: string): NasClient | undefined {
    const addr = unmapIPv4(address);
    const hit = this.cache.get(addr);
    if (hit !== undefined) return hit ?? undefined;
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    const found = this.entries.find((e) => e.family === family && e.list.check(addr, family))?.client;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(addr, found ?? null);
    return found;
  }
}

/** Seeds (upserts) clients into accounting.clients. */
export async function seedClients(db: Queryable, clients: readonly NasClient[]): Promise<void> {
  for (const c of clients) {
    await db.query(
      `INSERT INTO accounting.clients (name, cidr, secret) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET cidr = EXCLUDED.cidr, secret = EXCLUDED.secret, updated_at = now()`,
      [c.name, c.cidr, c.secret],
    );
  }
}

/** Every provisioned client; rows with a bad CIDR are skipped and reported through onBad. */
export async function loadClients(
  db: Queryable,
  onBad: (name: string, err: Error) => void = () => undefined,
): Promise<ClientTable> {
  const r = await db.query<NasClient>(
    `SELECT name, cidr, secret, require_message_authenticator AS "requireMessageAuthenticator"
     FROM accounting.clients ORDER BY name`,
  );
  const ok: NasClient[] = [];
  for (const row of r.rows) {
    try {
      parseCidr(row.cidr);
      ok.push(row);
    } catch (e) {
      onBad(row.name, e as Error);
    }
  }
  return new ClientTable(ok);
}
