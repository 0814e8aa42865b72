import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

/**
 * Test ports come from 10000-15999, below the kernel's ephemeral range (32768-60999 on
 * Linux): a port the kernel hands out for a bind to port 0 (a client socket of any test
 * running beside this one) could be taken between our check and the bind of whoever we give
 * it to (a SIPp then fails with "Address already in use"). Here only another explicit bind
 * can take it, and each pick is random, so two test processes rarely pick the same port at
 * the same moment. The range is also below the media proxy's default relay ports
 * (30000-39999), where a phone sending from there would look like the relay itself.
 */
const LOW = 10000;
const HIGH = 15999;

/** Whether 127.0.0.1:port is free for TCP and for UDP alike. */
async function bindable(port: number): Promise<boolean> {
  const s = createServer();
  const tcp = await new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.listen(port, '127.0.0.1', () => r(true));
  });
  if (!tcp) return false;
  await new Promise((r) => s.close(r));
  const u = createSocket('udp4');
  const udp = await new Promise<boolean>((r) => {
    u.once('error', () => r(false));
    u.bind(port, '127.0.0.1', () => r(true));
  });
  if (udp) await new Promise<void>((r) => u.close(() => r()));
  else u.close();
  return udp;
}

/**
 * Ports this process handed out: never given twice. A port given to a peer that is meant to stay
 * silent (a dead gateway) is free to bind, yet its proxy keeps sending it OPTIONS probes; a
 * SIPp given the same port by a later test of the file took one for its INVITE and aborted.
 */
const given = new Set<number>();

/**
 * A port free on 127.0.0.1 for TCP and UDP (checked, then released for the caller to bind),
 * and the three after it too: SIPp given it as its media port (-mp) binds four, audio and
 * video RTP and RTCP. A multiple of four, so two picks are the same block or do not overlap.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 1000; tries++) {
    const port = LOW + 4 * Math.floor((Math.random() * (HIGH - LOW + 1)) / 4);
    if (given.has(port)) continue;
    let free = true;
    for (let p = port; free && p < port + 4; p++) free = await bindable(p);
    if (!free) continue;
    given.add(port);
    return port;
  }
  throw new Error(`no free port in ${LOW}-${HIGH} after 1000 tries`);
}
