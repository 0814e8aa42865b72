/**
 * bench/proxy: the Switchboard SIP proxy against Kamailio (Debian `kamailio`,
 * bench/peers/kamailio/kamailio.cfg), the same SIPp scenarios
 * (bench/proxy/scenarios) driving each in turn on loopback:
 *
 *   calls/s     INVITE/100/180/200/ACK/BYE/200 through the proxy to a registered
 *               SIPp UAS, at increasing rates: the highest rate with under 0.1%
 *               failed calls;
 *   REGISTER/s  digest-authenticated refreshes (REGISTER, 401, REGISTER, 200)
 *               for BENCH_USERS subscribers, same rule.
 *
 * Each step runs BENCH_STEP_S seconds (default 10). Prints every step (with the
 * system's CPU time per successful call or registration: user + system of its
 * processes and threads, from /proc), both systems' figures and the ratios.
 * `node --import tsx bench/proxy/run.ts`
 *
 * Env: BENCH_KEEP=1 (keep the work dir), BENCH_STEP_S, BENCH_USERS (1000), BENCH_CALL_RATES, BENCH_REG_RATES
 * (comma-separated, ascending), BENCH_ONLY=kamailio|switchboard,
 * BENCH_KAMAILIO_CHILDREN (2: one UDP worker per core), BENCH_CPU_PROF=dir
 * (profile the Switchboard process with node --cpu-prof), BENCH_NODE_FLAGS (more node flags for it
 * than those `npm start` gives node, which it always gets,
 * e.g. --trace-gc; its output shows with BENCH_VERBOSE=1), BENCH_TESTS=calls,latency,register
 * (latency: INVITE→200 p99 through the proxy minus straight to the UAS, at half the best call rate,
 * or at BENCH_LATENCY_RATE;
 * contacts: every one of BENCH_USERS subscribers registers one contact once, at BENCH_CONTACT_RATE/s
 * (default 500), and the memory is read before and after: `BENCH_USERS=100000 BENCH_TESTS=contacts`).
 * Any SWITCHBOARD_* variable set for the script reaches the Switchboard process (its settings, e.g.
 * SWITCHBOARD_REGISTRAR_COMMIT_MS).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { processEnv } from '@switchboard/platform';
import { freePort } from '@switchboard/platform/testing';
import { startNodeFlags } from '../../cli/node-flags';
import { register } from '../../test-e2e/lib/ua';

const env = processEnv();

const here = new URL('.', import.meta.url).pathname;
const root = join(here, '..', '..');
const SCENARIOS = join(here, 'scenarios');
const DOMAIN = 'example.com';
const PASSWORD = 'bench-secret';
const STEP_S = Number(env.BENCH_STEP_S ?? 10);
const USERS = Number(env.BENCH_USERS ?? 1000);
const rates = (v: string | undefined, d: string) => (v ?? d).split(',').map(Number);
const CALL_RATES = rates(env.BENCH_CALL_RATES, '200,400,600,800,1000,1300,1600,2000,2500,3000,4000,5000');
const REG_RATES = rates(env.BENCH_REG_RATES, '200,400,600,800,1000,1300,1600,2000,2500,3000,4000,5000');
const TESTS = (env.BENCH_TESTS ?? 'calls,latency,register').split(',');
const latency = new Map<string, { rate: number; via: { p99: number }; direct: { p99: number } }>();
const CONTACT_RATE = Number(env.BENCH_CONTACT_RATE ?? 500);
const KAMAILIO_CHILDREN = Number(env.BENCH_KAMAILIO_CHILDREN ?? 2);
const MAX_FAILED = 0.001;

const benchUser = (i: number) => `user${String(i).padStart(5, '0')}`;
const CALLEE = benchUser(0);

interface System {
  name: string;
  sip: { host: string; port: number };
  /** Resident memory (PSS summed over the processes), kB. */
  memoryKb(): number;
  /** CPU time used so far (user + system, summed over the processes), ms. */
  cpuMs(): number;
  /** The same as [user, system], ms. */
  cpuSplitMs(): [number, number];
  /** Prometheus text (Switchboard only). */
  metrics?(): Promise<string>;
  stop(): Promise<void>;
}

const work = mkdtempSync(join(tmpdir(), 'bench-proxy-'));

function pssKb(pids: number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      kb += m ? Number(m[1]) : 0;
    } catch {
      // process gone
    }
  }
  return kb;
}

/** utime + stime of the processes (and their threads), ms. */
function cpuMs(pids: number[]): number {
  const [user, system] = cpuSplitMs(pids);
  return user + system;
}

/** utime and stime of the processes (and their threads), ms. */
function cpuSplitMs(pids: number[]): [number, number] {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      // after the command's closing parenthesis: field 14 (utime) and 15 (stime) of proc(5)
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      user += Number(f[11]);
      system += Number(f[12]);
    } catch {
      // process gone
    }
  }
  return [user * 10, system * 10]; // USER_HZ is 100 on Linux
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once('exit', () => r()));
}

async function startKamailio(): Promise<System> {
  const dir = join(work, 'kamailio');
  mkdirSync(join(dir, 'db'), { recursive: true });
  mkdirSync(join(dir, 'run'), { recursive: true });
  // The same subscribers and HA1 (MD5 of user:realm:password) Switchboard keeps, as a db_text table
  // that htable loads into shared memory at start (db_text itself scans every row per query).
  writeFileSync(join(dir, 'db', 'version'), 'table_name(string) table_version(int)\nhtable:2\n');
  const rows = Array.from(
    { length: USERS },
    (_, i) =>
      `${benchUser(i)}:0:0:${createHash('md5')
        .update(`${benchUser(i)}:${DOMAIN}:${PASSWORD}`)
        .digest('hex')}:0`,
  );
  writeFileSync(
    join(dir, 'db', 'htable'),
    ['key_name(string) key_type(int) value_type(int) key_value(string) expires(int)', ...rows].join('\n') +
      '\n',
  );
  const port = await freePort();
  const child = spawn(
    'kamailio',
    [
      '-f',
      join(root, 'bench/peers/kamailio/kamailio.cfg'),
      '-DD',
      '-E',
      '-l',
      `udp:127.0.0.1:${port}`,
      '-Y',
      join(dir, 'run'),
      '-P',
      join(dir, 'run', 'kamailio.pid'),
      '-A',
      `DBURL="text://${join(dir, 'db')}"`,
      '-A',
      `CHILDREN=${KAMAILIO_CHILDREN}`,
      '-m',
      '512',
      '-M',
      '32',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d) => (log = (log + d).slice(-4000)));
  const sip = { host: '127.0.0.1', port };
  await waitAnswering(sip, () => (child.exitCode !== null ? `kamailio exited: ${log}` : undefined));
  return {
    name: 'Kamailio',
    sip,
    memoryKb: () => pssKb([child.pid!, ...childrenOf(child.pid!)]),
    cpuMs: () => cpuMs([child.pid!, ...childrenOf(child.pid!)]),
    cpuSplitMs: () => cpuSplitMs([child.pid!, ...childrenOf(child.pid!)]),
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

async function startSwitchboard(): Promise<System> {
  const port = await freePort();
  const prof = env.BENCH_CPU_PROF;
  const child = spawn(
    process.execPath,
    [
      ...startNodeFlags(),
      ...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []),
      ...(env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
      '--import',
      'tsx',
      join(here, 'switchboard.ts'),
    ],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...env,
        BENCH_SIP_PORT: String(port),
        BENCH_USERS: String(USERS),
        BENCH_PASSWORD: PASSWORD,
        BENCH_DATA_DIR: join(work, 'switchboard-data'),
      },
    },
  );
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    let ready = false;
    // The first JSON line says where it listens; keep draining the pipe (the process logs to stdout)
    // and show it when asked.
    rl.on('line', (l) => {
      if (!ready && l.startsWith('{"udp"')) {
        ready = true;
        resolve(l);
      } else if (env.BENCH_VERBOSE) console.error(l.slice(0, 1500));
    });
    child.once('exit', (c) => reject(new Error(`switchboard exited (${c}) before it was ready`)));
  });
  const { udp, ops } = JSON.parse(line) as { udp: { host: string; port: number }; ops: string };
  await waitAnswering(udp, () => undefined);
  return {
    name: 'Switchboard',
    sip: udp,
    memoryKb: () => pssKb([child.pid!]),
    cpuMs: () => cpuMs([child.pid!]),
    cpuSplitMs: () => cpuSplitMs([child.pid!]),
    metrics: () => fetch(`${ops}/metrics`).then((r) => r.text()),
    async stop() {
      child.kill('SIGTERM');
      await exited(child);
    },
  };
}

/** Wait until the proxy answers a REGISTER (with a challenge or anything). */
async function waitAnswering(
  sip: { host: string; port: number },
  dead: () => string | undefined,
): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const why = dead();
    if (why) throw new Error(why);
    try {
      await register({
        proxy: sip,
        user: benchUser(USERS - 1),
        password: PASSWORD,
        domain: DOMAIN,
        expires: 0,
      });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`nothing answers on ${sip.host}:${sip.port}`);
}

interface SippRun {
  code: number | null;
  successful: number;
  failed: number;
  /** Successful calls by the end of the step plus its grace. */
  onTime: number;
  seconds: number;
  stderr: string;
  errors: string;
  dir: string;
}

/** Run SIPp to completion (bounded), reading its final statistics. */
function runSipp(args: string[], timeoutS: number, onTimeS: number): Promise<SippRun> {
  const dir = mkdtempSync(join(work, 'sipp-'));
  const started = Date.now();
  const child = spawn(
    'sipp',
    [
      ...args,
      ...(env.BENCH_TRACE ? ['-trace_msg'] : []),
      '-nostdin',
      '-trace_stat',
      '-stf',
      join(dir, 'stats.csv'),
      '-fd',
      '1',
      '-trace_err',
      '-error_file',
      join(dir, 'errors.log'),
    ],
    {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(timer);
      let successful = 0;
      let failed = 0;
      let onTime = 0;
      try {
        const lines = readFileSync(
          join(dir, readdirSync(dir).find((f) => f.startsWith('stats')) ?? 'stats.csv'),
          'utf8',
        )
          .trim()
          .split('\n');
        const head = lines[0].split(';');
        const rows = lines.slice(1).map((l) => l.split(';'));
        const col = (name: string) => head.indexOf(name);
        const last = rows[rows.length - 1];
        successful = Number(last[col('SuccessfulCall(C)')]);
        failed = Number(last[col('FailedCall(C)')]);
        // Calls done within the step and a 2 s grace (SIPp writes a row a second): a proxy that
        // only keeps up by queueing finishes late, and does not pass.
        const secs = (hms: string) => hms.split(':').reduce((a, x) => a * 60 + Number(x), 0);
        const due = rows.find((r) => secs(r[col('ElapsedTime(C)')]) >= onTimeS) ?? last;
        onTime = Number(due[col('SuccessfulCall(C)')]);
      } catch {
        // no statistics
      }
      let errors = '';
      try {
        errors = readFileSync(join(dir, 'errors.log'), 'utf8');
      } catch {
        // none
      }
      resolve({
        code,
        successful,
        failed,
        onTime,
        seconds: (Date.now() - started) / 1000,
        stderr,
        errors,
        dir,
      });
    });
  });
}

interface Step {
  rate: number;
  calls: number;
  successful: number;
  failedPct: number;
  seconds: number;
  ok: boolean;
}

/** Switchboard's batching histograms: the REGISTERs per RegisterBatch call, the bindings per registrar commit. */
const BATCH_METRICS = {
  'REGISTERs per RegisterBatch': 'switchboard_sip_register_batch_size',
  'writes per commit': 'switchboard_registrar_commit_batch_size',
};
type BatchTotals = Map<string, { sum: number; count: number }>;

async function batchTotals(sys: System): Promise<BatchTotals> {
  const out: BatchTotals = new Map();
  if (!sys.metrics) return out;
  const text = await sys.metrics().catch(() => '');
  for (const [label, name] of Object.entries(BATCH_METRICS)) {
    const sum = new RegExp(`^${name}_sum (\\S+)`, 'm').exec(text);
    const count = new RegExp(`^${name}_count (\\S+)`, 'm').exec(text);
    if (sum && count) out.set(label, { sum: Number(sum[1]), count: Number(count[1]) });
  }
  return out;
}

/** The mean batch sizes over a step, as ", 5.1 REGISTERs per RegisterBatch, ...", or ''. */
function batchMeans(before: BatchTotals, after: BatchTotals): string {
  const parts: string[] = [];
  for (const [label, a] of after) {
    const b = before.get(label) ?? { sum: 0, count: 0 };
    if (a.count > b.count) parts.push(`${((a.sum - b.sum) / (a.count - b.count)).toFixed(1)} ${label}`);
  }
  return parts.length ? `; ${parts.join(', ')}` : '';
}

/** Step up the rates; the result is the highest rate whose step had under 0.1% failures. */
async function ramp(
  label: string,
  sys: System,
  rateList: number[],
  args: (rate: number, total: number) => string[],
): Promise<{ best: number; steps: Step[] }> {
  const steps: Step[] = [];
  let best = 0;
  for (const rate of rateList) {
    const total = rate * STEP_S;
    const batches0 = await batchTotals(sys);
    const [user0, system0] = sys.cpuSplitMs();
    const r = await runSipp(args(rate, total), STEP_S + 40, STEP_S + 2);
    // the system's CPU per successful call or registration over the step (and its tail)
    const [user1, system1] = sys.cpuSplitMs();
    const per = (ms: number) => (r.successful ? (ms * 1000) / r.successful : NaN);
    const cpuUs = per(user1 - user0 + system1 - system0);
    const split = `user ${per(user1 - user0).toFixed(0)}, system ${per(system1 - system0).toFixed(0)}`;
    const batches = batchMeans(batches0, await batchTotals(sys));
    const lost = total - r.successful;
    const failedPct = (100 * lost) / total;
    // Under 0.1% failed, and as many done on time (a saturated system shows as calls finishing late).
    const ok = lost / total < MAX_FAILED && (total - r.onTime) / total < MAX_FAILED;
    steps.push({ rate, calls: total, successful: r.successful, failedPct, seconds: r.seconds, ok });
    console.log(
      `  ${sys.name.padEnd(11)} ${label} ${String(rate).padStart(5)}/s: ${r.successful}/${total} ok (${r.onTime} within ${STEP_S + 2} s), ${failedPct.toFixed(3)}% failed, ${r.seconds.toFixed(1)} s, CPU ${cpuUs.toFixed(0)} µs each (${split})${batches}${ok ? '' : '  <- over'}`,
    );
    if (!ok) {
      if (env.BENCH_VERBOSE) {
        console.log(r.errors.slice(0, 3000), r.stderr);
        if (sys.metrics)
          console.log(
            (await sys.metrics())
              .split('\n')
              .filter((l) => /^switchboard_(sip|calls)/.test(l))
              .join('\n'),
          );
      }
      break;
    }
    best = rate;
  }
  return { best, steps };
}

async function callsBench(sys: System): Promise<number> {
  const uasPort = await freePort();
  const uas = spawn(
    'sipp',
    [
      '-sf',
      join(SCENARIOS, 'uas.xml'),
      '-i',
      '127.0.0.1',
      '-p',
      String(uasPort),
      '-nostdin',
      ...(env.BENCH_TRACE ? ['-trace_msg', '-trace_err'] : []),
    ],
    { stdio: 'ignore', cwd: work },
  );
  try {
    await new Promise((r) => setTimeout(r, 300));
    const reg = await register({
      proxy: sys.sip,
      user: CALLEE,
      password: PASSWORD,
      domain: DOMAIN,
      contact: `sip:${CALLEE}@127.0.0.1:${uasPort}`,
      expires: 3600,
    });
    if (reg.status !== 200) throw new Error(`${sys.name}: registering the callee: ${reg.status}`);
    const uacPort = await freePort();
    const { best } = await ramp('calls', sys, CALL_RATES, (rate, total) => [
      '-sf',
      join(SCENARIOS, 'uac.xml'),
      '-key',
      'callee',
      CALLEE,
      '-key',
      'dom',
      DOMAIN,
      '-i',
      '127.0.0.1',
      '-p',
      String(uacPort),
      '-r',
      String(rate),
      '-m',
      String(total),
      '-l',
      String(rate * 4),
      '-timeout',
      `${STEP_S + 30}s`,
      // A multi-process proxy (Kamailio's UDP workers) may pass the 200 before the 180: a late 180 is not a failure.
      '-default_behaviors',
      'all,-abortunexp',
      `${sys.sip.host}:${sys.sip.port}`,
    ]);
    if (best > 0 && TESTS.includes('latency')) {
      // The added latency: INVITE → 200 at the caller, through the proxy and straight to the UAS, at half the best rate.
      const rate = Number(env.BENCH_LATENCY_RATE ?? 0) || Math.max(Math.floor(best / 2), 1);
      const rtd = async (to: { host: string; port: number }) => {
        const r = await runSipp(
          [
            '-sf',
            join(SCENARIOS, 'uac.xml'),
            '-key',
            'callee',
            CALLEE,
            '-key',
            'dom',
            DOMAIN,
            '-i',
            '127.0.0.1',
            '-p',
            String(uacPort),
            '-r',
            String(rate),
            '-m',
            String(rate * STEP_S),
            '-timeout',
            `${STEP_S + 30}s`,
            '-default_behaviors',
            'all,-abortunexp',
            '-trace_rtt',
            '-rtt_freq',
            '100',
            `${to.host}:${to.port}`,
          ],
          STEP_S + 40,
          STEP_S + 2,
        );
        const file = readdirSync(r.dir).find((f) => f.endsWith('_rtt.csv'));
        const ms = file
          ? readFileSync(join(r.dir, file), 'utf8')
              .trim()
              .split('\n')
              .slice(1)
              .map((l) => Number(l.split(';')[1]))
              .filter((x) => Number.isFinite(x))
              .sort((a, b) => a - b)
          : [];
        const q = (p: number) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(p * ms.length))] : NaN);
        return { p50: q(0.5), p99: q(0.99), n: ms.length };
      };
      const via = await rtd(sys.sip);
      const direct = await rtd({ host: '127.0.0.1', port: uasPort });
      latency.set(sys.name, { rate, via, direct });
      console.log(
        `  ${sys.name.padEnd(11)} latency at ${rate}/s: INVITE→200 p50 ${via.p50.toFixed(2)} ms, p99 ${via.p99.toFixed(2)} ms (${via.n} calls); direct p50 ${direct.p50.toFixed(2)} ms, p99 ${direct.p99.toFixed(2)} ms; added p99 ${(via.p99 - direct.p99).toFixed(2)} ms`,
      );
    }
    return best;
  } finally {
    uas.kill('SIGTERM');
    await exited(uas);
  }
}

/** SIPp arguments for register.xml over every subscriber in turn (one REGISTER with digest each). */
function registerArgs(sys: System, port: number, rate: number, total: number, timeoutS: number): string[] {
  const csv = join(work, 'users.csv');
  writeFileSync(
    csv,
    [
      'SEQUENTIAL',
      ...Array.from(
        { length: USERS },
        (_, i) => `${benchUser(i)};[authentication username=${benchUser(i)} password=${PASSWORD}]`,
      ),
    ].join('\n') + '\n',
  );
  return [
    '-sf',
    join(SCENARIOS, 'register.xml'),
    '-inf',
    csv,
    '-key',
    'dom',
    DOMAIN,
    '-auth_uri',
    `sip:${DOMAIN}`,
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-r',
    String(rate),
    '-m',
    String(total),
    '-l',
    String(rate * 4),
    '-timeout',
    `${timeoutS}s`,
    // A 401 to a retransmitted first REGISTER can arrive after the second REGISTER went out; a UA's
    // client transaction absorbs it (RFC 3261 §17.1.2.2), so it is not a failure here either.
    '-default_behaviors',
    'all,-abortunexp',
    `${sys.sip.host}:${sys.sip.port}`,
  ];
}

async function registerBench(sys: System): Promise<number> {
  const uacPort = await freePort();
  const { best } = await ramp('REGISTER', sys, REG_RATES, (rate, total) =>
    registerArgs(sys, uacPort, rate, total, STEP_S + 30),
  );
  return best;
}

/**
 * Memory with BENCH_USERS registered contacts: each subscriber registers one contact, once,
 * at a rate both systems keep up with; PSS before and 35 s after (the bindings expire in an hour).
 */
/** The V8 heap in use (Switchboard's ops metrics), MB, or undefined. */
async function heapMb(sys: System): Promise<number | undefined> {
  const m = sys.metrics && /^nodejs_heap_size_used_bytes (\S+)/m.exec(await sys.metrics());
  return m ? Number(m[1]) / 2 ** 20 : undefined;
}

async function contactsBench(
  sys: System,
): Promise<{ registered: number; beforeKb: number; afterKb: number }> {
  const beforeKb = sys.memoryKb();
  const heapBefore = await heapMb(sys);
  const seconds = Math.ceil(USERS / CONTACT_RATE);
  // a system slower than the rate still gets every contact in: bounded at three times the planned time
  const r = await runSipp(
    registerArgs(sys, await freePort(), CONTACT_RATE, USERS, 3 * seconds + 60),
    3 * seconds + 90,
    seconds + 2,
  );
  // group commits and replicas settle, and the REGISTER transactions end (Timer J: 64 T1 = 32 s)
  await new Promise((res) => setTimeout(res, 35_000));
  const afterKb = sys.memoryKb();
  const heapAfter = await heapMb(sys);
  const heap =
    heapBefore !== undefined && heapAfter !== undefined
      ? `; V8 heap used ${heapBefore.toFixed(0)} → ${heapAfter.toFixed(0)} MB`
      : '';
  console.log(
    `  ${sys.name.padEnd(11)} contacts: ${r.successful} of ${USERS} registered (${r.failed} failed) at ${CONTACT_RATE}/s in ${r.seconds.toFixed(0)} s; PSS ${(beforeKb / 1024).toFixed(0)} → ${(afterKb / 1024).toFixed(0)} MB${heap}`,
  );
  return { registered: r.successful, beforeKb, afterKb };
}

interface Figures {
  calls?: number;
  register?: number;
  memoryKb?: number;
  contacts?: { registered: number; beforeKb: number; afterKb: number };
}

async function measure(start: () => Promise<System>): Promise<Figures & { name: string }> {
  const sys = await start();
  const f: Figures & { name: string } = { name: sys.name };
  try {
    // Switchboard's UDP sends: on the native thread (its counter has samples) or through dgram.
    const sends = sys.metrics
      ? `; UDP sends ${
          (await sys.metrics()).includes('switchboard_sip_udp_send_thread_datagrams_total{')
            ? 'on the native thread'
            : 'through node:dgram'
        }; node ${startNodeFlags().join(' ')}`
      : '';
    console.log(`${sys.name} on ${sys.sip.host}:${sys.sip.port} (${sys.memoryKb()} kB PSS at start${sends})`);
    if (TESTS.includes('calls')) f.calls = await callsBench(sys);
    if (TESTS.includes('register')) f.register = await registerBench(sys);
    if (TESTS.includes('contacts')) f.contacts = await contactsBench(sys);
    f.memoryKb = sys.memoryKb();
  } finally {
    await sys.stop();
  }
  return f;
}

const only = env.BENCH_ONLY;
const results: Array<Figures & { name: string }> = [];
console.log(
  `bench/proxy: ${USERS} subscribers, ${STEP_S} s per step, pass = under ${MAX_FAILED * 100}% failed; ${new Date().toISOString()}`,
);
if (!only || only === 'kamailio') results.push(await measure(startKamailio));
if (!only || only === 'switchboard') results.push(await measure(startSwitchboard));

const [k, s] = [results.find((r) => r.name === 'Kamailio'), results.find((r) => r.name === 'Switchboard')];
// A system that passed the top step has a limit at or above it, not at it: its figure is a lower
// bound, and a ratio with it a bound too.
const rate = (v: number | undefined, top: number) =>
  v === undefined ? 'n/a' : v === top ? `≥ ${v}` : String(v);
function ratio(a: number | undefined, b: number | undefined, top: number): string {
  if (!a || !b) return 'n/a';
  const r = `${(b / a).toFixed(2)}x`;
  if (a === top && b === top) return `n/a (both passed the top step: raise the rates)`;
  if (a === top) return `≤ ${r} (Kamailio passed the top step)`;
  if (b === top) return `≥ ${r} (Switchboard passed the top step)`;
  return r;
}
const [topCalls, topReg] = [CALL_RATES[CALL_RATES.length - 1], REG_RATES[REG_RATES.length - 1]];
console.log('\n| test | Kamailio | Switchboard | Switchboard / Kamailio |');
console.log('|---|---:|---:|---:|');
console.log(
  `| calls/s (INVITE..BYE, <0.1% failed) | ${rate(k?.calls, topCalls)} | ${rate(s?.calls, topCalls)} | ${ratio(k?.calls, s?.calls, topCalls)} |`,
);
console.log(
  `| REGISTER/s (digest, <0.1% failed) | ${rate(k?.register, topReg)} | ${rate(s?.register, topReg)} | ${ratio(k?.register, s?.register, topReg)} |`,
);
const added = (n: string) => {
  const l = latency.get(n);
  return l ? `${(l.via.p99 - l.direct.p99).toFixed(2)} ms at ${l.rate}/s` : 'n/a';
};
console.log(
  `| added p99 INVITE→200 latency at half the best call rate | ${added('Kamailio')} | ${added('Switchboard')} | |`,
);
console.log(
  `| memory after the runs (PSS, MB) | ${k?.memoryKb ? (k.memoryKb / 1024).toFixed(0) : 'n/a'} | ${s?.memoryKb ? (s.memoryKb / 1024).toFixed(0) : 'n/a'} | |`,
);
const contacts = (f?: Figures) =>
  f?.contacts
    ? `${(f.contacts.afterKb / 1024).toFixed(0)} MB with ${f.contacts.registered} (+${((f.contacts.afterKb - f.contacts.beforeKb) / 1024).toFixed(0)} MB, ${(((f.contacts.afterKb - f.contacts.beforeKb) * 1024) / Math.max(f.contacts.registered, 1)).toFixed(0)} B each)`
    : 'n/a';
if (TESTS.includes('contacts'))
  console.log(`| memory with ${USERS} registered contacts (PSS) | ${contacts(k)} | ${contacts(s)} | |`);
if (!env.BENCH_KEEP) rmSync(work, { recursive: true, force: true }); // SIPp logs, db_text tables, PGlite data
