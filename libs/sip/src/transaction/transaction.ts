/**
 * What every transaction shares: its host (the transaction layer, seen through
 * a small interface), two timer slots, and termination.
 */
import type { SipRequest, SipResponse } from '../message';
import { isReliable, type Clock, type SendCallback, type SendTarget } from '../transport/types';
import type { TimerConfig } from './timers';

/** What a transaction needs from the layer that owns it. */
export interface TxHost {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  send(data: Buffer, target: SendTarget, cb?: SendCallback): void;
  /** Remove the transaction from the matching tables. */
  removed(tx: Transaction): void;
}

export abstract class Transaction {
  abstract state: string;
  /** A retransmission timer (A, E, G) or the 100 Trying timer. */
  private tRetransmit: unknown;
  /** A lifetime timer (B, D, F, H, I, J, K, L, M). */
  private tLife: unknown;
  /** Current retransmission interval. */
  protected interval = 0;
  /** Called once, when the transaction reaches Terminated. */
  onTerminated: ((tx: Transaction) => void) | undefined;

  constructor(
    protected readonly host: TxHost,
    /** The request that created the transaction. */
    readonly request: SipRequest,
    /** Topmost Via branch: the primary matching key. */
    readonly branch: string,
    /** Where the request is sent (client) or responses go (server). */
    public target: SendTarget,
  ) {}

  /** Retransmissions happen on unreliable transports only (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1). */
  get reliable(): boolean {
    return isReliable(this.target.transport);
  }

  get terminated(): boolean {
    return this.state === 'terminated';
  }

  protected startRetransmit(ms: number, fire: () => void): void {
    this.stopRetransmit();
    this.interval = ms;
    this.tRetransmit = this.host.clock.setTimeout(() => {
      this.tRetransmit = undefined;
      fire();
    }, ms);
  }

  protected stopRetransmit(): void {
    if (this.tRetransmit !== undefined) this.host.clock.clearTimeout(this.tRetransmit);
    this.tRetransmit = undefined;
  }

  protected startLife(ms: number, fire: () => void): void {
    this.stopLife();
    this.tLife = this.host.clock.setTimeout(() => {
      this.tLife = undefined;
      fire();
    }, ms);
  }

  protected stopLife(): void {
    if (this.tLife !== undefined) this.host.clock.clearTimeout(this.tLife);
    this.tLife = undefined;
  }

  /** RFC 3261 §17 Terminated: timers cleared, removed from the tables, TU told. */
  protected terminate(): void {
    if (this.state === 'terminated') return;
    this.state = 'terminated';
    this.stopRetransmit();
    this.stopLife();
    this.host.removed(this);
    this.onTerminated?.(this);
  }
}

export type { SipRequest, SipResponse };
