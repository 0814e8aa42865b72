/**
 * Typed domain errors. Every layer throws these; each edge maps them once:
 * SIP responses (sipStatus), gRPC status codes (grpcCode), HTTP status codes (httpStatus).
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'unauthenticated'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'unavailable'
  | 'deadline_exceeded'
  /** The other side does not have the operation (an older version of it, during a rolling upgrade). */
  | 'unimplemented'
  | 'internal';

export class DomainError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    /** The offending field or parameter, named in API answers. */
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DomainError';
  }
}

export const invalidArgument = (field: string, message: string) =>
  new DomainError('invalid_argument', message, field);
export const notFound = (message: string) => new DomainError('not_found', message);
export const alreadyExists = (message: string) => new DomainError('already_exists', message);
export const unavailable = (message: string, cause?: unknown) =>
  new DomainError('unavailable', message, undefined, { cause });

/** gRPC status codes (numbers from @grpc/grpc-js `status`), kept here so the mapping has no dependency. */
const GRPC: Record<ErrorKind, number> = {
  invalid_argument: 3,
  deadline_exceeded: 4,
  not_found: 5,
  already_exists: 6,
  permission_denied: 7,
  resource_exhausted: 8,
  failed_precondition: 9,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  unauthenticated: 16,
};
const HTTP: Record<ErrorKind, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 412,
  resource_exhausted: 429,
  internal: 500,
  unimplemented: 501,
  unavailable: 503,
  deadline_exceeded: 504,
};
const SIP: Record<ErrorKind, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  failed_precondition: 403,
  resource_exhausted: 503,
  internal: 500,
  unimplemented: 501,
  unavailable: 503,
  deadline_exceeded: 408,
};

const kindOf = (e: unknown): ErrorKind => (e instanceof DomainError ? e.kind : 'internal');
export const grpcCode = (e: unknown): number => GRPC[kindOf(e)];
export const httpStatus = (e: unknown): number => HTTP[kindOf(e)];
export const sipStatus = (e: unknown): number => SIP[kindOf(e)];

/** The inverse of grpcCode, for clients turning a gRPC status back into a typed error. */
export function kindFromGrpcCode(code: number): ErrorKind {
  const hit = (Object.entries(GRPC) as [ErrorKind, number][]).find(([, c]) => c === code);
  return hit ? hit[0] : 'internal';
}
