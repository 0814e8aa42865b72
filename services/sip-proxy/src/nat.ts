/**
 * NAT traversal (what the book does with nathelper, as Kamailio's
 * set_contact_alias/handle_ruri_alias do it today): detect a UA behind NAT,
 * and mark its Contact with the address its packets really come from, so
 * in-dialog requests reach it through the NAT binding.
 */
import { isIPv4, type SipMessage, type SipUri } from '@switchboard/sip';
import type { Source } from './register';

/** RFC 1918 private, RFC 6598 shared (CGN) and loopback-free link-local ranges. */
export function isPrivateAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIPv4(h)) {
    const [a, b] = h.split('.').map(Number);
    return (
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254)
    );
  }
  return h.startsWith('fc') || h.startsWith('fd') || h.startsWith('fe80:');
}

const bare = (h: string) => h.replace(/^\[|\]$/g, '').toLowerCase();

/**
 * A UA is behind NAT when its packets come from another address or port than
 * its Via says (RFC 3581), or when its Contact holds a private address.
 */
export function isNated(msg: SipMessage, source: Source): boolean {
  const via = msg.via;
  if (bare(via.host) !== bare(source.address)) return true;
  if (source.transport === 'udp' && (via.port ?? 5060) !== source.port) return true;
  const c = msg.contacts[0];
  const u = c?.sipUri;
  return u !== undefined && isPrivateAddress(u.host) && !isPrivateAddress(source.address);
}

export const ALIAS_PARAM = 'alias';

/** `ip~port~transport`, the Kamailio alias format. */
export const encodeAlias = (s: Source) => `${s.address}~${s.port}~${s.transport}`;

export function decodeAlias(v: string): { address: string; port: number; transport: string } | undefined {
  const [address, port, transport] = v.split('~');
  const p = Number(port);
  if (!address || !Number.isInteger(p) || p <= 0 || p > 65535) return undefined;
  return { address, port: p, transport: transport || 'udp' };
}

/** Add `;alias=` with the real source to the first Contact (requests and responses from a NATed UA). */
export function aliasContact(msg: SipMessage, source: Source): void {
  const c = msg.contacts[0];
  if (!c?.sipUri) return;
  const uri = c.sipUri.clone() as SipUri;
  uri.params.set(ALIAS_PARAM, encodeAlias(source));
  const updated = c.clone();
  updated.uri = uri;
  msg.replaceFirstValue('Contact', updated.toString());
}

/**
 * The address a Request-URI's alias names, and the URI without it
 * (handle_ruri_alias): the in-dialog request goes to the NAT binding.
 */
export function takeAlias(
  uri: SipUri,
): { target: { address: string; port: number; transport: string }; uri: SipUri } | undefined {
  const v = uri.params.get(ALIAS_PARAM);
  if (!v) return undefined;
  const target = decodeAlias(v);
  if (!target) return undefined;
  const clean = uri.clone() as SipUri;
  clean.params.delete(ALIAS_PARAM);
  return { target, uri: clean };
}
