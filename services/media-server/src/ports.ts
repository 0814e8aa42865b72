/**
 * RTP port allocation in the configured range: even ports (RTP; the odd one
 * above is left for RTCP), handed out round-robin so a port just released is
 * not reused at once (late packets of the old call would land in the new one).
 */
import { createSocket, type Socket } from 'node:dgram';

export interface PortRange {
  min: number;
  max: number;
}

export interface BoundPorts {
  /** RTP on `port` */
  socket: Socket;
  /** RTCP on `port + 1` */
  rtcp: Socket;
  port: number;
}

async function bindOne(type: 'udp4' | 'udp6', host: string, port: number): Promise<Socket | undefined> {
  const socket = createSocket({ type });
  const ok = await new Promise<boolean>((resolve) => {
    socket.once('error', () => resolve(false));
    socket.bind(port, host, () => resolve(true));
  });
  if (ok) {
    socket.removeAllListeners('error');
    return socket;
  }
  try {
    socket.close();
  } catch {
    // never bound
  }
  return undefined;
}

export class PortAllocator {
  private next: number;
  private readonly inUse = new Set<number>();
  constructor(
    private readonly range: PortRange,
    start?: number,
  ) {
    if (range.max - range.min < 1) throw new Error(`RTP port range ${range.min}-${range.max} is too small`);
    this.next = start ?? range.min;
  }

  get active(): number {
    return this.inUse.size;
  }

  /** Candidate ports to try, in order: every even port of the range once. */
  *candidates(): Generator<number> {
    const first = this.range.min + (this.range.min & 1);
    const count = Math.floor((this.range.max - first) / 2) + 1;
    let p = this.next;
    for (let i = 0; i < count; i++) {
      if (p < first || p > this.range.max) p = first;
      p += p & 1;
      if (p > this.range.max) p = first;
      const port = p;
      p += 2;
      this.next = p;
      if (!this.inUse.has(port)) yield port;
    }
  }

  /** Binds a UDP socket on the first free even port; rejects when the range is exhausted. */
  /** Binds RTP on the first free even port and RTCP on the odd one above; rejects when the range is exhausted. */
  async bind(host: string): Promise<BoundPorts> {
    const type = host.includes(':') ? 'udp6' : 'udp4';
    for (const port of this.candidates()) {
      if (port + 1 > this.range.max + 1) continue;
      const rtp = await bindOne(type, host, port);
      if (!rtp) continue;
      const rtcp = await bindOne(type, host, port + 1);
      if (!rtcp) {
        rtp.close();
        continue;
      }
      this.inUse.add(port);
      return { socket: rtp, rtcp, port };
    }
    throw new Error(`no free RTP port in ${this.range.min}-${this.range.max}`);
  }

  release(port: number): void {
    this.inUse.delete(port);
  }
}
