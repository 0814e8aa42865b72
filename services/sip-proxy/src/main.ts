/**
 * services/sip-proxy: the SIP edge. Transports, transactions, digest
 * authentication, the registrar front, routing and forking, NAT handling and
 * redirect mode, answering from in-memory replicas of the `subscribers` and
 * `location` topics.
 */
import { randomBytes } from 'node:crypto';
import { BlockList, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { readFileSync } from 'node:fs';
import {
  bool,
  defineService,
  grpcClient,
  hostPort,
  int,
  list,
  oneOf,
  optional,
  str,
  type ConfigOf,
  Replica,
} from '@switchboard/platform';
import {
  DigestServer,
  SipResolver,
  TransactionLayer,
  createSipTransport,
  systemClock,
  type ListenSpec,
  type SendTarget,
  type TransportName,
  literalTarget,
  resolveInputFromUri,
} from '@switchboard/sip';
import {
  TOPICS,
  decodeRecord,
  encodeRecord,
  type LocationRecord,
  type GatewayRecord,
  type RoutingRecord,
  type SubscriberRecord,
} from '@switchboard/contracts';
import { AuthorizeResponse_Reason, RatingClient } from '@switchboard/proto/rating';
import { GatewayTable } from './routing/gateways';
import type { DialPlan } from './routing/numbers';
import { TrunkRegistrations } from './trunks';
import { enumLookup } from './routing/enum';
import { Resolver } from 'node:dns/promises';
import { Counter, Histogram } from 'prom-client';
import { Router } from './routing/router';
import { RegistrarClient } from '@switchboard/proto/registrar';
import { AbuseGuard } from './abuse';
import { Authenticator } from './auth';
import { Domains } from './domains';
import { ProxyMetrics } from './metrics';
import { ProxyCore, parseFeatureCodes } from './proxy-core';
import { RegisterBatcher, RegistrarFront, showsBindings } from './register';
import { AccountingClient } from './acc';
import { MediaAnchor } from './media';
import { MediaProxyClient } from '@switchboard/proto/media';
import { Tracer } from './trace';
import { traceRoutes } from './trace-http';
import { natKeepaliveFor, natPingConfig } from './keepalive';

export const sipProxyConfig = {
  domain: str(
    'SWITCHBOARD_SIP_DOMAIN',
    'switchboard.local',
    'Default SIP domain (users of a bare IP Request-URI belong to it)',
  ),
  domains: list('SWITCHBOARD_SIP_DOMAINS', '', 'Further local SIP domains, comma-separated'),
  listen: list(
    'SWITCHBOARD_SIP_LISTEN',
    'udp:0.0.0.0:5060,tcp:0.0.0.0:5060',
    'SIP listeners as transport:address:port (udp, tcp, tls, ws, wss; IPv6 in brackets)',
  ),
  advertise: optional(
    'SWITCHBOARD_SIP_ADVERTISE',
    'Address put in Via and Record-Route when listening on a wildcard address',
  ),
  tlsCert: optional('SWITCHBOARD_SIP_TLS_CERT', 'PEM certificate file for tls and wss listeners'),
  tlsKey: optional('SWITCHBOARD_SIP_TLS_KEY', 'PEM private key file for tls and wss listeners'),
  mode: oneOf(
    'SWITCHBOARD_PROXY_MODE',
    'proxy',
    ['proxy', 'redirect'] as const,
    'Proxy calls, or answer INVITEs with 302 and the contacts',
  ),
  registrar: hostPort('SWITCHBOARD_SIP_REGISTRAR', '127.0.0.1:50051', 'Registrar gRPC address'),
  nonceSecret: optional(
    'SWITCHBOARD_SIP_NONCE_SECRET',
    'Secret of the digest nonces; proxies behind one name must share it (default: random per process)',
  ),
  nonceLifetimeSec: int(
    'SWITCHBOARD_SIP_NONCE_LIFETIME',
    300,
    'Seconds a digest nonce stays fresh (then stale=true)',
    10,
  ),
  inviteTimeoutMs: int(
    'SWITCHBOARD_SIP_INVITE_TIMEOUT_MS',
    30000,
    'How long a branch may ring before it is cancelled (fr_inv_timer)',
    100,
  ),
  branchTimeoutMs: int(
    'SWITCHBOARD_SIP_BRANCH_TIMEOUT_MS',
    30000,
    'How long a branch may stay without any response (fr_timer)',
    100,
  ),
  trusted: list(
    'SWITCHBOARD_SIP_TRUSTED',
    '',
    'Addresses or CIDRs of trusted gateways and peers, not challenged',
  ),
  authForeign: oneOf(
    'SWITCHBOARD_SIP_AUTH_FOREIGN',
    'none',
    ['none', 'challenge'] as const,
    "Callers of other domains (not trusted peers or gateways): let through, or challenged in the called domain's realm",
  ),
  mediaRelay: oneOf(
    'SWITCHBOARD_SIP_MEDIA_RELAY',
    'auto',
    ['auto', 'always', 'never'] as const,
    'Relay media through the media proxy: when a party is behind NAT (auto), for every call, or never',
  ),
  mediaProxy: optional(
    'SWITCHBOARD_SIP_MEDIA_PROXY',
    'Media proxy gRPC address host:port (default: the media proxy in this process, if any)',
  ),
  radius: list(
    'SWITCHBOARD_SIP_RADIUS',
    '',
    'RADIUS accounting servers as host:port, in failover order (default: the accounting service in this process, if any)',
  ),
  radiusSecret: str(
    'SWITCHBOARD_SIP_RADIUS_SECRET',
    'switchboard-local',
    'RADIUS shared secret of the proxy',
  ),
  trace: bool(
    'SWITCHBOARD_SIP_TRACE',
    false,
    'Store every SIP message for search (switch at run time: POST /sip/trace/config on the ops port)',
  ),
  traceCapacity: int('SWITCHBOARD_SIP_TRACE_CAPACITY', 20000, 'Most SIP messages kept in the trace store', 1),
  traceRetentionMs: int(
    'SWITCHBOARD_SIP_TRACE_RETENTION_MS',
    3600000,
    'How long stored SIP messages stay searchable',
    1000,
  ),
  hep: optional(
    'SWITCHBOARD_SIP_HEP',
    'Homer/heplify collector as host:port: every SIP message mirrored as HEPv3',
  ),
  hepCaptureId: int('SWITCHBOARD_SIP_HEP_ID', 2001, 'HEP capture agent id', 0),
  pikeRequests: int(
    'SWITCHBOARD_SIP_PIKE_REQUESTS',
    100,
    'Requests allowed per source per window before it is blocked',
    1,
  ),
  pikeWindowMs: int('SWITCHBOARD_SIP_PIKE_WINDOW_MS', 2000, 'Rate-limit window', 100),
  pikeBlockMs: int(
    'SWITCHBOARD_SIP_PIKE_BLOCK_MS',
    30000,
    'How long a source over the rate stays blocked',
    0,
  ),
  banFailures: int(
    'SWITCHBOARD_SIP_BAN_FAILURES',
    5,
    'Failed authentications allowed per source or user per window',
    1,
  ),
  banWindowMs: int('SWITCHBOARD_SIP_BAN_WINDOW_MS', 60000, 'Failed-authentication window', 1000),
  banMs: int('SWITCHBOARD_SIP_BAN_MS', 600000, 'How long a banned source or user stays banned', 0),
  timersT1: int('SWITCHBOARD_SIP_T1_MS', 500, 'SIP timer T1 (RTT estimate)', 10),
  timersWait: int(
    'SWITCHBOARD_SIP_WAIT_MS',
    5000,
    "How long a transaction stays after its final response to absorb retransmissions (Timers J, L, M; Kamailio's wt_timer); RFC 6026 gives 64 × T1 (32 s)",
    0,
  ),
  resolveIpv6: bool('SWITCHBOARD_SIP_IPV6', true, 'Try AAAA records when resolving next hops'),
  udpSendThread: bool(
    'SWITCHBOARD_SIP_UDP_SEND_THREAD',
    true,
    "UDP sends on a native thread, one wake-up per event-loop turn (libs/sip/native); false, or without the addon, through node:dgram's send",
  ),
  ...natPingConfig,
  countryCode: str(
    'SWITCHBOARD_SIP_COUNTRY_CODE',
    '',
    "Country code of the subscribers' numbers (dial plan: national numbers become E.164); empty: numbers are dialled internationally",
  ),
  nationalPrefix: str('SWITCHBOARD_SIP_NATIONAL_PREFIX', '0', 'Dial plan: prefix of a national number'),
  internationalPrefix: str(
    'SWITCHBOARD_SIP_INTERNATIONAL_PREFIX',
    '00',
    'Dial plan: prefix of an international number (besides +)',
  ),
  premiumPrefixes: list(
    'SWITCHBOARD_SIP_PREMIUM_PREFIXES',
    '',
    "E.164 prefixes of premium-rate destinations (callable with the 'premium' privilege)",
  ),
  blockedPrefixes: list(
    'SWITCHBOARD_SIP_BLOCKED_PREFIXES',
    '',
    'E.164 prefixes nobody may call (fraud), refused with 403',
  ),
  forwardMaxDepth: int(
    'SWITCHBOARD_SIP_FORWARD_MAX_DEPTH',
    5,
    'How many times one call may be forwarded',
    1,
    20,
  ),
  mediaServer: optional(
    'SWITCHBOARD_SIP_MEDIA_SERVER',
    'Media server SIP address host:port for voicemail, conferences and announcements (default: the media server in this process, if any)',
  ),
  mailboxUsers: list(
    'SWITCHBOARD_SIP_MAILBOX_USERS',
    '*98',
    'Numbers a subscriber dials to reach its own mailbox on the media server',
  ),
  announceFailures: bool(
    'SWITCHBOARD_SIP_ANNOUNCE_FAILURES',
    false,
    'Callers refused for no credit, no privilege or an unknown number hear why from the media server (early media) before the failure',
  ),
  rating: optional(
    'SWITCHBOARD_SIP_RATING',
    'Rating gRPC address host:port for credit control of PSTN calls (default: the rating service in this process, if any; none: calls are not authorized)',
  ),
  gatewayFailures: int(
    'SWITCHBOARD_SIP_GATEWAY_FAILURES',
    3,
    'Consecutive failures (timeout, 408, 5xx) after which a gateway is marked down',
    1,
  ),
  featureCodes: list(
    'SWITCHBOARD_SIP_FEATURE_CODES',
    '*72=always,*73=-always,*90=busy,*91=-busy,*92=no-answer,*93=-no-answer,*94=unavailable,*95=-unavailable',
    'Feature codes phones dial: code=condition sets that forwarding to the number dialled after the code, code=-condition clears it',
  ),
  enumSuffix: optional(
    'SWITCHBOARD_SIP_ENUM_SUFFIX',
    'ENUM (RFC 6116) domain suffix such as e164.arpa: E.164 numbers with an E2U+sip NAPTR there are reached without the PSTN',
  ),
  enumServers: list(
    'SWITCHBOARD_SIP_ENUM_SERVERS',
    '',
    'DNS servers for ENUM lookups (ip or ip:port); default the system resolver',
  ),
  trunkExpiresSec: int(
    'SWITCHBOARD_SIP_TRUNK_EXPIRES',
    600,
    'Expires the proxy asks for when it registers with a SIP trunk (gateways with register and credentials)',
    30,
  ),
  gatewayProbeSec: int(
    'SWITCHBOARD_SIP_GATEWAY_PROBE_INTERVAL',
    10,
    'Seconds between OPTIONS probes of a gateway marked down',
    1,
  ),
  digestAlgorithms: {
    ...list(
      'SWITCHBOARD_SIP_DIGEST_ALGORITHMS',
      'MD5,SHA-256',
      'Digest challenges offered, in order (MD5, SHA-256); some UAs (baresip 1.0) give up on a challenge they cannot answer: MD5 alone for them',
    ),
    parse: (s: string): ('MD5' | 'SHA-256')[] => {
      const v = s
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      if (!v.length || v.some((a) => a !== 'MD5' && a !== 'SHA-256'))
        throw new Error(`expected MD5 and/or SHA-256, got "${s}"`);
      return v as ('MD5' | 'SHA-256')[];
    },
  },
};
export type SipProxyConfig = ConfigOf<typeof sipProxyConfig>;

/**
 * UDP receive buffer of the SIP sockets (the kernel caps it at net.core.rmem_max): a burst
 * or a pause of the event loop (GC) queues requests instead of dropping them, as Kamailio's
 * probing of the largest buffer does.
 */
const UDP_RECV_BUFFER = 4 * 1024 * 1024;

/** `udp:0.0.0.0:5060`, `tls:[::]:5061` → listen spec. */
export function parseListen(s: string, tls?: { cert: Buffer; key: Buffer }): ListenSpec {
  const m = /^(udp|tcp|tls|ws|wss):(\[[^\]]+\]|[^:]+):(\d+)$/.exec(s.trim());
  if (!m) throw new Error(`SWITCHBOARD_SIP_LISTEN: "${s}" is not transport:address:port`);
  const transport = m[1] as TransportName;
  if ((transport === 'tls' || transport === 'wss') && !tls) {
    throw new Error(
      `SWITCHBOARD_SIP_LISTEN: ${transport} needs SWITCHBOARD_SIP_TLS_CERT and SWITCHBOARD_SIP_TLS_KEY`,
    );
  }
  return {
    transport,
    host: m[2].replace(/^\[|\]$/g, ''),
    port: Number(m[3]),
    tls: transport === 'tls' || transport === 'wss' ? tls : undefined,
  };
}

/** Longest a 200 to a REGISTER waits for this proxy's location replica to show what it registered. */
const REPLICA_WAIT_MS = 500;

function firstAddress(family: 4 | 6): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && (a.family === 'IPv4' ? 4 : 6) === family) return a.address;
  }
  return family === 4 ? '127.0.0.1' : '::1';
}

function trustedList(entries: readonly string[]): (address: string) => boolean {
  const bl = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/');
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4';
    if (bits) bl.addSubnet(addr, Number(bits), type);
    else bl.addAddress(addr, type);
  }
  if (entries.length === 0) return () => false;
  // Asked twice per request (rate limit, then authentication): remember the answer per address.
  const known = new Map<string, boolean>();
  return (a) => {
    let v = known.get(a);
    if (v === undefined) {
      v = bl.check(a, isIPv6(a) ? 'ipv6' : 'ipv4');
      if (known.size >= 10_000) known.clear();
      known.set(a, v);
    }
    return v;
  };
}

/** ENUM lookups under a suffix, through the given DNS servers (one try, 1 s), or undefined when ENUM is off. */
function enumFor(suffix: string | undefined, servers: readonly string[]) {
  if (!suffix) return undefined;
  const dns = new Resolver({ timeout: 1000, tries: 1 });
  if (servers.length) dns.setServers([...servers]);
  return (number: string) => enumLookup(number, suffix, dns);
}

export const sipProxyService = defineService({
  name: 'sip-proxy',
  description: 'SIP edge: registrar front, digest auth, stateful proxy and forking, NAT, redirect mode',
  dependsOn: ['registrar', 'accounting', 'media-proxy', 'rating', 'media-server'],
  configSpec: sipProxyConfig,
  async start(ctx, config) {
    const tls =
      config.tlsCert && config.tlsKey
        ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) }
        : undefined;
    const listen = config.listen.map((l) => parseListen(l, tls));

    const bus = await ctx.events();
    const subscribers = new Replica<SubscriberRecord>(TOPICS.subscribers, 'sip-proxy-subscribers');
    const location = new Replica<LocationRecord>(TOPICS.location, 'sip-proxy-location');
    const routing = new Replica<RoutingRecord>(TOPICS.routing, 'sip-proxy-routing');
    const domains = new Domains(config.domain, config.domains);
    const gateways = new GatewayTable(config.gatewayFailures);
    // Trusted peers: configured, provisioned (routing topic), and every gateway's address.
    const trustedEntries = new Map<string, string>();
    let isTrusted = trustedList(config.trusted);
    // Set once the core can send: gateway changes before then are picked up from the table.
    const uac: { trunks?: TrunkRegistrations } = {};
    const dialPlans = new Map<string, DialPlan>();
    routing.onChange = (key, rec, prev) => {
      gateways.apply(key, rec);
      if ((rec ?? prev)?.kind === 'gateway')
        uac.trunks?.update(key.slice('gateway:'.length), rec as GatewayRecord | null);
      const r = rec ?? prev;
      if (rec?.kind === 'domain') {
        domains.addDomain(rec.domain);
        const d = rec.domain.toLowerCase();
        if (rec.dialPlan) dialPlans.set(d, { ...rec.dialPlan, minDigits: 7 });
        else dialPlans.delete(d);
      }
      if (r?.kind === 'trusted') {
        if (rec?.kind === 'trusted') trustedEntries.set(key, rec.cidr);
        else trustedEntries.delete(key);
        isTrusted = trustedList([...config.trusted, ...trustedEntries.values()]);
      }
    };
    const mediaServer =
      config.mediaServer ??
      ctx
        .localEndpoint('media-server', 'SIP udp')
        ?.replace(/^sip:/, '')
        .replace(/;.*$/, '')
        .replace(/^0\.0\.0\.0:/, '127.0.0.1:');
    const plan: DialPlan = {
      countryCode: config.countryCode,
      nationalPrefix: config.nationalPrefix,
      internationalPrefix: config.internationalPrefix,
      minDigits: 7,
    };
    const premium = config.premiumPrefixes.map((p) => p.replace(/^\+/, ''));
    const router = new Router({
      domains,
      byAor: (aor) => subscribers.get(aor),
      isRegistered: (aor) => (location.get(aor)?.bindings.length ?? 0) > 0,
      // A domain's own dial plan (set in the portal), else the configured one.
      dialPlan: (d) => dialPlans.get(d) ?? plan,
      classes: (d) => ({ countryCode: (dialPlans.get(d) ?? plan).countryCode, premium }),
      blockedPrefixes: config.blockedPrefixes,
      gateways,
      mediaServer,
      mailboxUsers: config.mailboxUsers,
    });
    subscribers.onChange = (_key, rec, prev) => router.subscriberChanged(prev, rec);
    for (const replica of [subscribers, location, routing]) {
      replica.onMalformed = (key, err) =>
        ctx.logger.warn(
          { topic: replica.topic, key, err },
          'a record that is not JSON was skipped; the key keeps its value',
        );
      await replica.start(bus);
    }
    await bus.ensureTopic(TOPICS.featureRequests);
    ctx.ops.addReadinessCheck('registrar', () => true);

    // The registrar in this process, if it runs here (on whatever port it got); else the configured address.
    const registrarAddress =
      ctx.localEndpoint('registrar', 'gRPC')?.replace('grpc://', '') ??
      `${config.registrar.host}:${config.registrar.port}`;
    const registrar = grpcClient(RegistrarClient, registrarAddress, { deadlineMs: 3000 });
    const trusted = (a: string) => gateways.byAddress(a) !== undefined || isTrusted(a);
    const guard = new AbuseGuard(
      { maxRequests: config.pikeRequests, windowMs: config.pikeWindowMs, blockMs: config.pikeBlockMs },
      { maxFailures: config.banFailures, windowMs: config.banWindowMs, banMs: config.banMs },
      Date.now,
      trusted,
    );
    const digest = new DigestServer({
      secret: config.nonceSecret ?? randomBytes(32),
      nonceLifetimeSec: config.nonceLifetimeSec,
      // MD5 first: many UAs (SIPp, most deployed phones) read only the first challenge and
      // fail on SHA-256 (RFC 8760 §2.4 expects them to skip it, they do not); SHA-256 still offered.
      algorithms: config.digestAlgorithms,
      clock: { now: Date.now },
    });

    let localSip = { address: '127.0.0.1', port: 5060 };
    const hep = config.hep ? /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(config.hep) : undefined;
    if (config.hep && !hep) throw new Error(`SWITCHBOARD_SIP_HEP: "${config.hep}" is not host:port`);
    const tracer = new Tracer({
      capacity: config.traceCapacity,
      retentionMs: config.traceRetentionMs,
      global: config.trace,
      hep: hep
        ? { host: hep[1].replace(/^\[|\]$/g, ''), port: Number(hep[2]), captureId: config.hepCaptureId }
        : undefined,
      local: () => localSip,
    });
    for (const [path, handler] of Object.entries(traceRoutes(tracer))) ctx.ops.addRoute(path, handler);
    // Accounting: the configured RADIUS servers, else the accounting service running in this process.
    const localRadius = ctx.localEndpoint('accounting', 'RADIUS accounting')?.replace('udp://', '');
    const radiusServers = (config.radius.length ? config.radius : localRadius ? [localRadius] : []).map(
      (hp) => {
        const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hp);
        if (!m) throw new Error(`SWITCHBOARD_SIP_RADIUS: "${hp}" is not host:port`);
        const host = m[1].replace(/^\[|\]$/g, '');
        return {
          host: host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host,
          port: Number(m[2]),
          secret: config.radiusSecret,
        };
      },
    );
    const acc = radiusServers.length
      ? new AccountingClient(await ctx.db(), radiusServers, {
          nasIp: config.advertise ?? firstAddress(4),
          logger: ctx.logger,
          registry: ctx.metrics,
        })
      : undefined;
    await acc?.start();
    const mediaAddress =
      config.mediaProxy ?? ctx.localEndpoint('media-proxy', 'gRPC')?.replace('grpc://', '');
    const mediaClient = mediaAddress
      ? grpcClient(MediaProxyClient, mediaAddress, { deadlineMs: 2000 })
      : undefined;
    const media = new MediaAnchor(mediaClient, config.mediaRelay, ctx.logger);
    const transport = createSipTransport({
      listen,
      udpRecvBufferSize: UDP_RECV_BUFFER,
      udpSendThread: config.udpSendThread,
      tap: tracer.tap,
    });
    const tl = new TransactionLayer({ transport, timers: { T1: config.timersT1, wait: config.timersWait } });
    const running: { core?: ProxyCore } = {};
    const metrics = new ProxyMetrics(ctx.metrics, {
      transactions: () => Object.values(tl.counts).reduce((a, b) => a + b, 0),
      callsActive: () => running.core?.activeCalls ?? 0,
      bannedSources: () => guard.bannedSources(),
      gatewaysDown: () => gateways.down().length,
      udpSendThread: () => transport.udpSendStats(),
    });
    // Credit control: the configured rating service, else the one in this process.
    const ratingAddress = config.rating ?? ctx.localEndpoint('rating', 'gRPC')?.replace('grpc://', '');
    const rating = ratingAddress ? grpcClient(RatingClient, ratingAddress, { deadlineMs: 2000 }) : undefined;
    const auth = new Authenticator(digest, { byAor: (aor) => subscribers.get(aor) }, guard, (r) =>
      metrics.authFailure(r),
    );
    // The REGISTERs of one event-loop turn go to the registrar in one RegisterBatch call.
    const registerBatchSize = new Histogram({
      name: 'switchboard_sip_register_batch_size',
      help: 'REGISTERs per RegisterBatch call to the registrar',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [ctx.metrics],
    });
    const front = new RegistrarFront(
      domains,
      auth,
      new RegisterBatcher(registrar, { onBatch: (n) => registerBatchSize.observe(n) }),
      Date.now,
      // the 200 waits (a moment, at most REPLICA_WAIT_MS) for this proxy's replica to show the bindings
      (aor, bindings) =>
        location.when(aor, (rec) => showsBindings(rec?.bindings ?? [], bindings), REPLICA_WAIT_MS),
    );
    const resolver = new SipResolver({
      ipv6: config.resolveIpv6,
      transports: [...new Set(listen.map((l) => l.transport))].filter((t) => t !== 'ws' && t !== 'wss'),
    });

    const bound = await transport.start();
    const advertised = (host: string, family: 4 | 6) =>
      host === '0.0.0.0' || host === '::' ? (config.advertise ?? firstAddress(family)) : host;
    for (const b of bound) domains.addAddress(advertised(b.host, isIPv6(b.host) ? 6 : 4), b.port);
    if (config.advertise) domains.addAddress(config.advertise);
    if (bound[0])
      localSip = { address: advertised(bound[0].host, isIPv6(bound[0].host) ? 6 : 4), port: bound[0].port };

    const localCache = new Map<string, { host: string; port: number } | undefined>();
    const core = new ProxyCore(
      {
        tl,
        local: {
          // Asked for every forwarded message; the listeners are bound by now, so the answer is kept.
          localFor: (t, family) => {
            const key = `${t}${family ?? ''}`;
            if (localCache.has(key)) return localCache.get(key);
            const b = transport.localFor(t, family);
            const a = b && { host: advertised(b.host, isIPv6(b.host) ? 6 : 4), port: b.port };
            localCache.set(key, a);
            return a;
          },
        },
        domains,
        auth,
        registrar: front,
        location: {
          lookup: (aor) => {
            const now = Math.floor(Date.now() / 1000);
            return (location.get(aor)?.bindings ?? []).filter((b) => b.expires > now);
          },
        },
        subscribers: { byAor: (aor) => subscribers.get(aor) },
        resolver: {
          resolve: async (uri) =>
            (await resolver.resolve(resolveInputFromUri(uri))).map((t): SendTarget => ({
              transport: t.transport,
              address: t.address,
              port: t.port,
              hostname: t.hostname,
            })),
          resolveNow: (uri) => literalTarget(resolveInputFromUri(uri)),
        },
        guard,
        metrics,
        logger: ctx.logger,
        clock: systemClock,
        acc,
        media,
        router,
        gateways,
        enumLookup: enumFor(config.enumSuffix, config.enumServers),
        requestFeature: async (r) => {
          await bus.publish(TOPICS.featureRequests, [{ key: r.aor, value: encodeRecord(r) }]);
        },
        credit: rating && {
          async authorize(account, callee, callId) {
            const r = await rating.authorize({ account, callee, callId });
            return {
              allowed: r.allowed,
              maxSeconds: r.maxSeconds,
              reason: AuthorizeResponse_Reason[r.reason].replace(/^REASON_/, '').toLowerCase(),
            };
          },
        },
      },
      {
        mode: config.mode,
        inviteTimeoutMs: config.inviteTimeoutMs,
        branchTimeoutMs: config.branchTimeoutMs,
        isTrusted: trusted,
        maxForwardDepth: config.forwardMaxDepth,
        announceFailures: config.announceFailures,
        mediaServer,
        featureCodes: parseFeatureCodes(config.featureCodes),
        authForeign: config.authForeign,
      },
    );
    running.core = core;
    const trunkOutcomes = new Counter({
      name: 'switchboard_trunk_registrations_total',
      help: 'Registrations of the proxy with SIP trunks, by outcome',
      labelNames: ['outcome'],
      registers: [ctx.metrics],
    });
    const trunks = new TrunkRegistrations(
      {
        send: (req, target, onResponse) => core.originate(req, target, onResponse),
        resolve: (uri) => core.resolveFirst(uri),
        contactHost: (target) => {
          const b = transport.localFor(target.transport, isIPv6(target.address) ? 6 : 4);
          if (!b) return undefined;
          const host = advertised(b.host, isIPv6(b.host) ? 6 : 4);
          return `${host.includes(':') ? `[${host}]` : host}:${b.port}`;
        },
        clock: systemClock,
        logger: ctx.logger,
        onOutcome: (outcome) => trunkOutcomes.inc({ outcome }),
      },
      { expiresSec: config.trunkExpiresSec, retrySec: 30 },
    );
    for (const g of gateways.all()) trunks.update(g.id, g);
    uac.trunks = trunks;
    // The media proxy saw no RTP for a call: end the dialog (each proxy process hears every event; the one holding the call acts).
    await bus.ensureTopic(TOPICS.mediaEvents);
    const mediaEvents = await bus.subscribe({
      topic: TOPICS.mediaEvents,
      group: `sip-proxy-media-${randomBytes(6).toString('hex')}`,
      fromBeginning: false,
      handler: async (m) => {
        const e = decodeRecord<{ type?: string; callId?: string }>(m.value);
        if (e?.type === 'timeout' && e.callId) core.mediaTimeout(e.callId);
      },
    });
    tl.attach(core);
    const prune = setInterval(() => guard.prune(), 10_000);
    prune.unref();
    const probe = setInterval(
      () =>
        void core.probeGateways().catch((err: unknown) => ctx.logger.warn({ err }, 'gateway probe failed')),
      config.gatewayProbeSec * 1000,
    );
    probe.unref();
    const natPing = natKeepaliveFor(location, transport, advertised, config, systemClock, ctx.metrics);
    natPing.start();

    for (const b of bound) {
      const host = b.host.includes(':') ? `[${b.host}]` : b.host;
      ctx.endpoint(`SIP ${b.transport}`, `sip:${host}:${b.port};transport=${b.transport}`);
    }
    ctx.logger.info(
      { listen: bound, domain: config.domain, mode: config.mode, udpSender: transport.udpSender() },
      'sip proxy ready',
    );

    return {
      async stop() {
        clearInterval(prune);
        clearInterval(probe);
        trunks.stop();
        await mediaEvents.close();
        rating?.close();
        natPing.stop();
        tracer.close();
        await acc?.stop();
        mediaClient?.close();
        await transport.stop();
        registrar.close();
        await subscribers.stop();
        await location.stop();
        await routing.stop();
      },
    };
  },
});

export default sipProxyService;
