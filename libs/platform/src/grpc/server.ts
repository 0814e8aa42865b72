import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type handleBidiStreamingCall,
  type handleClientStreamingCall,
  type sendUnaryData,
  type ServerOptions,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type StatusObject,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import pino from 'pino';
import type { Logger } from 'pino';
import { DomainError, grpcCode } from '../errors';

/** Trailing-metadata key carrying DomainError.field across the wire. */
export const FIELD_METADATA_KEY = 'x-field';

/** The request type of a generated method definition (ts-proto outputServices=grpc-js). */
export type RequestOf<M> = M extends { requestDeserialize: (b: Buffer) => infer R } ? R : never;
/** The response type of a generated method definition. */
export type ResponseOf<M> = M extends { responseSerialize: (v: infer R) => Buffer } ? R : never;

/** A unary handler in async style: return (or resolve) the response, throw (or reject) a DomainError. */
export type AsyncUnaryHandler<Req, Res> = (
  request: Req,
  call: ServerUnaryCall<Req, Res>,
) => Promise<Res> | Res;
/**
 * A server-streaming handler gets the call itself and writes/ends it. A throw or rejection
 * (before the handler ended the call) becomes the call's status, mapped like a unary error.
 */
export type ServerStreamHandler<Req, Res> = (call: ServerWritableStream<Req, Res>) => Promise<void> | void;

type HandlerFor<M> = M extends { requestStream: false; responseStream: false }
  ? AsyncUnaryHandler<RequestOf<M>, ResponseOf<M>>
  : M extends { requestStream: false; responseStream: true }
    ? ServerStreamHandler<RequestOf<M>, ResponseOf<M>>
    : M extends { requestStream: true; responseStream: false }
      ? handleClientStreamingCall<RequestOf<M>, ResponseOf<M>>
      : handleBidiStreamingCall<RequestOf<M>, ResponseOf<M>>;

/** Every method of a generated service definition, unary ones in async style. */
export type AsyncServiceImplementation<S> = { [K in keyof S]: HandlerFor<S[K]> };

export interface GrpcServiceBinding<S extends ServiceDefinition = ServiceDefinition> {
  definition: S;
  implementation: AsyncServiceImplementation<S>;
}

/** Pairs a definition with its implementation, type-checking the implementation against it. */
export const grpcService = <S extends ServiceDefinition>(
  definition: S,
  implementation: AsyncServiceImplementation<S>,
): GrpcServiceBinding<S> => ({ definition, implementation });

export interface ServeGrpcOptions<T extends readonly ServiceDefinition[]> {
  host: string;
  /** 0 binds an ephemeral port; the bound one is in GrpcServer.port. */
  port: number;
  services: { [I in keyof T]: GrpcServiceBinding<T[I]> };
  /** Where handler failures other than DomainError are logged; default a pino logger named "grpc". */
  logger?: Logger;
  /** How long shutdown() waits for in-flight calls before cancelling them; default 5000 ms. */
  shutdownGraceMs?: number;
  /** grpc-js server options (message sizes, keepalive). */
  serverOptions?: ServerOptions;
  /** Default insecure (loopback and private networks). */
  credentials?: ServerCredentials;
}

export interface GrpcServer {
  readonly server: Server;
  /** The bound port (the ephemeral one when port 0 was asked for). */
  readonly port: number;
  /** Stops accepting calls, lets in-flight ones finish within the grace period, then cancels the rest. */
  shutdown(graceMs?: number): Promise<void>;
}

/** Maps a handler failure to a gRPC status: DomainError by kind (field in x-field), anything else INTERNAL. */
export function toGrpcStatus(e: unknown, path: string, logger: Logger): Partial<StatusObject> {
  if (e instanceof DomainError) {
    const metadata = new Metadata();
    if (e.field && /^[\x20-\x7e]*$/.test(e.field)) metadata.set(FIELD_METADATA_KEY, e.field);
    if (e.kind === 'internal') logger.error({ err: e, path }, 'gRPC handler failed');
    return { code: grpcCode(e), details: e.message, metadata };
  }
  logger.error({ err: e, path }, 'gRPC handler failed');
  return { code: status.INTERNAL, details: 'internal error', metadata: new Metadata() };
}

function adaptUnary(path: string, fn: AsyncUnaryHandler<unknown, unknown>, logger: Logger) {
  return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (response) => callback(null, response),
        (e: unknown) => callback(toGrpcStatus(e, path, logger)),
      );
  };
}

function adaptServerStream(path: string, fn: ServerStreamHandler<unknown, unknown>, logger: Logger) {
  return (call: ServerWritableStream<unknown, unknown>) => {
    Promise.resolve()
      .then(() => fn(call))
      .catch((e: unknown) => {
        const st = toGrpcStatus(e, path, logger);
        if (!call.cancelled && !call.writableEnded) call.emit('error', st);
      });
  };
}

/** The grpc-js callback implementation of an async one. */
export function adaptImplementation(
  definition: ServiceDefinition,
  implementation: Record<string, unknown>,
  logger: Logger,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const fn = implementation[name];
    if (typeof fn !== 'function') continue; // grpc-js answers UNIMPLEMENTED
    const handler = fn.bind(implementation);
    if (!method.requestStream && !method.responseStream) out[name] = adaptUnary(method.path, handler, logger);
    else if (!method.requestStream) out[name] = adaptServerStream(method.path, handler, logger);
    else out[name] = handler;
  }
  return out;
}

/**
 * The unary methods of the gRPC servers this process runs, for callers in the same process:
 * grpcClient calls them without HTTP/2 (the request and the response still go through their
 * protobuf encoding, and errors become the same statuses a remote caller would get).
 */
interface LocalServer {
  host: string;
  port: number;
  /** Unary method path -> its call: the encoded request in, the encoded response out. */
  methods: Map<string, (request: Buffer, metadata: Metadata) => Promise<Buffer>>;
}
const localServers = new Set<LocalServer>();
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** Splits "host:port" or "[v6]:port". */
function splitAddress(address: string): { host: string; port: number } | undefined {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  return m ? { host: m[1], port: Number(m[2]) } : undefined;
}

/** A unary method of a server of this process that `address` reaches, or undefined. */
export function localUnaryMethod(
  address: string,
  path: string,
): ((request: Buffer, metadata: Metadata) => Promise<Buffer>) | undefined {
  if (localServers.size === 0) return undefined;
  const a = splitAddress(address);
  if (!a) return undefined;
  for (const s of localServers) {
    if (s.port !== a.port) continue;
    if (s.host === a.host || (LOOPBACK.has(a.host) && (WILDCARD.has(s.host) || LOOPBACK.has(s.host))))
      return s.methods.get(path);
  }
  return undefined;
}

/** A status as a ServiceError-shaped error, as grpc-js hands it to a remote caller. */
export function statusError(st: Partial<StatusObject>): Error {
  const code = st.code ?? status.UNKNOWN;
  return Object.assign(new Error(`${code} ${status[code]}: ${st.details ?? ''}`), {
    code,
    details: st.details ?? '',
    metadata: st.metadata ?? new Metadata(),
  });
}

function localUnary(
  method: ServiceDefinition[string],
  fn: AsyncUnaryHandler<unknown, unknown>,
  logger: Logger,
): (request: Buffer, metadata: Metadata) => Promise<Buffer> {
  return async (bytes, metadata) => {
    const request = method.requestDeserialize(bytes);
    const call = { request, metadata, cancelled: false, getPeer: () => 'in-process' };
    let response: unknown;
    try {
      response = await fn(request, call as unknown as ServerUnaryCall<unknown, unknown>);
    } catch (e) {
      throw statusError(toGrpcStatus(e, method.path, logger));
    }
    return method.responseSerialize(response);
  };
}

const hostPort = (host: string, port: number) =>
  host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;

/** Starts a grpc-js server with the given services; resolves once it listens. */
export async function serveGrpc<const T extends readonly ServiceDefinition[]>(
  opts: ServeGrpcOptions<T>,
): Promise<GrpcServer> {
  const logger = opts.logger ?? pino({ name: 'grpc' });
  const server = new Server(opts.serverOptions);
  for (const s of opts.services as readonly GrpcServiceBinding<ServiceDefinition>[]) {
    server.addService(
      s.definition,
      adaptImplementation(s.definition, s.implementation as Record<string, unknown>, logger),
    );
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      hostPort(opts.host, opts.port),
      opts.credentials ?? ServerCredentials.createInsecure(),
      (err, bound) => (err ? reject(err) : resolve(bound)),
    ),
  );
  const local: LocalServer = { host: opts.host, port, methods: new Map() };
  for (const s of opts.services as readonly GrpcServiceBinding<ServiceDefinition>[])
    for (const [name, method] of Object.entries(s.definition)) {
      const fn = (s.implementation as Record<string, unknown>)[name];
      if (typeof fn !== 'function' || method.requestStream || method.responseStream) continue;
      local.methods.set(method.path, localUnary(method, fn.bind(s.implementation), logger));
    }
  localServers.add(local);
  const defaultGrace = opts.shutdownGraceMs ?? 5000;
  let stopping: Promise<void> | undefined;
  return {
    server,
    port,
    shutdown(graceMs = defaultGrace) {
      localServers.delete(local);
      stopping ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn({ port, graceMs }, 'gRPC server: cancelling calls still in flight');
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopping;
    },
  };
}
