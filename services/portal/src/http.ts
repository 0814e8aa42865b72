/**
 * The HTTP edge on NestJS (Express): one controller generated from the route
 * table, an auth guard, one exception filter mapping DomainErrors to statuses
 * and `{"error","message","field"}` bodies, and the request counter.
 *
 * Decorators are applied as plain function calls (the tree compiles with tsx,
 * whose esbuild emits neither legacy decorators by default nor decorator
 * metadata), and every constructor dependency is injected by explicit token.
 */
import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import {
  Catch,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpException,
  Inject,
  Module,
  Patch,
  Post,
  Put,
  Req,
  Res,
  SetMetadata,
  StreamableFile,
  UseGuards,
  type ArgumentsHost,
  type CanActivate,
  type ExceptionFilter,
  type ExecutionContext,
  type INestApplication,
  type LoggerService,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter, type NestExpressApplication } from '@nestjs/platform-express';
import { json, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { DomainError, httpStatus } from '@switchboard/platform';
import { validate, type ErrorBody, type HttpMethod, type Principal, type Reply, type RouteDef } from './api';
import { cookieValue, SESSION_COOKIE } from './web-auth';
import type { RateLimiter } from './rate-limit';

/** Nest injection tokens. */
export const ROUTES = Symbol('portal.routes');
export const AUTHENTICATOR = Symbol('portal.authenticator');
const ROUTE_META = 'switchboard:route';

/** Resolves credentials to a principal (undefined: unknown or expired). */
export interface Authenticator {
  bearer(token: string): Promise<Principal | undefined>;
  session(cookie: string): Promise<Principal | undefined>;
  /** Limits sign-in and sign-up attempts per client address. */
  limiter?: RateLimiter;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

interface ApiRequest {
  ip?: string;
  method: string;
  path: string;
  params: Record<string, string>;
  query: unknown;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  route?: { path: string };
  principal?: Principal;
}

const METHOD: Record<HttpMethod, (path: string) => MethodDecorator> = {
  get: Get,
  post: Post,
  put: Put,
  patch: Patch,
  delete: Delete,
};

/** `/api/v1/subscribers/{id}` as Express writes it: `/api/v1/subscribers/:id`. */
export const expressPath = (p: string) => p.replace(/\{(\w+)\}/g, ':$1');

const header = (h: string | string[] | undefined) => (Array.isArray(h) ? h[0] : h);
function sameSecret(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

class AuthGuard implements CanActivate {
  constructor(private readonly auth: Authenticator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const route = Reflect.getMetadata(ROUTE_META, ctx.getHandler()) as RouteDef | undefined;
    const req = ctx.switchToHttp().getRequest<ApiRequest>();
    if (route?.limited && this.auth.limiter) {
      const wait = this.auth.limiter.hit(req.ip ?? 'unknown');
      if (wait > 0) {
        ctx
          .switchToHttp()
          .getResponse<{ setHeader(k: string, v: string): void }>()
          .setHeader('Retry-After', String(wait));
        throw new DomainError('resource_exhausted', 'too many attempts from this address: try again later');
      }
    }
    if (!route || route.auth === 'none') return true;
    const h = req.headers.authorization;
    let principal: Principal | undefined;
    if (h !== undefined) {
      const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
      if (!m)
        throw new DomainError(
          'unauthenticated',
          'the Authorization header must be Bearer <token>',
          'Authorization',
        );
      principal = await this.auth.bearer(m[1]);
      if (!principal) throw new DomainError('unauthenticated', 'unknown or revoked token', 'Authorization');
    } else {
      const c = cookieValue(header(req.headers.cookie), SESSION_COOKIE);
      principal = c ? await this.auth.session(c) : undefined;
      if (!principal) {
        throw new DomainError(
          'unauthenticated',
          'sign in, or send an Authorization: Bearer <token> header',
          'Authorization',
        );
      }
      // A change made with the cookie must prove it comes from our page.
      if (!SAFE_METHODS.has(req.method) && !sameSecret(header(req.headers['x-csrf-token']), principal.csrf)) {
        throw new DomainError('permission_denied', 'missing or wrong X-CSRF-Token', 'X-CSRF-Token');
      }
    }
    if (route.auth === 'owner') {
      if (
        principal.role !== 'admin' &&
        !(principal.role === 'subscriber' && req.params.id === principal.subject)
      ) {
        throw new DomainError('permission_denied', 'not your account');
      }
    } else if (route.auth !== 'any' && principal.role !== route.auth) {
      throw new DomainError('permission_denied', `needs the ${route.auth} role`);
    }
    req.principal = principal;
    return true;
  }
}
Inject(AUTHENTICATOR)(AuthGuard, undefined as unknown as string, 0);

/** One controller with a method per route of the table. */
function apiController(routes: readonly RouteDef[]) {
  class ApiController {
    constructor(readonly routes: readonly RouteDef[]) {}
  }
  Inject(ROUTES)(ApiController, undefined as unknown as string, 0);
  const proto = ApiController.prototype as unknown as Record<string, unknown>;
  for (const r of routes) {
    const name = r.operationId;
    proto[name] = async function handle(req: ApiRequest, res: Reply) {
      const args = validate(r, req);
      const out = await r.run({ ...args, principal: req.principal, headers: req.headers, reply: res });
      // A stream (a CSV export of every page) is sent as it is read.
      if (out instanceof Readable) return new StreamableFile(out);
      return r.status === 204 ? undefined : out;
    };
    const desc = Object.getOwnPropertyDescriptor(proto, name)!;
    for (const dec of [
      METHOD[r.method](expressPath(r.path)),
      HttpCode(r.status),
      SetMetadata(ROUTE_META, r),
    ]) {
      dec(proto, name, desc);
    }
    Req()(proto, name, 0);
    Res({ passthrough: true })(proto, name, 1);
  }
  Controller()(ApiController);
  UseGuards(AuthGuard)(ApiController);
  return ApiController;
}

/** Every error as `{"error","message","field"}` with the mapped status. */
class ApiExceptionFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(e: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<{
      status(n: number): { json(b: unknown): void };
      setHeader(k: string, v: string): void;
      getHeader(k: string): unknown;
      headersSent: boolean;
    }>();
    let status: number;
    let body: ErrorBody;
    if (e instanceof DomainError) {
      status = httpStatus(e);
      body = { error: e.kind, message: e.message, ...(e.field ? { field: e.field } : {}) };
      if (status === 401 && !res.getHeader('WWW-Authenticate'))
        res.setHeader('WWW-Authenticate', 'Bearer realm="switchboard"');
    } else if (e instanceof HttpException) {
      status = e.getStatus();
      const kind =
        status === 404
          ? 'not_found'
          : status === 413
            ? 'resource_exhausted'
            : status < 500
              ? 'invalid_argument'
              : 'internal';
      // Body parser failures (bad JSON, too large) name the body.
      const message =
        status === 404 ? 'no such route' : status === 400 ? `body: not valid JSON (${e.message})` : e.message;
      body = { error: kind, message, ...(status === 400 || status === 413 ? { field: 'body' } : {}) };
    } else {
      const t = e as { status?: unknown; type?: unknown; message?: unknown };
      if (typeof t?.status === 'number' && t.status >= 400 && t.status < 500) {
        // An Express/body-parser error (e.g. entity.parse.failed).
        status = t.status;
        body = { error: 'invalid_argument', message: `body: ${String(t.message)}`, field: 'body' };
      } else {
        status = 500;
        body = { error: 'internal', message: 'internal error' };
        this.logger.error({ err: e }, 'request failed');
      }
    }
    if (status >= 500 && e instanceof DomainError) this.logger.error({ err: e }, 'request failed');
    if (res.headersSent) return;
    res.status(status).json(body);
  }
}
Catch()(ApiExceptionFilter);

/** Nest's own log lines through pino. */
function nestLogger(logger: Logger): LoggerService {
  const fmt = (m: unknown, ctx: unknown[]) => ({ context: ctx[ctx.length - 1], msg: String(m) });
  return {
    log: (m, ...c) => logger.debug(fmt(m, c), 'nest'),
    error: (m, ...c) => logger.error(fmt(m, c), 'nest'),
    warn: (m, ...c) => logger.warn(fmt(m, c), 'nest'),
    debug: (m, ...c) => logger.trace(fmt(m, c), 'nest'),
    verbose: (m, ...c) => logger.trace(fmt(m, c), 'nest'),
  };
}

export interface HttpServerOptions {
  host: string;
  port: number;
  routes: readonly RouteDef[];
  authenticate: Authenticator;
  logger: Logger;
  metrics: Registry;
  /** Folder of the web UI's static files, served at `/`. */
  uiDir?: string;
}

export interface PortalHttpServer {
  app: INestApplication;
  port: number;
  close(): Promise<void>;
}

export async function startHttpServer(o: HttpServerOptions): Promise<PortalHttpServer> {
  class PortalHttpModule {}
  Module({
    controllers: [apiController(o.routes)],
    providers: [
      { provide: ROUTES, useValue: o.routes },
      { provide: AUTHENTICATOR, useValue: o.authenticate },
    ],
  })(PortalHttpModule);

  const app = await NestFactory.create<NestExpressApplication>(PortalHttpModule, new ExpressAdapter(), {
    logger: nestLogger(o.logger),
    abortOnError: false,
  });
  const express = app.getHttpAdapter().getInstance() as { disable(s: string): void };
  express.disable('x-powered-by');
  // A route that takes more than the default 100 kB of JSON gets a parser of its own, used before
  // Nest's default one, which then finds the body read. Any other route keeps the default.
  for (const r of o.routes) {
    if (!r.bodyLimit) continue;
    const method = r.method.toUpperCase();
    const parse = json({ limit: r.bodyLimit });
    app.use(expressPath(r.path), function largeJsonBody(req: Request, res: Response, next: NextFunction) {
      if (req.method === method) parse(req, res, next);
      else next();
    });
  }

  const requests = new Counter({
    name: 'switchboard_http_requests_total',
    help: 'HTTP requests answered by the portal, by route pattern and status',
    labelNames: ['route', 'status'],
    registers: [o.metrics],
  });
  app.use(
    (
      req: ApiRequest,
      res: {
        statusCode: number;
        on(e: 'finish', f: () => void): void;
        setHeader(k: string, v: string): void;
      },
      next: () => void,
    ) => {
      const api = req.path.startsWith('/api/');
      res.on('finish', () =>
        requests.inc({
          route: api ? (req.route?.path ?? 'unmatched') : 'ui',
          status: String(res.statusCode),
        }),
      );
      // The UI loads only its own files; nothing may frame it.
      res.setHeader(
        'Content-Security-Policy',
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
      );
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Referrer-Policy', 'no-referrer');
      if (api) res.setHeader('Cache-Control', 'no-store');
      next();
    },
  );
  if (o.uiDir) app.useStaticAssets(o.uiDir, { index: 'index.html' });
  app.useGlobalFilters(new ApiExceptionFilter(o.logger));
  await app.listen(o.port, o.host);
  const port = ((app.getHttpServer() as Server).address() as AddressInfo).port;
  return { app, port, close: () => app.close() };
}
