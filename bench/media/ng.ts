/**
 * rtpengine's ng control protocol over UDP: "<cookie> <bencoded dict>", the
 * reply echoes the cookie. A small client (for the bench) and a server that
 * puts Switchboard's MediaRelay behind the same protocol, so one driver
 * controls both relays the same way.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { MediaRelay } from '@switchboard/media-proxy';
import { decode, encode, type BValue } from './bencode';

type Dict = { [k: string]: BValue };

export class NgClient {
  private readonly sock: Socket;
  private readonly pending = new Map<string, (d: Dict) => void>();
  private constructor(
    private readonly host: string,
    private readonly port: number,
  ) {
    this.sock = createSocket('udp4');
    this.sock.on('message', (msg) => {
      const sp = msg.indexOf(0x20);
      if (sp < 0) return;
      const cookie = msg.toString('latin1', 0, sp);
      const done = this.pending.get(cookie);
      if (!done) return;
      this.pending.delete(cookie);
      done(decode(msg, sp + 1) as Dict);
    });
  }

  static async open(host: string, port: number): Promise<NgClient> {
    const c = new NgClient(host, port);
    await new Promise<void>((r) => c.sock.bind(0, '127.0.0.1', () => r()));
    return c;
  }

  /** One command; retried every 500 ms (UDP), failing after `attempts`. A result "error" throws. */
  async call(cmd: Dict, attempts = 10): Promise<Dict> {
    const cookie = randomBytes(6).toString('hex');
    const msg = Buffer.concat([Buffer.from(`${cookie} `), encode(cmd)]);
    const reply = new Promise<Dict>((resolve) => this.pending.set(cookie, resolve));
    for (let i = 0; i < attempts; i++) {
      this.sock.send(msg, this.port, this.host);
      const r = await Promise.race([
        reply,
        new Promise<undefined>((res) => setTimeout(() => res(undefined), 500)),
      ]);
      if (r) {
        if (r.result === 'error') throw new Error(`ng ${String(cmd.command)}: ${String(r['error-reason'])}`);
        return r;
      }
    }
    this.pending.delete(cookie);
    throw new Error(`ng ${String(cmd.command)}: no answer from ${this.host}:${this.port}`);
  }

  close(): void {
    this.sock.close();
  }
}

const str = (v: BValue | undefined): string => (typeof v === 'string' ? v : '');
const strs = (v: BValue | undefined): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** Serve ng offer/answer/delete/query/ping on a UDP port, backed by a MediaRelay. */
export async function serveNg(relay: MediaRelay, host: string, port: number): Promise<Socket> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const sp = msg.indexOf(0x20);
    if (sp < 0) return;
    const cookie = msg.toString('latin1', 0, sp);
    const reply = (d: Dict) =>
      sock.send(Buffer.concat([Buffer.from(`${cookie} `), encode(d)]), rinfo.port, rinfo.address);
    let req: Dict;
    try {
      req = decode(msg, sp + 1) as Dict;
    } catch (e) {
      return reply({ result: 'error', 'error-reason': (e as Error).message });
    }
    const common = {
      callId: str(req['call-id']),
      fromTag: str(req['from-tag']),
      viaBranch: str(req['via-branch']),
      sdp: str(req.sdp),
      flags: strs(req.flags),
      replace: strs(req.replace),
      direction: strs(req.direction),
      receivedFrom: '',
      transportProtocol: '',
      ice: str(req.ICE).toLowerCase(),
      rtcpMux: strs(req['rtcp-mux']),
    };
    const run = async (): Promise<Dict> => {
      switch (req.command) {
        case 'ping':
          return { result: 'pong' };
        case 'offer':
          return { result: 'ok', sdp: (await relay.offer({ ...common, toTag: str(req['to-tag']) })).sdp };
        case 'answer':
          return { result: 'ok', sdp: (await relay.answer({ ...common, toTag: str(req['to-tag']) })).sdp };
        case 'delete':
          await relay.delete({
            callId: common.callId,
            fromTag: common.fromTag,
            toTag: str(req['to-tag']),
            viaBranch: common.viaBranch,
            deleteDelay: 0,
          });
          return { result: 'ok' };
        case 'query': {
          const s = relay.query(common.callId);
          return {
            result: 'ok',
            totals: { RTP: { packets: s.rtp?.packets ?? 0, bytes: s.rtp?.bytes ?? 0 } },
          };
        }
        default:
          return { result: 'error', 'error-reason': `unknown command ${String(req.command)}` };
      }
    };
    run().then(reply, (e: unknown) => reply({ result: 'error', 'error-reason': (e as Error).message }));
  });
  await new Promise<void>((r) => sock.bind(port, host, () => r()));
  return sock;
}
