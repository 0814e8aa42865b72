/**
 * The transaction layer's timers (RFC 3261 §17 Timers A-K, RFC 6026 L and M) on one
 * clock timer: every transaction arms and disarms its timers many times per call (a
 * Node Timeout, its closures and its list work each time), so the layer keeps them
 * itself.
 *
 * Timers of one duration are armed in time order, so each duration has a list sorted by
 * due time (append at the tail, O(1)) and the earliest timer of the queue is the earliest
 * head among the lists (a handful of durations: T1 doublings, T2, T4, the wait, 64*T1).
 * One clock timer waits for that earliest one; a timer is due exactly when the clock says
 * so (the injected clock fires it, so a fake clock drives these timers as before).
 */
import type { Clock } from '../transport/types';

/** What a timer slot fires: its owner's handler, with the slot's tag. */
export interface TimerOwner<K> {
  onTimer(kind: K): void;
}

/** One timer slot of an owner, linked into the list of its duration while armed (reused across arms). */
export class TimerSlot<K> {
  due = 0;
  kind: K;
  prev: TimerSlot<K> | null = null;
  next: TimerSlot<K> | null = null;
  list: TimerList<K> | null = null;

  constructor(
    readonly owner: TimerOwner<K>,
    kind: K,
  ) {
    this.kind = kind;
  }

  get armed(): boolean {
    return this.list !== null;
  }
}

class TimerList<K> {
  head: TimerSlot<K> | null = null;
  tail: TimerSlot<K> | null = null;
}

export class TimerQueue<K> {
  private readonly lists = new Map<number, TimerList<K>>();
  /** Timers armed now. */
  private count = 0;
  private wake: unknown = undefined;
  private wakeAt = Infinity;
  private running = false;
  private readonly run = (): void => this.fireDue();

  /**
   * onError: a timer's handler threw. The queue fires the other due timers and keeps running;
   * without it the error is thrown on (out of the clock's callback).
   */
  constructor(
    private readonly clock: Clock,
    private readonly onError?: (err: unknown, owner: TimerOwner<K>) => void,
  ) {}

  /** Number of armed timers (tests, metrics). */
  get size(): number {
    return this.count;
  }

  /** Arms `slot` to fire `kind` in `ms` (disarming it first if armed). */
  arm(slot: TimerSlot<K>, ms: number, kind: K): void {
    if (slot.list !== null) this.unlink(slot);
    const d = ms > 0 ? ms : 0;
    const due = this.clock.now() + d;
    slot.due = due;
    slot.kind = kind;
    let l = this.lists.get(d);
    if (l === undefined) {
      l = new TimerList<K>();
      this.lists.set(d, l);
    }
    // Append, keeping the list sorted (a clock that stepped back puts a timer before the tail).
    let after = l.tail;
    while (after !== null && after.due > due) after = after.prev;
    slot.list = l;
    slot.prev = after;
    slot.next = after === null ? l.head : after.next;
    if (slot.next !== null) slot.next.prev = slot;
    else l.tail = slot;
    if (after !== null) after.next = slot;
    else l.head = slot;
    this.count++;
    if (!this.running && due < this.wakeAt) this.schedule(due);
  }

  /** Disarms `slot` (nothing if it is not armed). */
  disarm(slot: TimerSlot<K>): void {
    if (slot.list === null) return;
    this.unlink(slot);
    if (this.count === 0 && this.wake !== undefined && !this.running) {
      // nothing left: no clock timer left behind
      this.clock.clearTimeout(this.wake);
      this.wake = undefined;
      this.wakeAt = Infinity;
    }
  }

  private unlink(slot: TimerSlot<K>): void {
    const l = slot.list!;
    if (slot.prev !== null) slot.prev.next = slot.next;
    else l.head = slot.next;
    if (slot.next !== null) slot.next.prev = slot.prev;
    else l.tail = slot.prev;
    slot.prev = slot.next = null;
    slot.list = null;
    this.count--;
  }

  private schedule(due: number): void {
    if (this.wake !== undefined) this.clock.clearTimeout(this.wake);
    this.wakeAt = due;
    this.wake = this.clock.setTimeout(this.run, due - this.clock.now());
  }

  /** The earliest armed timer, or null. */
  private earliest(): TimerSlot<K> | null {
    let best: TimerSlot<K> | null = null;
    for (const l of this.lists.values()) {
      const h = l.head;
      if (h !== null && (best === null || h.due < best.due)) best = h;
    }
    return best;
  }

  /** Fires every timer due by now, earliest first (timers armed meanwhile included), then waits for the next. */
  private fireDue(): void {
    this.wake = undefined;
    this.wakeAt = Infinity;
    this.running = true;
    try {
      for (;;) {
        const s = this.earliest();
        if (s === null || s.due > this.clock.now()) break;
        this.unlink(s);
        try {
          s.owner.onTimer(s.kind);
        } catch (err) {
          if (!this.onError) throw err;
          this.onError(err, s.owner);
        }
      }
    } finally {
      this.running = false;
      const next = this.earliest();
      if (next !== null) this.schedule(next.due);
    }
  }
}
