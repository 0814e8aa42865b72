/**
 * The stateful proxy core (RFC 3261 §16): the transaction user on top of the
 * SIP stack's transaction layer. Validates requests (§16.3), processes Route
 * (§16.4), picks targets (§16.5), forwards (§16.6), and chooses and forwards
 * responses (§16.7), forking in parallel for contacts of equal q and serially
 * in q order.
 */
import { hash as digestOf } from 'node:crypto';
import type { Logger } from 'pino';
import {
  NameAddr,
  Via,
  answerChallenge,
  cancelFor,
  createRequest,
  newBranch as newBranchId,
  newCallId,
  parseNameAddr,
  parseUri,
  createResponse,
  isSipUri,
  newTag,
  parseMessage,
  TimerQueue,
  TimerSlot,
  type ClientTransaction,
  type ClientTxUser,
  type SendTarget,
  type TimerOwner,
  type ServerTransaction,
  type SipMessage,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type Source,
  type TransactionLayer,
  type TransactionUser,
  type TransportName,
} from '@switchboard/sip';
import type {
  FeatureRequest,
  ForwardingCondition,
  ForwardingRule,
  LocationBinding,
  SubscriberRecord,
} from '@switchboard/contracts';
import type { AbuseGuard } from './abuse';
import { authRealm, consumeCredentials, type Authenticator, type ForeignPolicy } from './auth';
import type { Domains } from './domains';
import { aliasContact, isNated, takeAlias } from './nat';
import type { RegistrarFront } from './register';
import type { ProxyMetrics } from './metrics';
import type { AccRecord, AccStatus } from './acc';
import { hasSdp, type MediaAnchor } from './media';
import { CallLimiter, type LimitedCall } from './dialogs';
import { failureCondition, forwardingFor, type CallerIdentity } from './routing/features';
import type { GatewayTable } from './routing/gateways';
import { callerIdentity, type Decision, type Router } from './routing/router';

/** Methods that create a dialog: Record-Route them (§16.6 step 4). */
const DIALOG_METHODS = new Set(['INVITE', 'SUBSCRIBE', 'REFER', 'NOTIFY']);
/** Requests from a local subscriber that must be authenticated. */
const AUTH_METHODS = new Set([
  'INVITE',
  'MESSAGE',
  'SUBSCRIBE',
  'REFER',
  'PUBLISH',
  'OPTIONS',
  'INFO',
  'UPDATE',
]);
const SUPPORTED_SCHEMES = new Set(['sip', 'sips', 'tel']);
/** Extensions this proxy supports (Proxy-Require, §16.3 step 5). */
const SUPPORTED_EXTENSIONS = new Set<string>(['path', 'outbound']);

export interface LocationLookup {
  lookup(aor: string): LocationBinding[];
}
export interface SubscriberDirectory {
  byAor(aor: string): SubscriberRecord | undefined;
}
/** Resolves a URI to transport targets (RFC 3263). */
export interface TargetResolver {
  resolve(uri: SipUri): Promise<SendTarget[]>;
  /** The first target at once when no DNS is needed (an IP literal host), else undefined. */
  resolveNow?(uri: SipUri): SendTarget | undefined;
}
/** The proxy's own address per transport (Via sent-by, Record-Route). */
export interface LocalAddresses {
  localFor(transport: TransportName, family?: 4 | 6): { host: string; port: number } | undefined;
}

export interface ProxyOptions {
  mode: 'proxy' | 'redirect';
  /** Time a branch may ring after a provisional before it is cancelled (fr_inv_timer). */
  inviteTimeoutMs: number;
  /** Time a branch may stay without any response (fr_timer), at most Timer B. */
  branchTimeoutMs: number;
  /** Sources whose requests are not challenged (trusted gateways and peers). */
  isTrusted: (address: string) => boolean;
  /** How many times one call may be forwarded (Diversion counter included). */
  maxForwardDepth: number;
  /** Calls refused for a reason a prompt tells (no credit, no privilege, unknown number) hear it from the media server. */
  announceFailures: boolean;
  /** host:port of the media server (voicemail, announcements), if any. */
  mediaServer?: string;
  /** Feature codes a subscriber dials: code → forwarding condition set (with the number after it) or cleared. */
  featureCodes: FeatureCode[];
  /** Callers of other domains (not trusted): let through (none, the default) or challenged (challenge). */
  authForeign?: ForeignPolicy;
}

export interface FeatureCode {
  code: string;
  condition: ForwardingCondition;
  enable: boolean;
}

/** `*72=always,*73=-always`: a code enables the condition's forwarding (to the number dialled after it) or, with -, clears it. */
export function parseFeatureCodes(entries: readonly string[]): FeatureCode[] {
  return entries.map((e) => {
    const m = /^([*#0-9]{2,8})=(-?)(always|busy|no-answer|unavailable)$/.exec(e.trim());
    if (!m) throw new Error(`SWITCHBOARD_SIP_FEATURE_CODES: "${e}" is not code=condition or code=-condition`);
    return { code: m[1], condition: m[3] as ForwardingCondition, enable: m[2] === '' };
  });
}

/** Credit control: rating's Authorize. */
export interface CreditControl {
  authorize(
    account: string,
    callee: string,
    callId: string,
  ): Promise<{ allowed: boolean; maxSeconds?: number; reason: string }>;
}

export interface ProxyDeps {
  tl: TransactionLayer;
  local: LocalAddresses;
  domains: Domains;
  auth: Authenticator;
  registrar: RegistrarFront;
  location: LocationLookup;
  subscribers: SubscriberDirectory;
  resolver: TargetResolver;
  guard: AbuseGuard;
  metrics: ProxyMetrics;
  logger: Logger;
  clock: { now(): number; setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void };
  /** Call accounting (RADIUS Start/Stop/Failed), off the call path. */
  acc?: { record(r: AccRecord): Promise<void> };
  /** Media anchoring through the media proxy (NAT). */
  media?: MediaAnchor;
  /** Routing decisions: features, numbers, PSTN routes, media server applications. */
  router: Router;
  gateways: GatewayTable;
  /** Authorize billable (PSTN) calls; absent: every call is allowed. */
  credit?: CreditControl;
  /** ENUM (RFC 6116): a SIP URI for an E.164 number, tried before the PSTN routes; absent: no ENUM. */
  enumLookup?: (number: string) => Promise<string | undefined>;
  /** Asks the portal to change a subscriber's forwarding (feature codes); absent: codes are not offered. */
  requestFeature?: (r: FeatureRequest) => Promise<void>;
}

/** What a branch tells the proxy core (its client transaction's responses, its fr_timer). */
interface BranchEvents {
  onBranchResponse(ctx: Context, b: Branch, res: SipResponse): void;
  branchTimeout(ctx: Context, b: Branch): void;
}

/**
 * One branch of a forwarded request (§16.6): the user of its client transaction and the owner
 * of its fr_timer, so neither needs a closure per call.
 */
class Branch implements ClientTxUser, TimerOwner<'fr'> {
  /** The request before this hop's Via and Record-Route (to send again with credentials). */
  unprepared?: Buffer;
  /** Replaced by a branch with credentials: its challenge is not a response to choose. */
  superseded?: boolean;
  healthNoted?: boolean;
  tx?: ClientTransaction;
  /** Last provisional seen (a CANCEL may be sent only after one, §9.1). */
  provisional = false;
  /** The branch has its final response (still true once `final` is let go). */
  done = false;
  cancelled = false;
  /** fr_timer / fr_inv_timer of an INVITE branch (on the core's timer queue). */
  timer?: TimerSlot<'fr'>;
  private held: SipRequest | undefined;
  private response: SipResponse | undefined;

  constructor(
    private readonly core: BranchEvents,
    private readonly ctx: Context,
    req: SipRequest,
    readonly target: SendTarget,
    /** The PSTN gateway this branch goes to (failover and health). */
    readonly gateway?: string,
  ) {
    this.held = req;
  }

  /** The request sent on this branch; gone once the branch and its context have their final responses. */
  get req(): SipRequest {
    if (this.held === undefined) throw new Error('the branch has settled: its request is no longer held');
    return this.held;
  }

  /** The branch's final response, until the context settles. */
  get final(): SipResponse | undefined {
    return this.response;
  }

  set final(res: SipResponse) {
    this.response = res;
    this.done = true;
  }

  /**
   * The context has sent its final response and this branch has its own: let both messages go.
   * An answered call's context stays for Timer L (seconds, thousands at a time under load) to
   * forward 2xx retransmissions and answer a late CANCEL, and needs neither for that.
   */
  settle(): void {
    if (!this.done) return;
    this.response = undefined;
    // Counted as a 487 before any provisional (stopBranches): its transaction still runs, and a
    // provisional arriving later gets the CANCEL (§9.1), which is built from the request.
    if (this.cancelled && !this.provisional && this.tx !== undefined && !this.tx.terminated) return;
    this.held = undefined;
  }

  onResponse(res: SipResponse): void {
    this.core.onBranchResponse(this.ctx, this, res);
  }

  onTimer(): void {
    this.core.branchTimeout(this.ctx, this);
  }

  get callId(): string {
    return this.ctx.req.callId;
  }
}

/** One forwarded request: its server transaction and its branches (§16.2 response context). */
interface Context {
  stx: ServerTransaction;
  req: SipRequest;
  source: Source;
  branches: Branch[];
  /** Targets not yet tried, in groups of equal q (serial forking), or one gateway per group (failover). */
  pending: Array<Array<{ uri: string; binding?: LocationBinding; gateway?: string }>>;
  finalSent: boolean;
  cancelled: boolean;
  timedOut: boolean;
  started: number;
  callerNated: boolean;
  /** The authenticated caller of an initial request, if any. */
  caller?: SubscriberRecord;
  /** Who pays: the caller, or the subscriber who forwarded the call. */
  billed?: SubscriberRecord;
  /** The subscriber being called now (its forwarding rules apply to failures). */
  callee?: SubscriberRecord;
  identity?: CallerIdentity;
  /** Later groups are tried only after a gateway failure (timeout, 408, 5xx). */
  failover: boolean;
  forwards: number;
  noAnswer?: unknown;
  /** Set when the no-answer timer cancelled the branches: forward when they have ended. */
  forwardOnFinish?: ForwardingCondition;
  /** Seconds the answered call may last (credit). */
  maxSeconds?: number;
  /** Branches about to be sent again with credentials. */
  retrying: number;
  /** ENUM was asked for this call's number already. */
  enumTried?: boolean;
  /** The E.164 number of a PSTN call (accounted as the called station, as rating reads it). */
  dialled?: string;
  /** A refused call (or a feature code) that hears an announcement: its final response if the announcement does not answer. */
  refusal?: { status: number; reason: string };
  /** The caller's Contact as it sent it (before any NAT alias). */
  callerContact?: string;
  /** Responses go upstream in order, after any media answer rewriting them: the last one queued. */
  chain?: Promise<void>;
  /** Responses queued on `chain` and not yet sent (none: the next one is sent at once). */
  upstreamQueued: number;
}

const bare = (h: string) => h.replace(/^\[|\]$/g, '');

export class ProxyCore implements TransactionUser, BranchEvents {
  /** Live response contexts by server transaction. */
  private readonly contexts = new Map<ServerTransaction, Context>();
  /** The branches' fr_timer and fr_inv_timer (one clock timer for all). */
  private readonly branchTimers: TimerQueue<'fr'>;

  /** Answered calls with a granted time (credit), ended by the proxy when it runs out. */
  readonly limiter: CallLimiter;

  constructor(
    private readonly d: ProxyDeps,
    private readonly opts: ProxyOptions,
  ) {
    this.branchTimers = new TimerQueue(d.clock, (err, b) => this.timerFailed(err, (b as Branch).callId));
    this.limiter = new CallLimiter({
      clock: d.clock,
      onError: (err, callId) => this.timerFailed(err, callId),
      send: (bye, target) => this.originate(bye, target),
      onCut: (call, bye) => this.callCut(call, bye),
      isSelf: (rr) => this.isSelfRoute(rr),
    });
  }

  /** A Route or Record-Route value naming this proxy. */
  private isSelfRoute(value: string): boolean {
    try {
      const u = parseNameAddr(value, 'record-route', NameAddr).uri;
      return isSipUri(u) && this.d.domains.isSelf(u);
    } catch {
      return false;
    }
  }

  /** Sends a request the proxy makes itself (BYE of a cut call, OPTIONS probe) with its own Via. */
  originate(req: SipRequest, target: SendTarget, onResponse: (res: SipResponse) => void = () => {}): void {
    const src = { ...target, localAddress: '', localPort: 0 } as unknown as Source;
    this.prepareForward(req, target, newBranchId(), src, false);
    try {
      this.d.tl.request(req, target, { onResponse });
    } catch (err) {
      this.d.logger.warn({ err, callId: req.callId }, `${req.method} not sent`);
    }
  }

  /** OPTIONS to every gateway marked down; one that answers (anything but a timeout or 5xx) is up again. */
  async probeGateways(): Promise<void> {
    for (const g of this.d.gateways.down()) {
      const uri = parseUri(`sip:${g.address}`);
      if (!isSipUri(uri)) continue;
      const target = await this.resolveFirst(uri).catch(() => undefined);
      if (!target) continue;
      const local = this.d.local.localFor(target.transport);
      const me = local
        ? `sip:${local.host.includes(':') ? `[${local.host}]` : local.host}:${local.port}`
        : 'sip:proxy';
      const options = createRequest({
        method: 'OPTIONS',
        uri: uri.toString(),
        from: `<${me}>;tag=${newTag()}`,
        to: `<${uri.toString()}>`,
        callId: newCallId(),
        cseq: 1,
      });
      this.originate(options, target, (res) => {
        if (res.status >= 200 && res.status !== 408 && res.status < 500 && this.d.gateways.answered(g.id)) {
          this.d.metrics.gateway('up');
          this.d.logger.info({ gateway: g.id, status: res.status }, 'gateway answers again: up');
        }
      });
    }
  }

  /** The media proxy saw no media for a call (`media-events` timeout): end its dialog as a BYE would. */
  mediaTimeout(callId: string): void {
    this.limiter.cutNow(callId, 'Media timeout');
  }

  /** A limited call was cut: its Stop is accounted like a BYE's, and its media released. */
  private callCut(call: LimitedCall, bye: SipRequest): void {
    this.d.metrics.callCut();
    this.d.logger.info(
      { callId: call.callId },
      'call ended by the proxy (granted time over or media timeout)',
    );
    const meta = call.meta as Pick<Context, 'caller' | 'billed' | 'source' | 'dialled'>;
    this.account('Stop', bye, undefined, meta, bye.uriText);
    void this.d.media?.end(call.callId);
  }

  /** INVITEs being forwarded that have no final response yet (switchboard_calls_active). */
  get activeCalls(): number {
    let n = 0;
    for (const ctx of this.contexts.values()) if (!ctx.finalSent && ctx.req.method === 'INVITE') n++;
    return n;
  }

  // ------------------------------------------------------------- requests in

  onRequest(req: SipRequest, stx: ServerTransaction | undefined, src: Source): void {
    this.d.metrics.request(req.method);
    this.route(req, stx, src).catch((err: unknown) => {
      this.d.logger.error({ err, callId: req.callId }, 'request processing failed');
      if (stx && stx.lastStatus < 200) this.respond(stx, req, 500, 'Server Internal Error');
    });
  }

  /**
   * Before any transaction exists: a REGISTER to our registrar without credentials gets its 401
   * statelessly (Kamailio's `sl`), unless route() would answer or forward it otherwise.
   */
  answerStateless(req: SipRequest, _src: Source): SipResponse | undefined {
    if (req.method !== 'REGISTER' || req.toTag !== undefined || req.routes.length > 0) return undefined;
    const res = this.d.registrar.statelessChallenge(req);
    if (res === undefined || this.refusal(req) !== undefined) return undefined;
    this.d.metrics.request(req.method);
    this.d.metrics.authOutcome(res.status);
    return res;
  }

  /** Before any transaction exists: a rate-limited or banned source is dropped unanswered (pike). */
  admit(_req: SipRequest, src: Source): boolean {
    const verdict = this.d.guard.admit(src.address);
    if (verdict === 'ok') return true;
    this.d.metrics.dropped(verdict);
    return false;
  }

  /** A failure of ours while handling a message: logged; the proxy goes on (the request got a 500). */
  onError(err: unknown, msg: SipMessage | undefined, src: Source | undefined): void {
    let callId: string | undefined;
    try {
      callId = msg?.callId;
    } catch {
      callId = undefined;
    }
    if (src)
      this.d.logger.error({ err, callId, from: `${src.address}:${src.port}` }, 'SIP message not handled');
    else this.timerFailed(err, callId);
  }

  /** A SIP timer threw (a bug): logged with the Call-ID, and the proxy goes on serving. */
  private timerFailed(err: unknown, callId: string | undefined): void {
    this.d.logger.error({ err, callId }, 'SIP timer failed');
  }

  onStrayResponse(res: SipResponse, _src: Source): void {
    // §16.7 / §16.11: a response for no transaction (a 2xx retransmission): forward statelessly if it is ours.
    const our = res.vias[0];
    if (!our || !this.isOurVia(our)) return;
    if (res.vias.length < 2) return;
    res.popVia();
    this.d.tl.sendStateless(res, this.viaTarget(res.via));
  }

  onParseError(raw: Buffer, err: Error, src: Source): void {
    this.d.metrics.parseError();
    this.d.logger.debug({ err: err.message, from: `${src.address}:${src.port}` }, 'unparsable message');
    if (this.d.guard.admit(src.address) === 'ok') this.d.tl.answerUnparsable(raw, err, src);
  }

  private async route(req: SipRequest, stx: ServerTransaction | undefined, src: Source): Promise<void> {
    const method = req.method;

    const refused = this.refusal(req);
    if (refused) {
      if (stx) this.respond(stx, req, refused.status, refused.reason, refused.headers);
      return;
    }

    // §16.4: Route processing (strict-router compatibility, then our own Route entries).
    this.processRoutes(req);

    if (method === 'CANCEL') return this.cancel(req, stx!, src);

    const inDialog = req.toTag !== undefined;
    if (method === 'ACK') return this.forwardStateless(req, src);
    if (inDialog || req.routes.length > 0) return this.forwardInDialog(req, stx!, src);

    // Initial requests.
    const target = req.uri;
    if (method === 'REGISTER' && isSipUri(target) && this.d.domains.domainOf(target)) {
      const res = await this.d.registrar.handle(req, src);
      this.d.metrics.authOutcome(res.status);
      stx!.respond(res);
      return;
    }
    if (method === 'OPTIONS' && isSipUri(target) && !target.user && this.d.domains.isSelf(target)) {
      this.respond(stx!, req, 200, 'OK', [
        [
          'Allow',
          'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY, REFER, INFO, UPDATE, PRACK, REGISTER',
        ],
        ['Accept', 'application/sdp'],
      ]);
      return;
    }

    // Who is calling: a local subscriber (authenticate), a trusted peer or gateway, or a foreign domain.
    const gateway = this.d.gateways.byAddress(src.address, src.port);
    const trusted = gateway !== undefined || this.opts.isTrusted(src.address);
    const fromUri = req.from.uri;
    const fromDomain = isSipUri(fromUri) ? this.d.domains.domainOf(fromUri) : undefined;
    let caller: SubscriberRecord | undefined;
    const challenge = AUTH_METHODS.has(method)
      ? authRealm({
          trusted,
          fromDomain,
          calledDomain: isSipUri(target) ? this.d.domains.domainOf(target) : undefined,
          defaultDomain: this.d.domains.defaultDomain,
          foreign: this.opts.authForeign ?? 'none',
        })
      : undefined;
    if (challenge) {
      const a = this.d.auth.check(req, src.address, challenge.realm);
      if (!a.ok) {
        this.d.metrics.authOutcome(a.response.status);
        stx!.respond(a.response);
        return;
      }
      if (challenge.local) {
        caller = a.subscriber;
        const fromAor = this.d.domains.aorOf(fromUri as SipUri);
        if (fromAor !== caller.aor && !caller.privileges.includes('set-caller-id')) {
          this.respond(stx!, req, 403, 'Forbidden: From does not match the authenticated user');
          return;
        }
      }
      // Another domain's caller let in by a subscriber's credentials stays a foreign caller (no relaying,
      // nothing billed). The credentials for our realm were for us; other realms' go on (RFC 3261 §22.3).
      consumeCredentials(req, challenge.realm);
    }
    // RFC 3325 §5: only trusted peers assert identities; anyone else's assertion is removed.
    const asserted = trusted ? req.getHeaderValues('P-Asserted-Identity')[0] : undefined;
    if (!trusted) req.removeHeader('P-Asserted-Identity');
    let identity: CallerIdentity;
    try {
      identity = callerIdentity(
        fromUri,
        asserted ? parseNameAddr(asserted, 'p-asserted-identity', NameAddr).uri : undefined,
        req.getHeader('Privacy'),
      );
    } catch {
      identity = callerIdentity(fromUri, undefined, req.getHeader('Privacy'));
    }

    // Feature codes: *72<number> forwards all calls, *73 stops it (and the like for busy, no answer).
    if (
      method === 'INVITE' &&
      caller &&
      isSipUri(target) &&
      this.d.domains.domainOf(target) &&
      this.d.requestFeature
    ) {
      const dialled = target.userDecoded ?? target.user ?? '';
      const fc = this.opts.featureCodes
        .filter((c) => (c.enable ? dialled.startsWith(c.code) : dialled === c.code))
        .sort((a, b) => b.code.length - a.code.length)[0];
      if (fc) return this.featureCode(req, stx!, src, caller, fc, dialled.slice(fc.code.length));
    }

    // Message waiting: a subscriber's SUBSCRIBE for its own message-summary goes to the media server.
    if (
      method === 'SUBSCRIBE' &&
      this.opts.mediaServer &&
      /^message-summary\b/i.test(req.getHeader('Event') ?? '') &&
      isSipUri(target) &&
      this.d.domains.domainOf(target) &&
      target.user
    ) {
      return this.fork(req, stx!, src, [[{ uri: `sip:${target.user}@${this.opts.mediaServer}` }]], caller);
    }

    const decision = this.d.router.decide(req.uri, { subscriber: caller, trusted, gateway, identity });
    if (
      decision.action === 'reject' &&
      !(this.opts.announceFailures && decision.announce && method === 'INVITE')
    ) {
      if (decision.metric) this.d.metrics.callRefused(decision.metric);
      this.respond(stx!, req, decision.status, decision.reason);
      return;
    }
    if (decision.action === 'relay' && !caller && !trusted) {
      // A foreign domain: relay only for our own authenticated callers or trusted peers (no open relay).
      this.respond(stx!, req, 403, 'Relaying Denied');
      return;
    }
    if (decision.action === 'subscriber') {
      const bindings = this.d.location.lookup(decision.aor);
      // Nobody to ring: 480 (a subscriber) or 404, unless a call has forwarding rules to follow.
      if (
        !bindings.length &&
        (method !== 'INVITE' || this.opts.mode === 'redirect' || !decision.callee?.forwarding?.length)
      ) {
        this.respond(
          stx!,
          req,
          decision.callee ? 480 : 404,
          decision.callee ? 'Temporarily Unavailable' : 'Not Found',
        );
        return;
      }
      // Only calls are forwarded; MESSAGE, SUBSCRIBE, OPTIONS ... go to the bindings.
      if (method !== 'INVITE') return this.fork(req, stx!, src, groupByQ(bindings), caller);
      if (this.opts.mode === 'redirect') {
        const contacts = bindings.map((b): [string, string] => [
          'Contact',
          `<${b.contact}>${b.q !== undefined ? `;q=${(b.q / 1000).toFixed(3)}` : ''}`,
        ]);
        this.respond(stx!, req, 302, 'Moved Temporarily', contacts);
        return;
      }
    }
    if (decision.action !== 'subscriber' && decision.action !== 'pstn' && decision.action !== 'reject') {
      return this.fork(req, stx!, src, [[{ uri: decision.uri }]], caller);
    }
    // A call that routing may retarget (forwarding, failover, credit): a context first, then the decision.
    const ctx = this.begin(req, stx!, src, caller);
    ctx.identity = identity;
    await this.apply(ctx, decision, true);
  }

  /** §16.4: strict-router compatibility, then remove the Route entries that name us. */
  private processRoutes(req: SipRequest): void {
    const ruri = req.uri;
    const routes = req.routes;
    if (isSipUri(ruri) && this.d.domains.isSelf(ruri) && ruri.lr && routes.length > 0) {
      // The previous hop was a strict router: the R-URI is our Record-Route, the last Route the real target.
      const all = req.getHeaderValues('Route');
      req.uri = routes[routes.length - 1].uri.toString();
      req.removeHeader('Route');
      for (const v of all.slice(0, -1)) req.addHeader('Route', v);
    }
    for (let i = 0; i < 2; i++) {
      const top = req.routes[0];
      if (top && isSipUri(top.uri) && this.d.domains.isSelf(top.uri)) req.removeFirstValue('Route');
      else break;
    }
  }

  // ------------------------------------------------------------- forwarding

  /** ACK for a 2xx and other requests forwarded without a transaction (§16.11). */
  private forwardStateless(req: SipRequest, src: Source): void {
    const t = this.inDialogTarget(req);
    if (t instanceof Promise)
      t.then((target) => this.sendStateless(req, src, target)).catch((err: unknown) =>
        this.d.logger.error({ err, callId: req.callId }, `${req.method} not forwarded`),
      );
    else this.sendStateless(req, src, t);
  }

  private sendStateless(req: SipRequest, src: Source, target: SendTarget | undefined): void {
    if (!target) return;
    const branch = 'z9hG4bK' + hash(`${req.via.branch}|${req.callId}|ack`);
    this.prepareForward(req, target, branch, src, false);
    this.d.tl.sendStateless(req, target);
  }

  /** In-dialog requests and requests with a pre-loaded Route: to the next Route or the R-URI. */
  private async forwardInDialog(req: SipRequest, stx: ServerTransaction, src: Source): Promise<void> {
    // Forward a copy: the server transaction keeps the request as received (its top Via matches
    // retransmissions, and our own responses are built from it).
    const out = parseMessage(req.serialize()) as SipRequest;
    const t = this.inDialogTarget(out);
    const target = t instanceof Promise ? await t : t;
    if (!target) {
      this.respond(stx, req, 404, 'Not Here');
      return;
    }
    const ctx = this.newContext(req, stx, src, []);
    this.limiter.seen(req);
    if (req.method === 'BYE') {
      this.account('Stop', req, undefined, ctx, out.uriText);
      void this.d.media?.end(req.callId);
    }
    const media = this.d.media;
    if (
      media?.isAnchored(req.callId) &&
      (req.method === 'INVITE' || req.method === 'UPDATE') &&
      hasSdp(out)
    ) {
      await media.offer(out, {
        callId: req.callId,
        fromTag: req.fromTag ?? '',
        toTag: req.toTag,
        receivedFrom: `${src.address}:${src.port}`,
      });
    }
    this.startBranch(ctx, out, target, undefined);
  }

  /**
   * Where an in-dialog request goes: the top Route; else the R-URI's alias (the
   * NAT binding); else the R-URI itself. A UA that ignored our Record-Route and
   * addressed a local user at the proxy is routed through the location service.
   */
  private inDialogTarget(req: SipRequest): SendTarget | undefined | Promise<SendTarget | undefined> {
    const top = req.routes[0];
    if (top && isSipUri(top.uri)) return this.resolveFirstNow(top.uri);
    const ruri = req.uri;
    if (!isSipUri(ruri)) return undefined;
    const a = takeAlias(ruri);
    if (a) {
      req.uri = a.uri.toString();
      return {
        transport: a.target.transport as TransportName,
        address: a.target.address,
        port: a.target.port,
      };
    }
    // Only a Request-URI that names us (a UA on the proxy's own host, at another port, is not us).
    if (
      this.d.domains.domainOf(ruri) &&
      (this.d.domains.isSelf(ruri) || this.d.domains.isLocalDomain(ruri.host))
    ) {
      const aor = this.d.domains.aorOf(ruri);
      const b = aor ? this.d.location.lookup(aor)[0] : undefined;
      if (!b) return undefined;
      req.uri = b.contact;
      return this.bindingTarget(b) ?? (isSipUri(req.uri) ? this.resolveFirstNow(req.uri) : undefined);
    }
    return this.resolveFirstNow(ruri);
  }

  /** resolveFirst, answered at once (no promise) when the host needs no DNS. */
  private resolveFirstNow(uri: SipUri): SendTarget | undefined | Promise<SendTarget | undefined> {
    return this.d.resolver.resolveNow?.(uri) ?? this.resolveFirst(uri);
  }

  async resolveFirst(uri: SipUri): Promise<SendTarget | undefined> {
    return (await this.d.resolver.resolve(uri))[0];
  }

  /** The flow a UA registered over (RFC 5626), which also crosses its NAT; undefined when its Contact reaches it. */
  private bindingTarget(b: LocationBinding): SendTarget | undefined {
    const r = b.received;
    if (!r?.address) return undefined;
    return {
      transport: r.transport as TransportName,
      address: r.address,
      port: r.port,
      connId: r.flowId ? Number(r.flowId) : undefined,
    };
  }

  private newContext(
    req: SipRequest,
    stx: ServerTransaction,
    src: Source,
    pending: Context['pending'],
  ): Context {
    const ctx: Context = {
      stx,
      req,
      source: src,
      branches: [],
      pending,
      finalSent: false,
      cancelled: false,
      timedOut: false,
      started: this.d.clock.now(),
      callerNated: isNated(req, src),
      failover: false,
      forwards: 0,
      retrying: 0,
      upstreamQueued: 0,
    };
    this.contexts.set(stx, ctx);
    stx.onTerminated = () => this.contexts.delete(stx);
    return ctx;
  }

  /** §16.5/§16.6: fork to the first group of targets; later groups start when a group fails. */
  private async fork(
    req: SipRequest,
    stx: ServerTransaction,
    src: Source,
    groups: Context['pending'],
    caller?: SubscriberRecord,
  ): Promise<void> {
    const ctx = this.begin(req, stx, src, caller);
    ctx.pending = groups;
    await this.startForwarding(ctx);
  }

  /** A feature code: the change goes to the portal; the caller hears it confirmed (media server) or gets 200. */
  private async featureCode(
    req: SipRequest,
    stx: ServerTransaction,
    src: Source,
    caller: SubscriberRecord,
    fc: FeatureCode,
    rest: string,
  ): Promise<void> {
    const target = fc.enable ? rest.replace(/[-.() ]/g, '') : null;
    if (fc.enable && !/^\+?[0-9]{1,32}$/.test(target ?? '')) {
      this.respond(stx, req, 484, 'Address Incomplete: dial the code, then the number');
      return;
    }
    try {
      await this.d.requestFeature!({
        aor: caller.aor,
        kind: 'forwarding',
        condition: fc.condition,
        target,
        at: Date.now(),
      });
    } catch (err) {
      this.d.logger.error({ err, callId: req.callId }, 'feature code not recorded');
      this.respond(stx, req, 500, 'Server Internal Error');
      return;
    }
    this.d.logger.info(
      { callId: req.callId, aor: caller.aor, condition: fc.condition, target },
      'feature code',
    );
    if (this.opts.mediaServer) {
      const prompt = fc.enable ? 'forwarding-enabled' : 'forwarding-disabled';
      const ctx = this.begin(req, stx, src, caller);
      ctx.pending = [[{ uri: `sip:announce-${prompt}@${this.opts.mediaServer}` }]];
      // The change is made: a media server that cannot say so (no such prompt) still gets the caller a 200.
      ctx.refusal = { status: 200, reason: 'OK' };
      return this.startForwarding(ctx);
    }
    this.respond(stx, req, 200, fc.enable ? 'OK (forwarding enabled)' : 'OK (forwarding disabled)');
  }

  /** The response context of an initial request (100 Trying for an INVITE). */
  private begin(req: SipRequest, stx: ServerTransaction, src: Source, caller?: SubscriberRecord): Context {
    if (req.method === 'INVITE') {
      this.d.metrics.callAttempt();
      // §16.2: 100 Trying at once rather than after 200 ms: the caller stops retransmitting (as tm's t_relay does).
      stx.respond(createResponse(req, 100, 'Trying'));
    }
    const ctx = this.newContext(req, stx, src, []);
    ctx.caller = caller;
    ctx.billed = caller;
    ctx.callerContact = req.contacts[0]?.uri.toString();
    return ctx;
  }

  /** Media anchoring and the NAT alias of the caller's Contact, once per context, then the first group. */
  private async startForwarding(ctx: Context): Promise<void> {
    const { req, source: src } = ctx;
    const media = this.d.media;
    if (media && req.method === 'INVITE' && hasSdp(req)) {
      const calleeNated = ctx.pending.some((g) => g.some((t) => t.binding?.received?.transport === 'udp'));
      if (media.shouldAnchor(ctx.callerNated, calleeNated)) {
        await media.offer(req, {
          callId: req.callId,
          fromTag: req.fromTag ?? '',
          receivedFrom: `${src.address}:${src.port}`,
        });
      }
    }
    if (ctx.callerNated && DIALOG_METHODS.has(req.method)) aliasContact(req, src);
    await this.nextGroup(ctx);
  }

  // ------------------------------------------------------------- routing decisions

  /** Forwarding after a decision: the first group (and media, NAT) the first time, else the next group. */
  private go(ctx: Context, first: boolean): Promise<void> {
    return first ? this.startForwarding(ctx) : this.nextGroup(ctx).then(() => undefined);
  }

  /**
   * Carries out a routing decision in a call's context: ring a subscriber (or
   * forward it unconditionally / when unreachable), try PSTN gateways in
   * failover order after credit control, reach the media server, or refuse.
   * `first`: the context has not forwarded anything yet.
   */
  private async apply(ctx: Context, decision: Decision, first: boolean): Promise<void> {
    ctx.callee = undefined;
    ctx.failover = false;
    switch (decision.action) {
      case 'reject': {
        if (decision.metric) this.d.metrics.callRefused(decision.metric);
        if (this.opts.announceFailures && decision.announce && this.opts.mediaServer) {
          // The caller hears why, in early media, and then gets the failure.
          const uri = `sip:announce-${decision.announce}@${this.opts.mediaServer};early=${decision.status}`;
          ctx.pending = [[{ uri }]];
          ctx.refusal = { status: decision.status, reason: decision.reason };
          return this.go(ctx, first);
        }
        return this.finishWith(ctx, decision.status, decision.reason);
      }
      case 'media':
      case 'relay':
        ctx.pending = [[{ uri: decision.uri }]];
        return this.go(ctx, first);
      case 'subscriber': {
        const callee = decision.callee;
        const always = callee && forwardingFor(callee, 'always');
        if (callee && always) return this.retarget(ctx, callee, always, 'always');
        const bindings = this.d.location.lookup(decision.aor);
        if (!bindings.length) {
          const rule = callee && forwardingFor(callee, 'unavailable');
          if (callee && rule) return this.retarget(ctx, callee, rule, 'unavailable');
          return this.finishWith(ctx, callee ? 480 : 404, callee ? 'Temporarily Unavailable' : 'Not Found');
        }
        ctx.callee = callee;
        ctx.pending = groupByQ(bindings);
        const noAnswer = callee && forwardingFor(callee, 'no-answer');
        if (noAnswer) {
          this.d.clock.clearTimeout(ctx.noAnswer);
          ctx.noAnswer = this.d.clock.setTimeout(
            () => {
              try {
                this.noAnswer(ctx);
              } catch (err) {
                this.timerFailed(err, ctx.req.callId);
              }
            },
            (noAnswer.timeout ?? 20) * 1000,
          );
        }
        return this.go(ctx, first);
      }
      case 'pstn': {
        const payer = ctx.billed;
        if (this.d.enumLookup && !ctx.enumTried) {
          ctx.enumTried = true;
          const uri = await this.d.enumLookup(decision.number);
          let viaEnum: Decision | undefined;
          try {
            viaEnum = uri
              ? this.d.router.decide(
                  parseUri(uri),
                  { subscriber: payer, trusted: true, identity: ctx.identity ?? { anonymous: true } },
                  1,
                )
              : undefined;
          } catch {
            viaEnum = undefined; // a URI we cannot parse: the PSTN as if ENUM had nothing
          }
          if (viaEnum && viaEnum.action !== 'reject') {
            this.d.logger.info(
              { callId: ctx.req.callId, number: decision.number, uri },
              'ENUM: reached without the PSTN',
            );
            return this.apply(ctx, viaEnum, first);
          }
        }
        if (this.d.credit && payer && ctx.req.method === 'INVITE') {
          let auth: Awaited<ReturnType<CreditControl['authorize']>>;
          try {
            auth = await this.d.credit.authorize(payer.aor, decision.number, ctx.req.callId);
          } catch (err) {
            if ((err as { kind?: string }).kind === 'not_found')
              return this.finishWith(ctx, 403, 'Forbidden: no billing account');
            // Fail closed: without credit control no billable call goes out.
            this.d.logger.error({ err, callId: ctx.req.callId }, 'credit control unreachable: call refused');
            return this.finishWith(ctx, 503, 'Service Unavailable: credit control');
          }
          if (!auth.allowed) {
            const noCredit = auth.reason === 'insufficient_credit';
            return this.apply(
              ctx,
              {
                action: 'reject',
                status: noCredit ? 402 : 403,
                reason: noCredit
                  ? 'Payment Required: insufficient credit'
                  : `Forbidden: ${auth.reason.replace(/_/g, ' ')}`,
                announce: noCredit ? 'insufficient-credit' : 'not-allowed',
                metric: noCredit ? 'credit' : auth.reason,
              },
              first,
            );
          }
          ctx.maxSeconds = auth.maxSeconds;
        }
        // RFC 3325: the gateway is trusted: tell it who calls (the subscriber's DID); Privacy stays as sent.
        ctx.req.removeHeader('P-Asserted-Identity');
        if (payer) {
          const did = this.d.router.presentedNumber(payer);
          ctx.req.addHeader(
            'P-Asserted-Identity',
            did ? `<sip:+${did}@${payer.domain};user=phone>` : `<${payer.aor}>`,
          );
        }
        ctx.failover = true;
        ctx.dialled = decision.number;
        ctx.pending = decision.hops.map((h) => [{ uri: h.uri, gateway: h.gateway.id }]);
        return this.go(ctx, first);
      }
    }
  }

  /**
   * Forward a call of `from` by its rule (RFC 5806 Diversion and RFC 7044
   * History-Info added): the target decided again, paid by the forwarding subscriber.
   */
  private async retarget(
    ctx: Context,
    from: SubscriberRecord,
    rule: ForwardingRule,
    condition: ForwardingCondition,
  ): Promise<void> {
    const previous = ctx.req.getHeaderValues('Diversion').length;
    if (ctx.forwards + previous >= this.opts.maxForwardDepth) {
      this.d.logger.info(
        { callId: ctx.req.callId, from: from.aor },
        'forwarding loop stopped at the depth limit',
      );
      return this.finishWith(ctx, 482, 'Loop Detected: too many forwards');
    }
    ctx.forwards++;
    this.d.clock.clearTimeout(ctx.noAnswer);
    ctx.noAnswer = undefined;
    ctx.forwardOnFinish = undefined;
    ctx.timedOut = false;
    this.d.metrics.callForwarded(condition);
    const target = this.forwardTarget(rule.target, from);
    const reason = {
      always: 'unconditional',
      busy: 'user-busy',
      'no-answer': 'no-answer',
      unavailable: 'unavailable',
    }[condition];
    const cause = { always: 302, busy: 486, 'no-answer': 408, unavailable: 404 }[condition];
    const req = ctx.req;
    req.addHeader('Diversion', `<${from.aor}>;reason=${reason};counter=${previous + 1}`, { first: true });
    const hi = req.getHeaderValues('History-Info');
    if (hi.length === 0) req.addHeader('History-Info', `<${from.aor}>;index=1`);
    req.addHeader('History-Info', `<${withCause(target, cause)}>;index=1.${ctx.forwards};mp=1`);
    ctx.billed = from;
    this.d.logger.info({ callId: req.callId, from: from.aor, to: target, condition }, 'call forwarded');
    let decision: Decision;
    try {
      decision = this.d.router.decide(
        parseUri(target),
        {
          subscriber: from,
          trusted: true,
          identity: ctx.identity ?? { anonymous: true },
        },
        1,
      );
    } catch {
      return this.finishWith(ctx, 500, 'Server Internal Error: bad forwarding target');
    }
    await this.apply(ctx, decision, false);
  }

  /** A forwarding target as a URI: `sip:voicemail@<our domain>` is the subscriber's own mailbox on the media server. */
  private forwardTarget(target: string, from: SubscriberRecord): string {
    const uri = this.d.router.targetUri(target, from.domain);
    if (isSipUri(uri) && uri.user === 'voicemail' && this.d.domains.domainOf(uri) && this.opts.mediaServer)
      return `sip:vm-${from.username}@${this.opts.mediaServer}`;
    return uri.toString();
  }

  /** The no-answer timer: cancel every branch; when they have ended, forward. */
  private noAnswer(ctx: Context): void {
    ctx.noAnswer = undefined;
    if (ctx.finalSent || ctx.cancelled) return;
    ctx.forwardOnFinish = 'no-answer';
    ctx.pending = [];
    this.stopBranches(ctx);
    this.maybeFinish(ctx);
  }

  /**
   * The context's final response is decided. A non-INVITE context leaves the table at once: no
   * CANCEL can reach it, and its server transaction resends the final from its bytes for Timer J
   * (seconds, thousands at a time under load), while the context would hold every message of it.
   * Branches still waiting for their final response keep it until they have one.
   */
  private finalSent(ctx: Context): void {
    ctx.finalSent = true;
    if (ctx.req.method !== 'INVITE') this.contexts.delete(ctx.stx);
  }

  /** After the final response: the branches that have theirs let their messages go (Branch.settle). */
  private settle(ctx: Context): void {
    for (const b of ctx.branches) b.settle();
  }

  /** A final response of our own for a call's context (no branch answered, or none was tried). */
  private finishWith(ctx: Context, status: number, reason: string): void {
    if (ctx.finalSent) return;
    this.finalSent(ctx);
    this.d.clock.clearTimeout(ctx.noAnswer);
    const res = createResponse(ctx.req, status, reason, { toTag: newTag() });
    this.upstream(ctx, () => ctx.stx.respond(res));
    this.d.metrics.response(status, true);
    if (ctx.req.method === 'INVITE' && status >= 300) {
      void this.d.media?.end(ctx.req.callId);
      this.d.metrics.callFailed(status);
      this.account('Failed', ctx.req, res, ctx, ctx.req.uriText);
    }
    this.settle(ctx);
  }

  private async nextGroup(ctx: Context): Promise<boolean> {
    const group = ctx.pending.shift();
    if (!group) return false;
    let started = 0;
    for (const t of group) {
      const copy = parseMessage(ctx.req.serialize()) as SipRequest;
      copy.uri = t.uri;
      for (const p of [...(t.binding?.path ?? [])].reverse()) copy.addHeader('Route', p, { first: true });
      let target = t.binding && this.bindingTarget(t.binding);
      if (!target) {
        const hop = copy.routes[0]?.uri ?? copy.uri;
        if (!isSipUri(hop)) continue;
        const r = this.resolveFirstNow(hop);
        target = r instanceof Promise ? await r : r;
      }
      if (!target) continue;
      // A gateway with credentials may challenge: keep the request as it was before this hop's edits.
      const gw = t.gateway ? this.d.gateways.get(t.gateway) : undefined;
      const base = gw?.username && gw.password ? copy.serialize() : undefined;
      this.startBranch(ctx, copy, target, t.gateway);
      if (base) ctx.branches[ctx.branches.length - 1].unprepared = base;
      started++;
    }
    if (started === 0 && ctx.pending.length) return this.nextGroup(ctx);
    if (started === 0) {
      if (ctx.branches.length === 0) this.finishWith(ctx, 480, 'Temporarily Unavailable');
      else this.maybeFinish(ctx);
    }
    return started > 0;
  }

  /**
   * The next group of targets, from a response or a timer: what it throws (a bug) is logged with
   * the Call-ID and the caller gets a 500, rather than the rejection ending the process.
   */
  private forwardNext(ctx: Context): void {
    this.nextGroup(ctx).catch((err: unknown) => {
      this.d.logger.error({ err, callId: ctx.req.callId }, 'forwarding to the next targets failed');
      if (!ctx.finalSent) this.finishWith(ctx, 500, 'Server Internal Error');
    });
  }

  /** §16.6 steps 4-11 for one branch, then the client transaction. */
  private startBranch(ctx: Context, req: SipRequest, target: SendTarget, gateway?: string): void {
    const n = ctx.branches.length;
    const branch = 'z9hG4bK' + this.loopHash(ctx.req) + '.' + n;
    this.prepareForward(
      req,
      target,
      branch,
      ctx.source,
      DIALOG_METHODS.has(req.method) && req.toTag === undefined,
    );
    const b = new Branch(this, ctx, req, target, gateway);
    ctx.branches.push(b);
    try {
      b.tx = this.d.tl.request(req, target, b);
    } catch (err) {
      this.d.logger.warn({ err, callId: req.callId }, 'could not start a branch');
      b.final = createResponse(req, 503, 'Service Unavailable');
      this.maybeFinish(ctx);
      return;
    }
    if (req.method === 'INVITE') {
      b.timer = new TimerSlot<'fr'>(b, 'fr');
      this.branchTimers.arm(b.timer, this.opts.branchTimeoutMs, 'fr');
    }
  }

  /** Via, Record-Route and Max-Forwards for a request leaving through `target`'s transport. */
  private prepareForward(
    req: SipRequest,
    target: SendTarget,
    branch: string,
    src: Source,
    recordRoute: boolean,
  ): void {
    const family = target.address.includes(':') ? 6 : 4;
    const out = this.d.local.localFor(target.transport, family) ?? this.d.local.localFor(target.transport);
    if (!out) throw new Error(`no local ${target.transport} address to send from`);
    if (req.maxForwards === null) req.addHeader('Max-Forwards', '70');
    else req.decrementMaxForwards();
    if (recordRoute) {
      const inbound = this.d.local.localFor(
        src.transport as TransportName,
        src.localAddress.includes(':') ? 6 : 4,
      );

      // Double Record-Route when the transport or interface changes (RFC 5658).
      if (inbound && (inbound.host !== out.host || src.transport !== target.transport)) {
        req.addHeader('Record-Route', recordRouteValue(inbound.host, inbound.port, src.transport), {
          first: true,
        });
      }
      req.addHeader('Record-Route', recordRouteValue(out.host, out.port, target.transport), { first: true });
    }
    const via = new Via(
      target.transport.toUpperCase(),
      out.host.includes(':') ? `[${out.host}]` : out.host,
      out.port,
    );
    via.params.set('branch', branch);
    via.params.set('rport', null);
    req.pushVia(via);
  }

  // ------------------------------------------------------------- responses

  /** @internal a branch's response (Branch.onResponse). */
  onBranchResponse(ctx: Context, b: Branch, res: SipResponse): void {
    const status = res.status;
    this.d.metrics.response(status);
    if (status < 200) {
      if (status === 100) return;
      b.provisional = true;
      if (b.cancelled) this.sendCancel(b);
      if (b.timer !== undefined && ctx.req.method === 'INVITE') {
        // fr_inv_timer: the branch may now ring this long.
        this.branchTimers.arm(b.timer, this.opts.inviteTimeoutMs, 'fr');
      }
      if (!ctx.finalSent) this.forwardResponse(ctx, b, res);
      return;
    }
    if (b.timer !== undefined) this.branchTimers.disarm(b.timer);
    if (status < 300) {
      // §16.7 step 5: every 2xx is forwarded at once; the other branches are cancelled.
      const first = !ctx.finalSent;
      if (!b.done) b.final = res;
      this.finalSent(ctx);
      // Calls with a granted time, and calls with relayed media (ended when the media stops), are remembered.
      const remember = ctx.maxSeconds !== undefined || this.d.media?.isAnchored(ctx.req.callId);
      if (first && remember && ctx.req.method === 'INVITE' && ctx.req.toTag === undefined)
        this.limiter.start(
          ctx.req,
          ctx.callerContact ?? '',
          this.sourceTarget(ctx.source),
          res,
          b.target,
          ctx.maxSeconds,
          {
            caller: ctx.caller,
            billed: ctx.billed,
            source: ctx.source,
            dialled: ctx.dialled,
          },
        );
      this.forwardResponse(ctx, b, res);
      if (first) {
        this.d.clock.clearTimeout(ctx.noAnswer);
        if (b.gateway && this.d.gateways.answered(b.gateway)) this.d.metrics.gateway('up');
        if (ctx.req.method === 'INVITE') {
          this.d.metrics.callAnswered(this.d.clock.now() - ctx.started);
          if (ctx.req.toTag === undefined) this.account('Start', ctx.req, res, ctx, b.req.uriText, b.gateway);
          // Answered: for Timer L the context reads only the INVITE's method, Call-ID and tags (2xx
          // retransmissions, a late CANCEL); the INVITE as received (body, headers, datagram) can go,
          // unless the call is remembered, which keeps it anyway.
          if (!remember) {
            ctx.req = skeleton(ctx.req);
            ctx.callerContact = undefined;
          }
        }
        this.cancelOthers(ctx, b);
      }
      this.settle(ctx);
      return;
    }
    if (b.done) return; // a retransmission the transaction let through
    b.final = res;
    if (ctx.finalSent) return this.settle(ctx); // a late final (a cancelled fork): nothing to choose
    if ((status === 401 || status === 407) && b.unprepared && this.answerGatewayChallenge(ctx, b, res))
      return;
    if (status >= 600) {
      // §16.7 step 5: a 6xx ends the fork.
      ctx.pending = [];
      this.cancelOthers(ctx, b);
    }
    this.maybeFinish(ctx);
  }

  /** §16.7 step 6: when every branch has a final response (and no target is left), send the best. */
  private maybeFinish(ctx: Context): void {
    if (ctx.finalSent || ctx.retrying > 0) return;
    if (ctx.branches.some((b) => !b.done)) return;
    this.noteGatewayHealth(ctx);
    if (ctx.failover && ctx.pending.length && !ctx.cancelled) {
      // PSTN failover: the next gateway after a timeout, 408 or 5xx (not after a 4xx or 6xx: the number's fault).
      const last = ctx.branches[ctx.branches.length - 1];
      const st = last.final!.status;
      if ((st === 408 && !last.provisional) || (st >= 500 && st < 600)) {
        this.d.metrics.gateway('failover');
        this.d.logger.info(
          { callId: ctx.req.callId, gateway: last.gateway, status: st },
          'gateway failed: next gateway',
        );
        this.forwardNext(ctx);
        return;
      }
      ctx.pending = [];
    }
    if (ctx.pending.length && !ctx.cancelled && !ctx.timedOut) {
      this.forwardNext(ctx);
      return;
    }
    if (ctx.refusal) return this.finishWith(ctx, ctx.refusal.status, ctx.refusal.reason);

    const best = chooseBest(ctx.branches.filter((b) => !b.superseded).map((b) => b.final!));
    // Forwarding on busy, no answer or unavailable (the subscriber's rules).
    if (ctx.callee && ctx.req.method === 'INVITE' && !ctx.cancelled) {
      const condition =
        ctx.forwardOnFinish ??
        (ctx.timedOut && (best.status === 408 || best.status === 487)
          ? 'no-answer'
          : failureCondition(best.status));
      const rule = condition && forwardingFor(ctx.callee, condition);
      if (condition && rule) {
        void this.retarget(ctx, ctx.callee, rule, condition).catch((err: unknown) => {
          this.d.logger.error({ err, callId: ctx.req.callId }, 'forwarding failed');
          this.finishWith(ctx, 500, 'Server Internal Error');
        });
        return;
      }
    }
    this.d.clock.clearTimeout(ctx.noAnswer);
    let res: SipResponse;
    if (ctx.timedOut && !ctx.cancelled && (best.status === 487 || best.status === 408)) {
      res = createResponse(ctx.req, 408, 'Request Timeout', { toTag: newTag() });
    } else if (best.status === 503) {
      res = createResponse(ctx.req, 500, 'Server Internal Error', { toTag: best.toTag ?? newTag() }); // §16.7 step 6
    } else {
      res = parseMessage(best.serialize()) as SipResponse;
      res.popVia();
      if (best.status === 401 || best.status === 407) this.aggregateChallenges(ctx, res);
    }
    this.finalSent(ctx);
    this.upstream(ctx, () => ctx.stx.respond(res));
    if (res.status >= 300 && ctx.req.method === 'INVITE') void this.d.media?.end(ctx.req.callId);
    this.d.metrics.response(res.status, true);
    if (ctx.req.method === 'INVITE') {
      this.d.metrics.callFailed(res.status);
      if (ctx.req.toTag === undefined && res.status >= 300)
        this.account('Failed', ctx.req, res, ctx, ctx.req.uriText);
    }
    this.settle(ctx);
  }

  /**
   * A gateway that challenges (401/407) gets the request again with its credentials, once, as Kamailio's
   * uac_auth() does (same CSeq, a new branch). Returns false when there is nothing to answer with.
   */
  private answerGatewayChallenge(ctx: Context, b: Branch, res: SipResponse): boolean {
    const gw = this.d.gateways.get(b.gateway!);
    const header = res.status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
    const challenge = res.getHeader(header);
    if (!gw?.username || !gw.password || !challenge) return false;
    const again = parseMessage(b.unprepared!) as SipRequest;
    try {
      const value = answerChallenge({
        challengeValue: challenge,
        method: again.method,
        uri: again.uriText,
        username: gw.username,
        password: gw.password,
      });
      again.addHeader(res.status === 401 ? 'Authorization' : 'Proxy-Authorization', value);
    } catch (err) {
      this.d.logger.warn(
        { err, callId: ctx.req.callId, gateway: gw.id },
        'cannot answer the gateway challenge',
      );
      return false;
    }
    b.superseded = true;
    // After the transaction has ACKed the challenge (it does once we return), as a gateway expects.
    ctx.retrying++;
    setImmediate(() => {
      ctx.retrying--;
      if (ctx.cancelled || ctx.finalSent) return this.maybeFinish(ctx);
      this.startBranch(ctx, again, b.target, b.gateway);
    });
    return true;
  }

  /** A gateway branch that timed out or got a 5xx counts against the gateway; any other answer clears it. */
  private noteGatewayHealth(ctx: Context): void {
    for (const b of ctx.branches) {
      if (!b.gateway || b.healthNoted || !b.final) continue;
      b.healthNoted = true;
      const st = b.final.status;
      if ((st === 408 && !b.provisional) || st === 503 || (st >= 500 && st < 600 && !b.provisional)) {
        if (this.d.gateways.failed(b.gateway)) {
          this.d.metrics.gateway('down');
          this.d.logger.warn({ gateway: b.gateway, status: st }, 'gateway marked down');
        }
      } else if (this.d.gateways.answered(b.gateway)) this.d.metrics.gateway('up');
    }
  }

  /** Where the caller is reached: the hop the request came from. */
  private sourceTarget(src: Source): SendTarget {
    return {
      transport: src.transport as TransportName,
      address: src.address,
      port: src.port,
      connId: src.connId,
    };
  }

  /** Accounting as Kamailio's acc module does it: Start on the 2xx, Failed on the final failure, Stop on BYE. */
  private account(
    status: AccStatus,
    req: SipRequest,
    res: SipResponse | undefined,
    ctx: Pick<Context, 'caller' | 'billed' | 'source' | 'dialled'>,
    translatedUri: string,
    gateway?: string,
  ): void {
    const acc = this.d.acc;
    if (!acc) return;
    const from = req.from.uri;
    const userOf = (u: typeof from) => (isSipUri(u) && u.user ? `${u.user}@${u.host}` : u.toString());
    // Switchboard-Account is the billed AoR (rating's account); User-Name the authenticated user, as Kamailio sends it.
    const payer = ctx.billed ?? ctx.caller;
    const userName = ctx.caller ? `${ctx.caller.username}@${ctx.caller.domain}` : userOf(from);
    const account = payer ? payer.aor : userName;
    const record: AccRecord = {
      status,
      callId: req.callId,
      fromTag: req.fromTag ?? '',
      toTag: res?.toTag ?? req.toTag ?? '',
      method: req.method,
      responseCode: res?.status ?? 200,
      userName,
      callingStationId: from.toString(),
      calledStationId: ctx.dialled ? `tel:+${ctx.dialled}` : req.to.uri.toString(),
      translatedUri,
      timestamp: Math.floor(this.d.clock.now() / 1000),
      account,
      sourceAddress: `${ctx.source.address}:${ctx.source.port}`,
      ...(gateway ? { gateway: this.d.gateways.get(gateway)?.name ?? gateway } : {}),
    };
    acc
      .record(record)
      .catch((err: unknown) =>
        this.d.logger.error({ err, callId: req.callId }, 'accounting record not queued'),
      );
  }

  /** §16.7 step 7: a 401/407 carries every challenge from every branch. */
  private aggregateChallenges(ctx: Context, res: SipResponse): void {
    const have = new Set([...res.getHeaders('WWW-Authenticate'), ...res.getHeaders('Proxy-Authenticate')]);
    for (const b of ctx.branches) {
      const f = b.final!;
      for (const name of ['WWW-Authenticate', 'Proxy-Authenticate']) {
        for (const v of f.getHeaders(name)) {
          if (!have.has(v)) {
            res.addHeader(name, v);
            have.add(v);
          }
        }
      }
    }
  }

  private forwardResponse(ctx: Context, b: Branch, res: SipResponse): void {
    // Edited in place (no copy): a provisional or 2xx is forwarded once and only its status is kept.
    const out = res;
    out.popVia(); // §16.7 step 3
    // A callee behind NAT: its Contact does not say where it really is; alias it with the flow we reached it on.
    // Only when we reached the callee itself: behind another record-routing proxy, that proxy reaches it.
    const contact = out.contacts[0]?.sipUri;
    const rr = out.getHeaderValues('Record-Route')[0];
    if (
      contact &&
      DIALOG_METHODS.has(ctx.req.method) &&
      b.target.address !== bare(contact.host) &&
      (rr === undefined || this.isSelfRoute(rr))
    ) {
      aliasContact(out, { ...b.target, localAddress: '', localPort: 0, connId: b.target.connId });
    }
    const media = this.d.media;
    if (media?.isAnchored(ctx.req.callId) && hasSdp(out)) {
      const ids = {
        callId: ctx.req.callId,
        fromTag: ctx.req.fromTag ?? '',
        toTag: out.toTag ?? '',
        receivedFrom: `${b.target.address}:${b.target.port}`,
      };
      this.upstream(ctx, () => media.answer(out, ids).then(() => ctx.stx.respond(out)));
    } else this.upstream(ctx, () => ctx.stx.respond(out));
  }

  /**
   * Send upstream after whatever is still being rewritten for this context, in order: at once
   * when nothing is queued (no promise, no microtask: the usual case), else after the queue.
   */
  private upstream(ctx: Context, send: () => void | Promise<void>): void {
    if (ctx.upstreamQueued === 0) {
      let r: void | Promise<void>;
      try {
        r = send();
      } catch (err) {
        this.upstreamFailed(ctx, err);
        return;
      }
      if (r === undefined) return;
      ctx.upstreamQueued++;
      ctx.chain = r.then(
        () => this.upstreamDone(ctx),
        (err: unknown) => this.upstreamDone(ctx, true, err),
      );
      return;
    }
    ctx.upstreamQueued++;
    ctx.chain = ctx.chain!.then(send).then(
      () => this.upstreamDone(ctx),
      (err: unknown) => this.upstreamDone(ctx, true, err),
    );
  }

  private upstreamDone(ctx: Context, failed = false, err?: unknown): void {
    ctx.upstreamQueued--;
    if (failed) this.upstreamFailed(ctx, err);
  }

  private upstreamFailed(ctx: Context, err: unknown): void {
    this.d.logger.error({ err, callId: ctx.req.callId }, 'response not forwarded');
  }

  // ------------------------------------------------------------- CANCEL and timeouts

  /** §16.10: answer the CANCEL, then cancel every pending branch of the INVITE. */
  private cancel(req: SipRequest, stx: ServerTransaction, _src: Source): void {
    const invite = this.d.tl.findInviteForCancel(req);
    const ctx = invite && this.contexts.get(invite);
    if (!invite || !ctx) {
      this.respond(stx, req, 481, 'Call/Transaction Does Not Exist');
      return;
    }
    this.respond(stx, req, 200, 'OK');
    invite.cancelled = true;
    ctx.cancelled = true;
    ctx.pending = [];
    this.d.clock.clearTimeout(ctx.noAnswer);
    this.stopBranches(ctx);
    this.maybeFinish(ctx);
  }

  /** CANCEL every pending branch. */
  private stopBranches(ctx: Context): void {
    for (const b of ctx.branches) this.cancelBranch(b);
    // A branch that never got a provisional has no CANCEL to send yet (§9.1): count it as a 487 now (tm's
    // cancel_b_method 0), so the caller is not kept waiting for fr_timer; a late provisional still gets its CANCEL.
    for (const b of ctx.branches) {
      if (b.done || b.provisional || b.req.method !== 'INVITE') continue;
      if (b.timer !== undefined) this.branchTimers.disarm(b.timer);
      b.timer = undefined;
      b.final = createResponse(b.req, 487, 'Request Terminated', { toTag: newTag() });
    }
  }

  private cancelOthers(ctx: Context, winner: Branch): void {
    for (const b of ctx.branches) if (b !== winner) this.cancelBranch(b);
  }

  private cancelBranch(b: Branch): void {
    if (b.done || b.cancelled || b.req.method !== 'INVITE') return;
    b.cancelled = true;
    if (b.provisional) this.sendCancel(b);
  }

  /** §9.1: CANCEL with the INVITE's R-URI, Call-ID, From, To, CSeq number, top Via and Route. */
  private sendCancel(b: Branch): void {
    const inv = b.req;
    try {
      this.d.tl.request(cancelFor(inv), b.target, { onResponse: () => {} });
    } catch (err) {
      this.d.logger.debug({ err, callId: inv.callId }, 'CANCEL not sent');
    }
  }

  /** @internal fr_timer / fr_inv_timer: give up on a branch (CANCEL it, count it as a 408). */
  branchTimeout(ctx: Context, b: Branch): void {
    b.timer = undefined;
    if (b.done) return;
    ctx.timedOut = true;
    if (b.provisional) this.sendCancel(b);
    else b.tx?.abandon(); // no response at all: stop retransmitting to a dead hop
    b.cancelled = true;
    b.final = createResponse(b.req, 408, 'Request Timeout', { toTag: newTag() });
    this.maybeFinish(ctx);
  }

  // ------------------------------------------------------------- helpers

  private respond(
    stx: ServerTransaction,
    req: SipRequest,
    status: number,
    reason: string,
    headers: [string, string][] = [],
  ): void {
    const res = createResponse(req, status, reason, { toTag: req.toTag ? undefined : newTag(), headers });
    stx.respond(res);
    this.d.metrics.response(status, true);
  }

  /** §16.6 step 8 / §16.3 step 4: the branch prefix is a hash of what identifies the request. */
  private loopHash(req: SipRequest): string {
    return hash(
      `${req.uriText}|${req.callId}|${req.fromTag ?? ''}|${req.toTag ?? ''}|${req.cseq.seq}|${req.cseq.method}`,
    );
  }

  /** The §16.3 request validation's refusal (steps 2 to 5), or undefined when the request passes. */
  private refusal(
    req: SipRequest,
  ): { status: number; reason: string; headers?: [string, string][] } | undefined {
    const method = req.method;
    // §16.3 step 3: Max-Forwards.
    const mf = req.maxForwards;
    if (mf !== null && mf <= 0) return { status: 483, reason: 'Too Many Hops' };
    // §16.3 step 2: URI scheme.
    const scheme = req.uri.toString().split(':', 1)[0].toLowerCase();
    if (!SUPPORTED_SCHEMES.has(scheme)) return { status: 416, reason: 'Unsupported URI Scheme' };
    if (method === 'ACK' || method === 'CANCEL') return undefined;
    // §16.3 step 4: loop detection.
    if (this.isLoop(req)) return { status: 482, reason: 'Loop Detected' };
    // §16.3 step 5: Proxy-Require.
    const unsupported = req
      .getHeaderValues('Proxy-Require')
      .filter((x) => !SUPPORTED_EXTENSIONS.has(x.trim().toLowerCase()));
    if (unsupported.length)
      return { status: 420, reason: 'Bad Extension', headers: [['Unsupported', unsupported.join(', ')]] };
    return undefined;
  }

  private isLoop(req: SipRequest): boolean {
    const vias = req.vias;
    if (vias.length < 2) return false;
    const h = 'z9hG4bK' + this.loopHash(req) + '.';
    for (let i = 1; i < vias.length; i++) {
      const v = vias[i];
      if (this.isOurVia(v) && v.branch?.startsWith(h)) return true;
    }
    return false;
  }

  private isOurVia(v: Via): boolean {
    const t = v.transport.toLowerCase() as TransportName;
    const mine = this.d.local.localFor(t, v.host.includes(':') ? 6 : 4);
    return mine !== undefined && bare(v.host) === mine.host && (v.port ?? 5060) === mine.port;
  }

  private viaTarget(v: Via): SendTarget {
    const t = v.transport.toLowerCase() as TransportName;
    const rport = v.rport;
    return {
      transport: t,
      address: bare(v.received ?? v.host),
      port: typeof rport === 'number' ? rport : (v.port ?? 5060),
    };
  }
}

/** A request of its own with what identifies `req` (Request-URI, top Via, From, To, Call-ID, CSeq), no body. */
function skeleton(req: SipRequest): SipRequest {
  const text =
    `${req.method} ${req.uriText} SIP/2.0\r\nVia: ${req.getHeader('Via')}\r\nFrom: ${req.getHeader('From')}\r\n` +
    `To: ${req.getHeader('To')}\r\nCall-ID: ${req.callId}\r\nCSeq: ${req.cseq.seq} ${req.cseq.method}\r\n` +
    'Content-Length: 0\r\n\r\n';
  return parseMessage(Buffer.from(text)) as SipRequest;
}

// One-shot digest (no Hash object per call); the same MD5 as before.
const hash = (s: string) => digestOf('md5', s, 'hex').slice(0, 16);

/** Our Record-Route value for one interface (RFC 3261 §16.6 step 4, loose routing). */
function recordRouteValue(host: string, port: number, t: string): string {
  return `<sip:${host.includes(':') ? `[${host}]` : host}:${port};transport=${t};lr>`;
}

/** Contacts in groups of equal q, highest first (no q counts as 1.0). */
export function groupByQ(
  bindings: LocationBinding[],
): Array<Array<{ uri: string; binding: LocationBinding }>> {
  const sorted = [...bindings].sort((a, b) => (b.q ?? 1000) - (a.q ?? 1000));
  const groups: Array<Array<{ uri: string; binding: LocationBinding }>> = [];
  let lastQ: number | undefined;
  for (const b of sorted) {
    const q = b.q ?? 1000;
    if (q !== lastQ) groups.push([]);
    groups[groups.length - 1].push({ uri: b.contact, binding: b });
    lastQ = q;
  }
  return groups;
}

/** §16.7 step 6: the best final response among the branches. */
export function chooseBest(responses: SipResponse[]): SipResponse {
  const rank = (r: SipResponse): number => {
    const s = r.status;
    if (s >= 600) return 0;
    if (s < 300) return -1;
    // Prefer 3xx, then 4xx (challenges and the specific ones first), then 5xx.
    const cls = Math.floor(s / 100);
    const specific = [401, 407, 415, 420, 484].includes(s) ? 0 : s === 408 || s === 487 ? 2 : 1;
    return cls * 10 + specific;
  };
  return responses.reduce((best, r) => (rank(r) < rank(best) ? r : best));
}

/** A History-Info target with the RFC 4458 cause of the retarget. */
function withCause(uri: string, cause: number): string {
  return uri.replace(/^([^?]*)/, `$1;cause=${cause}`);
}
