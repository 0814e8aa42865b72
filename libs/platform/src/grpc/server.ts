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
  const defaultGrace = opts.shutdownGraceMs ?? 5000;
  let stopping: Promise<void> | undefined;
  return {
    server,
    port,
    shutdown(graceMs = defaultGrace) {
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
