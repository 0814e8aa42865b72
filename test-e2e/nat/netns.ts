/**
 * Two sites behind NAT, made of network namespaces (we run as root):
 *
 *   host (the platform, on PUBLIC_IP, an address added to lo)
 *    ├─ sbnat-hX (10.77.N.1/30) ── veth ── pub (10.77.N.2/30) in sbnat-rX: the NAT router
 *    │                                     priv (10.78.N.1/24) ── veth ── eth0 (10.78.N.2/24) in sbnat-uX: the UA
 *
 * Each router masquerades its private subnet out of `pub` (iptables MASQUERADE;
 * the UA's media ports are mapped to other ports, at random) and, like a home router, forwards inward only what belongs to a connection
 * the inside opened (conntrack ESTABLISHED,RELATED), plus the UA's control port
 * for the test. The host has no route to the private subnets: SIP and RTP reach
 * a UA only through its NAT binding.
 *
 * The masquerading happens in the router namespaces rather than on the host:
 * the platform runs on the host, and packets delivered locally never pass
 * POSTROUTING, where MASQUERADE works.
 */
import { execFileSync } from 'node:child_process';

export const PUBLIC_IP = '10.77.0.1';
/** The UAs' RTP/RTCP ports (baresip rtp_ports) and the ports their NAT maps them to. */
export const MEDIA_PORTS = { min: 16000, max: 16999 };
export const NAT_MEDIA_PORTS = { min: 50000, max: 59999 };
const PREFIX = 'sbnat';

export interface Site {
  name: string;
  /** The UA's namespace and private address. */
  uaNs: string;
  uaIp: string;
  /** The router's public address: where the UA's packets appear to come from. */
  publicIp: string;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function quiet(cmd: string, args: string[]): void {
  try {
    sh(cmd, args);
  } catch {
    // best effort (cleanup)
  }
}

/** Why this machine cannot build the topology (undefined when it can). */
export function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for ip netns and iptables';
  const probe = `${PREFIX}-probe${process.pid % 1000}`;
  try {
    sh('ip', ['netns', 'add', probe]);
  } catch (e) {
    return `ip netns is unavailable: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    sh('ip', ['netns', 'exec', probe, 'iptables', '-t', 'nat', '-S']);
  } catch (e) {
    return `iptables (nat table) is unavailable in a namespace: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    quiet('ip', ['netns', 'del', probe]);
  }
  return undefined;
}

/** Remove everything `createSites` makes (also what a crashed earlier run left). */
export function destroySites(): void {
  for (const ns of sh('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(`${PREFIX}-`)))
    quiet('ip', ['netns', 'del', ns]);
  for (const x of ['a', 'b']) quiet('ip', ['link', 'del', `${PREFIX}-h${x}`]);
  quiet('ip', ['addr', 'del', `${PUBLIC_IP}/32`, 'dev', 'lo']);
}

/** Build the two sites; `controlPort` is forwarded inward to each UA (the test drives baresip there). */
export function createSites(controlPort: number): Site[] {
  destroySites();
  sh('ip', ['addr', 'add', `${PUBLIC_IP}/32`, 'dev', 'lo']);
  return ['a', 'b'].map((x, i) => {
    const n = i + 1;
    const r = `${PREFIX}-r${x}`;
    const u = `${PREFIX}-u${x}`;
    const h = `${PREFIX}-h${x}`;
    const inR = (...a: string[]) => sh('ip', ['netns', 'exec', r, ...a]);
    sh('ip', ['netns', 'add', r]);
    sh('ip', ['netns', 'add', u]);
    sh('ip', ['link', 'add', h, 'type', 'veth', 'peer', 'name', 'pub', 'netns', r]);
    sh('ip', ['addr', 'add', `10.77.${n}.1/30`, 'dev', h]);
    sh('ip', ['link', 'set', h, 'up']);
    sh('ip', ['-n', r, 'addr', 'add', `10.77.${n}.2/30`, 'dev', 'pub']);
    sh('ip', ['-n', r, 'link', 'set', 'pub', 'up']);
    sh('ip', ['-n', r, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', r, 'link', 'add', 'priv', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', u]);
    sh('ip', ['-n', r, 'addr', 'add', `10.78.${n}.1/24`, 'dev', 'priv']);
    sh('ip', ['-n', r, 'link', 'set', 'priv', 'up']);
    sh('ip', ['-n', u, 'addr', 'add', `10.78.${n}.2/24`, 'dev', 'eth0']);
    sh('ip', ['-n', u, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', u, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', u, 'route', 'add', 'default', 'via', `10.78.${n}.1`]);
    sh('ip', ['-n', r, 'route', 'add', 'default', 'via', `10.77.${n}.1`]);
    inR('sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // RTP/RTCP (the UA's media ports) leave from other ports than the UA's, as many NATs do:
    // the port in the SDP is then wrong, and only latching onto the source reaches the UA.
    inR(
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      `10.78.${n}.0/24`,
      '-o',
      'pub',
      '-p',
      'udp',
      '--sport',
      `${MEDIA_PORTS.min}:${MEDIA_PORTS.max}`,
      '-j',
      'MASQUERADE',
      '--to-ports',
      `${NAT_MEDIA_PORTS.min}-${NAT_MEDIA_PORTS.max}`,
      '--random',
    );
    inR(
      'iptables',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-s',
      `10.78.${n}.0/24`,
      '-o',
      'pub',
      '-j',
      'MASQUERADE',
    );
    inR('iptables', '-A', 'FORWARD', '-i', 'priv', '-o', 'pub', '-j', 'ACCEPT');
    inR(
      'iptables',
      '-A',
      'FORWARD',
      '-i',
      'pub',
      '-o',
      'priv',
      '-m',
      'conntrack',
      '--ctstate',
      'ESTABLISHED,RELATED',
      '-j',
      'ACCEPT',
    );
    // The test's control connection to baresip (TCP, never SIP or RTP), reached by a DNAT on the router.
    inR(
      'iptables',
      '-t',
      'nat',
      '-A',
      'PREROUTING',
      '-i',
      'pub',
      '-p',
      'tcp',
      '--dport',
      String(controlPort),
      '-j',
      'DNAT',
      '--to-destination',
      `10.78.${n}.2:${controlPort}`,
    );
    inR(
      'iptables',
      '-A',
      'FORWARD',
      '-i',
      'pub',
      '-o',
      'priv',
      '-p',
      'tcp',
      '--dport',
      String(controlPort),
      '-j',
      'ACCEPT',
    );
    inR('iptables', '-A', 'FORWARD', '-i', 'pub', '-o', 'priv', '-j', 'DROP');
    return { name: x, uaNs: u, uaIp: `10.78.${n}.2`, publicIp: `10.77.${n}.2` };
  });
}
