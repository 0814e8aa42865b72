/**
 * The media server's SIP user agent core (RFC 3261 §12-§15 as a UAS, plus the
 * UAC requests it sends itself: BYE, NOTIFY). It sits on the transaction layer,
 * answers INVITEs with an SDP answer and an RTP session, hands the call to an
 * application, and keeps subscriptions for the message-summary event (RFC 3842,
 * RFC 6665).
 */
import type { Logger } from 'pino';
import {
  NameAddr,
  SipUri,
  TransactionLayer,
  VIA_TRANSPORT,
  createRequest,
  createSipTransport,
  isIPv4,
  isIPv6,
  newBranch,
  newCallId,
  newTag,
  parseNameAddr,
  type ListenSpec,
  type SendTarget,
  type ServerTransaction,
  type SipRequest,
  type SipResponse,
  type Source,
  type TransportLayer,
  type TransportName,
} from '@switchboard/sip';
import { MediaSession, type Pacer } from './media';
import { answerSdp, negotiate, offerSdp, type Negotiated } from './negotiate';
import type { BoundPorts, PortAllocator } from './ports';
import type { Prompt } from './prompts';
import type { Recorder } from './media';
import { MWI_EVENT } from './mwi';

const ALLOW = 'INVITE, ACK, BYE, CANCEL, OPTIONS, SUBSCRIBE, NOTIFY';
/** Longest and default subscription (RFC 6665 §4.2.1.1: the notifier may shorten it). */
export const MAX_SUBSCRIPTION_S = 3600;

/** What the router decided for a new INVITE: which application, or a rejection. */
/**
 * `early`: play in early media (183 Session Progress with SDP) and end with
 * this final response instead of answering (announcements of why a call fails).
 */
export type Routed<R> =
  { route: R; early?: { status: number; reason?: string } } | { status: number; reason?: string };

export interface MediaUaOptions<R> {
  listen: ListenSpec[];
  /** Address RTP sockets bind. */
  rtpHost: string;
  /** Address put in SDP and Contact; default: the address the request arrived on (127.0.0.1 for a wildcard bind). */
  advertise?: string;
  ports: Pick<PortAllocator, 'bind' | 'release'>;
  pacer: Pacer;
  logger: Logger;
  T1?: number;
  /** Symmetric RTP: answer to where the caller's RTP comes from. */
  latch?: boolean;
  route(req: SipRequest): Routed<R>;
  /** Runs the application for an answered call; the call is hung up when it returns (if still up). */
  run(call: Call<R>): Promise<void>;
  /** A SUBSCRIBE for message-summary: the account it is for, or undefined to refuse (404). */
  subscriptionAccount?(req: SipRequest): string | undefined;
  /** The body to NOTIFY a subscription with (current state of the account). */
  summary?(account: string): Promise<string>;
  onCallEnd?(call: Call<R>): void;
  onDigit?(call: Call<R>, digit: string): void;
}

interface DialogBase {
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our From value for requests we send (the To of the request, with our tag). */
  local: string;
  /** Their From value (with their tag): our To. */
  remote: string;
  remoteTarget: string;
  routeSet: string[];
  localCseq: number;
  source: Source;
}

interface Subscription extends DialogBase {
  account: string;
  expiresAt: number;
  timer: NodeJS.Timeout;
  contentType: string;
}

/** One answered (or being answered) call. */
export class Call<R> {
  readonly digits: string[] = [];
  private digitWaiter: ((d: string | undefined) => void) | undefined;
  private endResolve!: () => void;
  readonly ended: Promise<void>;
  isEnded = false;
  confirmed = false;
  readonly startedAt = Date.now();
  /** Early media: the INVITE transaction still open and the final response to end it with. */
  early: { tx: ServerTransaction; status: number; reason?: string } | undefined;

  constructor(
    readonly route: R,
    readonly request: SipRequest,
    readonly media: MediaSession,
    readonly dialog: DialogBase,
    private readonly ua: MediaUa<R>,
  ) {
    this.ended = new Promise((r) => (this.endResolve = r));
  }

  get callId(): string {
    return this.request.callId;
  }
  /** The caller's From URI. */
  get caller(): string {
    return this.request.from.uriText;
  }
  get callerName(): string | undefined {
    return this.request.from.displayName ?? undefined;
  }

  /** Plays a prompt; true when it played to the end, false when the call ended or playback was cut. */
  play(p: Prompt): Promise<boolean> {
    if (this.isEnded) return Promise.resolve(false);
    return this.media.play(p.g711[this.media.law]);
  }

  /** The next DTMF digit, or undefined after timeoutMs or when the call ends. */
  nextDigit(timeoutMs: number): Promise<string | undefined> {
    if (this.digits.length) return Promise.resolve(this.digits.shift());
    if (this.isEnded) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.digitWaiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.digitWaiter = (d) => {
        clearTimeout(t);
        this.digitWaiter = undefined;
        resolve(d);
      };
    });
  }

  /** @internal */
  digit(d: string): void {
    if (this.media.playing && this.interruptOnDigit) this.media.stopPlay();
    if (this.digitWaiter) this.digitWaiter(d);
    else this.digits.push(d);
  }
  /** Whether a digit stops the prompt being played (menus). */
  interruptOnDigit = false;

  /**
   * Records the caller until they hang up, `maxMs` of audio is recorded, or
   * nothing arrives for `silenceMs`. Returns the recorder (timeline of samples).
   */
  async record(maxMs: number, opts: { noMediaMs?: number; pollMs?: number } = {}): Promise<Recorder> {
    const rec = this.media.startRecording(Math.round(maxMs * 8));
    const started = Date.now();
    const noMediaMs = opts.noMediaMs ?? 10_000;
    await new Promise<void>((resolve) => {
      const check = () => {
        const lastRx = this.media.stats.lastReceivedAt;
        const now = this.media.clockNow();
        const idle = lastRx ? now - lastRx : Date.now() - started;
        if (this.isEnded || rec.full || Date.now() - started > maxMs + 2000 || idle > noMediaMs) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(check, opts.pollMs ?? 100);
      void this.ended.then(check);
    });
    this.media.stopRecording();
    return rec;
  }

  /** Ends the call: BYE when confirmed (the app is done). */
  hangup(): void {
    this.ua.hangup(this);
  }

  /** @internal */
  markEnded(): void {
    if (this.isEnded) return;
    this.isEnded = true;
    this.digitWaiter?.(undefined);
    this.media.close();
    this.endResolve();
  }
}

const isIp = (h: string) => isIPv4(h) || isIPv6(h.replace(/^\[|\]$/g, ''));
const bare = (h: string) => h.replace(/^\[|\]$/g, '');
const hostFor = (a: string) => (a.includes(':') ? `[${a}]` : a);
const WILDCARD = new Set(['0.0.0.0', '::', '']);

export class MediaUa<R> {
  readonly transport: TransportLayer<SipRequest | SipResponse>;
  readonly txl: TransactionLayer;
  private readonly calls = new Map<string, Call<R>>();
  private readonly subs = new Map<string, Subscription>();
  private readonly pending2xx = new Map<string, { timer: NodeJS.Timeout; call: Call<R> }>();
  private readonly T1: number;
  private stopped = false;

  constructor(private readonly opts: MediaUaOptions<R>) {
    this.T1 = opts.T1 ?? 500;
    this.transport = createSipTransport({ listen: opts.listen });
    this.txl = new TransactionLayer({ transport: this.transport, timers: { T1: this.T1 } });
    this.txl.attach({ onRequest: (req, tx, src) => this.onRequest(req, tx, src) });
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  port(t: TransportName): number | undefined {
    return this.transport.addresses().find((a) => a.transport === t)?.port;
  }

  get activeCalls(): number {
    return this.calls.size;
  }

  get activeSubscriptions(): number {
    return this.subs.size;
  }

  /** Subscriptions to an account (for NOTIFY on change). */
  subscriptionsFor(account: string): number {
    let n = 0;
    for (const s of this.subs.values()) if (s.account === account) n++;
    return n;
  }

  private advertised(src: Source): string {
    if (this.opts.advertise) return this.opts.advertise;
    if (!WILDCARD.has(src.localAddress)) return src.localAddress;
    return '127.0.0.1';
  }

  private contact(src: Source): string {
    const port = src.localPort || this.port(src.transport);
    return `<sip:mediaserver@${hostFor(this.advertised(src))}:${port}${src.transport === 'udp' ? '' : `;transport=${src.transport}`}>`;
  }

  // ------------------------------------------------------------------ requests in

  private onRequest(req: SipRequest, tx: ServerTransaction | undefined, src: Source): void {
    if (req.method === 'ACK') return this.onAck(req);
    if (!tx) return;
    try {
      switch (req.method) {
        case 'INVITE':
          if (req.toTag !== undefined) return this.onReInvite(req, tx, src);
          // Asynchronous: what it throws after its first await is answered here, not left unhandled.
          this.onInvite(req, tx, src).catch((err: unknown) => {
            this.opts.logger.error({ err, callId: req.callId }, 'INVITE failed');
            if (tx.lastStatus < 200) tx.reply(500, undefined, { toTag: newTag() });
          });
          return;
        case 'BYE':
          return this.onBye(req, tx);
        case 'CANCEL':
          return this.onCancel(req, tx);
        case 'SUBSCRIBE':
          return this.onSubscribe(req, tx, src);
        case 'OPTIONS':
          tx.reply(200, undefined, {
            headers: [
              ['Allow', ALLOW],
              ['Accept', 'application/sdp'],
            ],
          });
          return;
        case 'NOTIFY':
          tx.reply(481);
          return;
        default:
          tx.reply(405, undefined, { headers: [['Allow', ALLOW]] });
      }
    } catch (err) {
      this.opts.logger.warn({ err, method: req.method }, 'request failed');
      if (tx.lastStatus < 200) tx.reply(400, (err as Error).message.slice(0, 80).replace(/[\r\n]/g, ' '));
    }
  }

  private async onInvite(req: SipRequest, tx: ServerTransaction, src: Source): Promise<void> {
    if (this.txl.isMergedRequest(req, tx)) {
      tx.reply(482, undefined, { toTag: newTag() });
      return;
    }
    if (this.stopped) {
      tx.reply(503, undefined, { toTag: newTag(), headers: [['Retry-After', '5']] });
      return;
    }
    const routed = this.opts.route(req);
    if ('status' in routed) {
      tx.reply(routed.status, routed.reason, { toTag: newTag() });
      return;
    }
    let neg: Negotiated | undefined;
    const hasOffer = req.body.length > 0;
    if (hasOffer) {
      try {
        neg = negotiate(req.body.toString('utf8'));
      } catch (err) {
        tx.reply(400, 'Bad SDP', { toTag: newTag() });
        this.opts.logger.debug({ err }, 'bad SDP');
        return;
      }
      if (!neg) {
        tx.reply(488, undefined, {
          toTag: newTag(),
          headers: [['Warning', '304 switchboard "PCMU or PCMA only"']],
        });
        return;
      }
    }
    let bound: BoundPorts;
    try {
      bound = await this.opts.ports.bind(this.opts.rtpHost);
    } catch (err) {
      this.opts.logger.error({ err }, 'no RTP port');
      tx.reply(503, 'No Media Ports', { toTag: newTag(), headers: [['Retry-After', '5']] });
      return;
    }
    // A CANCEL may have arrived while the port was bound (487 already sent).
    if (tx.lastStatus >= 200) {
      bound.socket.close();
      bound.rtcp.close();
      this.opts.ports.release(bound.port);
      return;
    }
    const address = this.advertised(src);
    const sessionId = Math.floor(Date.now() / 1000);
    const body = neg
      ? answerSdp(neg, address, bound.port, sessionId)
      : offerSdp(address, bound.port, sessionId);
    const localTag = newTag();
    const dialog: DialogBase = {
      callId: req.callId,
      localTag,
      remoteTag: req.fromTag ?? '',
      local: '',
      remote: req.getHeader('From')!,
      remoteTarget: req.contacts[0]?.uriText ?? req.from.uriText,
      routeSet: req.recordRoutes.map((r) => r.toString()),
      localCseq: Math.floor(Math.random() * 10000) + 1,
      source: src,
    };
    const holder: { call?: Call<R> } = {};
    const media = new MediaSession({
      socket: bound.socket,
      rtcp: bound.rtcp,
      remoteRtcpPort: neg?.remoteRtcpPort,
      port: bound.port,
      law: neg?.law ?? 'pcmu',
      payloadType: neg?.payloadType ?? 0,
      dtmfPayloadType: neg ? neg.dtmfPayloadType : 101,
      inbandDtmf: neg !== undefined && neg.dtmfPayloadType === undefined,
      remote: neg?.remote ?? { address: src.address, port: 9 },
      pacer: this.opts.pacer,
      latch: this.opts.latch,
      onDigit: (d) => {
        const c = holder.call;
        if (!c) return;
        this.opts.onDigit?.(c, d);
        c.digit(d);
      },
      onClose: () => this.opts.ports.release(bound.port),
    });
    const call = new Call(routed.route, req, media, dialog, this);
    holder.call = call;
    const key = `${req.callId};${localTag}`;
    this.calls.set(key, call);
    if (routed.early && neg) {
      // Early media (RFC 3960 gateway model): 183 with the answer, play, then the final failure.
      call.early = { tx, status: routed.early.status, reason: routed.early.reason };
      const pr = tx.reply(183, undefined, {
        toTag: localTag,
        headers: [['Contact', this.contact(src)]],
        body,
        contentType: 'application/sdp',
      });
      dialog.local = pr.getHeader('To')!;
      this.confirm(call);
      return;
    }
    const ok = tx.reply(200, undefined, {
      toTag: localTag,
      headers: [
        ['Contact', this.contact(src)],
        ['Allow', ALLOW],
        ['Supported', ''],
      ].filter(([, v]) => v) as Array<[string, string]>,
      body,
      contentType: 'application/sdp',
    });
    dialog.local = ok.getHeader('To')!;
    // RFC 3261 §13.3.1.4: the UAS core retransmits the 2xx until the ACK comes (unreliable transports).
    if (src.transport === 'udp') {
      const deadline = Date.now() + 64 * this.T1;
      const resend = (interval: number) => {
        const p = this.pending2xx.get(key);
        if (!p) return;
        if (Date.now() >= deadline) {
          this.pending2xx.delete(key);
          // §13.3.1.4: no ACK in 64*T1: the session ends with a BYE (the application never ran).
          this.opts.logger.info({ callId: req.callId }, 'no ACK for 2xx: ending the call');
          this.hangup(call);
          return;
        }
        tx.respond(ok);
        p.timer = setTimeout(() => resend(Math.min(interval * 2, 4 * this.T1)), interval);
      };
      this.pending2xx.set(key, { timer: setTimeout(() => resend(2 * this.T1), this.T1), call });
    } else {
      // A reliable transport carries the 2xx; the application can start once the ACK arrives.
    }
  }

  private onAck(req: SipRequest): void {
    const key = `${req.callId};${req.toTag ?? ''}`;
    const call = this.calls.get(key);
    if (!call) return;
    const p = this.pending2xx.get(key);
    if (p) {
      clearTimeout(p.timer);
      this.pending2xx.delete(key);
    }
    if (call.confirmed) return;
    // Offer in the 2xx: the answer is in the ACK (RFC 3264, RFC 3261 §13.2.1).
    if (req.body.length > 0 && call.request.body.length === 0) {
      try {
        const neg = negotiate(req.body.toString('utf8'), ['pcmu', 'pcma']);
        if (neg) call.media.setRemote(neg.remote.address, neg.remote.port);
      } catch {
        // a bad answer: media goes nowhere, the app still runs (and the caller can hang up)
      }
    }
    this.confirm(call);
  }

  private confirm(call: Call<R>): void {
    if (call.confirmed || call.isEnded) return;
    call.confirmed = true;
    this.opts
      .run(call)
      .catch((err) => this.opts.logger.error({ err, callId: call.callId }, 'application failed'))
      .finally(() => {
        if (!call.isEnded) this.hangup(call);
      });
  }

  private onReInvite(req: SipRequest, tx: ServerTransaction, src: Source): void {
    const call = this.calls.get(`${req.callId};${req.toTag}`);
    if (!call) {
      tx.reply(481);
      return;
    }
    if (req.body.length > 0) {
      const neg = negotiate(req.body.toString('utf8'), [call.media.law]);
      if (!neg) {
        tx.reply(488);
        return;
      }
      call.media.setRemote(neg.remote.address, neg.remote.port);
      const body = answerSdp(neg, this.advertised(src), call.media.port, Math.floor(call.startedAt / 1000));
      tx.reply(200, undefined, {
        headers: [['Contact', this.contact(src)]],
        body,
        contentType: 'application/sdp',
      });
    } else {
      const body = offerSdp(this.advertised(src), call.media.port, Math.floor(call.startedAt / 1000));
      tx.reply(200, undefined, {
        headers: [['Contact', this.contact(src)]],
        body,
        contentType: 'application/sdp',
      });
    }
    const c = req.contacts[0];
    if (c) call.dialog.remoteTarget = c.uriText;
  }

  private onBye(req: SipRequest, tx: ServerTransaction): void {
    const key = `${req.callId};${req.toTag ?? ''}`;
    const call = this.calls.get(key);
    if (!call) {
      tx.reply(481);
      return;
    }
    tx.reply(200);
    this.endCall(key, call);
  }

  private onCancel(req: SipRequest, tx: ServerTransaction): void {
    const invite = this.txl.findInviteForCancel(req);
    tx.reply(invite ? 200 : 481);
    if (!invite || invite.state !== 'proceeding') return;
    // An early-media call ends with the 487 (§9.2); its application stops.
    for (const [key, call] of this.calls) {
      if (call.early?.tx === invite) {
        invite.reply(487, undefined, { toTag: call.dialog.localTag });
        this.endCall(key, call);
        return;
      }
    }
    invite.reply(487, undefined, { toTag: newTag() });
  }

  private endCall(key: string, call: Call<R>): void {
    const p = this.pending2xx.get(key);
    if (p) {
      clearTimeout(p.timer);
      this.pending2xx.delete(key);
    }
    this.calls.delete(key);
    call.markEnded();
    this.opts.onCallEnd?.(call);
  }

  /** Sends BYE (§15.1.1) and ends the call locally at once. */
  hangup(call: Call<R>): void {
    const key = `${call.dialog.callId};${call.dialog.localTag}`;
    if (!this.calls.has(key)) return;
    this.endCall(key, call);
    const early = call.early;
    if (early) {
      if (early.tx.lastStatus > 0 && early.tx.lastStatus < 200)
        early.tx.reply(early.status, early.reason, { toTag: call.dialog.localTag });
      return;
    }
    this.sendInDialog(call.dialog, 'BYE');
  }

  // ------------------------------------------------------------------ subscriptions (RFC 6665, RFC 3842)

  private onSubscribe(req: SipRequest, tx: ServerTransaction, src: Source): void {
    const event = (req.getHeader('Event') ?? '').split(';')[0].trim().toLowerCase();
    if (event !== MWI_EVENT || !this.opts.subscriptionAccount || !this.opts.summary) {
      tx.reply(489, undefined, { toTag: newTag(), headers: [['Allow-Events', MWI_EVENT]] });
      return;
    }
    const requested = req.expires ?? MAX_SUBSCRIPTION_S;
    const expires = Math.min(requested, MAX_SUBSCRIPTION_S);
    let sub: Subscription | undefined;
    if (req.toTag !== undefined) {
      sub = this.subs.get(`${req.callId};${req.toTag}`);
      if (!sub) {
        tx.reply(481);
        return;
      }
    } else {
      const account = this.opts.subscriptionAccount(req);
      if (!account) {
        tx.reply(404, undefined, { toTag: newTag() });
        return;
      }
      const localTag = newTag();
      sub = {
        callId: req.callId,
        localTag,
        remoteTag: req.fromTag ?? '',
        local: '',
        remote: req.getHeader('From')!,
        remoteTarget: req.contacts[0]?.uriText ?? req.from.uriText,
        routeSet: req.recordRoutes.map((r) => r.toString()),
        localCseq: 1,
        source: src,
        account,
        expiresAt: 0,
        timer: setTimeout(() => {}, 0),
        contentType: 'application/simple-message-summary',
      };
    }
    const key = `${sub.callId};${sub.localTag}`;
    const ok = tx.reply(200, undefined, {
      toTag: sub.localTag,
      headers: [
        ['Expires', String(expires)],
        ['Contact', this.contact(src)],
      ],
    });
    if (!sub.local) sub.local = ok.getHeader('To')!;
    clearTimeout(sub.timer);
    const c = req.contacts[0];
    if (c) sub.remoteTarget = c.uriText;
    if (expires === 0) {
      this.subs.delete(key);
      void this.notifySubscription(sub, 'terminated;reason=timeout');
      return;
    }
    sub.expiresAt = Date.now() + expires * 1000;
    const s = sub;
    sub.timer = setTimeout(() => {
      this.subs.delete(key);
      void this.notifySubscription(s, 'terminated;reason=timeout');
    }, expires * 1000);
    sub.timer.unref?.();
    this.subs.set(key, sub);
    // RFC 6665 §4.2.1.2: a NOTIFY follows the 200 at once with the current state.
    void this.notifySubscription(sub);
  }

  /** NOTIFY one subscription; false when the summary could not be had (logged; the next change notifies again). */
  private async notifySubscription(sub: Subscription, state?: string): Promise<boolean> {
    let body: string;
    try {
      body = await this.opts.summary!(sub.account);
    } catch (err) {
      this.opts.logger.warn({ err, account: sub.account }, 'message summary not available: no NOTIFY');
      return false;
    }
    const left = Math.max(0, Math.round((sub.expiresAt - Date.now()) / 1000));
    this.sendInDialog(sub, 'NOTIFY', {
      headers: [
        ['Event', MWI_EVENT],
        ['Subscription-State', state ?? `active;expires=${left}`],
      ],
      body,
      contentType: 'application/simple-message-summary',
    });
    return true;
  }

  /** NOTIFY every subscription to an account with its current state; how many were sent. */
  async notifySubscribers(account: string): Promise<number> {
    let n = 0;
    for (const s of this.subs.values()) {
      if (s.account !== account) continue;
      if (await this.notifySubscription(s)) n++;
    }
    return n;
  }

  // ------------------------------------------------------------------ requests out

  /** Where a request to `uri` goes (a Route or the remote target): IP hosts only; otherwise the fallback flow. */
  private targetFor(uriText: string, fallback: Source | undefined): SendTarget | undefined {
    let uri: SipUri | undefined;
    try {
      const na = parseNameAddr(uriText.startsWith('<') ? uriText : `<${uriText}>`, 'route', NameAddr);
      uri = na.sipUri;
    } catch {
      uri = undefined;
    }
    if (uri && isIp(uri.host)) {
      const tp =
        (uri.params.get('transport')?.toLowerCase() as TransportName | undefined) ??
        (uri.scheme === 'sips' ? 'tls' : 'udp');
      const address = bare(uri.host);
      const port = uri.port ?? (tp === 'tls' ? 5061 : 5060);
      const sameFlow = fallback && fallback.transport === tp && fallback.connId !== undefined;
      return { transport: tp, address, port, connId: sameFlow ? fallback.connId : undefined };
    }
    if (!fallback) return undefined;
    return {
      transport: fallback.transport,
      address: fallback.address,
      port: fallback.port,
      connId: fallback.connId,
    };
  }

  private via(transport: TransportName, src?: Source): string {
    const host = src ? this.advertised(src) : (this.opts.advertise ?? '127.0.0.1');
    const port = this.port(transport) ?? this.port('udp');
    return `SIP/2.0/${VIA_TRANSPORT[transport]} ${hostFor(host)}:${port};branch=${newBranch()};rport`;
  }

  private sendInDialog(
    d: DialogBase,
    method: string,
    extra: { headers?: Array<[string, string]>; body?: string; contentType?: string } = {},
  ): void {
    const firstRoute = d.routeSet[0];
    const looseRoute = firstRoute !== undefined && /;lr\b/i.test(firstRoute);
    const target = this.targetFor(firstRoute && looseRoute ? firstRoute : d.remoteTarget, d.source);
    if (!target) return;
    const req = createRequest({
      method,
      uri: firstRoute && !looseRoute ? parseNameAddr(firstRoute, 'route', NameAddr).uriText : d.remoteTarget,
      via: [this.via(target.transport, d.source)],
      from: d.local,
      to: d.remote,
      callId: d.callId,
      cseq: ++d.localCseq,
      route: firstRoute && !looseRoute ? [...d.routeSet.slice(1), `<${d.remoteTarget}>`] : d.routeSet,
      contact: [this.contact(d.source)],
      headers: extra.headers,
      body: extra.body,
      contentType: extra.contentType,
    });
    this.send(req, target, method);
  }

  private send(req: SipRequest, target: SendTarget, what: string): Promise<SipResponse> {
    return new Promise((resolve) => {
      try {
        this.txl.request(req, target, {
          onResponse: (res) => {
            if (res.status >= 200) resolve(res);
          },
        });
      } catch (err) {
        this.opts.logger.warn({ err, what }, 'request not sent');
      }
    });
  }

  /**
   * An unsolicited NOTIFY (RFC 3842 §3, as phones expect without a subscription) to
   * one registered contact; `path` (RFC 3327) routes it through the proxy that took the
   * registration, `received` is where the contact was seen (NAT).
   */
  notifyContact(opts: {
    aor: string;
    contact: string;
    path: string[];
    received?: { address: string; port: number; transport: string };
    body: string;
  }): Promise<SipResponse | undefined> {
    const fallback: Source | undefined =
      opts.received && opts.received.address
        ? {
            transport: (opts.received.transport || 'udp') as TransportName,
            address: opts.received.address,
            port: opts.received.port,
            localAddress: this.opts.advertise ?? '127.0.0.1',
            localPort: 0,
            connId: undefined,
          }
        : undefined;
    // Through the registering proxy when there is a Path, else to where the contact was seen (NAT), else the contact.
    const hop = opts.path[0];
    const target = hop
      ? this.targetFor(hop, fallback)
      : (fallback ?? this.targetFor(opts.contact, undefined));
    if (!target) return Promise.resolve(undefined);
    const req = createRequest({
      method: 'NOTIFY',
      uri: opts.contact,
      via: [this.via(target.transport)],
      from: `<${opts.aor}>;tag=${newTag()}`,
      to: `<${opts.aor}>`,
      callId: newCallId(),
      cseq: 1,
      route: opts.path.map((p) => (p.startsWith('<') ? p : `<${p}>`)),
      contact: [
        `<sip:mediaserver@${hostFor(this.opts.advertise ?? '127.0.0.1')}:${this.port(target.transport) ?? this.port('udp')}>`,
      ],
      headers: [
        ['Event', MWI_EVENT],
        ['Subscription-State', 'active'],
      ],
      body: opts.body,
      contentType: 'application/simple-message-summary',
    });
    return this.send(req, target, 'NOTIFY');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const call of [...this.calls.values()]) this.hangup(call);
    for (const s of this.subs.values()) clearTimeout(s.timer);
    this.subs.clear();
    // Give the BYEs a moment on the wire before the sockets close.
    await new Promise((r) => setTimeout(r, 20));
    await this.transport.stop();
  }
}
