/**
 * What every transaction shares: its host (the transaction layer, seen through
 * a small interface), two timer slots (on the layer's timer queue), and termination.
 */
import type { SipRequest, SipResponse } from '../message';
import { isReliable, type Clock, type SendCallback, type SendTarget } from '../transport/types';
import type { TimerConfig } from './timers';
import { TimerSlot, type TimerOwner, type TimerQueue } from './timer-queue';

/** The RFC 3261 §17 / RFC 6026 timers by name; '100' is the automatic 100 Trying (§17.2.1). */
export type TimerName = 'A' | 'B' | 'D' | 'E' | 'F' | 'G' | 'H' | 'I' | 'J' | 'K' | 'L' | 'M' | '100';

/** What a transaction needs from the layer that owns it. */
export interface TxHost {
  readonly clock: Clock;
  readonly timers: TimerConfig;
  /** The layer's timer queue (one clock timer for every transaction's timers). */
  readonly timerQueue: TimerQueue<TimerName>;
  send(data: Buffer, target: SendTarget, cb?: SendCallback): void;
  /** Remove the transaction from the matching tables. */
  removed(tx: Transaction): void;
}

export abstract class Transaction implements TimerOwner<TimerName> {
  abstract state: string;
  /** A retransmission timer (A, E, G) or the 100 Trying timer. */
  private tRetransmit: TimerSlot<TimerName> | undefined;
  /** A lifetime timer (B, D, F, H, I, J, K, L, M). */
  private tLife: TimerSlot<TimerName> | undefined;
  /** Current retransmission interval. */
  protected interval = 0;
  /** Called once, when the transaction reaches Terminated. */
  onTerminated: ((tx: Transaction) => void) | undefined;
  /** The request's method (what matches, besides the branch: RFC 3261 §17.1.3, §17.2.3). */
  readonly method: string;
  /** The request, until the transaction has its final response (`release`). */
  protected held: SipRequest | undefined;

  constructor(
    protected readonly host: TxHost,
    request: SipRequest,
    /** Topmost Via branch: the primary matching key. */
    readonly branch: string,
    /** Where the request is sent (client) or responses go (server). */
    public target: SendTarget,
  ) {
    this.held = request;
    this.method = request.method;
  }

  /** The request that created the transaction; gone once it has its final response. */
  get request(): SipRequest {
    if (this.held === undefined)
      throw new Error(`${this.method} transaction ${this.branch} completed: its request is no longer held`);
    return this.held;
  }

  /**
   * The final response is sent or received: for Timers D, H, J, K, L or M (seconds, thousands at a
   * time under load) the transaction keeps only the bytes it may send again, not the parsed
   * request (most of its memory, and what the garbage collector would otherwise copy and mark).
   */
  protected release(): void {
    this.held = undefined;
  }

  /** Retransmissions happen on unreliable transports only (RFC 3261 §17.1.1.2, §17.1.2.2, §17.2.1). */
  get reliable(): boolean {
    return isReliable(this.target.transport);
  }

  get terminated(): boolean {
    return this.state === 'terminated';
  }

  /** A timer of this transaction fired (the state's method handles it). */
  abstract onTimer(timer: TimerName): void;

  protected startRetransmit(ms: number, timer: TimerName): void {
    this.interval = ms;
    this.host.timerQueue.arm((this.tRetransmit ??= new TimerSlot(this, timer)), ms, timer);
  }

  protected stopRetransmit(): void {
    if (this.tRetransmit !== undefined) this.host.timerQueue.disarm(this.tRetransmit);
  }

  protected startLife(ms: number, timer: TimerName): void {
    this.host.timerQueue.arm((this.tLife ??= new TimerSlot(this, timer)), ms, timer);
  }

  protected stopLife(): void {
    if (this.tLife !== undefined) this.host.timerQueue.disarm(this.tLife);
  }

  /**
   * A handler of one of its timers threw (a bug): Terminated at once, so it leaves the tables
   * rather than staying there with no timer armed. The request, if still held, for the report.
   */
  failed(): SipRequest | undefined {
    const req = this.held;
    this.terminate();
    return req;
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
