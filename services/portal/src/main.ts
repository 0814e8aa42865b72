/**
 * services/portal: provisioning. The source of truth for subscribers and
 * domains (PostgreSQL schema `portal`), served as a REST API under `/api/v1`
 * (NestJS), and published for the proxies on the compacted `subscribers`
 * (key = AoR) and `routing` (key = `domain:<id>`) topics through an outbox.
 */
import { join } from 'node:path';
import { Counter } from 'prom-client';
import {
  bool,
  defineService,
  oneOf,
  grpcClient,
  int,
  migrate,
  optional,
  port,
  str,
  unavailable,
  type ConfigOf,
  type Setting,
} from '@switchboard/platform';
import { RATE_PLAN_MAX_BYTES, TOPICS, decodeRecord, type FeatureRequest } from '@switchboard/contracts';
import { RegistrarClient, type Binding } from '@switchboard/proto/registrar';
import { RatingAdminClient, type Cdr, type GetBalanceResponse } from '@switchboard/proto/rating';
import {
  apiRoutes,
  type BalanceView,
  type CdrView,
  type RatingPort,
  type Registration,
  type TraceMessage,
} from './api';
import { formatMicros } from './money';
import { startHttpServer, type Authenticator } from './http';
import { WebAuth } from './web-auth';
import { RateLimiter } from './rate-limit';
import { openApiDocument } from './openapi';
import { OutboxRelay } from './relay';
import { ratingDelivery } from './rating-relay';
import { hashToken, parseSecretKey, sameHash } from './secrets';
import { PortalStore, RATING_CHANNEL } from './store';

const secretKey: Setting<Buffer | undefined> = {
  env: 'SWITCHBOARD_PORTAL_SECRET_KEY',
  description:
    'AES-256 key (64 hex digits or base64) to keep SIP passwords encrypted for phone provisioning; unset keeps only HA1 values',
  default: undefined,
  parse: (s) => (s.trim() === '' ? undefined : parseSecretKey(s)),
};

export const portalConfig = {
  httpHost: str(
    'SWITCHBOARD_PORTAL_HOST',
    '0.0.0.0',
    'Address the portal HTTP server (API and web UI) binds',
  ),
  httpPort: port('SWITCHBOARD_PORTAL_PORT', 8080, 'Portal HTTP port; 0 picks a free one'),
  adminToken: optional(
    'SWITCHBOARD_ADMIN_TOKEN',
    "An administrator's API token (how an operator bootstraps an empty system); unset: only tokens created through the API",
  ),
  sipDomain: str(
    'SWITCHBOARD_SIP_DOMAIN',
    'switchboard.local',
    'Default SIP domain (subscribers created without a domain)',
  ),
  registrar: optional(
    'SWITCHBOARD_PORTAL_REGISTRAR',
    'Registrar gRPC address host:port for live registrations, when no registrar runs in this process; unset: 127.0.0.1:50051',
  ),
  secretKey,
  rating: optional(
    'SWITCHBOARD_PORTAL_RATING',
    'Rating gRPC address host:port (balances, credit, vouchers, CDRs, rate plans), when no rating service runs in this process; unset: none',
  ),
  prepaid: bool(
    'SWITCHBOARD_PORTAL_PREPAID',
    true,
    "New subscribers' rating accounts are prepaid (else postpaid)",
  ),
  currency: str(
    'SWITCHBOARD_PORTAL_CURRENCY',
    'EUR',
    'Currency of new rating accounts and vouchers (ISO 4217)',
  ),
  templates: optional(
    'SWITCHBOARD_PORTAL_TEMPLATES',
    'Folder of phone provisioning templates (yealink.cfg, polycom.cfg, polycom-master.cfg, grandstream.xml, cisco-spa.xml, linphone.xml); unset: the built-in services/portal/provisioning',
  ),
  sipProxy: optional(
    'SWITCHBOARD_PORTAL_SIP_PROXY',
    "host:port phones register to; unset: the proxy in this process, else the subscriber's domain on 5060",
  ),
  sipTransport: oneOf(
    'SWITCHBOARD_PORTAL_SIP_TRANSPORT',
    'udp',
    ['udp', 'tcp', 'tls'] as const,
    'Transport phones use',
  ),
  publicUrl: optional(
    'SWITCHBOARD_PORTAL_PUBLIC_URL',
    'Base URL phones and browsers reach the portal at (e.g. https://portal.example.com); unset: its listening address',
  ),
  proxyOps: optional(
    'SWITCHBOARD_PORTAL_PROXY_OPS',
    "The SIP proxy's ops URL, where its SIP trace is searched (GET /sip/trace); unset: this process's ops server when the proxy runs here, else http://127.0.0.1:9464",
  ),
  sessionTtlMs: int(
    'SWITCHBOARD_PORTAL_SESSION_TTL_MS',
    8 * 3600 * 1000,
    'How long a web session lasts',
    60_000,
  ),
  loginMaxFailures: int(
    'SWITCHBOARD_PORTAL_LOGIN_MAX_FAILURES',
    5,
    'Consecutive failed logins that lock a login name',
    1,
  ),
  loginLockoutMs: int(
    'SWITCHBOARD_PORTAL_LOGIN_LOCKOUT_MS',
    15 * 60 * 1000,
    'How long a locked login name stays locked',
    1000,
  ),
  loginRate: int(
    'SWITCHBOARD_PORTAL_LOGIN_RATE',
    60,
    'Sign-in and sign-up attempts allowed per client address per minute',
    1,
  ),
  relayPollMs: int('SWITCHBOARD_PORTAL_RELAY_POLL_MS', 1000, 'How often the outbox is checked when idle', 10),
  relayLeaseMs: int(
    'SWITCHBOARD_PORTAL_RELAY_LEASE_MS',
    10000,
    'How long an outbox relay holds the outbox without renewing',
    100,
  ),
};
export type PortalConfig = ConfigOf<typeof portalConfig>;

const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');
/** Rate plan import and export: a carrier's deck takes seconds (about 2 s for 60,000 rates). */
const PLAN_DEADLINE_MS = 60_000;
const UI = join(import.meta.dirname, '..', 'ui');

function registration(b: Binding): Registration {
  return {
    aor: b.aor,
    contact: b.contact,
    expires: new Date(b.expires * 1000).toISOString(),
    ...(b.q === undefined ? {} : { q: b.q }),
    callId: b.callId,
    cseq: b.cseq,
    path: b.path,
    instanceId: b.instanceId,
    regId: b.regId,
    ...(b.received
      ? { received: { address: b.received.address, port: b.received.port, transport: b.received.transport } }
      : {}),
    userAgent: b.userAgent,
    updatedAt: new Date(b.updatedAt).toISOString(),
  };
}

function balanceView(a: GetBalanceResponse): BalanceView {
  return {
    account: a.account,
    balance: formatMicros(a.balanceMicros),
    balanceMicros: a.balanceMicros,
    reserved: formatMicros(a.reservedMicros ?? 0),
    currency: a.currency,
    prepaid: a.prepaid,
    blocked: a.blocked ?? false,
    planId: a.planId || null,
  };
}

function cdrView(c: Cdr): CdrView {
  return {
    id: c.id,
    callId: c.callId,
    caller: c.caller,
    callee: c.callee,
    startedAt: c.startedAt,
    answeredAt: c.answeredAt,
    endedAt: c.endedAt,
    durationSeconds: c.durationSeconds,
    billableSeconds: c.billableSeconds,
    disposition: c.disposition,
    sipCode: c.sipCode,
    destination: c.destination,
    price: formatMicros(c.priceMicros),
    currency: c.currency,
    account: c.account,
    gateway: c.gateway,
  };
}

export const portalService = defineService({
  name: 'portal',
  description:
    'provisioning: REST API for subscribers, domains, aliases, privileges; publishes subscribers and routing',
  configSpec: portalConfig,
  // Only so that an in-process registrar and rating start first; the portal runs without them.
  dependsOn: ['registrar', 'rating'],
  async start(ctx, config) {
    const db = await ctx.db();
    await migrate(db, { schema: 'portal', dir: MIGRATIONS });
    const events = await ctx.events();
    await events.ensureTopic(TOPICS.subscribers, { compacted: true });
    await events.ensureTopic(TOPICS.routing, { compacted: true });

    const published = new Counter({
      name: 'switchboard_portal_published_total',
      help: 'Records the portal published, by topic',
      labelNames: ['topic'],
      registers: [ctx.metrics],
    });
    const relay = new OutboxRelay(db, events, {
      channel: 'bus',
      batchSize: 500,
      pollMs: config.relayPollMs,
      leaseMs: config.relayLeaseMs,
      logger: ctx.logger,
      onPublished: (topic, n) => published.inc({ topic }, n),
    });
    // The rating service in this process if it runs here, else the configured one, else none.
    const ratingAddress = ctx.localEndpoint('rating', 'gRPC')?.replace('grpc://', '') ?? config.rating;
    const ratingAdmin = ratingAddress
      ? grpcClient(RatingAdminClient, ratingAddress, {
          deadlineMs: 5000,
          retries: 1,
          channelOptions: { 'grpc.max_receive_message_length': RATE_PLAN_MAX_BYTES },
        })
      : undefined;
    const ratingRelay = ratingAdmin
      ? new OutboxRelay(db, events, {
          channel: RATING_CHANNEL,
          batchSize: 500,
          pollMs: config.relayPollMs,
          leaseMs: config.relayLeaseMs,
          logger: ctx.logger,
          onPublished: (topic, n) => published.inc({ topic }, n),
          deliver: ratingDelivery(ratingAdmin, ctx.logger),
        })
      : undefined;
    const store = new PortalStore(db, {
      defaultDomain: config.sipDomain.toLowerCase(),
      secretKey: config.secretKey,
      onOutbox: () => {
        relay.notify();
        ratingRelay?.notify();
      },
      rating: ratingAdmin ? { prepaid: config.prepaid, currency: config.currency } : undefined,
    });
    await store.ensureDomain(config.sipDomain.toLowerCase());
    // The topics agree with this database after start-up, whatever was lost or restored.
    const republished = await store.republishAll();
    relay.start();
    await relay.drained();
    if (ratingRelay) {
      await store.resyncAccounts();
      ratingRelay.start();
    }
    const rating: RatingPort | undefined = ratingAdmin && {
      balance: async (account) => balanceView((await ratingAdmin.getAccount({ account })).account!),
      async cdrs(account, q) {
        const r = await ratingAdmin.listCdrs({
          account,
          from: q.from ?? 0,
          to: q.to ?? 0,
          pageSize: q.pageSize ?? 100,
          pageToken: q.pageToken ?? '',
          disposition: q.disposition ?? '',
          calleePrefix: q.calleePrefix ?? '',
          gateway: q.gateway ?? '',
        });
        return { items: r.cdrs.map(cdrView), nextPageToken: r.nextPageToken || null };
      },
      importPlan: (req) => ratingAdmin.importRatePlan(req, { deadlineMs: PLAN_DEADLINE_MS }),
      async exportPlan(planId) {
        const v = await ratingAdmin.exportRatePlan(
          { planId, effectiveFrom: 0 },
          { deadlineMs: PLAN_DEADLINE_MS },
        );
        return {
          planId: v.planId,
          effectiveFrom: new Date(v.effectiveFrom).toISOString(),
          currency: v.currency,
          timezone: v.timezone,
          holidays: v.holidays,
          ratesCsv: v.ratesCsv,
          periodsCsv: v.periodsCsv,
        };
      },
      assignDomainPlan: async (domain, planId) =>
        void (await ratingAdmin.assignDomainPlan({ domain, planId })),
      settle: () =>
        Promise.race([
          ratingRelay!.drained().then(() => true),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000).unref()),
        ]),
    };

    // The registrar in this process if it runs here, else the configured address.
    const registrarAddress =
      ctx.localEndpoint('registrar', 'gRPC')?.replace('grpc://', '') ?? config.registrar ?? '127.0.0.1:50051';
    const registrar = grpcClient(RegistrarClient, registrarAddress, { deadlineMs: 3000, retries: 1 });

    const adminHash = config.adminToken ? hashToken(config.adminToken) : undefined;
    const web = new WebAuth(db, {
      sessionTtlMs: config.sessionTtlMs,
      maxFailures: config.loginMaxFailures,
      lockoutMs: config.loginLockoutMs,
      defaultDomain: config.sipDomain.toLowerCase(),
    });
    const authenticate: Authenticator = {
      async bearer(token) {
        if (adminHash && sameHash(hashToken(token), adminHash))
          return { role: 'admin', actor: 'admin-token' };
        const t = await store.findToken(token);
        return t ? { role: t.role, actor: `token:${t.id}` } : undefined;
      },
      limiter: new RateLimiter(config.loginRate, 60_000),
      async session(cookie) {
        const s = await web.session(cookie);
        return s ? { role: s.role, actor: s.actor, subject: s.subject, csrf: s.csrf } : undefined;
      },
    };

    // The proxy's trace: this process's ops server when the proxy runs here, else the configured one.
    const proxyOps = (
      config.proxyOps ??
      (ctx.targets.includes('sip-proxy')
        ? ctx.localEndpoint('ops', 'metrics')?.replace(/\/metrics$/, '')
        : undefined) ??
      'http://127.0.0.1:9464'
    ).replace(/\/$/, '');

    let httpUrl = '';
    const routes = apiRoutes({
      store,
      web,
      async registrations(q) {
        const res = await registrar
          .listBindings({
            domain: q.domain ?? '',
            aorPrefix: q.aor ?? '',
            pageSize: q.pageSize ?? 100,
            pageToken: q.pageToken ?? '',
          })
          .catch((e: unknown) => {
            throw unavailable(`registrar at ${registrarAddress}: ${(e as Error).message}`, e);
          });
        return { items: res.bindings.map(registration), nextPageToken: res.nextPageToken || null };
      },
      async deregister(aor) {
        await registrar
          .unregister({ aor, contact: '' })
          .catch((err: unknown) =>
            ctx.logger.warn({ err, aor }, 'could not deregister a removed subscriber'),
          );
      },
      openapi: () => doc,
      async sipTrace(q) {
        const u = new URL(`${proxyOps}/sip/trace`);
        for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, String(v));
        let res: Response;
        try {
          res = await fetch(u, { signal: AbortSignal.timeout(5000) });
        } catch (e) {
          throw unavailable(`SIP proxy trace at ${proxyOps}: ${(e as Error).message}`, e);
        }
        if (!res.ok) throw unavailable(`SIP proxy trace at ${proxyOps}: HTTP ${res.status}`);
        return (await res.json()) as { messages: TraceMessage[] };
      },
      rating,
      provisioning: {
        templatesDir: config.templates ?? join(import.meta.dirname, '..', 'provisioning'),
        get proxy() {
          const fromConfig = config.sipProxy && /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(config.sipProxy);
          if (fromConfig) {
            return {
              host: fromConfig[1],
              port: Number(fromConfig[2] ?? 5060),
              transport: config.sipTransport,
            };
          }
          const local = ctx.localEndpoint('sip-proxy', `SIP ${config.sipTransport}`);
          const m = local && /^sip:(\[[^\]]+\]|[^:]+):(\d+)/.exec(local);
          if (m) return { host: m[1], port: Number(m[2]), transport: config.sipTransport };
          return { host: config.sipDomain, port: 5060, transport: config.sipTransport };
        },
        secretKey: config.secretKey,
        baseUrl: () => config.publicUrl?.replace(/\/$/, '') ?? httpUrl,
        onUnknown: (mac, file) => ctx.logger.warn({ mac, file }, 'provisioning: unknown MAC'),
      },
    });
    const doc = openApiDocument(routes, '1.0.0');

    const http = await startHttpServer({
      host: config.httpHost,
      port: config.httpPort,
      routes,
      authenticate,
      uiDir: UI,
      logger: ctx.logger,
      metrics: ctx.metrics,
    });
    const shown = config.httpHost === '0.0.0.0' ? '127.0.0.1' : config.httpHost;
    httpUrl = `http://${shown.includes(':') ? `[${shown}]` : shown}:${http.port}`;
    ctx.endpoint('HTTP', httpUrl);
    ctx.logger.info({ port: http.port, ...republished, adminToken: Boolean(adminHash) }, 'portal ready');

    // Feature codes dialled on phones (*72<number> ...): the proxy asks, the portal (the source of truth) applies.
    await events.ensureTopic(TOPICS.featureRequests);
    const featureCodes = await events.subscribe({
      topic: TOPICS.featureRequests,
      group: 'portal-feature-requests',
      fromBeginning: true,
      handler: async (m) => {
        const r = decodeRecord<FeatureRequest>(m.value);
        if (!r || r.kind !== 'forwarding') return;
        try {
          const applied = await store.applyFeatureCode(r.aor, r.condition, r.target);
          ctx.logger.info(
            { aor: r.aor, condition: r.condition, target: r.target, applied },
            'feature code applied',
          );
        } catch (err) {
          // A target the API would refuse (400): logged and skipped, not retried forever.
          if ((err as { kind?: string }).kind !== 'invalid_argument') throw err;
          ctx.logger.warn({ err, aor: r.aor, target: r.target }, 'feature code refused');
        }
      },
    });

    return {
      async stop() {
        await featureCodes.close();
        await http.close();
        await relay.stop();
        await ratingRelay?.stop();
        ratingAdmin?.close();
        registrar.close();
      },
    };
  },
});

export default portalService;
