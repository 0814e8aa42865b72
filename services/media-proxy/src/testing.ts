/**
 * Test and bench helpers: G.711 RTP and RTCP packet builders, SDP bodies, and
 * a UDP peer that queues what it receives.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';

/** A G.711 u-law RTP packet (payload type 0), 20 ms = 160 bytes of payload by default. */
export function rtpPacket(seq: number, ts: number, ssrc: number, payloadBytes = 160, pt = 0): Buffer {
  const b = Buffer.alloc(12 + payloadBytes, 0xff);
  b[0] = 0x80;
  b[1] = pt & 0x7f;
  b.writeUInt16BE(seq & 0xffff, 2);
  b.writeUInt32BE(ts >>> 0, 4);
  b.writeUInt32BE(ssrc >>> 0, 8);
  return b;
}

export interface ReportBlock {
  ssrc: number;
  fractionLost: number; // 0..255
  cumulativeLost: number;
  highestSeq: number;
  jitter: number; // timestamp units
  lsr: number;
  dlsr: number;
}

/** An RTCP receiver report (RFC 3550 §6.4.2) with one report block. */
export function rtcpRR(senderSsrc: number, block: ReportBlock): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x81; // V=2, RC=1
  b[1] = 201;
  b.writeUInt16BE(32 / 4 - 1, 2);
  b.writeUInt32BE(senderSsrc >>> 0, 4);
  b.writeUInt32BE(block.ssrc >>> 0, 8);
  b[12] = block.fractionLost;
  b[13] = (block.cumulativeLost >> 16) & 0xff;
  b[14] = (block.cumulativeLost >> 8) & 0xff;
  b[15] = block.cumulativeLost & 0xff;
  b.writeUInt32BE(block.highestSeq >>> 0, 16);
  b.writeUInt32BE(block.jitter >>> 0, 20);
  b.writeUInt32BE(block.lsr >>> 0, 24);
  b.writeUInt32BE(block.dlsr >>> 0, 28);
  return b;
}

export interface SdpOptions {
  sessionVersion?: number;
  direction?: 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';
  rtcpMux?: boolean;
  ice?: boolean;
}

/** An audio offer/answer for one G.711 stream. */
export function audioSdp(address: string, port: number, o: SdpOptions = {}): string {
  const ip = address.includes(':') ? 'IP6' : 'IP4';
  const lines = [
    'v=0',
    `o=- 1000 ${o.sessionVersion ?? 1} IN ${ip} ${address}`,
    's=-',
    `c=IN ${ip} ${address}`,
    't=0 0',
    `m=audio ${port} RTP/AVP 0 101`,
    'a=rtpmap:0 PCMU/8000',
    'a=rtpmap:101 telephone-event/8000',
    ...(o.rtcpMux ? ['a=rtcp-mux'] : []),
    ...(o.ice
      ? [
          'a=ice-ufrag:abcd',
          'a=ice-pwd:0123456789abcdefghijkl',
          `a=candidate:1 1 UDP 2130706431 ${address} ${port} typ host`,
        ]
      : []),
    `a=${o.direction ?? 'sendrecv'}`,
  ];
  return lines.join('\r\n') + '\r\n';
}

/** The first m= port and c= address of an SDP body (what a UA would send to). */
export function target(sdp: string): { address: string; port: number } {
  const c = /^c=IN IP[46] (\S+)/m.exec(sdp);
  const m = /^m=\S+ (\d+)/m.exec(sdp);
  if (!c || !m) throw new Error(`no c=/m= in ${sdp}`);
  return { address: c[1]!, port: Number(m[1]) };
}

export interface Received {
  msg: Buffer;
  from: RemoteInfo;
}

/** A UDP socket that queues what it receives; next() waits for the next datagram. */
export class UdpPeer {
  readonly queue: Received[] = [];
  private waiters: ((r: Received) => void)[] = [];
  private constructor(readonly sock: Socket) {
    sock.on('message', (msg, from) => {
      const w = this.waiters.shift();
      if (w) w({ msg, from });
      else this.queue.push({ msg, from });
    });
  }

  static async open(address = '127.0.0.1', port = 0): Promise<UdpPeer> {
    const sock = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, address, () => resolve());
    });
    return new UdpPeer(sock);
  }

  get port(): number {
    return this.sock.address().port;
  }
  get address(): string {
    return this.sock.address().address;
  }

  send(msg: Buffer, to: { address: string; port: number }): Promise<void> {
    return new Promise((resolve, reject) =>
      this.sock.send(msg, to.port, to.address, (e) => (e ? reject(e) : resolve())),
    );
  }

  next(): Promise<Received> {
    const r = this.queue.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.sock.close();
  }
}

/** Wait (yielding to I/O) until cond holds. Bounded by the test's own timeout. */
export async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}
