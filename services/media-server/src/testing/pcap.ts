/**
 * Test helper: pcap files of RTP streams (Ethernet / IPv4 / UDP, classic
 * libpcap format) for SIPp's `play_pcap_audio`, which replays the UDP payloads
 * with the capture's timing from its own media port.
 */
import { encode, type Law } from '../g711';
import { FRAME_SAMPLES, telephoneEvent, writeRtpHeader } from '../rtp';

export interface PcapPacket {
  /** Capture time in microseconds from the start. */
  atUs: number;
  payload: Buffer;
}

function ipChecksum(b: Buffer, off: number, len: number): number {
  let sum = 0;
  for (let i = 0; i < len; i += 2) sum += b.readUInt16BE(off + i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function writePcap(packets: PcapPacket[], srcPort = 6000, dstPort = 6002): Buffer {
  const parts: Buffer[] = [];
  const g = Buffer.alloc(24);
  g.writeUInt32LE(0xa1b2c3d4, 0);
  g.writeUInt16LE(2, 4);
  g.writeUInt16LE(4, 6);
  g.writeUInt32LE(65535, 16);
  g.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  parts.push(g);
  const base = 1_700_000_000;
  for (const p of packets) {
    const frameLen = 14 + 20 + 8 + p.payload.length;
    const rec = Buffer.alloc(16 + frameLen);
    rec.writeUInt32LE(base + Math.floor(p.atUs / 1e6), 0);
    rec.writeUInt32LE(p.atUs % 1e6, 4);
    rec.writeUInt32LE(frameLen, 8);
    rec.writeUInt32LE(frameLen, 12);
    const f = 16;
    rec.writeUInt16BE(0x0800, f + 12);
    const ip = f + 14;
    rec[ip] = 0x45;
    rec.writeUInt16BE(20 + 8 + p.payload.length, ip + 2);
    rec[ip + 8] = 64;
    rec[ip + 9] = 17;
    rec.set([127, 0, 0, 1], ip + 12);
    rec.set([127, 0, 0, 1], ip + 16);
    rec.writeUInt16BE(ipChecksum(rec, ip, 20), ip + 10);
    const udp = ip + 20;
    rec.writeUInt16BE(srcPort, udp);
    rec.writeUInt16BE(dstPort, udp + 2);
    rec.writeUInt16BE(8 + p.payload.length, udp + 4);
    p.payload.copy(rec, udp + 8);
    parts.push(rec);
  }
  return Buffer.concat(parts);
}

/** RTP packets (20 ms) of linear audio in a law, starting at `startUs`. */
export function rtpAudio(
  pcm: Int16Array,
  law: Law,
  opts: { pt: number; ssrc?: number; ts?: number; seq?: number; startUs?: number },
): PcapPacket[] {
  const g711 = encode(pcm, law);
  const out: PcapPacket[] = [];
  const frames = Math.ceil(g711.length / FRAME_SAMPLES);
  for (let i = 0; i < frames; i++) {
    const b = Buffer.alloc(12 + FRAME_SAMPLES, law === 'pcmu' ? 0xff : 0xd5);
    writeRtpHeader(
      b,
      opts.pt,
      i === 0,
      (opts.seq ?? 100) + i,
      (opts.ts ?? 1000) + i * FRAME_SAMPLES,
      opts.ssrc ?? 0x5eed,
    );
    b.set(g711.subarray(i * FRAME_SAMPLES, (i + 1) * FRAME_SAMPLES), 12);
    out.push({ atUs: (opts.startUs ?? 0) + i * 20_000, payload: b });
  }
  return out;
}

/** One RFC 4733 digit: updates every 20 ms for `ms`, then three end packets, all with one timestamp. */
export function rtpDigit(
  digit: string,
  opts: { pt: number; atUs: number; ts: number; seq: number; ms?: number; ssrc?: number },
): PcapPacket[] {
  const out: PcapPacket[] = [];
  const steps = Math.round((opts.ms ?? 100) / 20);
  let seq = opts.seq;
  for (let i = 1; i <= steps + 3; i++) {
    const end = i > steps;
    const dur = Math.min(i, steps) * FRAME_SAMPLES;
    const b = Buffer.alloc(16);
    writeRtpHeader(b, opts.pt, i === 1, seq++, opts.ts, opts.ssrc ?? 0x5eed);
    telephoneEvent(digit, end, dur).copy(b, 12);
    out.push({
      atUs: opts.atUs + Math.min(i - 1, steps) * 20_000 + (end ? (i - steps - 1) * 1000 : 0),
      payload: b,
    });
  }
  return out;
}
