/**
 * baresip (Debian `baresip`) in a network namespace, set up without a terminal
 * or a sound card: a config dir of its own (g711, the test tone played from a
 * file by `aufile`, the received audio dropped into `aubridge` and recorded by
 * `sndfile`), one account with digest credentials and an outbound proxy, and
 * the `ctrl_tcp` module: JSON commands and events as netstrings over TCP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { MEDIA_PORTS } from './netns';

export interface BaresipEvent {
  event?: boolean;
  response?: boolean;
  class?: string;
  type?: string;
  param?: string;
  ok?: boolean;
  data?: string;
  token?: string;
  [k: string]: unknown;
}

export interface BaresipOptions {
  dir: string;
  ns: string;
  ip: string;
  user: string;
  password: string;
  domain: string;
  /** `sip:host:port`, the outbound proxy. */
  proxy: string;
  controlPort: number;
  /** Where the test reaches the control port (the router's public address, DNAT to the UA). */
  controlHost: string;
  /** WAV file (8 kHz, mono, s16) played as the microphone. */
  tone: string;
}

export class Baresip {
  readonly events: BaresipEvent[] = [];
  output = '';
  private child?: ChildProcess;
  private sock?: Socket;
  private buf = Buffer.alloc(0);
  private waiters: Array<{ match: (e: BaresipEvent) => boolean; resolve: (e: BaresipEvent) => void }> = [];
  private token = 0;

  constructor(readonly o: BaresipOptions) {}

  /** Write the config dir and start baresip in its namespace; resolves once the control port answers. */
  async start(): Promise<void> {
    const o = this.o;
    mkdirSync(join(o.dir, 'rec'), { recursive: true });
    writeFileSync(
      join(o.dir, 'config'),
      [
        'poll_method epoll',
        `sip_listen ${o.ip}:5060`,
        'call_local_timeout 60',
        `audio_source aufile,${o.tone}`,
        'audio_player aubridge,nil',
        'audio_alert aubridge,nil',
        'rtp_stats yes',
        `rtp_ports ${MEDIA_PORTS.min}-${MEDIA_PORTS.max}`,
        'module_path /usr/lib/baresip/modules',
        'module g711.so',
        'module aufile.so',
        'module aubridge.so',
        'module sndfile.so',
        'module_tmp account.so',
        'module_app menu.so',
        'module_app ctrl_tcp.so',
        `ctrl_tcp_listen ${o.ip}:${o.controlPort}`,
        `snd_path ${join(o.dir, 'rec')}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(o.dir, 'accounts'),
      `<sip:${o.user}@${o.domain}>;auth_user=${o.user};auth_pass=${o.password};outbound="${o.proxy}";regint=60;answermode=auto;audio_codecs=pcmu;ptime=20\n`,
    );
    writeFileSync(join(o.dir, 'contacts'), '');
    this.child = spawn('ip', ['netns', 'exec', o.ns, 'baresip', '-f', o.dir, '-v', '-s'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-200_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        this.sock = await new Promise<Socket>((resolve, reject) => {
          const s = connect(o.controlPort, o.controlHost);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        break;
      } catch (e) {
        if (Date.now() > deadline || this.child.exitCode !== null)
          throw new Error(
            `baresip ${o.user}: control port never answered (${(e as Error).message})\n${this.output.slice(-3000)}`,
          );
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.sock.on('data', (d) => this.onData(d));
    this.sock.on('error', () => {});
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const colon = this.buf.indexOf(':');
      if (colon < 0) return;
      const len = Number(this.buf.subarray(0, colon).toString());
      if (this.buf.length < colon + 1 + len + 1) return;
      const body = this.buf.subarray(colon + 1, colon + 1 + len).toString();
      this.buf = this.buf.subarray(colon + 2 + len);
      let e: BaresipEvent;
      try {
        e = JSON.parse(body) as BaresipEvent;
      } catch {
        continue;
      }
      this.events.push(e);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(e)) return true;
        w.resolve(e);
        return false;
      });
    }
  }

  /** The first event (past or future) matching, or a rejection after `ms` naming what was seen. */
  waitFor(match: (e: BaresipEvent) => boolean, what: string, ms = 15_000): Promise<BaresipEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `baresip ${this.o.user}: no ${what} in ${ms} ms; events: ${JSON.stringify(this.events.map((x) => x.type ?? x.data))}\n${this.output.slice(-4000)}`,
          ),
        );
      }, ms);
      const done = (e: BaresipEvent) => {
        clearTimeout(t);
        resolve(e);
      };
      this.waiters.push({ match, resolve: done });
    });
  }

  waitEvent(type: string, ms?: number): Promise<BaresipEvent> {
    return this.waitFor((e) => e.event === true && e.type === type, type, ms);
  }

  /** Send a command (`dial`, `hangup` ...) and wait for its response. */
  async command(command: string, params = ''): Promise<BaresipEvent> {
    const token = `t${++this.token}`;
    const body = Buffer.from(JSON.stringify({ command, params, token }));
    this.sock!.write(Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]));
    return this.waitFor((e) => e.response === true && e.token === token, `response to ${command}`, 5000);
  }

  /** The UA vanishes: SIGKILL, no BYE, no unREGISTER. */
  async kill(): Promise<void> {
    this.sock?.destroy();
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    this.sock?.destroy();
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}
