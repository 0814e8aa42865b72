/**
 * Client transactions (RFC 3261 §17.1, RFC 6026 §7.2): INVITE and non-INVITE.
 * One method per state, the RFC section beside it. Timers go through the
 * injected clock; retransmissions only on unreliable transports.
 */
import { createRequest, createResponse, keepBytes, type SipRequest, type SipResponse } from '../message';
import type { SendTarget } from '../transport/types';
import { Transaction, type TimerName, type TxHost } from './transaction';
import { txTimeout, waitTimeout } from './timers';

/** What the TU hears from a client transaction. */
export interface ClientTxUser {
  /**
   * Every response the TU must see: provisionals, the final response, 2xx
   * retransmissions in Accepted (RFC 6026), and the synthesized 408 on timeout
   * (Timer B/F) and 503 on a transport error (RFC 3261 §8.1.3.1, §17.1.4).
   */
  onResponse(res: SipResponse, tx: ClientTransaction): void;
  /** The transport failed (RFC 3261 §17.1.4); a 503 is also synthesized to onResponse. */
  onTransportError?(err: Error, tx: ClientTransaction): void;
  /** The transaction timed out (Timer B/F); a 408 is also synthesized to onResponse. */
  onTimeout?(tx: ClientTransaction): void;
}

/**
 * The ACK for a non-2xx final response to an INVITE (RFC 3261 §17.1.1.3):
 * same Request-URI, Call-ID, From, CSeq number and top Via as the INVITE,
 * To from the response, the INVITE's Route headers.
 */
export function ackForNon2xx(invite: SipRequest, res: SipResponse): SipRequest {
  return createRequest({
    method: 'ACK',
    uri: invite.uriText,
    via: [invite.via],
    from: invite.getHeader('From')!,
    to: res.getHeader('To')!,
    callId: invite.callId,
    cseq: invite.cseq.seq,
    route: invite.getHeaderValues('Route'),
    maxForwards: 70,
  });
}

/**
 * The CANCEL for a pending INVITE (RFC 3261 §9.1): same Request-URI, Call-ID,
 * To, From, CSeq number and top Via (so the same branch) as the INVITE, and
 * its Route headers. Send it as its own client transaction to the same target.
 */
export function cancelFor(invite: SipRequest): SipRequest {
  return createRequest({
    method: 'CANCEL',
    uri: invite.uriText,
    via: [invite.via],
    from: invite.getHeader('From')!,
    to: invite.getHeader('To')!,
    callId: invite.callId,
    cseq: invite.cseq.seq,
    route: invite.getHeaderValues('Route'),
    maxForwards: 70,
  });
}

export abstract class ClientTransaction extends Transaction {
  /** The serialized request, sent and retransmitted as is; let go with the final response. */
  protected wire: Buffer | undefined;

  constructor(
    host: TxHost,
    request: SipRequest,
    branch: string,
    target: SendTarget,
    protected user: ClientTxUser,
  ) {
    super(host, request, branch, target);
    this.wire = request.serialize();
  }

  abstract readonly isInvite: boolean;
  abstract start(): void;
  /** A response matched this transaction (RFC 3261 §17.1.3). */
  abstract receive(res: SipResponse): void;

  protected transmit(): void {
    if (!this.wire) return;
    this.host.send(this.wire, this.target, (err) => {
      if (err) this.transportError(err);
    });
  }

  /** A final response: nothing is retransmitted any more, so the request's bytes go too. */
  protected override release(): void {
    super.release();
    this.wire = undefined;
  }

  /** RFC 3261 §17.1.4: tell the TU, then Terminated. */
  protected transportError(err: Error): void {
    if (this.terminated) return;
    this.user.onTransportError?.(err, this);
    // Before a final response the TU hears a 503; after one (an ACK that failed) it has its answer.
    if (this.held !== undefined)
      this.user.onResponse(createResponse(this.held, 503, 'Service Unavailable'), this);
    this.terminate();
  }

  /**
   * The TU gives up on a request that got no response at all (a proxy's fr_timer, as Kamailio's tm
   * does): no more retransmissions, Terminated, nothing more reported. Not after a response: an
   * INVITE that got a provisional is CANCELled instead (§9.1).
   */
  abandon(): void {
    if (this.state === 'calling' || this.state === 'trying') this.terminate();
  }

  /** Timer B / Timer F: 408 to the TU (RFC 3261 §8.1.3.1), then Terminated. */
  protected timeout(): void {
    if (this.terminated) return;
    this.user.onTimeout?.(this);
    this.user.onResponse(createResponse(this.request, 408, 'Request Timeout'), this);
    this.terminate();
  }
}

export type ClientInviteState = 'calling' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

export class ClientInviteTransaction extends ClientTransaction {
  readonly isInvite = true;
  state: ClientInviteState = 'calling';
  private ackWire: Buffer | undefined;

  start(): void {
    // RFC 3261 §17.1.1.2: send; Timer A = T1 on unreliable transports; Timer B = 64*T1.
    if (!this.reliable) this.startRetransmit(this.host.timers.T1, 'A');
    this.startLife(txTimeout(this.host.timers), 'B');
    this.transmit();
  }

  onTimer(timer: TimerName): void {
    if (timer === 'A' || timer === 'B') this.calling(timer);
    else this.terminate(); // Timer D (Completed) or M (Accepted)
  }

  receive(res: SipResponse): void {
    switch (this.state) {
      case 'calling':
        return this.calling('response', res);
      case 'proceeding':
        return this.proceeding(res);
      case 'completed':
        return this.completed(res);
      case 'accepted':
        return this.accepted(res);
      case 'terminated':
        return;
    }
  }

  // RFC 3261 §17.1.1.2 Calling
  private calling(ev: 'A' | 'B' | 'response', res?: SipResponse): void {
    if (ev === 'A') {
      this.startRetransmit(this.interval * 2, 'A');
      this.transmit();
      return;
    }
    if (ev === 'B') return this.timeout();
    if (res!.status < 200) {
      this.stopRetransmit();
      this.stopLife(); // Timer B runs in Calling only (RFC 3261 Figure 5)
      this.state = 'proceeding';
      this.user.onResponse(res!, this);
      return;
    }
    this.proceeding(res!);
  }

  // RFC 3261 §17.1.1.2 Proceeding
  private proceeding(res: SipResponse): void {
    if (res.status < 200) {
      this.user.onResponse(res, this);
      return;
    }
    this.stopRetransmit();
    if (res.status < 300) {
      // RFC 6026 §7.2: 2xx → Accepted, Timer M = 64*T1 (or the configured wait); the TU builds the ACK.
      this.state = 'accepted';
      this.startLife(waitTimeout(this.host.timers), 'M');
      this.release();
      this.user.onResponse(res, this);
      return;
    }
    // RFC 3261 §17.1.1.2: 300-699 → ACK, to the TU, Completed, Timer D.
    this.state = 'completed';
    // kept for Timer D (32 s on UDP): in the slabs of kept bytes
    this.ackWire = keepBytes(ackForNon2xx(this.request, res).serialize());
    this.release();
    this.startLife(this.reliable ? 0 : this.host.timers.D, 'D');
    // the ACK first (as Kamailio's tm): the TU may send its next request to the same UA at once
    // (serial forking, forwarding on no answer), which must not overtake the ACK on the wire
    this.sendAck();
    if (!this.terminated) this.user.onResponse(res, this);
  }

  // RFC 3261 §17.1.1.2 Completed: retransmitted finals get the ACK again, not passed up.
  private completed(res: SipResponse): void {
    if (res.status >= 300) this.sendAck();
  }

  // RFC 6026 §7.2 Accepted: 2xx retransmissions (and 2xx from other forks) go to the TU.
  private accepted(res: SipResponse): void {
    if (res.status >= 200 && res.status < 300) this.user.onResponse(res, this);
  }

  private sendAck(): void {
    this.host.send(this.ackWire!, this.target, (err) => {
      if (err) this.transportError(err);
    });
  }
}

/** The user of a completed non-INVITE transaction: hears nothing more. */
const RELEASED: ClientTxUser = { onResponse() {} };

export type ClientNonInviteState = 'trying' | 'proceeding' | 'completed' | 'terminated';

export class ClientNonInviteTransaction extends ClientTransaction {
  readonly isInvite = false;
  state: ClientNonInviteState = 'trying';

  start(): void {
    // RFC 3261 §17.1.2.2: send; Timer E = T1 (unreliable); Timer F = 64*T1.
    if (!this.reliable) this.startRetransmit(this.host.timers.T1, 'E');
    this.startLife(txTimeout(this.host.timers), 'F');
    this.transmit();
  }

  onTimer(timer: TimerName): void {
    if (timer === 'E') this.onTimerE();
    else if (timer === 'F') this.timeout();
    else this.terminate(); // Timer K (Completed)
  }

  receive(res: SipResponse): void {
    switch (this.state) {
      case 'trying':
        return this.trying(res);
      case 'proceeding':
        return this.proceeding(res);
      case 'completed':
        return; // RFC 3261 §17.1.2.2 Completed: absorb retransmitted responses
      case 'terminated':
        return;
    }
  }

  private onTimerE(): void {
    const t = this.host.timers;
    // Trying: E = min(2E, T2); Proceeding: E = T2.
    this.startRetransmit(this.state === 'trying' ? Math.min(this.interval * 2, t.T2) : t.T2, 'E');
    this.transmit();
  }

  // RFC 3261 §17.1.2.2 Trying
  private trying(res: SipResponse): void {
    if (res.status < 200) {
      this.state = 'proceeding';
      this.user.onResponse(res, this);
      return;
    }
    this.complete(res);
  }

  // RFC 3261 §17.1.2.2 Proceeding
  private proceeding(res: SipResponse): void {
    if (res.status < 200) {
      this.user.onResponse(res, this);
      return;
    }
    this.complete(res);
  }

  // RFC 3261 §17.1.2.2: final → Completed, Timer K = T4 (unreliable) or 0.
  private complete(res: SipResponse): void {
    this.state = 'completed';
    this.stopRetransmit();
    this.startLife(this.reliable ? 0 : this.host.timers.T4, 'K');
    this.release();
    const user = this.user;
    // Completed only absorbs retransmissions: nothing more goes to the TU, so it is let go too.
    this.user = RELEASED;
    user.onResponse(res, this);
  }
}
