/**
 * RFC 3665 flows: run one SIPp UA per checked-in scenario (scenarios/*.xml)
 * with its message log on, and read back every message it sent and received,
 * parsed by the SIP stack, so a test asserts the ladder each side saw.
 */
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { parseMessage, type SipMessage, type SipRequest, type SipResponse } from '@switchboard/sip';
import { freePort } from '@switchboard/platform/testing';
import { sipp, type SippResult } from '../lib/sipp';

export { freePort };

export const SCENARIOS = new URL('./scenarios/', import.meta.url).pathname;

export interface Logged {
  dir: 'sent' | 'recv';
  msg: SipMessage;
}

/**
 * Parse a SIPp `-trace_msg` log: blocks of `----- date`, a line
 * `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank
 * line, then the N bytes of the message.
 */
export function readMessageLog(file: string, partial = false): Logged[] {
  if (!existsSync(file)) return [];
  const buf = readFileSync(file);
  const text = buf.toString('latin1');
  const out: Logged[] = [];
  const head = /^\w+ message (sent|received) (?:\((\d+) bytes\)|\[(\d+)\] bytes ?):\n\n/gm;
  let m: RegExpExecArray | null;
  while ((m = head.exec(text))) {
    const start = m.index + m[0].length;
    const len = Number(m[2] ?? m[3]);
    // While SIPp runs (peek), the last message may not be all written yet.
    if (partial && start + len > buf.length) break;
    const raw = buf.subarray(start, start + len);
    out.push({ dir: m[1] === 'sent' ? 'sent' : 'recv', msg: parseMessage(raw) });
  }
  return out;
}

/** `> INVITE`, `< 407`: the ladder as one side saw it (`>` sent, `<` received). */
export function ladder(log: Logged[]): string[] {
  return log.map(
    (l) =>
      `${l.dir === 'sent' ? '>' : '<'} ${l.msg.isRequest ? (l.msg as SipRequest).method : (l.msg as SipResponse).status}`,
  );
}

/** The first message of a side matching a ladder entry like `< 200` or `> BYE` (after `skip` matches). */
export function pick<T extends SipMessage = SipMessage>(log: Logged[], entry: string, skip = 0): T {
  const i = ladder(log).reduce<number[]>((acc, e, k) => (e === entry ? [...acc, k] : acc), [])[skip];
  if (i === undefined) throw new Error(`no "${entry}" (#${skip}) in ${JSON.stringify(ladder(log))}`);
  return log[i].msg as T;
}

export interface UaRun {
  result: SippResult;
  log: Logged[];
  /** SIPp's own error log (unexpected messages and the like), for assertion messages. */
  errors: string;
}

export interface Ua {
  port: number;
  done: Promise<UaRun>;
  /** The messages logged so far, while SIPp runs (a test acting during the call, e.g. sending RTP). */
  peek(): Logged[];
  kill(): void;
}

/** Wait (polling a running UA's log) for the first message matching a ladder entry like `< 200`. */
export async function waitFor<T extends SipMessage = SipMessage>(
  u: Ua,
  entry: string,
  timeoutMs = 10_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const log = u.peek();
    if (ladder(log).includes(entry)) return pick<T>(log, entry);
    if (Date.now() > until)
      throw new Error(`no "${entry}" within ${timeoutMs} ms: ${JSON.stringify(ladder(log))}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Run one SIPp UA: `scenario` is a file in scenarios/, `keys` become `-key`
 * keywords ([user], [dom]...), the UA binds 127.0.0.1:`port` and talks to
 * `remote` (omitted for a UAS). One call, bounded by `timeoutMs`.
 */
export async function ua(
  scenario: string,
  o: {
    remote?: { host: string; port: number };
    keys?: Record<string, string | number>;
    port?: number;
    timeoutMs?: number;
    args?: string[];
  },
): Promise<Ua> {
  const port = o.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'rfc3665-'));
  const logFile = join(dir, 'messages.log');
  const errFile = join(dir, 'errors.log');
  const timeoutMs = o.timeoutMs ?? 15_000;
  const args = [
    '-sf',
    isAbsolute(scenario) ? scenario : join(SCENARIOS, scenario),
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-m',
    '1',
    '-timeout',
    `${Math.ceil(timeoutMs / 1000)}s`,
    '-timeout_error',
    '-trace_msg',
    '-message_file',
    logFile,
    '-trace_err',
    '-error_file',
    errFile,
    ...Object.entries(o.keys ?? {}).flatMap(([k, v]) => ['-key', k, String(v)]),
    ...(o.args ?? []),
    ...(o.remote ? [`${o.remote.host}:${o.remote.port}`] : []),
  ];
  const p = sipp(args, { timeoutMs: timeoutMs + 5000, cwd: dir });
  let finished = false;
  return {
    port,
    kill: p.kill,
    peek: () => (finished ? [] : readMessageLog(logFile, true)),
    done: p.done.then((result) => {
      finished = true;
      const run = {
        result,
        log: readMessageLog(logFile),
        errors: existsSync(errFile) ? readFileSync(errFile, 'utf8').slice(-3000) : '',
      };
      rmSync(dir, { recursive: true, force: true });
      return run;
    }),
  };
}

/** Assertion message context: both ladders and SIPp's errors. */
export function explain(...runs: UaRun[]): string {
  return runs
    .map(
      (r, i) =>
        `UA ${i}: ${JSON.stringify(ladder(r.log))} ok=${r.result.successful} failed=${r.result.failed}\n${r.errors}${r.result.stderr.slice(-1000)}`,
    )
    .join('\n');
}
