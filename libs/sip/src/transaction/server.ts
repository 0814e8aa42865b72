/**
 * Server transactions (RFC 3261 §17.2, RFC 6026 §7.1): INVITE and non-INVITE.
 * They absorb request retransmissions and resend the last response.
 * One method per state, the RFC section beside it.
 */
import { createResponse, keepBytes, parseMessage, type SipRequest, type SipResponse } from '../message';
import type { SendTarget, Source } from '../transport/types';
import { Transaction, type TimerName, type TxHost } from './transaction';
import { detach } from '../message/detach';
import { txTimeout, waitTimeout } from './timers';

export abstract class ServerTransaction extends Transaction {
  /** The last response sent, serialized (resent on request retransmissions). */
  protected lastWire: Buffer | undefined;
  /** Status and To tag of the last response sent; 0 and undefined before any. */
  lastStatus = 0;
  lastToTag: string | undefined;
  /** What matches a request to this transaction besides the branch and method (RFC 3261 §17.2.3). */
  readonly sentBy: string;
  /** Matching-table keys, kept by the transaction layer (RFC 2543 fallback, §8.2.2.2 merge index). */
  legacyKey: string | undefined;
  mergeKey: string | undefined;
  /** The transport failed sending a response (RFC 3261 §17.2.4 → §17.1.4 semantics: TU told). */
  onTransportError: ((err: Error, tx: ServerTransaction) => void) | undefined;

  constructor(
    host: TxHost,
    request: SipRequest,
    branch: string,
    target: SendTarget,
    /** Where the request came from (connection id = flow). */
    readonly source: Source,
  ) {
    super(host, request, branch, target);
    this.sentBy = detach(request.via.sentBy);
  }

  abstract readonly isInvite: boolean;
  /** The TU sends a response through the transaction. */
  abstract respond(res: SipResponse): void;
  /** A request matched this transaction (retransmission, or ACK for INVITE). Returns true if it goes to the TU. */
  abstract receive(req: SipRequest): boolean;

  /**
   * Build and send a response in one step (createResponse + respond). Once the request is no
   * longer held (the transaction has its final response), a late reply from the TU is discarded
   * unbuilt, and what comes back is the final response that stands, read again from the bytes sent.
   */
  reply(status: number, reason?: string, opts?: Parameters<typeof createResponse>[3]): SipResponse {
    if (this.held === undefined && this.lastWire !== undefined)
      return parseMessage(this.lastWire) as SipResponse;
    const res = createResponse(this.request, status, reason, opts);
    this.respond(res);
    return res;
  }

  protected transmit(res: SipResponse): void {
    this.lastStatus = res.status;
    const tag = res.toTag;
    this.lastToTag = tag === undefined ? undefined : detach(tag);
    this.lastWire = res.serialize();
    this.resend();
    // a 2xx the TU resends in Accepted is kept for the rest of Timer L
    if (this.held === undefined) this.lastWire = keepBytes(this.lastWire);
  }

  /** Only the bytes to resend are kept from now on, for seconds: copied out of the slab they were sent from. */
  protected override release(): void {
    super.release();
    if (this.lastWire) this.lastWire = keepBytes(this.lastWire);
  }

  protected resend(): void {
    if (!this.lastWire) return;
    this.host.send(this.lastWire, this.target, (err) => {
      if (err) this.transportError(err);
    });
  }

  protected transportError(err: Error): void {
    if (this.terminated) return;
    this.onTransportError?.(err, this);
    this.terminate();
  }
}

export type ServerInviteState = 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';

export class ServerInviteTransaction extends ServerTransaction {
  readonly isInvite = true;
  state: ServerInviteState = 'proceeding';
  /** Timer H fired: no ACK came for the final non-2xx response. */
  onTimeout: ((tx: ServerInviteTransaction) => void) | undefined;
  /** The TU answered CANCEL for this INVITE (set by the TU; informational). */
  cancelled = false;

  /** RFC 3261 §17.2.1: send 100 Trying unless the TU sends a provisional within 200 ms. */
  start(): void {
    if (this.state !== 'proceeding' || this.lastStatus) return;
    this.startRetransmit(this.host.timers.trying100, '100');
  }

  onTimer(timer: TimerName): void {
    switch (timer) {
      case '100':
        if (this.state === 'proceeding' && !this.lastStatus) this.reply(100, 'Trying');
        return;
      case 'G':
      case 'H':
        this.completed(timer);
        return;
      default:
        this.terminate(); // Timer I (Confirmed) or L (Accepted)
    }
  }

  respond(res: SipResponse): void {
    switch (this.state) {
      case 'proceeding':
        this.proceeding('tu', undefined, res);
        return;
      case 'accepted':
        this.accepted('tu', undefined, res);
        return;
      default:
        return; // Completed/Confirmed/Terminated: the final response was already sent
    }
  }

  receive(req: SipRequest): boolean {
    switch (this.state) {
      case 'proceeding':
        return this.proceeding('request', req);
      case 'completed':
        return this.completed('request', req);
      case 'confirmed':
        return false; // RFC 3261 §17.2.1 Confirmed: absorb ACKs
      case 'accepted':
        return this.accepted('request', req);
      case 'terminated':
        return false;
    }
  }

  // RFC 3261 §17.2.1 Proceeding
  private proceeding(ev: 'tu' | 'request', _req?: SipRequest, res?: SipResponse): boolean {
    if (ev === 'request') {
      // INVITE retransmission: resend the last provisional (ACK can't come before a final).
      this.resend();
      return false;
    }
    const status = res!.status;
    this.stopRetransmit(); // no automatic 100 once the TU sent a response
    const t = this.host.timers;
    if (status >= 200 && status < 300) {
      // RFC 6026 §7.1: 2xx → Accepted, Timer L = 64*T1 (or the configured wait).
      this.state = 'accepted';
      this.startLife(waitTimeout(t), 'L');
    } else if (status >= 300) {
      // 300-699 → Completed: Timer G = T1 (unreliable), Timer H = 64*T1.
      this.state = 'completed';
      if (!this.reliable) this.startRetransmit(t.T1, 'G');
      this.startLife(txTimeout(t), 'H');
    }
    // sent last: a synchronous transport error terminates with the timers already set
    this.transmit(res!);
    // A final response stands: for Timer H or L (seconds, thousands at a time under load) keep
    // only the bytes to resend, not the parsed request and response (see the non-INVITE case).
    if (status >= 200) this.release();
    return false;
  }

  // RFC 3261 §17.2.1 Completed
  private completed(ev: 'G' | 'H' | 'request', req?: SipRequest): boolean {
    if (ev === 'G') {
      this.startRetransmit(Math.min(this.interval * 2, this.host.timers.T2), 'G');
      this.resend();
      return false;
    }
    if (ev === 'H') {
      this.onTimeout?.(this);
      this.terminate();
      return false;
    }
    if (req!.method === 'ACK') {
      // → Confirmed, Timer I = T4 (unreliable) or 0.
      this.state = 'confirmed';
      this.stopRetransmit();
      this.startLife(this.reliable ? 0 : this.host.timers.T4, 'I');
      return false;
    }
    this.resend();
    return false;
  }

  // RFC 6026 §7.1 Accepted
  private accepted(ev: 'tu' | 'request', req?: SipRequest, res?: SipResponse): boolean {
    if (ev === 'tu') {
      // The TU's 2xx retransmissions go out through the transaction.
      if (res!.status >= 200 && res!.status < 300) this.transmit(res!);
      return false;
    }
    // INVITE retransmissions are absorbed; a matching ACK goes to the TU.
    return req!.method === 'ACK';
  }
}

export type ServerNonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export class ServerNonInviteTransaction extends ServerTransaction {
  readonly isInvite = false;
  state: ServerNonInviteState = 'trying';

  respond(res: SipResponse): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        return this.tryingOrProceeding(res);
      default:
        return; // Completed: any other final from the TU is discarded
    }
  }

  onTimer(_timer: TimerName): void {
    this.terminate(); // Timer J (Completed)
  }

  receive(_req: SipRequest): boolean {
    switch (this.state) {
      case 'trying':
        return false; // RFC 3261 §17.2.2 Trying: retransmissions discarded
      case 'proceeding':
      case 'completed':
        this.resend(); // §17.2.2 Proceeding / Completed: resend the last response
        return false;
      case 'terminated':
        return false;
    }
  }

  // RFC 3261 §17.2.2 Trying / Proceeding
  private tryingOrProceeding(res: SipResponse): void {
    if (res.status < 200) {
      this.state = 'proceeding';
    } else {
      // → Completed, Timer J = 64*T1 or the configured wait (unreliable), or 0.
      this.state = 'completed';
      this.startLife(this.reliable ? 0 : waitTimeout(this.host.timers), 'J');
    }
    this.transmit(res);
    // Completed for up to Timer J (seconds, thousands at a time under load): hold only the
    // bytes to resend, not the parsed request and response (most of a transaction's memory,
    // and most of what the garbage collector would otherwise copy and mark).
    if (this.state === 'completed') this.release();
  }
}
