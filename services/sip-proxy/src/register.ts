/**
 * The registrar front (RFC 3261 §10.3 steps 1-8 at the edge): authenticate,
 * check the request, hand the bindings to the registrar service and answer
 * with the AoR's current contacts. Step 8's rules themselves live in the
 * registrar service.
 */
import { createResponse, isSipUri, newTag, type SipRequest, type SipResponse } from '@switchboard/sip';
import { DomainError, kindFromGrpcCode } from '@switchboard/platform';
import type {
  Binding,
  RegisterBatchRequest,
  RegisterBatchResponse,
  RegisterRequest,
  RegisterResponse,
} from '@switchboard/proto/registrar';
import type { Authenticator } from './auth';
import type { Domains } from './domains';
import { isNated } from './nat';

/** Where a request came from (the transport layer's Source). */
export interface Source {
  transport: string;
  address: string;
  port: number;
  localAddress: string;
  localPort: number;
  connId: number | undefined;
}

export interface RegistrarApi {
  register(req: RegisterRequest): Promise<RegisterResponse>;
}

/** The registrar service's batched call (Registrar.RegisterBatch). */
export interface RegisterBatchApi {
  registerBatch(req: RegisterBatchRequest): Promise<RegisterBatchResponse>;
}

export interface RegisterBatcherOptions {
  /** Most REGISTERs in one call; a full batch goes at once. Default 64. */
  maxBatch?: number;
  /**
   * How long the first REGISTER of a batch waits for others (ms); 0 (the default): until the end
   * of the event-loop turn it arrived in (setImmediate), so every REGISTER read in that turn goes
   * in the same call.
   */
  windowMs?: number;
  /** Further attempts of an item the registrar answered UNAVAILABLE (as grpcClient retries a Register); default 2. */
  retries?: number;
  /** Pause before the first retry, doubling; default 50 ms. */
  backoffMs?: number;
  /** Called with the size of each batch sent. */
  onBatch?: (size: number) => void;
}

interface Queued {
  req: RegisterRequest;
  attempt: number;
  resolve: (res: RegisterResponse) => void;
  reject: (err: unknown) => void;
}

/**
 * Register calls coalesced into RegisterBatch calls: a unary gRPC call costs the proxy and the
 * registrar ~250 µs of CPU whatever it carries, and the registrar commits the REGISTERs of a
 * few milliseconds together anyway. Each caller gets what a Register call would have given it:
 * the item's response, or a DomainError of the item's status code (UNAVAILABLE retried, as
 * grpcClient retries a Register); a failed call fails every item in it.
 */
export class RegisterBatcher implements RegistrarApi {
  private queue: Queued[] = [];
  /** Set while a batch waits for its window to end. */
  private cancelTimer: (() => void) | undefined;
  private readonly maxBatch: number;
  private readonly windowMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;

  constructor(
    private readonly api: RegisterBatchApi,
    private readonly opts: RegisterBatcherOptions = {},
  ) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.windowMs = opts.windowMs ?? 0;
    this.retries = opts.retries ?? 2;
    this.backoffMs = opts.backoffMs ?? 50;
  }

  register(req: RegisterRequest): Promise<RegisterResponse> {
    return new Promise((resolve, reject) => this.enqueue({ req, attempt: 0, resolve, reject }));
  }

  private enqueue(q: Queued): void {
    this.queue.push(q);
    if (this.queue.length >= this.maxBatch) this.send();
    else if (!this.cancelTimer) {
      const send = () => {
        this.cancelTimer = undefined;
        this.send();
      };
      if (this.windowMs > 0) {
        const t = setTimeout(send, this.windowMs);
        this.cancelTimer = () => clearTimeout(t);
      } else {
        const t = setImmediate(send);
        this.cancelTimer = () => clearImmediate(t);
      }
    }
  }

  private send(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const batch = this.queue;
    this.queue = [];
    this.opts.onBatch?.(batch.length);
    this.api.registerBatch({ requests: batch.map((q) => q.req) }).then(
      (res) => {
        if (res.results.length !== batch.length) {
          const err = new DomainError(
            'internal',
            `RegisterBatch answered ${res.results.length} results for ${batch.length} requests`,
          );
          for (const q of batch) q.reject(err);
          return;
        }
        batch.forEach((q, i) => {
          const r = res.results[i];
          if (r.response) return q.resolve(r.response);
          const err = r.error
            ? new DomainError(kindFromGrpcCode(r.error.code), r.error.message, r.error.field || undefined)
            : new DomainError('internal', 'RegisterBatch result with neither response nor error');
          if (err.kind === 'unavailable' && q.attempt < this.retries) {
            const delay = this.backoffMs * 2 ** q.attempt;
            setTimeout(() => this.enqueue({ ...q, attempt: q.attempt + 1 }), delay);
            return;
          }
          q.reject(err);
        });
      },
      (err: unknown) => {
        for (const q of batch) q.reject(err);
      },
    );
  }
}

/**
 * Whether a replica's bindings of an AoR show what the registrar answered: each answered
 * contact, as changed then or later (a refresh of the same contact since counts too).
 */
export function showsBindings(
  have: readonly { contact: string; updatedAt: number }[],
  want: readonly Binding[],
): boolean {
  return want.every((w) => have.some((h) => h.contact === w.contact && h.updatedAt >= Number(w.updatedAt)));
}

/** Where the REGISTER came from, as stored with the binding (NAT traversal, outbound flows). */
export const receivedOf = (source: Source) => ({
  address: source.address,
  port: source.port,
  transport: source.transport,
  flowId: source.connId === undefined ? '' : String(source.connId),
  localSocket: `${source.transport}:${source.localAddress}:${source.localPort}`,
});

export class RegistrarFront {
  constructor(
    private readonly domains: Domains,
    private readonly auth: Authenticator,
    private readonly registrar: RegistrarApi,
    private readonly now: () => number = Date.now,
    /**
     * Resolves once this proxy's location replica shows the AoR's bindings as the registrar
     * answered them (or after a bound wait): the 200 goes after it, so a call routed by this
     * proxy right after the 200 finds the phone (read your writes).
     */
    private readonly caughtUp?: (aor: string, bindings: Binding[]) => Promise<unknown>,
  ) {}

  /**
   * The 401 for a REGISTER without credentials for its realm, that may go without a server
   * transaction (as Kamailio's `sl`): handle() would answer it the same. Undefined when
   * handle() must see the request (credentials, or a step 1 or 3 refusal).
   */
  statelessChallenge(req: SipRequest): SipResponse | undefined {
    // Credentials (for any realm): handle() parses and checks them; not parsed twice here.
    if (req.authorization.length > 0) return undefined;
    const ruri = req.uri;
    if (!isSipUri(ruri) || !this.domains.domainOf(ruri)) return undefined;
    const toUri = req.to.uri;
    if (!isSipUri(toUri) || !this.domains.aorOf(toUri)) return undefined;
    return this.auth.challengeIfNoCredentials(req, this.domains.domainOf(toUri)!);
  }

  async handle(req: SipRequest, source: Source): Promise<SipResponse> {
    const reply = (status: number, reason?: string, headers: [string, string][] = []) =>
      createResponse(req, status, reason, { toTag: req.toTag ? undefined : newTag(), headers });

    // Step 1: the Request-URI names a domain we are the registrar for.
    const ruri = req.uri;
    if (!isSipUri(ruri) || !this.domains.domainOf(ruri)) return reply(403, 'Not a local domain');
    // Step 3: the To header carries the address-of-record.
    const toUri = req.to.uri;
    if (!isSipUri(toUri)) return reply(404, 'Not Found');
    const aor = this.domains.aorOf(toUri);
    if (!aor) return reply(404, 'Not Found');

    // Step 4: authenticate; step 5: the user may modify this AoR's bindings.
    const realm = this.domains.domainOf(toUri)!;
    const a = this.auth.check(req, source.address, realm);
    if (!a.ok) return a.response;
    if (a.subscriber.aor !== aor) return reply(403, 'Forbidden');

    // Step 6: '*' only alone and with Expires: 0.
    const contacts = req.contacts;
    if (req.contactStar) {
      if (contacts.length > 0 || req.expires !== 0) return reply(400, 'Invalid Contact *');
    }
    const headerExpires = req.expires;
    let result: RegisterResponse;
    try {
      result = await this.registrar.register({
        aor,
        removeAll: req.contactStar,
        contacts: contacts.map((c) => ({
          uri: c.uri.toString(),
          expires: c.expires ?? headerExpires,
          q:
            c.q === undefined || Number.isNaN(c.q)
              ? undefined
              : Math.round(Math.min(Math.max(c.q, 0), 1) * 1000),
          instanceId: c.instance ?? '',
          regId: c.regId ?? 0,
        })),
        callId: req.callId,
        cseq: req.cseq.seq,
        path: req.getHeaderValues('Path'),
        // Kept only where the Contact alone does not reach the UA: behind NAT, or over a flow (TCP/TLS/WS).
        received: source.transport !== 'udp' || isNated(req, source) ? receivedOf(source) : undefined,
        userAgent: req.getHeader('User-Agent') ?? '',
      });
    } catch (e) {
      if (e instanceof DomainError && e.kind === 'failed_precondition')
        return reply(500, 'Out Of Order REGISTER');
      if (e instanceof DomainError && e.kind === 'permission_denied') return reply(403, 'Too Many Contacts');
      return reply(503, 'Registrar Unavailable', [['Retry-After', '5']]);
    }
    if (result.minExpires)
      return reply(423, 'Interval Too Brief', [['Min-Expires', String(result.minExpires)]]);

    await this.caughtUp?.(aor, result.bindings);
    // Step 8: 200 OK with every current binding and its remaining time.
    const nowSec = Math.floor(this.now() / 1000);
    const headers: [string, string][] = result.bindings.map((b) => [
      'Contact',
      `<${b.contact}>;expires=${Math.max(b.expires - nowSec, 0)}${b.q !== undefined ? `;q=${(b.q / 1000).toFixed(3).replace(/\.?0+$/, '')}` : ''}`,
    ]);
    for (const p of req.getHeaderValues('Path')) headers.push(['Path', p]); // RFC 3327 §5.3
    headers.push(['Date', new Date(this.now()).toUTCString()]);
    return reply(200, 'OK', headers);
  }
}
