/**
 * The media server behind the proxy, end to end: the platform as `npm start`
 * runs it (every service in one process, the proxy finding the media server
 * in the same process), provisioned through the portal's API, with SIPp
 * phones whose SDP names an RTP socket of the test (what they hear) while
 * what they say comes from SIPp's pcap play.
 */
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { grpcClient } from '@switchboard/platform';
import { MediaServerClient } from '@switchboard/proto/mediaserver';
import type { SipResponse } from '@switchboard/sip';
import type { RunningPlatform } from '../lib/platform';
import { register } from '../lib/ua';
import { freePort, ua, type Ua, type UaRun } from '../rfc3665/lib';
import { decode } from '../../services/media-server/src/g711';
import { parseRtp, writeRtpHeader, type RtpHeader } from '../../services/media-server/src/rtp';
import { encode } from '../../services/media-server/src/g711';

export { rtpAudio, rtpDigit, writePcap } from '../../services/media-server/src/testing/pcap';
export { dominant, goertzel, tone } from '../../services/media-server/src/tone';
export { readWav, writeWav } from '../../services/media-server/src/wav';

export const SCENARIOS = new URL('./scenarios/', import.meta.url).pathname;

export interface Sub {
  username: string;
  password: string;
}

/** Directories the media server is started with (prompts generated into the first at start). */
export function mediaDirs() {
  const root = mkdtempSync(join(tmpdir(), 'sb-e2e-media-'));
  const prompts = join(root, 'prompts');
  const voicemail = join(root, 'voicemail');
  mkdirSync(prompts);
  mkdirSync(voicemail);
  return { root, prompts, voicemail };
}

/**
 * A phone registered as `user` running `scenario` (a UAS): the REGISTER is
 * sent from the very port SIPp then binds, so the registrar's `received`
 * (where the media server sends unsolicited NOTIFYs) is the phone.
 */
export async function registeredPhone(
  p: RunningPlatform,
  user: Sub,
  scenario: string,
  o: { port?: number; timeoutMs?: number; register?: boolean } = {},
): Promise<Ua> {
  const port = o.port ?? (await freePort());
  if (o.register !== false) {
    const res: SipResponse = await register({
      proxy: p.sip.udp,
      user: user.username,
      password: user.password,
      domain: p.domain,
      contact: `sip:${user.username}@127.0.0.1:${port}`,
      expires: 600,
      localPort: port,
    });
    assert.equal(res.status, 200, `REGISTER ${user.username}: ${res.status}`);
  }
  return ua(join(SCENARIOS, scenario), { port, timeoutMs: o.timeoutMs ?? 20_000 });
}

/**
 * A subscriber's call to `callee` through the proxy (scenarios/caller.xml):
 * its SDP names `rtpPort`; answered, it listens `greetMs`, plays `pcap` from
 * SIPp's media port, talks `talkMs`, hangs up (or takes the server's BYE).
 */
export async function mediaCall(
  p: RunningPlatform,
  from: Sub,
  callee: string,
  o: { rtpPort: number; pcap: Buffer; greetMs?: number; talkMs?: number; timeoutMs?: number },
): Promise<Ua> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-e2e-media-call-'));
  const pcap = join(dir, 'say.pcap');
  writeFileSync(pcap, o.pcap);
  const file = join(dir, 'caller.xml');
  writeFileSync(
    file,
    readFileSync(join(SCENARIOS, 'caller.xml'), 'utf8')
      .replace('{greet}', String(o.greetMs ?? 500))
      .replace('{talk}', String(o.talkMs ?? 500))
      .replace('{pcap}', pcap),
  );
  return ua(file, {
    remote: p.sip.udp,
    keys: { user: from.username, callee, dom: p.domain, rtp_port: o.rtpPort },
    args: ['-au', from.username, '-ap', from.password, '-mp', String(await freePort())],
    timeoutMs: o.timeoutMs ?? 30_000,
  });
}

/** A SUBSCRIBE for the subscriber's own message summary through the proxy (scenarios/subscribe.xml). */
export async function subscribeMwi(p: RunningPlatform, who: Sub): Promise<UaRun> {
  const u = await ua(join(SCENARIOS, 'subscribe.xml'), {
    remote: p.sip.udp,
    keys: { user: who.username, dom: p.domain },
    args: ['-au', who.username, '-ap', who.password],
    timeoutMs: 15_000,
  });
  return u.done;
}

export interface RtpPacket {
  seq: number;
  ts: number;
  pt: number;
  payload: Buffer;
  from: string;
  at: number;
}

/**
 * A symmetric RTP endpoint of the test: keeps what it receives (with the
 * source), and can talk back (a tone, 20 ms PCMU packets) to whoever sent to it.
 */
export async function rtpEndpoint() {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const packets: RtpPacket[] = [];
  const h: RtpHeader = {
    payloadType: 0,
    marker: false,
    seq: 0,
    timestamp: 0,
    ssrc: 0,
    payloadStart: 0,
    payloadEnd: 0,
  };
  let peer: { address: string; port: number } | undefined;
  let firstPeer: () => void = () => {};
  const peerKnown = new Promise<void>((r) => (firstPeer = r));
  sock.on('message', (b, rinfo) => {
    if (!parseRtp(b, h)) return;
    if (!peer) {
      peer = { address: rinfo.address, port: rinfo.port };
      firstPeer();
    }
    packets.push({
      seq: h.seq,
      ts: h.timestamp,
      pt: h.payloadType,
      payload: Buffer.from(b.subarray(h.payloadStart, h.payloadEnd)),
      from: `${rinfo.address}:${rinfo.port}`,
      at: Date.now(),
    });
  });
  let timer: NodeJS.Timeout | undefined;
  return {
    port: (sock.address() as { port: number }).port,
    packets,
    /** The audio received (PCMU packets only, in arrival order). */
    heard(from = 0): Int16Array {
      const pcmu = packets.slice(from).filter((x) => x.pt === 0);
      return decode(Buffer.concat(pcmu.map((x) => x.payload)), 'pcmu');
    },
    /** Once something arrived, send `pcm` back to its source in real time (20 ms frames). */
    async talk(pcm: Int16Array, ssrc: number): Promise<void> {
      await peerKnown;
      const g711 = encode(pcm, 'pcmu');
      let i = 0;
      const start = Date.now();
      await new Promise<void>((done) => {
        const tick = () => {
          // Catch up to the wall clock: every frame due by now goes out.
          while (i * 160 < g711.length && i * 20 <= Date.now() - start) {
            const b = Buffer.alloc(12 + 160);
            writeRtpHeader(b, 0, i === 0, (1000 + i) & 0xffff, i * 160, ssrc);
            Buffer.from(g711.subarray(i * 160, i * 160 + 160)).copy(b, 12);
            sock.send(b, peer!.port, peer!.address);
            i++;
          }
          if (i * 160 >= g711.length) return done();
          timer = setTimeout(tick, 10);
        };
        tick();
      });
    },
    close() {
      clearTimeout(timer);
      sock.close();
    },
  };
}

/** The media server's voicemail view (gRPC proto/mediaserver.proto), from the platform's endpoints. */
export function mediaServerClient(p: RunningPlatform) {
  const e = p.proc.endpoints.find((x) => x.service === 'media-server' && x.name === 'gRPC');
  assert.ok(e, 'the media server has a gRPC endpoint');
  return grpcClient(MediaServerClient, e.url.replace('grpc://', ''));
}

/** Polls `f` until it returns a value (not undefined), or fails after `ms`. */
export async function eventually<T>(f: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
