/**
 * The `/api/v1` routes as one table: method, path, auth, the zod schemas of
 * path, query and body, and the handler on the service layer. The HTTP layer
 * (NestJS, http.ts) mounts the table; the OpenAPI document is generated from it.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { DomainError, invalidArgument, notFound, type ErrorKind } from '@switchboard/platform';
import {
  AliasQuery,
  CreateAlias,
  CreateDomain,
  CreateSubscriber,
  CreateToken,
  CreateWebUser,
  IdParam,
  Login,
  UpdateMe,
  UpdateDomain,
  Signup,
  AddCredit,
  AssignPlan,
  CdrQuery,
  CreateVouchers,
  CdrSearchQuery,
  ImportRatePlan,
  RatePlanParam,
  RedeemVoucher,
  VoucherQuery,
  PageQuery,
  PrivilegeParam,
  RegistrationsQuery,
  SearchQuery,
  UpdateAlias,
  UpdateSubscriber,
  TraceQuery,
  parse,
} from './schemas';
import { KNOWN_PRIVILEGES, type PortalStore } from './store';
import { FEATURE_KINDS, ROUTING_KINDS, patchSchema } from './features';
import { ResponseSchemas } from './responses';
import { verifyPassword } from './secrets';
import { toMicros } from './money';
import {
  basicAuth,
  CreateDevice,
  loadTemplate,
  parseProvisioningFile,
  provisioningFile,
  render,
} from './provisioning';
import { decrypt, hashToken, sameHash } from './secrets';
import { clearedSessionCookie, cookieValue, SESSION_COOKIE, sessionCookie, type WebAuth } from './web-auth';

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** Who is calling: an administrator (token or web session) or a subscriber (web session). */
export interface Principal {
  role: 'admin' | 'subscriber';
  /** For the audit log: `admin-token` (SWITCHBOARD_ADMIN_TOKEN), `token:<id>`, `web:<user>` or `subscriber:<aor>`. */
  actor: string;
  /** The web user's or subscriber's id (sessions only). */
  subject?: string;
  /** Signed in with the cookie: changes need this CSRF token in X-CSRF-Token. */
  csrf?: string;
}

/** What a handler may do to the answer besides its body. */
export interface Reply {
  setHeader(name: string, value: string): void;
}

export interface RouteArgs<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal | undefined;
  headers: Record<string, string | string[] | undefined>;
  reply: Reply;
}

/**
 * `admin`, `subscriber`: that role; `owner`: an administrator, or the subscriber whose id is
 * the path's {id}; `any`: anyone signed in; `none`: public.
 */
export type Access = 'admin' | 'subscriber' | 'owner' | 'any' | 'none';

export interface RouteDef {
  method: HttpMethod;
  /** OpenAPI path, e.g. `/api/v1/subscribers/{id}`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  auth: Access;
  /** Success status; default 200. */
  status: number;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Name of the response schema in ResponseSchemas (none for 204). */
  response?: keyof typeof ResponseSchemas;
  /** Error statuses this route may answer besides 400/401/403. */
  errors?: number[];
  /** Counted against the per-address limit of unauthenticated attempts (sign-in, sign-up). */
  limited?: boolean;
  /** Largest JSON body, when more than the default 100 kB (body-parser's units, e.g. '32mb'). */
  bodyLimit?: string;
  run(args: RouteArgs<unknown, unknown, unknown>): Promise<unknown>;
}

/** Declares a route with its handler typed by its schemas. */
function route<
  P extends z.ZodType = z.ZodNever,
  Q extends z.ZodType = z.ZodNever,
  B extends z.ZodType = z.ZodNever,
>(def: {
  method: HttpMethod;
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  auth?: Access;
  status?: number;
  params?: P;
  query?: Q;
  body?: B;
  response?: keyof typeof ResponseSchemas;
  errors?: number[];
  limited?: boolean;
  bodyLimit?: string;
  handler: (args: RouteArgs<z.output<P>, z.output<Q>, z.output<B>>) => Promise<unknown> | unknown;
}): RouteDef {
  return {
    method: def.method,
    path: def.path,
    operationId: def.operationId,
    summary: def.summary,
    tag: def.tag,
    auth: def.auth ?? 'admin',
    status: def.status ?? (def.method === 'post' ? 201 : def.method === 'delete' ? 204 : 200),
    params: def.params,
    query: def.query,
    body: def.body,
    response: def.response,
    errors: def.errors,
    limited: def.limited,
    bodyLimit: def.bodyLimit,
    run: async (a) => def.handler(a as RouteArgs<z.output<P>, z.output<Q>, z.output<B>>),
  };
}

/** Validates a request's parts against a route's schemas (a bad path id is a 404: no such thing). */
export function validate(r: RouteDef, req: { params: unknown; query: unknown; body: unknown }) {
  let params: unknown = {};
  if (r.params) {
    try {
      params = parse(r.params, req.params, 'path');
    } catch (e) {
      // A malformed id names nothing that exists; other path parts (a plan id, a privilege) are 400s.
      if (e instanceof DomainError && ['id', 'featureId', 'deviceId'].includes(e.field ?? '')) {
        throw notFound(`no such ${r.tag.replace(/s$/, '')}`);
      }
      throw e;
    }
  }
  const query = r.query ? parse(r.query, req.query ?? {}, 'query') : {};
  const body = r.body ? parse(r.body, req.body, 'body') : undefined;
  return { params, query, body };
}

export interface Registration {
  aor: string;
  contact: string;
  expires: string;
  q?: number;
  callId: string;
  cseq: number;
  path: string[];
  instanceId: string;
  regId: number;
  received?: { address: string; port: number; transport: string };
  userAgent: string;
  updatedAt: string;
}

export interface ApiDeps {
  store: PortalStore;
  web: WebAuth;
  /** The registrar's bindings (gRPC ListBindings). */
  registrations(
    q: z.output<typeof RegistrationsQuery>,
  ): Promise<{ items: Registration[]; nextPageToken: string | null }>;
  /**
   * Removes every binding of an AoR at the registrar (a removed subscriber's phones), best
   * effort: resolves once the registrar answered, or after a failure was logged.
   */
  deregister(aor: string): Promise<void>;
  /** The OpenAPI document (built from this table). */
  openapi(): unknown;
  /** The rating service (balances, CDRs, rate plans); undefined when none is configured. */
  rating?: RatingPort;
  provisioning: ProvisioningDeps;
  /** The proxy's stored SIP trace (its ops port), credentials masked by the proxy. */
  sipTrace(q: TraceQuery): Promise<{ messages: TraceMessage[] }>;
}

export interface TraceMessage {
  time: string;
  dir: 'in' | 'out';
  transport: string;
  /** The other end, address:port. */
  peer: string;
  callId: string;
  summary: string;
  message: string;
}

export interface ProvisioningDeps {
  /** Folder of the vendor templates (read on every fetch, so edits apply at once). */
  templatesDir: string;
  /** Where phones register. */
  proxy: { host: string; port: number; transport: 'udp' | 'tcp' | 'tls' };
  /** To decrypt SIP passwords (phones other than Linphone need the password itself). */
  secretKey?: Buffer;
  /** The base URL phones fetch from. */
  baseUrl(): string;
  /** An unknown MAC asked for its configuration. */
  onUnknown(mac: string, file: string): void;
}

export interface BalanceView {
  account: string;
  balance: string;
  balanceMicros: number;
  reserved: string;
  currency: string;
  prepaid: boolean;
  blocked: boolean;
  planId: string | null;
}

export interface CdrView {
  id: string;
  callId: string;
  caller: string;
  callee: string;
  startedAt: string;
  answeredAt: string;
  endedAt: string;
  durationSeconds: number;
  billableSeconds: number;
  disposition: string;
  sipCode: number;
  destination: string;
  price: string;
  currency: string;
  /** The billed account (AoR). */
  account: string;
  /** The gateway's id for a PSTN call, '' on-net. */
  gateway: string;
}

export interface RatePlanView {
  planId: string;
  effectiveFrom: string;
  currency: string;
  timezone: string;
  holidays: string[];
  ratesCsv: string;
  periodsCsv: string;
}

export interface RatingPort {
  balance(account: string): Promise<BalanceView>;
  /** An account's CDRs, or every account's when account is ''. */
  cdrs(
    account: string,
    q: {
      from?: number;
      to?: number;
      pageSize?: number;
      pageToken?: string;
      disposition?: string;
      calleePrefix?: string;
      gateway?: string;
    },
  ): Promise<{ items: CdrView[]; nextPageToken: string | null }>;
  importPlan(req: {
    planId: string;
    currency: string;
    effectiveFrom: number;
    timezone: string;
    holidays: string[];
    ratesCsv: string;
    periodsCsv: string;
    actor: string;
  }): Promise<{ ok: boolean; rates: number; errors: string[] }>;
  assignDomainPlan(domain: string, planId: string): Promise<void>;
  /** The version of a plan in force now, as the CSV the import reads. */
  exportPlan(planId: string): Promise<RatePlanView>;
  /** Waits (bounded) until the queued rating changes are delivered; false when they are still pending. */
  settle(): Promise<boolean>;
}

const CDR_COLUMNS: (keyof CdrView)[] = [
  'id',
  'callId',
  'caller',
  'callee',
  'startedAt',
  'answeredAt',
  'endedAt',
  'durationSeconds',
  'billableSeconds',
  'disposition',
  'sipCode',
  'destination',
  'price',
  'currency',
  'account',
  'gateway',
];

/** Rows as RFC 4180 CSV lines, each ended by CRLF. */
function csvRows<T extends object>(columns: (keyof T & string)[], rows: T[]): string {
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  let out = '';
  for (const r of rows) out += `${columns.map((c) => cell((r as Record<string, unknown>)[c])).join(',')}\r\n`;
  return out;
}

/**
 * Every page of a listing as one CSV (RFC 4180, a header line), read a page at a time from
 * `first` on and streamed: an export of a month of calls is neither cut at one page nor held
 * whole in memory. The first page is read before anything is sent, so that its error is the
 * answer; one that fails later ends the response early (the client sees the transfer fail).
 */
export async function csvOfPages<T extends object>(
  columns: (keyof T & string)[],
  page: (token: string | undefined) => Promise<{ items: T[]; nextPageToken: string | null }>,
  first?: string,
): Promise<Readable> {
  let p = await page(first);
  async function* chunks() {
    yield `${columns.join(',')}\r\n`;
    for (;;) {
      if (p.items.length) yield csvRows(columns, p.items);
      if (!p.nextPageToken) return;
      p = await page(p.nextPageToken);
    }
  }
  return Readable.from(chunks());
}

/** CDRs exported as CSV are read from rating this many at a time unless the request names a page size. */
const CSV_PAGE = 1000;

const actorOf = (p: Principal | undefined) => p?.actor ?? 'anonymous';
const header = (h: string | string[] | undefined) => (Array.isArray(h) ? h[0] : h);

export function apiRoutes(d: ApiDeps): RouteDef[] {
  const { store, web } = d;
  /** The subscriber a subscriber's session is for. */
  const self = (p: Principal | undefined) => {
    if (p?.role !== 'subscriber' || !p.subject)
      throw new DomainError('permission_denied', 'a subscriber session is required');
    return p.subject;
  };
  return [
    // web sessions
    route({
      method: 'post',
      path: '/api/v1/session',
      operationId: 'login',
      summary: 'Sign in (web UI): sets an HttpOnly session cookie; answers the CSRF token for changes',
      tag: 'session',
      auth: 'none',
      limited: true,
      body: Login,
      response: 'Session',
      errors: [429],
      handler: async ({ body, reply }) => {
        const { cookie, session, maxAgeMs } = await web.login(body.login, body.password);
        reply.setHeader('Set-Cookie', sessionCookie(cookie, maxAgeMs));
        return { role: session.role, name: session.name, csrfToken: session.csrf };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/session',
      operationId: 'getSession',
      summary: 'The signed-in session',
      tag: 'session',
      auth: 'any',
      response: 'Session',
      handler: ({ principal }) => ({
        role: principal!.role,
        name: principal!.actor.replace(/^(web|subscriber):/, ''),
        csrfToken: principal!.csrf ?? null,
      }),
    }),
    route({
      method: 'delete',
      path: '/api/v1/session',
      operationId: 'logout',
      summary: 'Sign out',
      tag: 'session',
      auth: 'any',
      handler: async ({ headers, reply }) => {
        const c = cookieValue(header(headers.cookie), SESSION_COOKIE);
        if (c) await web.logout(c);
        reply.setHeader('Set-Cookie', clearedSessionCookie());
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/users',
      operationId: 'createWebUser',
      summary: "Create an administrator's web account",
      tag: 'users',
      body: CreateWebUser,
      response: 'WebUser',
      errors: [409],
      handler: ({ body, principal }) => web.createUser(actorOf(principal), body.username, body.password),
    }),
    route({
      method: 'get',
      path: '/api/v1/users',
      operationId: 'listWebUsers',
      summary: "Administrators' web accounts",
      tag: 'users',
      query: PageQuery,
      response: 'WebUserPage',
      handler: ({ query }) => web.listUsers(query),
    }),
    route({
      method: 'delete',
      path: '/api/v1/users/{id}',
      operationId: 'deleteWebUser',
      summary: 'Remove a web account (its sessions end)',
      tag: 'users',
      params: IdParam,
      errors: [404],
      handler: ({ params, principal }) => web.deleteUser(actorOf(principal), params.id),
    }),

    // self-service
    route({
      method: 'get',
      path: '/api/v1/me',
      operationId: 'getMe',
      summary: "The signed-in subscriber's account",
      tag: 'self-service',
      auth: 'subscriber',
      response: 'Subscriber',
      handler: ({ principal }) => store.getSubscriber(self(principal)),
    }),
    route({
      method: 'patch',
      path: '/api/v1/me',
      operationId: 'updateMe',
      summary: 'Change the own SIP password, web password (with the current one), display name or e-mail',
      tag: 'self-service',
      auth: 'subscriber',
      body: UpdateMe,
      response: 'Subscriber',
      handler: async ({ principal, body }) => {
        const id = self(principal);
        const { currentWebPassword, ...patch } = body;
        if (patch.webPassword !== undefined) {
          const hash = await store.webPasswordHash(id);
          if (currentWebPassword === undefined)
            throw invalidArgument(
              'currentWebPassword',
              'currentWebPassword: required to change the web password',
            );
          if (!hash || !(await verifyPassword(currentWebPassword, hash))) {
            throw new DomainError(
              'permission_denied',
              'currentWebPassword: wrong password',
              'currentWebPassword',
            );
          }
        }
        return store.updateSubscriber(actorOf(principal), id, patch);
      },
    }),

    route({
      method: 'get',
      path: '/api/v1/openapi.json',
      operationId: 'getOpenApi',
      summary: 'This document (OpenAPI 3.1)',
      tag: 'meta',
      auth: 'none',
      status: 200,
      response: 'OpenApi',
      handler: () => d.openapi(),
    }),

    // subscribers
    route({
      method: 'post',
      path: '/api/v1/subscribers',
      operationId: 'createSubscriber',
      summary: 'Create a subscriber (SIP account); its aor is sip:<username>@<domain>',
      tag: 'subscribers',
      body: CreateSubscriber,
      response: 'Subscriber',
      errors: [409],
      handler: ({ body, principal }) => store.createSubscriber(actorOf(principal), body),
    }),
    route({
      method: 'get',
      path: '/api/v1/subscribers',
      operationId: 'listSubscribers',
      summary: 'Find subscribers (search matches username, domain, AoR, alias, display name, e-mail)',
      tag: 'subscribers',
      query: SearchQuery,
      response: 'SubscriberPage',
      handler: ({ query }) => store.listSubscribers(query),
    }),
    route({
      method: 'get',
      path: '/api/v1/subscribers/{id}',
      operationId: 'getSubscriber',
      summary: 'One subscriber',
      tag: 'subscribers',
      params: IdParam,
      response: 'Subscriber',
      errors: [404],
      handler: ({ params }) => store.getSubscriber(params.id),
    }),
    route({
      method: 'patch',
      path: '/api/v1/subscribers/{id}',
      operationId: 'updateSubscriber',
      summary:
        'Change a subscriber (SIP password, web password, display name, e-mail, rate plan, privileges, enabled)',
      tag: 'subscribers',
      params: IdParam,
      body: UpdateSubscriber,
      response: 'Subscriber',
      errors: [404],
      handler: ({ params, body, principal }) => store.updateSubscriber(actorOf(principal), params.id, body),
    }),
    route({
      method: 'delete',
      path: '/api/v1/subscribers/{id}',
      operationId: 'deleteSubscriber',
      summary: 'Remove a subscriber and its aliases; its phones are deregistered',
      tag: 'subscribers',
      params: IdParam,
      errors: [404],
      handler: async ({ params, principal }) => {
        const aor = await store.deleteSubscriber(actorOf(principal), params.id);
        await web.endSessions(params.id);
        // answered once the phones are deregistered (or the registrar's failure logged)
        await d.deregister(aor);
      },
    }),

    // privileges
    route({
      method: 'get',
      path: '/api/v1/privileges',
      operationId: 'listPrivileges',
      summary: 'The privileges the platform knows',
      tag: 'privileges',
      response: 'PrivilegeList',
      handler: () => ({
        items: Object.entries(KNOWN_PRIVILEGES).map(([name, description]) => ({ name, description })),
      }),
    }),
    route({
      method: 'get',
      path: '/api/v1/subscribers/{id}/privileges',
      operationId: 'getSubscriberPrivileges',
      summary: "A subscriber's privileges",
      tag: 'privileges',
      params: IdParam,
      response: 'Privileges',
      errors: [404],
      handler: async ({ params }) => ({ privileges: (await store.getSubscriber(params.id)).privileges }),
    }),
    route({
      method: 'put',
      path: '/api/v1/subscribers/{id}/privileges/{privilege}',
      operationId: 'grantPrivilege',
      summary: 'Grant a privilege (idempotent)',
      tag: 'privileges',
      params: PrivilegeParam,
      response: 'Privileges',
      errors: [404],
      handler: async ({ params, principal }) => ({
        privileges: await store.setPrivilege(actorOf(principal), params.id, params.privilege, true),
      }),
    }),
    route({
      method: 'delete',
      path: '/api/v1/subscribers/{id}/privileges/{privilege}',
      operationId: 'revokePrivilege',
      summary: 'Remove a privilege (idempotent)',
      tag: 'privileges',
      params: PrivilegeParam,
      status: 200,
      response: 'Privileges',
      errors: [404],
      handler: async ({ params, principal }) => ({
        privileges: await store.setPrivilege(actorOf(principal), params.id, params.privilege, false),
      }),
    }),

    // domains
    route({
      method: 'post',
      path: '/api/v1/domains',
      operationId: 'createDomain',
      summary: 'Add a SIP domain (published on the routing topic)',
      tag: 'domains',
      body: CreateDomain,
      response: 'Domain',
      errors: [409],
      handler: ({ body, principal }) => store.createDomain(actorOf(principal), body.domain),
    }),
    route({
      method: 'get',
      path: '/api/v1/domains',
      operationId: 'listDomains',
      summary: 'The SIP domains',
      tag: 'domains',
      query: SearchQuery,
      response: 'DomainPage',
      handler: ({ query }) => store.listDomains(query),
    }),
    route({
      method: 'get',
      path: '/api/v1/domains/{id}',
      operationId: 'getDomain',
      summary: 'One domain',
      tag: 'domains',
      params: IdParam,
      response: 'Domain',
      errors: [404],
      handler: ({ params }) => store.getDomain(params.id),
    }),
    route({
      method: 'patch',
      path: '/api/v1/domains/{id}',
      operationId: 'updateDomain',
      summary:
        'Domain settings: openSignup lets visitors create accounts themselves; dialPlan is how its phones dial numbers',
      tag: 'domains',
      params: IdParam,
      body: UpdateDomain,
      response: 'Domain',
      errors: [404],
      handler: ({ params, body, principal }) => store.updateDomain(actorOf(principal), params.id, body),
    }),
    route({
      method: 'get',
      path: '/api/v1/signup',
      operationId: 'listSignupDomains',
      summary: 'The domains open for sign-up',
      tag: 'session',
      auth: 'none',
      response: 'SignupDomains',
      handler: async () => ({
        items: (await store.listDomains({ pageSize: 500 })).items
          .filter((x) => x.openSignup)
          .map((x) => x.domain),
      }),
    }),
    route({
      method: 'post',
      path: '/api/v1/signup',
      operationId: 'signup',
      summary: 'A visitor creates a subscriber account in a domain open for sign-up (then signs in)',
      tag: 'session',
      auth: 'none',
      limited: true,
      body: Signup,
      response: 'Subscriber',
      errors: [403, 409, 429],
      handler: async ({ body }) => {
        const domain = body.domain ?? store.defaultDomain;
        if (!(await store.signupOpen(domain))) {
          throw new DomainError('permission_denied', `sign-up is closed in ${domain}`, 'domain');
        }
        const created = await store.createSubscriber(`signup:${body.username}@${domain}`, {
          ...body,
          domain,
        });
        // The new account's balance is there when the visitor looks (bounded wait).
        await d.rating?.settle();
        return created;
      },
    }),
    route({
      method: 'delete',
      path: '/api/v1/domains/{id}',
      operationId: 'deleteDomain',
      summary: 'Remove a domain that has no subscribers (not the default domain)',
      tag: 'domains',
      params: IdParam,
      errors: [404, 412],
      handler: ({ params, principal }) => store.deleteDomain(actorOf(principal), params.id),
    }),

    // aliases and DIDs
    route({
      method: 'post',
      path: '/api/v1/aliases',
      operationId: 'createAlias',
      summary: "Add an alias or DID (kind 'did') reaching a subscriber",
      tag: 'aliases',
      body: CreateAlias,
      response: 'Alias',
      errors: [409],
      handler: ({ body, principal }) => store.createAlias(actorOf(principal), body),
    }),
    route({
      method: 'get',
      path: '/api/v1/aliases',
      operationId: 'listAliases',
      summary: 'Aliases and DIDs (of one subscriber with subscriberId=)',
      tag: 'aliases',
      query: AliasQuery,
      response: 'AliasPage',
      handler: ({ query }) => store.listAliases(query),
    }),
    route({
      method: 'get',
      path: '/api/v1/aliases/{id}',
      operationId: 'getAlias',
      summary: 'One alias',
      tag: 'aliases',
      params: IdParam,
      response: 'Alias',
      errors: [404],
      handler: ({ params }) => store.getAlias(params.id),
    }),
    route({
      method: 'patch',
      path: '/api/v1/aliases/{id}',
      operationId: 'updateAlias',
      summary: 'Move an alias or DID to another subscriber',
      tag: 'aliases',
      params: IdParam,
      body: UpdateAlias,
      response: 'Alias',
      errors: [404],
      handler: ({ params, body, principal }) =>
        store.moveAlias(actorOf(principal), params.id, body.subscriberId),
    }),
    route({
      method: 'delete',
      path: '/api/v1/aliases/{id}',
      operationId: 'deleteAlias',
      summary: 'Remove an alias or DID',
      tag: 'aliases',
      params: IdParam,
      errors: [404],
      handler: ({ params, principal }) => store.deleteAlias(actorOf(principal), params.id),
    }),

    ...featureRoutes(d),
    ...routingRoutes(d),
    ...creditRoutes(d),
    ...deviceRoutes(d),

    // registrations
    route({
      method: 'get',
      path: '/api/v1/registrations',
      operationId: 'listRegistrations',
      summary: 'Live registrations (contact bindings) from the registrar',
      tag: 'registrations',
      query: RegistrationsQuery,
      response: 'RegistrationPage',
      errors: [503],
      handler: ({ query }) => d.registrations(query),
    }),

    // SIP trace
    route({
      method: 'get',
      path: '/api/v1/sip-trace',
      operationId: 'searchSipTrace',
      summary:
        "Search the proxy's SIP trace by Call-ID, number (From, To, Request-URI), method or time; oldest first",
      tag: 'sip-trace',
      query: TraceQuery,
      response: 'SipTrace',
      errors: [503],
      handler: ({ query }) => d.sipTrace(query),
    }),

    // API tokens
    route({
      method: 'post',
      path: '/api/v1/tokens',
      operationId: 'createToken',
      summary: 'Create an administrator API token; the token is shown only in this answer',
      tag: 'tokens',
      body: CreateToken,
      response: 'NewToken',
      handler: ({ body, principal }) => store.createToken(actorOf(principal), body.name),
    }),
    route({
      method: 'get',
      path: '/api/v1/tokens',
      operationId: 'listTokens',
      summary: 'API tokens (never the tokens themselves)',
      tag: 'tokens',
      query: PageQuery,
      response: 'TokenPage',
      handler: ({ query }) => store.listTokens(query),
    }),
    route({
      method: 'delete',
      path: '/api/v1/tokens/{id}',
      operationId: 'deleteToken',
      summary: 'Revoke an API token',
      tag: 'tokens',
      params: IdParam,
      errors: [404],
      handler: ({ params, principal }) => store.deleteToken(actorOf(principal), params.id),
    }),

    // audit log
    route({
      method: 'get',
      path: '/api/v1/audit',
      operationId: 'listAudit',
      summary: 'The audit log of administrative changes, newest first',
      tag: 'audit',
      query: PageQuery,
      response: 'AuditPage',
      handler: ({ query }) => store.listAudit(query),
    }),
  ];
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: ErrorKind;
  message: string;
  field?: string;
}

const camel = (path: string) => path.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
const FeatureParams = IdParam.extend({ featureId: IdParam.shape.id });

/** Forwarding rules, block/allow lists and speed dials: per subscriber, for administrators and the subscriber itself. */
function featureRoutes(d: ApiDeps): RouteDef[] {
  const { store } = d;
  return FEATURE_KINDS.flatMap((fk) => {
    const base = `/api/v1/subscribers/{id}/${fk.path}`;
    const name = camel(fk.path);
    const tag = 'call-features';
    return [
      route({
        method: 'get',
        path: base,
        operationId: `list${name}`,
        summary: `A subscriber's ${fk.noun}s`,
        tag,
        auth: 'owner',
        params: IdParam,
        response: 'FeatureList',
        errors: [404],
        handler: ({ params }) => store.listFeatures(params.id, fk),
      }),
      route({
        method: 'post',
        path: base,
        operationId: `create${name}`,
        summary: `Add a ${fk.noun}`,
        tag,
        auth: 'owner',
        params: IdParam,
        body: fk.schema,
        response: 'Feature',
        errors: [404, 409],
        handler: ({ params, body, principal }) =>
          store.createFeature(actorOf(principal), params.id, fk, body as Record<string, unknown>),
      }),
      route({
        method: 'get',
        path: `${base}/{featureId}`,
        operationId: `get${name}`,
        summary: `One ${fk.noun}`,
        tag,
        auth: 'owner',
        params: FeatureParams,
        response: 'Feature',
        errors: [404],
        handler: ({ params }) => store.getFeature(params.id, fk, params.featureId),
      }),
      route({
        method: 'patch',
        path: `${base}/{featureId}`,
        operationId: `update${name}`,
        summary: `Change a ${fk.noun}`,
        tag,
        auth: 'owner',
        params: FeatureParams,
        body: patchSchema(fk.schema),
        response: 'Feature',
        errors: [404, 409],
        handler: ({ params, body, principal }) =>
          store.updateFeature(
            actorOf(principal),
            params.id,
            fk,
            params.featureId,
            body as Record<string, unknown>,
          ),
      }),
      route({
        method: 'delete',
        path: `${base}/{featureId}`,
        operationId: `delete${name}`,
        summary: `Remove a ${fk.noun}`,
        tag,
        auth: 'owner',
        params: FeatureParams,
        errors: [404],
        handler: ({ params, principal }) =>
          store.deleteFeature(actorOf(principal), params.id, fk, params.featureId),
      }),
    ];
  });
}

/** Gateways, routes, trusted addresses, RADIUS clients: published on the routing topic as `<kind>:<id>`. */
function routingRoutes(d: ApiDeps): RouteDef[] {
  const { store } = d;
  return ROUTING_KINDS.flatMap((rk) => {
    const base = `/api/v1/${rk.path}`;
    const name = camel(rk.path);
    return [
      route({
        method: 'post',
        path: base,
        operationId: `create${name}`,
        summary: `Add a ${rk.noun} (published on the routing topic)`,
        tag: rk.tag,
        body: rk.schema,
        response: 'RoutingEntity',
        errors: [409],
        handler: ({ body, principal }) =>
          store.createEntity(actorOf(principal), rk, body as Record<string, unknown>),
      }),
      route({
        method: 'get',
        path: base,
        operationId: `list${name}`,
        summary: `The ${rk.noun}s`,
        tag: rk.tag,
        query: SearchQuery,
        response: 'RoutingEntityPage',
        handler: ({ query }) => store.listEntities(rk, query),
      }),
      route({
        method: 'get',
        path: `${base}/{id}`,
        operationId: `get${name}`,
        summary: `One ${rk.noun}`,
        tag: rk.tag,
        params: IdParam,
        response: 'RoutingEntity',
        errors: [404],
        handler: ({ params }) => store.getEntity(rk, params.id),
      }),
      route({
        method: 'patch',
        path: `${base}/{id}`,
        operationId: `update${name}`,
        summary: `Change a ${rk.noun}`,
        tag: rk.tag,
        params: IdParam,
        body: patchSchema(rk.schema),
        response: 'RoutingEntity',
        errors: [404, 409],
        handler: ({ params, body, principal }) =>
          store.updateEntity(actorOf(principal), rk, params.id, body as Record<string, unknown>),
      }),
      route({
        method: 'delete',
        path: `${base}/{id}`,
        operationId: `delete${name}`,
        summary: `Remove a ${rk.noun}`,
        tag: rk.tag,
        params: IdParam,
        errors: rk.kind === 'gateway' ? [404, 412] : [404],
        handler: ({ params, principal }) => store.deleteEntity(actorOf(principal), rk, params.id),
      }),
    ];
  });
}

type CdrPageOf = (
  pageSize: number | undefined,
  pageToken: string | undefined,
) => Promise<{ items: CdrView[]; nextPageToken: string | null }>;

const cdrPeriod = (q: { from?: string; to?: string }) => ({
  from: q.from ? Date.parse(q.from) : undefined,
  to: q.to ? Date.parse(q.to) : undefined,
});

/** A page of CDRs, or with format=csv every CDR from the page token on, read pageSize (default 1,000) at a time. */
async function cdrListing(
  reply: Reply,
  q: { pageSize?: number; pageToken?: string; format?: string },
  page: CdrPageOf,
): Promise<unknown> {
  if (q.format !== 'csv') return page(q.pageSize, q.pageToken);
  reply.setHeader('Content-Type', 'text/csv; charset=utf-8');
  return csvOfPages(CDR_COLUMNS, (token) => page(q.pageSize ?? CSV_PAGE, token), q.pageToken);
}

/** Balances, credit, vouchers, CDRs and rate plans: the rating service's, through its admin gRPC API. */
function creditRoutes(d: ApiDeps): RouteDef[] {
  const { store } = d;
  const rating = () => {
    if (!d.rating) throw new DomainError('unavailable', 'no rating service is configured');
    return d.rating;
  };
  /** The balance once queued changes reached rating; `pending: true` (and no balance) while they have not yet. */
  const settled = async (account: string) => {
    const r = rating();
    if (!(await r.settle())) return { account, pending: true };
    return r.balance(account);
  };
  return [
    route({
      method: 'get',
      path: '/api/v1/subscribers/{id}/balance',
      operationId: 'getBalance',
      summary: "A subscriber's balance and account settings (from the rating service)",
      tag: 'credit',
      auth: 'owner',
      params: IdParam,
      response: 'Balance',
      errors: [404, 503],
      handler: async ({ params }) => rating().balance(await store.accountOf(params.id)),
    }),
    route({
      method: 'post',
      path: '/api/v1/subscribers/{id}/credit',
      operationId: 'addCredit',
      summary:
        'Change credit: a ledger entry with a reason (top-up, adjustment of either sign, refund); idempotent with Idempotency-Key',
      tag: 'credit',
      status: 200,
      params: IdParam,
      body: AddCredit,
      response: 'Balance',
      errors: [404, 503],
      handler: async ({ params, body, principal, headers }) => {
        rating();
        const amountMicros = toMicros(body.amount);
        const kind = body.kind ?? 'topup';
        if (amountMicros === 0 || (kind !== 'adjustment' && amountMicros < 0)) {
          throw invalidArgument('amount', `amount: ${kind} needs a positive amount`);
        }
        const key = header(headers['idempotency-key']);
        const { account } = await store.addCredit(actorOf(principal), params.id, {
          amountMicros,
          reason: body.reason,
          kind,
          idempotencyKey: key ? `portal:${params.id}:${key.slice(0, 128)}` : undefined,
        });
        return settled(account);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/subscribers/{id}/vouchers',
      operationId: 'redeemVoucher',
      summary: 'Redeem a voucher into the balance',
      tag: 'credit',
      auth: 'owner',
      status: 200,
      params: IdParam,
      body: RedeemVoucher,
      response: 'Balance',
      errors: [404, 503],
      handler: async ({ params, body, principal }) => {
        rating();
        const { account } = await store.redeemVoucher(actorOf(principal), params.id, body.code);
        return settled(account);
      },
    }),
    route({
      method: 'post',
      path: '/api/v1/vouchers',
      operationId: 'createVouchers',
      summary: 'Generate a batch of vouchers',
      tag: 'credit',
      body: CreateVouchers,
      response: 'VoucherBatch',
      errors: [503],
      handler: ({ body, principal }) =>
        store.createVouchers(actorOf(principal), {
          count: body.count,
          amountMicros: toMicros(body.amount),
          batch: body.batch,
        }),
    }),
    route({
      method: 'get',
      path: '/api/v1/vouchers',
      operationId: 'listVouchers',
      summary: 'Vouchers (of one batch with batch=); format=csv exports them',
      tag: 'credit',
      query: VoucherQuery,
      response: 'VoucherPage',
      handler: async ({ query, reply }) => {
        if (query.format !== 'csv') return store.listVouchers(query);
        // Every voucher of the batch (or all), read 500 at a time from the page asked for.
        reply.setHeader('Content-Type', 'text/csv; charset=utf-8');
        const pageSize = query.pageSize ?? 500;
        return csvOfPages(
          ['code', 'amount', 'currency', 'batch', 'createdAt', 'redeemedBy', 'redeemedAt'],
          async (token) => {
            const page = Number(token);
            const p = await store.listVouchers({ batch: query.batch, page, pageSize });
            return { items: p.items, nextPageToken: page * pageSize < p.total ? String(page + 1) : null };
          },
          String(query.page ?? 1),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/subscribers/{id}/cdrs',
      operationId: 'listCdrs',
      summary: "A subscriber's call records (rated CDRs), newest pages by token; format=csv exports them",
      tag: 'credit',
      auth: 'owner',
      params: IdParam,
      query: CdrQuery,
      response: 'CdrPage',
      errors: [404, 503],
      handler: async ({ params, query, reply }) => {
        const account = await store.accountOf(params.id);
        return cdrListing(reply, query, (pageSize, pageToken) =>
          rating().cdrs(account, { ...cdrPeriod(query), pageSize, pageToken }),
        );
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/cdrs',
      operationId: 'searchCdrs',
      summary:
        "Every account's call records (rated CDRs) in the order they started, narrowed by account, callee number, result and gateway; format=csv exports them",
      tag: 'credit',
      query: CdrSearchQuery,
      response: 'CdrPage',
      errors: [503],
      handler: async ({ query, reply }) =>
        cdrListing(reply, query, (pageSize, pageToken) =>
          // An account as its AoR, with or without the sip: of the AoRs rating keys them by.
          rating().cdrs(query.account?.replace(/^(?!sips?:)/, 'sip:') ?? '', {
            ...cdrPeriod(query),
            pageSize,
            pageToken,
            disposition: query.disposition,
            calleePrefix: query.callee?.replace(/^\+/, ''),
            gateway: query.gateway,
          }),
        ),
    }),
    route({
      method: 'put',
      path: '/api/v1/rate-plans/{planId}',
      operationId: 'importRatePlan',
      summary:
        'Import a version of a rate plan from CSV (rates, and optional periods), checked by the rating service',
      tag: 'credit',
      params: RatePlanParam,
      body: ImportRatePlan,
      // A carrier's deck: ratesCsv holds up to 10 million characters, each newline two in JSON.
      bodyLimit: '32mb',
      response: 'RatePlanImport',
      errors: [413, 503],
      handler: async ({ params, body, principal }) => {
        const r = await rating().importPlan({
          planId: params.planId,
          currency: body.currency,
          effectiveFrom: body.effectiveFrom ? Date.parse(body.effectiveFrom) : Date.now(),
          timezone: body.timezone ?? '',
          holidays: body.holidays ?? [],
          ratesCsv: body.ratesCsv,
          periodsCsv: body.periodsCsv ?? '',
          actor: actorOf(principal),
        });
        if (!r.ok) {
          const more = r.errors.length > 20 ? `; and ${r.errors.length - 20} more` : '';
          throw invalidArgument('ratesCsv', `ratesCsv: ${r.errors.slice(0, 20).join('; ')}${more}`);
        }
        return { planId: params.planId, rates: r.rates };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/rate-plans/{planId}',
      operationId: 'getRatePlan',
      summary: 'The version of a rate plan in force now, as the CSV the import reads',
      tag: 'credit',
      params: RatePlanParam,
      response: 'RatePlan',
      errors: [404, 503],
      handler: ({ params }) => rating().exportPlan(params.planId),
    }),
    route({
      method: 'put',
      path: '/api/v1/domains/{id}/rate-plan',
      operationId: 'assignDomainPlan',
      summary: 'The rate plan of every subscriber of a domain that has none of its own',
      tag: 'credit',
      params: IdParam,
      body: AssignPlan,
      response: 'Domain',
      errors: [404, 503],
      handler: async ({ params, body }) => {
        const dom = await store.getDomain(params.id);
        await rating().assignDomainPlan(dom.domain, body.planId);
        return dom;
      },
    }),
  ];
}

const DeviceParams = IdParam.extend({ deviceId: IdParam.shape.id });

/** Devices and the provisioning files phones fetch by MAC. */
function deviceRoutes(d: ApiDeps): RouteDef[] {
  const { store } = d;
  const prov = d.provisioning;
  return [
    route({
      method: 'post',
      path: '/api/v1/subscribers/{id}/devices',
      operationId: 'createDevice',
      summary: 'Assign a phone (vendor, model, MAC); answers its provisioning URL and password once',
      tag: 'devices',
      params: IdParam,
      body: CreateDevice,
      response: 'NewDevice',
      errors: [404, 409],
      handler: async ({ params, body, principal }) => {
        const dev = await store.createDevice(actorOf(principal), params.id, body);
        const file = provisioningFile(dev.vendor, dev.mac);
        return {
          ...dev,
          provisioningUrl: `${prov.baseUrl()}/provisioning/${file}`,
          // For Linphone (and QR codes): the URL with the one credential in it.
          provisioningUrlWithToken: `${prov.baseUrl()}/provisioning/${file}?token=${encodeURIComponent(dev.provisioningPassword)}`,
        };
      },
    }),
    route({
      method: 'get',
      path: '/api/v1/subscribers/{id}/devices',
      operationId: 'listDevices',
      summary: "A subscriber's phones",
      tag: 'devices',
      auth: 'owner',
      params: IdParam,
      response: 'DeviceList',
      errors: [404],
      handler: ({ params }) => store.listDevices(params.id),
    }),
    route({
      method: 'delete',
      path: '/api/v1/subscribers/{id}/devices/{deviceId}',
      operationId: 'deleteDevice',
      summary: 'Remove a phone (its configuration is no longer served)',
      tag: 'devices',
      params: DeviceParams,
      errors: [404],
      handler: ({ params, principal }) => store.deleteDevice(actorOf(principal), params.id, params.deviceId),
    }),
    route({
      method: 'get',
      path: '/provisioning/{file}',
      operationId: 'provisionDevice',
      summary:
        "A phone's configuration by MAC in its vendor's format: <mac>.cfg (Yealink, Polycom), 000000000000.cfg (Polycom master), " +
        'cfg<mac>.xml (Grandstream), spa<mac>.xml (Cisco SPA), linphone-<mac>.xml (Linphone); HTTP Basic (user = MAC) or ?token=',
      tag: 'devices',
      auth: 'none',
      limited: true,
      params: z.object({ file: z.string().max(64) }),
      query: z.object({ token: z.string().max(128).optional() }),
      errors: [404, 412],
      handler: async ({ params, query, headers, reply }) => {
        const f = parseProvisioningFile(params.file);
        if (!f) throw notFound('no such provisioning file');
        if ('master' in f) {
          reply.setHeader('Content-Type', 'application/xml; charset=utf-8');
          return render(await loadTemplate(prov.templatesDir, 'polycom-master'), {});
        }
        const dev = await store.deviceForFetch(f.mac);
        if (!dev || !f.vendors.includes(dev.vendor)) {
          prov.onUnknown(f.mac, params.file);
          throw notFound(`no device ${f.mac}`);
        }
        const basic = basicAuth(header(headers.authorization));
        const basicMac = basic?.user.toLowerCase().replace(/[:.-]/g, '');
        const secret = query.token ?? (basicMac === f.mac ? basic?.password : undefined);
        if (!secret || !sameHash(hashToken(secret), dev.secretHash)) {
          reply.setHeader('WWW-Authenticate', 'Basic realm="switchboard-provisioning"');
          throw new DomainError(
            'unauthenticated',
            'the device password is required (HTTP Basic, user = MAC, or ?token=)',
          );
        }
        const s = dev.subscriber;
        let password = '';
        if (dev.vendor !== 'linphone') {
          if (!prov.secretKey || !s.sealedPassword) {
            throw new DomainError(
              'failed_precondition',
              'the SIP password is not kept: set SWITCHBOARD_PORTAL_SECRET_KEY, then set the password again',
            );
          }
          password = decrypt(prov.secretKey, s.sealedPassword, s.id);
        }
        const t = prov.proxy.transport;
        const text = render(await loadTemplate(prov.templatesDir, dev.vendor), {
          aor: `sip:${s.username}@${s.domain}`,
          username: s.username,
          domain: s.domain,
          password,
          ha1: s.ha1,
          displayName: s.displayName ?? s.username,
          label: s.displayName ?? s.username,
          model: dev.model,
          mac: f.mac,
          proxyHost: prov.proxy.host,
          proxyPort: String(prov.proxy.port),
          transport: t,
          transportUpper: t.toUpperCase(),
          // Yealink: 0 UDP, 1 TCP, 2 TLS; Grandstream P130: 0 UDP, 1 TCP, 2 TLS.
          transportCode: String(['udp', 'tcp', 'tls'].indexOf(t)),
        });
        await store.deviceFetched(f.mac);
        reply.setHeader(
          'Content-Type',
          `${text.trimStart().startsWith('<') ? 'application/xml' : 'text/plain'}; charset=utf-8`,
        );
        reply.setHeader('Cache-Control', 'no-store');
        return text;
      },
    }),
  ];
}
