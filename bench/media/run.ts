/**
 * bench/media: N concurrent G.711 calls through Switchboard's media relay and
 * through rtpengine (Debian rtpengine-daemon, userspace: --table=-1), each
 * pinned to core 0 with taskset, driven by the same load generator
 * (loadgen.c, pinned to core 1) and set up the same way (ng protocol).
 * A direct run (endpoints sending to each other, no relay) gives the latency
 * baseline that "added latency" is measured against.
 *
 *   npx tsx bench/media/run.ts
 *   MEDIA_BENCH_CALLS=250,500,1000 MEDIA_BENCH_SECONDS=5 npx tsx bench/media/run.ts
 *   MEDIA_BENCH_SYSTEMS=switchboard,switchboard-js,rtpengine npx tsx bench/media/run.ts
 *
 * Systems: switchboard (the native engine, the default), switchboard-js (the
 * JS engine: dgram on the event loop), rtpengine. For the native engine the
 * table also has its own residence time per relayed packet (kernel receipt,
 * SO_TIMESTAMPNS, to send): what the relay adds, apart from the generator.
 *
 * Loopback only; bounded: every step runs MEDIA_BENCH_SECONDS (default 5).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { processEnv } from '@switchboard/platform';
import { NgClient } from './ng';

const env = processEnv();
const CALLS = (env.MEDIA_BENCH_CALLS ?? '250,500,1000,1500').split(',').map(Number);
const SECONDS = Number(env.MEDIA_BENCH_SECONDS ?? 5);
const SYSTEMS = (env.MEDIA_BENCH_SYSTEMS ?? 'switchboard,rtpengine').split(',');
const RELAY_CORE = env.MEDIA_BENCH_RELAY_CORE ?? '0';
const GEN_CORE = env.MEDIA_BENCH_GEN_CORE ?? '1';
// both relays' worker threads get the same policy (rtpengine's --scheduling/--priority,
// Switchboard's SWITCHBOARD_MEDIA_SCHEDULING/PRIORITY); real time only where it can be set (root)
const [SCHED = 'default', PRIO = '0'] = (
  env.MEDIA_BENCH_SCHEDULING ?? (process.getuid?.() === 0 ? 'fifo:50' : 'default')
).split(':');
const GEN_BASE = 61000; // endpoints: 61000 + 2i (A), 61001 + 2i (B): above the ephemeral range, clear of SIPp's 6000
const PORT_MIN = 12000;
const PORT_MAX = 19999;
const NG_PORT = 22230;
const MAX = Math.max(...CALLS);
if (MAX * 4 > PORT_MAX - PORT_MIN + 1 || GEN_BASE + MAX * 2 > 65535)
  throw new Error(`too many calls (${MAX}) for the port ranges`);

const root = join(import.meta.dirname, '..', '..');
const work = '/tmp/switchboard-bench-media';
mkdirSync(work, { recursive: true });
const loadgen = join(work, 'loadgen');
const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', loadgen, join(import.meta.dirname, 'loadgen.c')], {
  encoding: 'utf8',
});
if (cc.status !== 0) throw new Error(`gcc failed: ${cc.stderr}`);

interface GenResult {
  calls: number;
  sent: number;
  received: number;
  lost: number;
  reordered: number;
  duplicates: number;
  bad: number;
  stale: number;
  pps: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  maxSendLagMs: number;
  steadyP50Ms: number;
  steadyP99Ms: number;
}
interface Step extends GenResult {
  system: string;
  cpu: number; // fraction of one core used by the relay process during the step
  residence?: Residence;
}

/** The native engine's own figures (ng-relay prints them on SIGUSR1): kernel receipt to send, per relayed packet. */
interface Residence {
  packets: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}
let residenceWaiter: ((r: Residence) => void) | undefined;

/** Ask a native Switchboard relay for its residence figures since the last ask (and reset them). */
async function residence(child: ChildProcess): Promise<Residence | undefined> {
  const got = new Promise<Residence | undefined>((resolve) => {
    residenceWaiter = resolve;
    setTimeout(() => resolve(undefined), 3000);
  });
  child.kill('SIGUSR1');
  const r = await got;
  residenceWaiter = undefined;
  return r;
}

/** utime + stime of a process (all threads), in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ 100
}

function runGen(calls: number, targets: string[]): GenResult {
  const file = join(work, `targets-${calls}.txt`);
  writeFileSync(file, targets.slice(0, calls).join('\n') + '\n');
  // with a real-time relay the generator is real time too (it sleeps until its next send is due, epoll_pwait2, never polls),
  // so that its own scheduling delays do not show as the relay's latency
  const rt = SCHED === 'fifo' || SCHED === 'rr' ? ['chrt', `--${SCHED}`, PRIO] : [];
  const r = spawnSync(
    rt[0] ?? 'taskset',
    [
      ...rt.slice(1),
      ...(rt.length ? ['taskset'] : []),
      '-c',
      GEN_CORE,
      loadgen,
      String(calls),
      String(SECONDS),
      String(GEN_BASE),
      file,
    ],
    {
      encoding: 'utf8',
      timeout: (SECONDS + 30) * 1000,
    },
  );
  if (r.status !== 0) throw new Error(`loadgen failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as GenResult;
}

const sdp = (port: number) =>
  [
    'v=0',
    `o=- ${port} 1 IN IP4 127.0.0.1`,
    's=-',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${port} RTP/AVP 0`,
    'a=rtpmap:0 PCMU/8000',
    'a=ptime:20',
    'a=sendrecv',
    '',
  ].join('\r\n');

const mediaTarget = (s: string) => {
  const c = /^c=IN IP4 (\S+)/m.exec(s);
  const m = /^m=audio (\d+)/m.exec(s);
  if (!c || !m) throw new Error(`no address in SDP:\n${s}`);
  return `${c[1]} ${m[1]}`;
};

function start(system: string): ChildProcess {
  const args =
    system === 'switchboard' || system === 'switchboard-js'
      ? [
          process.execPath,
          ...(env.MEDIA_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
          '--import',
          'tsx',
          join(import.meta.dirname, 'ng-relay.ts'),
          String(NG_PORT),
          String(PORT_MIN),
          String(PORT_MAX),
          system === 'switchboard-js' ? 'js' : 'native',
          `${SCHED}:${PRIO}`,
        ]
      : [
          'rtpengine',
          '--config-file=none',
          '--table=-1',
          '--foreground',
          '--log-stderr',
          '--log-level=3',
          '--interface=127.0.0.1',
          `--listen-ng=127.0.0.1:${NG_PORT}`,
          `--port-min=${PORT_MIN}`,
          `--port-max=${PORT_MAX}`,
          '--timeout=600',
          '--delete-delay=0',
          '--num-threads=1',
          ...(SCHED === 'default' ? [] : [`--scheduling=${SCHED}`, `--priority=${PRIO}`]),
        ];
  const child = spawn('taskset', ['-c', RELAY_CORE, ...args], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => {
    if (env.MEDIA_BENCH_VERBOSE) process.stderr.write(`[${system}] ${d}`);
    for (const line of d.toString().split('\n'))
      if (line.startsWith('residence ')) residenceWaiter?.(JSON.parse(line.slice(10)) as Residence);
  });
  return child;
}

async function benchSystem(system: string): Promise<Step[]> {
  const child = start(system);
  const ng = await NgClient.open('127.0.0.1', NG_PORT);
  try {
    await ng.call({ command: 'ping' }, 40);
    const targets: string[] = new Array<string>(MAX);
    for (let i = 0; i < MAX; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, MAX - i) }, async (_, k) => {
          const n = i + k;
          const callId = `bench-${n}`;
          const o = await ng.call({
            command: 'offer',
            'call-id': callId,
            'from-tag': 'a',
            sdp: sdp(GEN_BASE + 2 * n),
            ICE: 'remove',
          });
          const a = await ng.call({
            command: 'answer',
            'call-id': callId,
            'from-tag': 'a',
            'to-tag': 'b',
            sdp: sdp(GEN_BASE + 2 * n + 1),
            ICE: 'remove',
          });
          // A sends where the answer (to A) points; B sends where the offer (to B) points
          targets[n] = `${mediaTarget(String(a.sdp))} ${mediaTarget(String(o.sdp))}`;
        }),
      );
    }
    const steps: Step[] = [];
    for (const calls of CALLS) {
      await new Promise((r) => setTimeout(r, 1000)); // let the previous step's backlog drain
      const native = system === 'switchboard';
      if (native) await residence(child); // reset
      const before = cpuSeconds(child.pid!);
      const t0 = process.hrtime.bigint();
      const r = runGen(calls, targets);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = (cpuSeconds(child.pid!) - before) / wall;
      steps.push({ system, cpu, ...r, residence: native ? await residence(child) : undefined });
      process.stderr.write(`${system} ${calls} calls: ${JSON.stringify(r)} cpu ${(cpu * 100).toFixed(0)}%\n`);
    }
    return steps;
  } finally {
    ng.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

const direct = (n: number) =>
  Array.from({ length: n }, (_, i) => `127.0.0.1 ${GEN_BASE + 2 * i + 1} 127.0.0.1 ${GEN_BASE + 2 * i}`);
const baseline = new Map<number, GenResult>();
for (const calls of CALLS) {
  const r = runGen(calls, direct(calls));
  baseline.set(calls, r);
  process.stderr.write(`direct ${calls} calls: ${JSON.stringify(r)}\n`);
}
const ROUNDS = Number(env.MEDIA_BENCH_ROUNDS ?? 1);
const load0 = loadavg()[0]!;
const results: Step[] = [];
// rounds alternate the systems, so a burst of load elsewhere on the machine hits both
for (let r = 0; r < ROUNDS; r++) for (const s of SYSTEMS) results.push(...(await benchSystem(s)));
writeFileSync(
  join(work, 'results.json'),
  JSON.stringify({ baseline: [...baseline.values()], results }, null, 2),
);

const pct = (x: number) => `${(x * 100).toFixed(3)}%`;
const ms = (x: number) => x.toFixed(3);
const lines = [
  `| system | calls | packets/s | loss | reordered | p50 / p99 one-way (ms) | after 1 s: p50 / p99 (ms) | added p50 / p99 (ms) | relay CPU (one core) | relayed packets per CPU-second | in the relay: p50 / p99 / max (ms) |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
];
for (const calls of CALLS) {
  const b = baseline.get(calls)!;
  lines.push(
    `| direct (no relay) | ${calls} | ${b.pps.toFixed(0)} | ${pct(b.lost / b.sent)} | ${b.reordered} | ${ms(b.latencyP50Ms)} / ${ms(b.latencyP99Ms)} | ${ms(b.steadyP50Ms)} / ${ms(b.steadyP99Ms)} | - | - | - | - |`,
  );
  for (const r of results.filter((x) => x.calls === calls)) {
    lines.push(
      `| ${r.system} | ${calls} | ${r.pps.toFixed(0)} | ${pct(r.lost / r.sent)} | ${r.reordered} | ${ms(r.latencyP50Ms)} / ${ms(r.latencyP99Ms)} | ${ms(r.steadyP50Ms)} / ${ms(r.steadyP99Ms)} | ${ms(r.latencyP50Ms - b.latencyP50Ms)} / ${ms(r.latencyP99Ms - b.latencyP99Ms)} | ${(r.cpu * 100).toFixed(0)}% | ${r.cpu > 0.05 ? (r.received / SECONDS / r.cpu).toFixed(0) : '-'} | ${r.residence ? `${ms(r.residence.p50Ms)} / ${ms(r.residence.p99Ms)} / ${ms(r.residence.maxMs)}` : '-'} |`,
    );
  }
}
const best = (system: string) => {
  const ok = results.filter((r) => r.system === system && r.lost / r.sent < 0.001);
  const maxOk = ok.length ? Math.max(...ok.map((r) => r.pps)) : 0;
  // CPU cost per relayed packet, from the steps where the relay kept up (loss under 1%)
  const est = results
    .filter((r) => r.system === system && r.cpu > 0.05 && r.lost / r.sent < 0.01)
    .map((r) => r.received / SECONDS / Math.min(1, r.cpu))
    .sort((x, y) => x - y);
  return { maxOk, perCore: est.length ? est[Math.floor(est.length / 2)]! : 0 };
};
const re = best('rtpengine');
const ours = SYSTEMS.filter((s) => s !== 'rtpengine').map((s) => ({ system: s, ...best(s) }));
lines.push('');
lines.push(
  `machine: ${cpus().length} cores, load average ${load0.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end; relay on core ${RELAY_CORE} (relay thread scheduling ${SCHED}, priority ${PRIO}), generator on core ${GEN_CORE} (real time too when the relays are); ${SECONDS} s per step, ${ROUNDS} round(s)`,
);
for (const sb of ours) {
  lines.push(
    `highest step under 0.1% loss: ${sb.system} ${sb.maxOk.toFixed(0)} packets/s, rtpengine ${re.maxOk.toFixed(0)} packets/s`,
  );
  if (sb.perCore && re.perCore) {
    lines.push(
      `relayed packets per CPU-second (median of the steps under 1% loss): ${sb.system} ${sb.perCore.toFixed(0)}, rtpengine ${re.perCore.toFixed(0)}, ratio ${sb.system}/rtpengine ${(sb.perCore / re.perCore).toFixed(2)}`,
    );
  }
}
process.stdout.write(lines.join('\n') + '\n');
