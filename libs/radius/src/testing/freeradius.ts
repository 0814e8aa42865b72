/**
 * Test and benchmark helper: a FreeRADIUS 3 (Debian's `freeradius`) accounting
 * server from a generated minimal config directory: one accounting listener on
 * loopback, one client, the `detail` module writing every Accounting-Request to
 * a file, Status-Server answered, and this package's SIP and Switchboard
 * dictionaries $INCLUDEd (so FreeRADIUS loading them is tested too).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DICTIONARY_DIR } from '../dictionary';

export const FREERADIUS_BIN = '/usr/sbin/freeradius';

export interface FreeRadiusOptions {
  port: number;
  secret: string;
  /** Client address allowed (CIDR); default 127.0.0.0/8. */
  client?: string;
  /** Worker threads (default 4). */
  threads?: number;
}

export interface FreeRadiusServer {
  readonly dir: string;
  readonly port: number;
  readonly detailFile: string;
  readonly process: ChildProcess;
  /** What FreeRADIUS printed (stdout and stderr), for failure messages. */
  output(): string;
  detail(): string;
  stop(): Promise<void>;
}

export const FREERADIUS_DICTDIR = '/usr/share/freeradius';

/**
 * Writes `dir/dictionary` for FreeRADIUS tools (`freeradius`, `radclient -D dir`):
 * FreeRADIUS's own dictionary with every $INCLUDE made absolute, except
 * dictionary.columbia_university (its vendor attributes take the names
 * Sip-Method and Sip-Translated-Request-URI, which is why FreeRADIUS leaves
 * dictionary.openser out), then this package's dictionary.sip and
 * dictionary.switchboard.
 */
export function writeFreeRadiusDictionary(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const base = readFileSync(join(FREERADIUS_DICTDIR, 'dictionary'), 'utf8')
    .split('\n')
    .filter((l) => !/^\$INCLUDE\s+dictionary\.columbia_university\s*$/.test(l))
    .map((l) => l.replace(/^\$INCLUDE\s+(?!\/)(\S+)/, `$INCLUDE ${FREERADIUS_DICTDIR}/$1`))
    .join('\n');
  const file = join(dir, 'dictionary');
  writeFileSync(
    file,
    `${base}\n# Switchboard\n$INCLUDE ${join(DICTIONARY_DIR, 'dictionary.sip')}\n$INCLUDE ${join(DICTIONARY_DIR, 'dictionary.switchboard')}\n`,
  );
  return dir;
}

/** Writes the config directory (its dictionaries under dir/dict). */
export function writeFreeRadiusConfig(dir: string, o: FreeRadiusOptions): void {
  for (const d of ['log', 'run', 'radacct']) mkdirSync(join(dir, d), { recursive: true });
  const threads = o.threads ?? 4;
  writeFreeRadiusDictionary(join(dir, 'dict'));
  writeFileSync(
    join(dir, 'radiusd.conf'),
    `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
raddbdir = ${dir}
confdir = ${dir}
logdir = ${dir}/log
radacctdir = ${dir}/radacct
run_dir = ${dir}/run
db_dir = ${dir}
libdir = /usr/lib/freeradius
name = freeradius
pidfile = \${run_dir}/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {
  destination = stderr
  colourise = no
  auth = no
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = yes
  allow_vulnerable_openssl = yes
}
thread pool {
  start_servers = ${threads}
  max_servers = ${threads}
  min_spare_servers = 1
  max_spare_servers = ${threads}
  max_requests_per_server = 0
}
client local {
  ipaddr = ${o.client ?? '127.0.0.0/8'}
  secret = ${o.secret}
  require_message_authenticator = no
}
modules {
  detail {
    filename = \${radacctdir}/detail
    escape_filenames = no
    permissions = 0600
    header = "%t"
    locking = no
  }
}
server default {
  listen {
    type = acct
    ipaddr = 127.0.0.1
    port = ${o.port}
    recv_buff = 4194304
  }
  preacct {
  }
  accounting {
    detail
  }
  authorize {
  }
  authenticate {
  }
}
`,
  );
}

/**
 * Starts FreeRADIUS in the foreground on 127.0.0.1:port and resolves once it
 * answers a Status-Server-less probe: once it says "Ready to process requests".
 */
export async function startFreeRadius(
  o: FreeRadiusOptions & { dir?: string; timeoutMs?: number },
): Promise<FreeRadiusServer> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'freeradius-'));
  writeFreeRadiusConfig(dir, o);
  const child = spawn(
    FREERADIUS_BIN,
    ['-f', '-d', dir, '-D', join(dir, 'dict'), '-l', 'stdout', '-n', 'radiusd'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const detailFile = join(dir, 'radacct', 'detail');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`FreeRADIUS did not start within ${o.timeoutMs ?? 15000} ms:\n${out}`));
    }, o.timeoutMs ?? 15000);
    const check = () => {
      if (/Ready to process requests/.test(out)) {
        clearTimeout(deadline);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`FreeRADIUS exited (${code}) while starting:\n${out}`));
    });
  });
  return {
    dir,
    port: o.port,
    detailFile,
    process: child,
    output: () => out,
    detail: () => (existsSync(detailFile) ? readFileSync(detailFile, 'utf8') : ''),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!o.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
