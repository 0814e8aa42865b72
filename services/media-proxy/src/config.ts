/**
 * media-proxy settings (SWITCHBOARD_MEDIA_*): the control port, the relay's
 * interfaces and port range, timeouts.
 */
import { int, oneOf, port, str, type ConfigOf, type Setting } from '@switchboard/platform';
import { isIP } from 'node:net';

/** One relay interface: a name the proxy refers to ("direction"), the address bound and the one written into SDP. */
export interface RelayInterface {
  name: string;
  /** Address the sockets bind. */
  address: string;
  /** Address written into SDP (a NAT's public address); default the bound one. */
  advertised: string;
  family: 4 | 6;
}

/**
 * rtpengine's --interface syntax, comma-separated: `name/address[!advertised]`,
 * e.g. `public/203.0.113.5,private/10.0.0.5,public6/2001:db8::5`.
 * A bare address is named "default"; the first interface is used when the proxy names none.
 */
export function parseInterfaces(raw: string): RelayInterface[] {
  const out: RelayInterface[] = [];
  for (const item of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const slash = item.indexOf('/');
    const name = slash < 0 ? 'default' : item.slice(0, slash);
    const rest = slash < 0 ? item : item.slice(slash + 1);
    const [address = '', advertised = address] = rest.split('!');
    const family = isIP(address);
    if (!name || !/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad interface name in "${item}"`);
    if (family === 0) throw new Error(`"${address}" is not an IP address (in "${item}")`);
    if (address === '0.0.0.0' || address === '::')
      throw new Error(`bind a concrete address, not ${address} (in "${item}")`);
    if (isIP(advertised) !== family)
      throw new Error(`advertised address "${advertised}" must be of the same family (in "${item}")`);
    if (out.some((i) => i.name === name)) throw new Error(`interface "${name}" given twice`);
    out.push({ name, address, advertised, family: family as 4 | 6 });
  }
  if (out.length === 0) throw new Error('at least one interface is needed');
  return out;
}

/** Thread scheduling policies (rtpengine's --scheduling); "default" leaves the thread as started. */
export const SCHEDULING_POLICIES = ['default', 'fifo', 'rr', 'other', 'batch', 'idle'] as const;
export type SchedulingPolicy = (typeof SCHEDULING_POLICIES)[number];

const interfaces = (env: string, def: string, description: string): Setting<RelayInterface[]> => ({
  env,
  default: def,
  description,
  parse: parseInterfaces,
});

export const mediaConfig = {
  grpcHost: str('SWITCHBOARD_MEDIA_GRPC_HOST', '127.0.0.1', 'Address the media-proxy gRPC server binds'),
  grpcPort: port('SWITCHBOARD_MEDIA_GRPC_PORT', 50052, 'media-proxy gRPC port'),
  interfaces: interfaces(
    'SWITCHBOARD_MEDIA_INTERFACES',
    'default/127.0.0.1',
    'Relay interfaces as name/address[!advertised], comma-separated (e.g. public/203.0.113.5,private/10.0.0.5,v6/2001:db8::5); the first is the default',
  ),
  portMin: port(
    'SWITCHBOARD_MEDIA_PORT_MIN',
    30000,
    'Lowest relay UDP port (RTP on even ports, RTCP on the odd one above)',
  ),
  portMax: port('SWITCHBOARD_MEDIA_PORT_MAX', 39999, 'Highest relay UDP port'),
  quietPeriodMs: int(
    'SWITCHBOARD_MEDIA_QUIET_MS',
    30000,
    'How long a released port pair stays unused (late packets are dropped and counted)',
    0,
  ),
  timeoutMs: int(
    'SWITCHBOARD_MEDIA_TIMEOUT_MS',
    60000,
    'A call with no media for this long is ended (media-events "timeout")',
    100,
  ),
  holdTimeoutMs: int(
    'SWITCHBOARD_MEDIA_HOLD_TIMEOUT_MS',
    3600000,
    'The no-media timeout while a stream is on hold',
    100,
  ),
  deleteGraceMs: int(
    'SWITCHBOARD_MEDIA_DELETE_GRACE_MS',
    30000,
    'How long a deleted call stays answerable by Query',
    0,
  ),
  sweepMs: int('SWITCHBOARD_MEDIA_SWEEP_MS', 1000, 'How often timeouts and quiet periods are checked', 10),
  engine: oneOf(
    'SWITCHBOARD_MEDIA_ENGINE',
    'native',
    ['native', 'js'],
    'Relay hot path: native (C addon, own thread, recvmmsg/sendmmsg; js with a warning when not built) or js (dgram on the event loop)',
  ),
  scheduling: oneOf(
    'SWITCHBOARD_MEDIA_SCHEDULING',
    'default',
    SCHEDULING_POLICIES,
    "Native relay thread's policy, as rtpengine's --scheduling (fifo, rr: real time, needs CAP_SYS_NICE)",
  ),
  priority: int(
    'SWITCHBOARD_MEDIA_PRIORITY',
    0,
    "The native relay thread's priority, as rtpengine's --priority: 1-99 with fifo or rr, 0 with the others",
    0,
    99,
  ),
};

/** Why a scheduling policy and priority do not go together, or undefined when they do. */
export function schedulingProblem(policy: SchedulingPolicy, priority: number): string | undefined {
  const realTime = policy === 'fifo' || policy === 'rr';
  if (realTime && priority === 0)
    return `SWITCHBOARD_MEDIA_PRIORITY: ${policy} needs a priority from 1 to 99`;
  if (!realTime && priority !== 0)
    return `SWITCHBOARD_MEDIA_PRIORITY: ${priority} is for fifo or rr; ${policy} takes 0`;
  return undefined;
}

export type MediaConfig = ConfigOf<typeof mediaConfig>;
