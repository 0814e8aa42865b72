/**
 * bench/proxy/routes: choosing the PSTN route of a call (the proxy's GatewayTable, like
 * Kamailio's lcr/drouting) in an LCR table of BENCH_ROUTES prefix routes: the time of one
 * `select` for numbers spread over the table, and of loading the table. No SIP; the rest of a
 * call's cost is in bench/proxy/run.ts.
 *
 * `node --import tsx bench/proxy/routes.ts`
 * Env: BENCH_ROUTES (20000), BENCH_CALLS (20000 a round, three rounds).
 */
import { processEnv } from '@switchboard/platform';
import { GatewayTable } from '../../services/sip-proxy/src/routing/gateways';

const env = processEnv();
const ROUTES = Number(env.BENCH_ROUTES ?? 20_000);
const CALLS = Number(env.BENCH_CALLS ?? 20_000);

const table = new GatewayTable();
for (const id of ['carrier-a', 'carrier-b'])
  table.apply(`gateway:${id}`, { kind: 'gateway', id, address: `${id}.example` });
let t = performance.now();
// A deck's prefixes: 49 15x xxxx, each routed to both carriers, and a default route.
table.apply('route:default', { kind: 'route', id: 'default', prefix: '', gatewayIds: ['carrier-a'] });
for (let i = 0; i < ROUTES; i++) {
  table.apply(`route:r${i}`, {
    kind: 'route',
    id: `r${i}`,
    prefix: `+${4_915_000 + i}`,
    gatewayIds: ['carrier-a', 'carrier-b'],
    priority: i % 3,
  });
}
console.log(`${ROUTES} routes loaded in ${(performance.now() - t).toFixed(1)} ms`);
for (let round = 1; round <= 3; round++) {
  t = performance.now();
  let hops = 0;
  for (let i = 0; i < CALLS; i++)
    hops += table.select(`${4_915_000 + ((i * 7919) % ROUTES)}1234`, 'example.com').hops.length;
  const us = ((performance.now() - t) * 1000) / CALLS;
  console.log(`round ${round}: ${us.toFixed(2)} µs a select (${CALLS} calls, ${hops} hops)`);
}
