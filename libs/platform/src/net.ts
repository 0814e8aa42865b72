/**
 * A `lookup` for dgram sockets that send to address literals. dgram resolves the
 * destination of every send through dns.lookup, which answers an IP literal only on the
 * next tick (a tick and a closure per datagram); this answers a literal at once and
 * passes a name on to dns.lookup.
 */
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

export function literalLookup(
  hostname: string,
  options: LookupOneOptions | number,
  callback: LookupCallback,
): void {
  const family = isIP(hostname);
  if (family !== 0) return callback(null, hostname, family);
  dnsLookup(hostname, options as LookupOneOptions, callback);
}
