/**
 * Switchboard's relay as a bench process: MediaRelay behind the ng protocol.
 *   node --import tsx bench/media/ng-relay.ts NG_PORT PORT_MIN PORT_MAX [native|js] [POLICY:PRIORITY]
 * Prints "ready" once listening; stops on SIGTERM. Exits at once when the
 * engine asked for (default native) cannot run: a bench never measures the other.
 */
import {
  MediaRelay,
  parseInterfaces,
  SCHEDULING_POLICIES,
  type SchedulingPolicy,
} from '@switchboard/media-proxy';
import { serveNg } from './ng';

const [ngPort = '2223', min = '12000', max = '19999', engine = 'native', sched = 'default:0'] =
  process.argv.slice(2);
if (engine !== 'native' && engine !== 'js') throw new Error(`engine "${engine}": native or js`);
const [policy = 'default', priority = '0'] = sched.split(':');
if (!(SCHEDULING_POLICIES as readonly string[]).includes(policy)) throw new Error(`policy "${policy}"`);
const relay = new MediaRelay({
  interfaces: parseInterfaces('bench/127.0.0.1'),
  portMin: Number(min),
  portMax: Number(max),
  quietPeriodMs: 0,
  timeoutMs: 600_000,
  holdTimeoutMs: 3_600_000,
  deleteGraceMs: 0,
  socketBufferBytes: 1 << 20,
  engine,
  measureResidence: true,
  onEngineFallback: (reason) => process.stderr.write(`native engine unavailable: ${reason}\n`),
  scheduling: policy as SchedulingPolicy,
  priority: Number(priority),
  onSchedulingFailed: (reason) => {
    process.stderr.write(`relay thread scheduling ${sched} not applied: ${reason}\n`);
    process.exit(1);
  },
});
if (relay.engine !== engine) process.exit(1);
const sweeper = setInterval(() => relay.sweep(), 1000);
const sock = await serveNg(relay, '127.0.0.1', Number(ngPort));
process.stdout.write('ready\n');
// SIGUSR1: the native engine's residence times since the last one, on stderr, then reset
process.on('SIGUSR1', () => {
  const r = relay.residence(true);
  if (r) process.stderr.write(`residence ${JSON.stringify(r)}\n`);
});
process.on('SIGTERM', () => {
  clearInterval(sweeper);
  sock.close();
  void relay.close().then(() => process.exit(0));
});
