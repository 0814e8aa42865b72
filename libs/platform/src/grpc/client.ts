import {
  credentials as grpcCredentials,
  Metadata,
  status,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import { DomainError, kindFromGrpcCode } from '../errors';
import { FIELD_METADATA_KEY, localUnaryMethod, statusError, type RequestOf, type ResponseOf } from './server';

export interface GrpcClientOptions {
  /** Deadline of every attempt, from its start; default 2000 ms. */
  deadlineMs?: number;
  /** Further attempts after an UNAVAILABLE answer; default 2 (three attempts in all). */
  retries?: number;
  /** Pause before the first retry, doubling for each next one; default 50 ms. */
  backoffMs?: number;
  /** Cap on one pause; default 2000 ms. */
  maxBackoffMs?: number;
  /** The pause itself (tests inject one); default a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Default insecure. */
  credentials?: ChannelCredentials;
  /**
   * grpc-js channel options (keepalive, message sizes...). The reconnect backoff defaults to
   * backoffMs..maxBackoffMs rather than grpc's 1 s..120 s, so a retry after a refused
   * connection finds the channel already reconnecting instead of still backing off.
   */
  channelOptions?: Partial<ClientOptions>;
  /**
   * A server of this process at `address` is called directly (default true): its handler, the
   * request and response through their protobuf encoding, errors as the same statuses, the
   * deadline kept, but no HTTP/2. false always goes over the network.
   */
  inProcess?: boolean;
}

export interface GrpcCallOptions {
  metadata?: Metadata;
  /** Overrides the client's deadline for this call. */
  deadlineMs?: number;
}

/** A generated grpc-js client constructor (ts-proto outputServices=grpc-js), e.g. RegistrarClient. */
export interface GrpcClientConstructor<S extends ServiceDefinition, C extends Client> {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): C;
  service: S;
}

type UnaryKeys<S> = {
  [K in keyof S]: S[K] extends { requestStream: false; responseStream: false } ? K : never;
}[keyof S];

/** Unary methods return Promises and throw DomainError; `raw` is the grpc-js client for streaming calls. */
export type PromiseClient<S, C> = {
  [K in UnaryKeys<S>]: (request: RequestOf<S[K]>, options?: GrpcCallOptions) => Promise<ResponseOf<S[K]>>;
} & {
  readonly raw: C;
  close(): void;
};

const isServiceError = (e: unknown): e is ServiceError =>
  e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number';

/** A gRPC failure as the DomainError the server threw (kind from the status code, field from x-field). */
export function fromServiceError(e: unknown): DomainError {
  if (e instanceof DomainError) return e;
  if (!isServiceError(e)) {
    return new DomainError('internal', e instanceof Error ? e.message : String(e), undefined, { cause: e });
  }
  const field = e.metadata?.get(FIELD_METADATA_KEY)[0];
  return new DomainError(
    kindFromGrpcCode(e.code),
    e.details || e.message,
    typeof field === 'string' ? field : undefined,
    {
      cause: e,
    },
  );
}

const timerSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A promisified client for one service at one address: every unary call gets a deadline, is
 * retried with exponential backoff while the answer is UNAVAILABLE, and fails with a DomainError.
 */
export function grpcClient<S extends ServiceDefinition, C extends Client>(
  Ctor: GrpcClientConstructor<S, C>,
  address: string,
  opts: GrpcClientOptions = {},
): PromiseClient<S, C> {
  const deadlineMs = opts.deadlineMs ?? 2000;
  const retries = opts.retries ?? 2;
  const backoffMs = opts.backoffMs ?? 50;
  const maxBackoffMs = opts.maxBackoffMs ?? 2000;
  const sleep = opts.sleep ?? timerSleep;
  const raw = new Ctor(address, opts.credentials ?? grpcCredentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': backoffMs,
    'grpc.max_reconnect_backoff_ms': maxBackoffMs,
    ...opts.channelOptions,
  });

  type Callback = (err: ServiceError | null, res: unknown) => void;
  const once = (name: string, request: unknown, call: GrpcCallOptions) =>
    new Promise<unknown>((resolve, reject) => {
      const ms = call.deadlineMs ?? deadlineMs;
      const def = Ctor.service[name];
      // a server of this process: its handler, without HTTP/2
      const local = opts.inProcess !== false ? localUnaryMethod(address, def.path) : undefined;
      if (local) {
        const timer = setTimeout(
          () => reject(statusError({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' })),
          ms,
        );
        local(def.requestSerialize(request), call.metadata ?? new Metadata())
          .then((bytes) => resolve(def.responseDeserialize(bytes)), reject)
          .finally(() => clearTimeout(timer));
        return;
      }
      const method = (raw as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
      const cb: Callback = (err, res) => (err ? reject(err) : resolve(res));
      method.call(raw, request, call.metadata ?? new Metadata(), { deadline: Date.now() + ms }, cb);
    });

  const unary =
    (name: string) =>
    async (request: unknown, call: GrpcCallOptions = {}) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await once(name, request, call);
        } catch (e) {
          if (isServiceError(e) && e.code === status.UNAVAILABLE && attempt < retries) {
            await sleep(Math.min(backoffMs * 2 ** attempt, maxBackoffMs));
            continue;
          }
          throw fromServiceError(e);
        }
      }
    };

  const client: Record<string, unknown> = { raw, close: () => raw.close() };
  for (const [name, method] of Object.entries(Ctor.service)) {
    if (method.requestStream || method.responseStream) continue;
    if (name in client) throw new Error(`grpcClient: method name ${name} clashes with the client's own`);
    client[name] = unary(name);
  }
  return client as PromiseClient<S, C>;
}
