/** Runs SIPp (Debian `sip-tester`) for a test: bounded in time, loopback only. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SippResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Successful and failed calls from SIPp's statistics file. */
  successful: number;
  failed: number;
}

export interface SippProcess {
  /** Resolves when SIPp exits. */
  done: Promise<SippResult>;
  kill(): void;
}

/** Start sipp with the given arguments; `-stf` statistics and `-nostdin` are added. */
export function sipp(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): SippProcess {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const stf = join(dir, 'stats.csv');
  const child = spawn('sipp', [...args, '-nostdin', '-trace_stat', '-stf', stf, '-fd', '1'], {
    cwd: opts.cwd ?? dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const done = new Promise<SippResult>((resolve, reject) => {
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`sipp could not start (install Debian sip-tester): ${e.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      let successful = 0;
      let failed = 0;
      try {
        const file = readdirSync(dir).find((f) => f.startsWith('stats'));
        const lines = readFileSync(join(dir, file ?? 'stats.csv'), 'utf8')
          .trim()
          .split('\n');
        const head = lines[0].split(';');
        const last = lines[lines.length - 1].split(';');
        successful = Number(last[head.indexOf('SuccessfulCall(C)')]);
        failed = Number(last[head.indexOf('FailedCall(C)')]);
      } catch {
        // no statistics: SIPp failed before any call
      }
      resolve({ code, stdout, stderr, successful, failed });
    });
  });
  return { done, kill: () => child.kill('SIGKILL') };
}
