/**
 * Runs one SIPp user agent of the whole-platform scenarios (scenarios/*.xml):
 * message and error logs kept for assertions, rtp.pcap beside it for the
 * scenarios that talk, bounded in time. Used by the whole-platform tests and bench/soak.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { sipp, type SippResult } from '../lib/sipp';
import { rtpPcap } from './rtp-pcap';

export const SCENARIOS = new URL('./scenarios/', import.meta.url).pathname;

export interface UaOptions {
  /** register.xml, caller.xml or callee.xml (or another file in scenarios/), or an absolute path. */
  scenario: string;
  /** SIP port the UA binds on 127.0.0.1. */
  port: number;
  /** RTP port (SIPp -mp) for the scenarios that talk. */
  mediaPort?: number;
  /** The proxy, for a UA that sends first. */
  remote?: { host: string; port: number };
  keys?: Record<string, string>;
  auth?: { user: string; password: string };
  /** Calls (or registrations) to make / take, and the rate per second (default 1 and 10). */
  calls?: number;
  rate?: number;
  /** Most at once (SIPp -l). */
  limit?: number;
  /** The caller's talk time before BYE (SIPp -d). */
  talkMs?: number;
  /** RTP packets each side plays (20 ms each); default 50. */
  rtpPackets?: number;
  /** SIPp injection file contents (-inf), e.g. one user;password per line. */
  inf?: string;
  /** Keep the message log (default true; off for load). */
  trace?: boolean;
  timeoutMs?: number;
  extraArgs?: string[];
}

export interface UaRun {
  result: SippResult;
  /** SIPp's message log (every message sent and received), when traced. */
  messages: string;
  /** SIPp's error log and the end of its stderr. */
  errors: string;
}

export interface RunningUa {
  done: Promise<UaRun>;
  kill(): void;
}

export function runUa(o: UaOptions): RunningUa {
  const dir = mkdtempSync(join(tmpdir(), 'sb-whole-ua-'));
  const messageFile = join(dir, 'messages.log');
  const errorFile = join(dir, 'errors.log');
  const timeoutMs = o.timeoutMs ?? 30_000;
  if (o.mediaPort !== undefined) writeFileSync(join(dir, 'rtp.pcap'), rtpPcap(o.rtpPackets ?? 50));
  if (o.inf !== undefined) writeFileSync(join(dir, 'users.csv'), `SEQUENTIAL\n${o.inf}`);
  const trace = o.trace ?? true;
  const args = [
    '-sf',
    isAbsolute(o.scenario) ? o.scenario : join(SCENARIOS, o.scenario),
    '-i',
    '127.0.0.1',
    '-p',
    String(o.port),
    ...(o.mediaPort !== undefined ? ['-mi', '127.0.0.1', '-mp', String(o.mediaPort)] : []),
    '-m',
    String(o.calls ?? 1),
    '-r',
    String(o.rate ?? 10),
    ...(o.limit !== undefined ? ['-l', String(o.limit)] : []),
    ...(o.talkMs !== undefined ? ['-d', String(o.talkMs)] : []),
    ...(o.auth ? ['-au', o.auth.user, '-ap', o.auth.password] : []),
    ...(o.inf !== undefined ? ['-inf', join(dir, 'users.csv')] : []),
    '-timeout',
    `${Math.ceil(timeoutMs / 1000)}s`,
    '-timeout_error',
    ...(trace ? ['-trace_msg', '-message_file', messageFile] : []),
    '-trace_err',
    '-error_file',
    errorFile,
    ...Object.entries(o.keys ?? {}).flatMap(([k, v]) => ['-key', k, v]),
    ...(o.extraArgs ?? []),
    ...(o.remote ? [`${o.remote.host}:${o.remote.port}`] : []),
  ];
  const p = sipp(args, { timeoutMs: timeoutMs + 5000, cwd: dir });
  return {
    kill: p.kill,
    done: p.done.then((result) => {
      const run = {
        result,
        messages: existsSync(messageFile) ? readFileSync(messageFile, 'latin1') : '',
        errors:
          (existsSync(errorFile) ? readFileSync(errorFile, 'utf8').slice(-3000) : '') +
          result.stderr.slice(-1000),
      };
      rmSync(dir, { recursive: true, force: true });
      return run;
    }),
  };
}

/** The Call-ID of the first INVITE in a SIPp message log. */
export function inviteCallId(messages: string): string | undefined {
  const at = messages.search(/^INVITE /m);
  if (at < 0) return undefined;
  return /^Call-ID:\s*(.+?)\s*$/im.exec(messages.slice(at))?.[1];
}

/** The m=audio ports of every SDP in a SIPp message log that the UA received. */
export function receivedAudioPorts(messages: string): number[] {
  return messages
    .split(/^-{5,}.*$/m)
    .filter((b) => /message received/.test(b))
    .flatMap((b) => [...b.matchAll(/^m=audio (\d+) /gm)].map((m) => Number(m[1])));
}
