/** Shared types of the SIP transport layer (RFC 3261 §18, RFC 7118, RFC 5626, RFC 5923). */

export type TransportName = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** Reliable (connection-oriented) transports get no retransmissions (RFC 3261 §17). */
export function isReliable(t: TransportName): boolean {
  return t !== 'udp';
}

/** Default port per transport (RFC 3261 §19.1.2, RFC 7118). */
export const DEFAULT_PORTS: Readonly<Record<TransportName, number>> = {
  udp: 5060,
  tcp: 5060,
  tls: 5061,
  ws: 80,
  wss: 443,
};

/** Via transport token (RFC 3261 §20.42, RFC 7118 §5.2). */
export const VIA_TRANSPORT: Readonly<Record<TransportName, string>> = {
  udp: 'UDP',
  tcp: 'TCP',
  tls: 'TLS',
  ws: 'WS',
  wss: 'WSS',
};

/** Where a message came from: enough to answer it and to route back over the same flow. */
export interface Source {
  transport: TransportName;
  /** Remote (packet source) address and port. */
  address: string;
  port: number;
  /** Local interface the message arrived on (the bound address; 0.0.0.0/:: for wildcard binds). */
  localAddress: string;
  localPort: number;
  /** Connection id (the RFC 5626 flow token) for connection-oriented transports; undefined for UDP. */
  connId: number | undefined;
}

/** Where to send a message. */
export interface SendTarget {
  transport: TransportName;
  address: string;
  port: number;
  /**
   * Send over this connection if it is still open (responses go back over the
   * connection the request came on; requests to a UA registered over a flow
   * go over that flow). If it closed, a new connection to address:port is opened.
   */
  connId?: number;
  /**
   * RFC 5626 §5.3: the request must go over `connId` and nowhere else (a UA
   * registered over a flow is not reachable otherwise). If the flow is gone
   * the send fails (the proxy answers 430 Flow Failed).
   */
  flowOnly?: boolean;
  /** DNS name for TLS SNI / certificate verification. */
  hostname?: string;
}

export interface TlsOptions {
  cert: string | Buffer;
  key: string | Buffer;
  ca?: string | Buffer | Array<string | Buffer>;
  /** Ask connecting clients for a certificate. */
  requestCert?: boolean;
}

export interface ListenSpec {
  transport: TransportName;
  /** Bind address: 127.0.0.1, ::1, 0.0.0.0, :: ... */
  host: string;
  /** 0 = ephemeral. */
  port: number;
  /** Required for tls and wss listeners. */
  tls?: TlsOptions;
}

export interface BoundAddress {
  transport: TransportName;
  host: string;
  port: number;
}

/** Injected time source (setTimeout/clearTimeout/now), so timers are testable with a fake clock. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type SendCallback = (err?: Error) => void;
