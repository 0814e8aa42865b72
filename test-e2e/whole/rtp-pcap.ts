/**
 * A pcap file of one RTP stream (PCMU silence, 20 ms packets) for SIPp's
 * `play_pcap_audio`, which replays the UDP payloads with the capture's timing
 * from its media port to the address in the peer's SDP.
 */
export function rtpPcap(packets: number, ssrc = 0x5b0a4d01): Buffer {
  const parts: Buffer[] = [];
  const g = Buffer.alloc(24);
  g.writeUInt32LE(0xa1b2c3d4, 0);
  g.writeUInt16LE(2, 4);
  g.writeUInt16LE(4, 6);
  g.writeUInt32LE(65535, 16);
  g.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  parts.push(g);
  const base = 1_700_000_000;
  for (let i = 0; i < packets; i++) {
    const rtp = Buffer.alloc(12 + 160, 0xff); // 0xff: PCMU silence
    rtp[0] = 0x80;
    rtp[1] = 0; // PT 0 (PCMU)
    rtp.writeUInt16BE(i & 0xffff, 2);
    rtp.writeUInt32BE((i * 160) >>> 0, 4);
    rtp.writeUInt32BE(ssrc >>> 0, 8);
    const atUs = i * 20_000;
    const frameLen = 14 + 20 + 8 + rtp.length;
    const rec = Buffer.alloc(16 + frameLen);
    rec.writeUInt32LE(base + Math.floor(atUs / 1e6), 0);
    rec.writeUInt32LE(atUs % 1e6, 4);
    rec.writeUInt32LE(frameLen, 8);
    rec.writeUInt32LE(frameLen, 12);
    const f = 16;
    rec.writeUInt16BE(0x0800, f + 12);
    const ip = f + 14;
    rec[ip] = 0x45;
    rec.writeUInt16BE(20 + 8 + rtp.length, ip + 2);
    rec[ip + 8] = 64;
    rec[ip + 9] = 17;
    rec.set([127, 0, 0, 1], ip + 12);
    rec.set([127, 0, 0, 1], ip + 16);
    let sum = 0;
    for (let k = 0; k < 20; k += 2) sum += rec.readUInt16BE(ip + k);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    rec.writeUInt16BE(~sum & 0xffff, ip + 10);
    const udp = ip + 20;
    rec.writeUInt16BE(6000, udp);
    rec.writeUInt16BE(6002, udp + 2);
    rec.writeUInt16BE(8 + rtp.length, udp + 4);
    rtp.copy(rec, udp + 8);
    parts.push(rec);
  }
  return Buffer.concat(parts);
}
