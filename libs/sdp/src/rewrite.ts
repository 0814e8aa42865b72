/**
 * Offer/answer rewriting for the media proxy (RFC 3264, RFC 3605, RFC 5761):
 * point every stream at the relay, keep what the endpoint meant (hold,
 * rejected streams, attribute order), and say where RTCP goes.
 */
import { DomainError } from '@switchboard/platform';
import {
  SessionDescription,
  type AddrType,
  type Connection,
  type Direction,
  type MediaDescription,
} from './sdp';

/** The "no address" of old-style hold (RFC 2543, RFC 3264 §8.4). */
export function isNullAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::' || /^0:0:0:0:0:0:0:0$/.test(address);
}

/** The connection that applies to a media section: its own c=, else the session's. */
export function effectiveConnection(sdp: SessionDescription, m: MediaDescription): Connection | undefined {
  return m.connection ?? sdp.connection;
}

/** The direction that applies to a media section: its own, else the session's, else sendrecv (RFC 4566 §6). */
export function effectiveDirection(sdp: SessionDescription, m: MediaDescription): Direction {
  return m.direction ?? sdp.direction ?? 'sendrecv';
}

/**
 * True when this stream is on hold as its sender describes it: a null
 * connection address (c=0.0.0.0, old style), or sendonly / inactive
 * (RFC 3264 §8.4). recvonly is the held party's answer, not a hold request.
 * Pass the session to take session-level c= and direction into account.
 */
export function isHold(m: MediaDescription, sdp?: SessionDescription): boolean {
  const conn = sdp ? effectiveConnection(sdp, m) : m.connection;
  if (conn && isNullAddress(conn.address)) return true;
  const dir = sdp ? effectiveDirection(sdp, m) : (m.direction ?? 'sendrecv');
  return dir === 'sendonly' || dir === 'inactive';
}

export interface StreamInfo {
  index: number;
  media: string;
  proto: string;
  /** Connection address (media c=, else session c=); undefined when neither exists. */
  address?: string;
  addrType?: string;
  port: number;
  /** RTCP port: a=rtcp, else the RTP port under rtcp-mux, else port + 1 (RFC 3550 §11). */
  rtcpPort: number;
  /** RTCP address: from a=rtcp when it names one, else the connection address. */
  rtcpAddress?: string;
  rtcpMux: boolean;
  direction: Direction;
  hold: boolean;
  /** Port 0: rejected or disabled. */
  rejected: boolean;
}

/** Each media stream's address, ports and state, in m= line order. */
export function listStreams(sdp: SessionDescription): StreamInfo[] {
  return sdp.media.map((m, index) => {
    const conn = effectiveConnection(sdp, m);
    const rtcp = m.rtcp;
    const mux = m.rtcpMux;
    return {
      index,
      media: m.media,
      proto: m.proto,
      address: conn?.address,
      addrType: conn?.addrType,
      port: m.port,
      rtcpPort: rtcp ? rtcp.port : mux ? m.port : m.port + 1,
      rtcpAddress: rtcp?.address ?? conn?.address,
      rtcpMux: mux,
      direction: effectiveDirection(sdp, m),
      hold: isHold(m, sdp),
      rejected: m.rejected,
    };
  });
}

export interface RelayPorts {
  rtp: number;
  /** RTCP port on the relay; default rtp + 1, or rtp under rtcp-mux. */
  rtcp?: number;
}

export interface RewriteOptions {
  /** The relay's address. */
  address: string;
  family: AddrType;
  /** Relay ports by m= line index. Rejected streams (port 0) are left as they are. */
  ports: readonly (RelayPorts | undefined)[];
  /** Remove ICE attributes (the relay does not do ICE toward this side). */
  stripIce?: boolean;
  /**
   * RTP/RTCP multiplexing (RFC 5761) toward the side that receives this SDP:
   * - keep: leave a=rtcp-mux as it is (default);
   * - offer: add a=rtcp-mux (the relay can mux) and keep a=rtcp as the fallback port;
   * - accept: add a=rtcp-mux in an answer and point a=rtcp at the RTP port
   *   (only where the offer had rtcp-mux: RFC 8035);
   * - demux: remove a=rtcp-mux / a=rtcp-mux-only, RTCP on its own port.
   */
  rtcpMux?: 'keep' | 'offer' | 'accept' | 'demux';
  /** Increment the o= session version (a changed SDP in the same session, RFC 3264 §8). */
  bumpOrigin?: boolean;
  /** Also put the relay address in o= (some proxies hide the endpoint this way). Default false. */
  replaceOriginAddress?: boolean;
  /**
   * A stream held with c=0.0.0.0 (old style):
   * - keep (default): keep the null address, so the hold stays a hold;
   * - direction: point it at the relay like any stream and express the hold
   *   as a=sendonly (or a=inactive if it was recvonly/inactive) instead.
   */
  nullHold?: 'keep' | 'direction';
}

/**
 * A copy of the SDP with every live stream pointed at the relay: session and
 * media c= lines, m= ports, a=rtcp; o= version bumped when asked. The input is
 * not changed.
 */
export function rewriteMedia(input: SessionDescription, opts: RewriteOptions): SessionDescription {
  const sdp = input.clone();
  const relay: Connection = { netType: 'IN', addrType: opts.family, address: opts.address };
  const nullHold = opts.nullHold ?? 'keep';
  const muxMode = opts.rtcpMux ?? 'keep';

  const oldSession = input.connection;
  const sessionHeldNull = oldSession !== undefined && isNullAddress(oldSession.address);
  // The session c= becomes the relay, unless it is an old-style hold we keep.
  const newSession: Connection | undefined =
    oldSession === undefined ? undefined : sessionHeldNull && nullHold === 'keep' ? oldSession : relay;
  if (newSession && newSession !== oldSession) sdp.connection = newSession;

  sdp.media.forEach((m, i) => {
    const before = input.media[i]!;
    if (before.rejected) return; // a rejected stream stays rejected (RFC 3264 §6)
    const ports = opts.ports[i];
    if (!ports) {
      throw new DomainError('invalid_argument', `no relay port for m= line ${i} (${before.media})`, 'ports');
    }
    const oldConn = effectiveConnection(input, before);
    const heldNull = oldConn !== undefined && isNullAddress(oldConn.address);
    const keepNull = heldNull && nullHold === 'keep';
    const target: Connection = keepNull ? oldConn : relay;

    if (before.connection !== undefined || !sameConnection(newSession, target)) {
      m.connection = target;
      // extra c= lines (multicast layers) make no sense toward a unicast relay
      m.lines = m.lines.filter(
        (l, idx) => l.type !== 'c' || idx === m.lines.findIndex((x) => x.type === 'c'),
      );
    }
    if (heldNull && !keepNull) {
      const dir = effectiveDirection(input, before);
      if (dir === 'sendrecv' || dir === 'sendonly') m.direction = 'sendonly';
      else m.direction = 'inactive';
    }

    m.mediaLine = { ...m.mediaLine, port: ports.rtp, portCount: undefined };

    if (!m.isRtp) return;
    let mux = before.rtcpMux;
    if (muxMode === 'offer' || muxMode === 'accept') mux = true;
    if (muxMode === 'demux') mux = false;
    m.rtcpMux = mux;
    if (muxMode === 'demux') m.removeAttribute('rtcp-mux-only');
    const rtcpPort =
      muxMode === 'accept'
        ? ports.rtp
        : (ports.rtcp ?? (mux && muxMode !== 'offer' ? ports.rtp : ports.rtp + 1));
    m.rtcp = { port: rtcpPort, netType: 'IN', addrType: target.addrType, address: target.address };
  });

  if (opts.stripIce) sdp.stripIce();
  if (opts.bumpOrigin || opts.replaceOriginAddress) {
    const o = sdp.origin;
    sdp.origin = {
      ...o,
      sessionVersion: opts.bumpOrigin ? (BigInt(o.sessionVersion) + 1n).toString() : o.sessionVersion,
      ...(opts.replaceOriginAddress ? { addrType: opts.family, address: opts.address } : {}),
    };
  }
  return sdp;
}

function sameConnection(a: Connection | undefined, b: Connection): boolean {
  return a !== undefined && a.address === b.address && a.addrType === b.addrType && a.netType === b.netType;
}
