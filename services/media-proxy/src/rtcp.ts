/**
 * RTP/RTCP header reading for the relay (RFC 3550), on Buffer offsets with no
 * allocation: the SSRC and sequence of RTP, the report blocks of SR/RR.
 */

/** RTCP packet types that may start a compound packet (SR 200, RR 201, SDES 202, BYE 203, APP 204, RTPFB 205, PSFB 206, XR 207). */
export const isRtcpType = (pt: number): boolean => pt >= 192 && pt <= 223;

/** True when the datagram looks like RTCP rather than RTP (RFC 5761 §4: second byte 192-223). */
export function looksLikeRtcp(b: Buffer): boolean {
  return b.length >= 8 && (b[0]! & 0xc0) === 0x80 && isRtcpType(b[1]!);
}

/** A plausible RTP packet: version 2, a full fixed header. */
export function looksLikeRtp(b: Buffer): boolean {
  return b.length >= 12 && (b[0]! & 0xc0) === 0x80;
}

export const rtpSeq = (b: Buffer): number => b.readUInt16BE(2);
export const rtpTimestamp = (b: Buffer): number => b.readUInt32BE(4);
export const rtpSsrc = (b: Buffer): number => b.readUInt32BE(8);
export const rtpPayloadType = (b: Buffer): number => b[1]! & 0x7f;

/** What one report block (of an SR or RR) said about the stream it describes; written in place. */
export interface ReportFigures {
  /** Fraction lost since the previous report, 0..1. */
  fractionLost: number;
  /** Cumulative packets lost (24-bit signed). */
  cumulativeLost: number;
  /** Interarrival jitter in timestamp units. */
  jitter: number;
  /** Round-trip time in ms, computed from LSR/DLSR; -1 when not computable. */
  rttMs: number;
  /** Reports read. */
  reports: number;
  /** SRs seen (their NTP timestamp middle 32 bits, for the peer's LSR). */
  lastSrNtp: number;
  lastSrAt: number;
}

export const newReportFigures = (): ReportFigures => ({
  fractionLost: 0,
  cumulativeLost: 0,
  jitter: 0,
  rttMs: -1,
  reports: 0,
  lastSrNtp: 0,
  lastSrAt: 0,
});

/** The middle 32 bits of an NTP timestamp for a time in ms since the Unix epoch. */
export function ntpMiddle32(ms: number): number {
  const secs = Math.floor(ms / 1000) + 2208988800;
  const frac = Math.floor(((ms % 1000) / 1000) * 65536);
  return (((secs & 0xffff) << 16) | frac) >>> 0;
}

/**
 * Read a compound RTCP packet: each SR/RR's first report block updates `out`;
 * an SR's NTP time is kept. `now` (ms since the epoch) is used for the RTT:
 * RTT = now - LSR - DLSR (RFC 3550 §6.4.1), meaningful when both clocks are NTP.
 * Returns false on a malformed packet (nothing after the bad part is read).
 */
export function readRtcp(b: Buffer, now: number, out: ReportFigures): boolean {
  let off = 0;
  while (off + 4 <= b.length) {
    const v = b[off]!;
    if ((v & 0xc0) !== 0x80) return false;
    const count = v & 0x1f;
    const pt = b[off + 1]!;
    const len = (b.readUInt16BE(off + 2) + 1) * 4;
    if (off + len > b.length) return false;
    let blocks = -1;
    if (pt === 200 && len >= 28) {
      out.lastSrNtp = (((b.readUInt32BE(off + 8) & 0xffff) << 16) | (b.readUInt32BE(off + 12) >>> 16)) >>> 0;
      out.lastSrAt = now;
      blocks = off + 28;
    } else if (pt === 201 && len >= 8) {
      blocks = off + 8;
    }
    if (blocks >= 0 && count > 0 && blocks + 24 <= off + len) {
      const fl = b[blocks + 4]!;
      let cum = (b[blocks + 5]! << 16) | (b[blocks + 6]! << 8) | b[blocks + 7]!;
      if (cum & 0x800000) cum -= 0x1000000;
      out.fractionLost = fl / 256;
      out.cumulativeLost = cum;
      out.jitter = b.readUInt32BE(blocks + 12);
      const lsr = b.readUInt32BE(blocks + 16);
      const dlsr = b.readUInt32BE(blocks + 20);
      if (lsr !== 0) {
        const a = ntpMiddle32(now);
        const rtt = (((a - lsr - dlsr) >>> 0) / 65536) * 1000;
        out.rttMs = rtt < 60000 ? rtt : -1;
      }
      out.reports++;
    }
    off += len;
  }
  return off === b.length;
}
