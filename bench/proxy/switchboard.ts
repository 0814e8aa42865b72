/**
 * The Switchboard side of bench/proxy, as its own process: registrar and
 * sip-proxy started by the target runner exactly as `npm start` starts them
 * (test-e2e/lib/platform.ts: embedded storage on disk in a temp dir, the event
 * log, gRPC over loopback), with the benchmark's subscribers seeded on the
 * `subscribers` topic. Prints one JSON line `{"udp":{host,port}}` when ready;
 * stops cleanly on SIGTERM (so `node --cpu-prof` writes its profile).
 *
 * Env: BENCH_SIP_PORT, BENCH_USERS, BENCH_PASSWORD, BENCH_DATA_DIR, and any
 * SWITCHBOARD_* setting, passed on to the platform.
 */
import { processEnv } from '@switchboard/platform';
import { startPlatform } from '../../test-e2e/lib/platform';

const env = processEnv();

const users = Number(env.BENCH_USERS ?? 1000);
const password = env.BENCH_PASSWORD ?? 'bench-secret';
const p = await startPlatform({
  subscribers: Array.from({ length: users }, (_, i) => ({ username: benchUser(i), password })),
  targets: ['registrar', 'sip-proxy'],
  env: {
    SWITCHBOARD_DATA_DIR: env.BENCH_DATA_DIR ?? ':memory:',
    SWITCHBOARD_SIP_LISTEN: `udp:127.0.0.1:${env.BENCH_SIP_PORT ?? 0}`,
    // The benchmark caller is a trusted peer (not challenged, not rate-limited), as in Kamailio's config.
    SWITCHBOARD_SIP_TRUSTED: '127.0.0.1',
    // RFC 3261 defaults, as Kamailio's tm uses.
    SWITCHBOARD_SIP_T1_MS: '500',
    // Any SWITCHBOARD_* setting given to the benchmark (e.g. SWITCHBOARD_REGISTRAR_COMMIT_MS) applies.
    ...Object.fromEntries(
      Object.entries(env).filter((e): e is [string, string] => e[0].startsWith('SWITCHBOARD_') && !!e[1]),
    ),
  },
});
process.stdout.write(JSON.stringify({ udp: p.sip.udp, pid: process.pid, ops: p.proc.ops.url }) + '\n');
const stop = () => {
  void p.stop().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

export function benchUser(i: number): string {
  return `user${String(i).padStart(5, '0')}`;
}
