/**
 * The next hop of a URI whose host (or maddr) is an IP address: RFC 3263 §4.1/§4.2 ask no
 * DNS for it, so it is known at once. SipResolver.resolve answers the same (its first and
 * only target) but as a promise; the proxy forwards most requests to such hops (Record-Route
 * and Contact URIs are addresses), so it asks this first and awaits only for names.
 */
import { isIP } from 'node:net';
import type { SendTarget, TransportName } from '@switchboard/sip';

const DEFAULT_PORT: Record<TransportName, number> = { udp: 5060, tcp: 5060, ws: 80, tls: 5061, wss: 443 };

export interface LiteralUri {
  host: string;
  port?: number | null;
  transport?: string;
  maddr?: string;
  /** sips: */
  secure: boolean;
}

/** The target of a URI with an IP literal host, as SipResolver.resolve gives it; undefined for a name. */
export function literalTarget(uri: LiteralUri): SendTarget | undefined {
  let host = uri.maddr ?? uri.host;
  if (host.length > 1 && host.charCodeAt(0) === 91 && host.charCodeAt(host.length - 1) === 93)
    host = host.slice(1, -1);
  if (isIP(host) === 0) return undefined;
  const p = uri.transport?.toLowerCase();
  let t: TransportName | undefined =
    p === 'udp' || p === 'tcp' || p === 'tls' || p === 'ws' || p === 'wss' ? p : undefined;
  // RFC 3263 §4.1: sips over tcp is tls (and over ws, wss); no transport: udp, or tls for sips.
  if (uri.secure && t === 'tcp') t = 'tls';
  if (uri.secure && t === 'ws') t = 'wss';
  t ??= uri.secure ? 'tls' : 'udp';
  return { transport: t, address: host, port: uri.port ?? DEFAULT_PORT[t], hostname: host };
}
