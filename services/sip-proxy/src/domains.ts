/**
 * Which requests are ours: the configured SIP domains and every address the
 * proxy listens on. A Request-URI with one of our addresses resolves users in
 * the default domain.
 */
import type { SipUri } from '@switchboard/sip';

export class Domains {
  private readonly domains: Set<string>;
  private readonly addresses = new Set<string>();
  private readonly ports = new Set<number>();

  constructor(
    readonly defaultDomain: string,
    domains: readonly string[],
  ) {
    this.domains = new Set([defaultDomain, ...domains].map((d) => d.toLowerCase()));
  }

  addDomain(d: string): void {
    this.domains.add(d.toLowerCase());
  }

  /** An address (host or host:port) the proxy answers on. */
  addAddress(host: string, port?: number): void {
    this.addresses.add(bare(host));
    if (port !== undefined) this.ports.add(port);
  }

  isLocalDomain(host: string): boolean {
    return this.domains.has(host.toLowerCase());
  }

  /** Whether a URI names the proxy itself (one of its addresses, with our port if it has one). */
  isSelf(uri: SipUri): boolean {
    const h = bare(uri.host);
    if (!this.addresses.has(h) && !this.domains.has(h)) return false;
    return uri.port === null || this.ports.has(uri.port);
  }

  /** The domain users of this URI belong to, when it is ours; undefined for a foreign one. */
  domainOf(uri: SipUri): string | undefined {
    const h = uri.host.toLowerCase();
    if (this.domains.has(h)) return h;
    if (this.addresses.has(bare(h))) return this.defaultDomain;
    return undefined;
  }

  /** The canonical AoR `sip:user@domain` of a URI in one of our domains, else undefined. */
  aorOf(uri: SipUri): string | undefined {
    const d = this.domainOf(uri);
    return d && uri.user ? `sip:${uri.userDecoded ?? uri.user}@${d}` : undefined;
  }
}

const bare = (host: string) => host.toLowerCase().replace(/^\[|\]$/g, '');
