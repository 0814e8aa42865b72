/**
 * Where a response goes (RFC 3261 §18.2.2, RFC 3581 §4), from the request's
 * topmost Via and the Source the request arrived from.
 */
import { DEFAULT_PORTS, isReliable, type SendTarget, type Source, type TransportName } from './types';

/** The topmost Via of the request, as far as response routing needs it. */
export interface ViaRouting {
  /** sent-by host and port. */
  host: string;
  port?: number;
  received?: string;
  /** `rport` present (with or without a value). */
  rport?: boolean;
  maddr?: string;
}

export function responseTarget(via: ViaRouting, src: Source): SendTarget {
  const transport: TransportName = src.transport;
  if (isReliable(transport)) {
    // §18.2.2: over the connection the request came on; if it closed, open
    // one to the source address (received) and the sent-by port.
    return {
      transport,
      connId: src.connId,
      address: via.received ?? src.address,
      port: via.port ?? DEFAULT_PORTS[transport],
    };
  }
  if (via.maddr) return { transport, address: via.maddr, port: via.port ?? DEFAULT_PORTS.udp };
  // RFC 3581 §4: rport → back to the source address and port the request came from.
  if (via.rport) return { transport, address: src.address, port: src.port };
  // §18.2.2: to `received` (always the source address, §18.2.1), sent-by port.
  return { transport, address: via.received ?? src.address, port: via.port ?? DEFAULT_PORTS.udp };
}
