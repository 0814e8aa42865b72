/**
 * RTP (RFC 3550) as the media server needs it: header parsing in place, and a
 * header writer into a preallocated packet buffer.
 */
export const RTP_HEADER = 12;
/** 20 ms of 8 kHz G.711: 160 samples, 160 bytes. */
export const FRAME_MS = 20;
export const FRAME_SAMPLES = 160;

export interface RtpHeader {
  payloadType: number;
  marker: boolean;
  seq: number;
  timestamp: number;
  ssrc: number;
  /** Payload bounds in the packet (after CSRCs, extension; before padding). */
  payloadStart: number;
  payloadEnd: number;
}

/**
 * Parses the header of an RTP packet into `out` (reused by the caller, so
 * receiving allocates nothing). False when the packet is not RTP version 2 or
 * is truncated.
 */
export function parseRtp(buf: Buffer, out: RtpHeader): boolean {
  if (buf.length < RTP_HEADER || buf[0] >> 6 !== 2) return false;
  const cc = buf[0] & 0x0f;
  let start = RTP_HEADER + cc * 4;
  if (buf[0] & 0x10) {
    if (buf.length < start + 4) return false;
    start += 4 + buf.readUInt16BE(start + 2) * 4;
  }
  let end = buf.length;
  if (buf[0] & 0x20) end -= buf[buf.length - 1];
  if (end < start) return false;
  out.marker = (buf[1] & 0x80) !== 0;
  out.payloadType = buf[1] & 0x7f;
  out.seq = buf.readUInt16BE(2);
  out.timestamp = buf.readUInt32BE(4);
  out.ssrc = buf.readUInt32BE(8);
  out.payloadStart = start;
  out.payloadEnd = end;
  return true;
}

/** Writes a 12-byte header (no CSRC, no extension) at the start of `buf`. */
export function writeRtpHeader(
  buf: Buffer,
  pt: number,
  marker: boolean,
  seq: number,
  ts: number,
  ssrc: number,
): void {
  buf[0] = 0x80;
  buf[1] = (marker ? 0x80 : 0) | (pt & 0x7f);
  buf.writeUInt16BE(seq & 0xffff, 2);
  buf.writeUInt32BE(ts >>> 0, 4);
  buf.writeUInt32BE(ssrc >>> 0, 8);
}

/** RFC 4733 §2.3 event codes to DTMF characters. */
export const DTMF_EVENTS = '0123456789*#ABCD';

/**
 * RFC 4733 telephone-event receiver: one digit per event. An event is known by
 * its RTP timestamp (§2.5.1.2: all packets of one event share it), so the
 * repeated updates and the three end packets count once.
 */
export class TelephoneEventDetector {
  private lastTs = -1;
  constructor(private readonly onDigit: (digit: string) => void) {}

  /** One telephone-event payload (4 bytes: event, E/R/volume, duration). */
  receive(payload: Buffer, start: number, end: number, timestamp: number): void {
    if (end - start < 4) return;
    if (timestamp === this.lastTs) return;
    this.lastTs = timestamp;
    const event = payload[start];
    if (event < DTMF_EVENTS.length) this.onDigit(DTMF_EVENTS[event]);
  }
}

/** The four bytes of a telephone-event payload (for tests and pcap generation). */
export function telephoneEvent(digit: string, end: boolean, duration: number, volume = 10): Buffer {
  const b = Buffer.alloc(4);
  b[0] = DTMF_EVENTS.indexOf(digit);
  b[1] = (end ? 0x80 : 0) | (volume & 0x3f);
  b.writeUInt16BE(duration, 2);
  return b;
}
