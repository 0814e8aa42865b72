/**
 * Relay port pairs: RTP on an even port, RTCP on the odd one above it
 * (RFC 3550 §11), handed out in FIFO order from a range. A released pair is
 * reused only after a quiet period, so late packets of an ended call never
 * reach the next one.
 */
export class PortPool {
  /** Even port bases, free ones first in the order they became free. */
  private readonly free: number[] = [];
  /** When each queued base was released (ms); 0 for never used. */
  private readonly freedAt: number[] = [];
  private head = 0;
  private readonly total: number;

  constructor(
    min: number,
    max: number,
    private readonly quietMs: number,
  ) {
    const first = min % 2 === 0 ? min : min + 1;
    for (let p = first; p + 1 <= max; p += 2) {
      this.free.push(p);
      this.freedAt.push(0);
    }
    this.total = this.free.length;
    if (this.total === 0) throw new Error(`port range ${min}-${max} holds no even/odd pair`);
  }

  /** Pairs in the range. */
  get size(): number {
    return this.total;
  }

  /** Pairs not in use (including those still in their quiet period). */
  get available(): number {
    return this.free.length - this.head;
  }

  /** The next pair's even port whose quiet period is over, or undefined when none is. */
  take(now: number): number | undefined {
    if (this.head >= this.free.length) return undefined;
    const at = this.freedAt[this.head]!;
    if (at !== 0 && now - at < this.quietMs) return undefined;
    const p = this.free[this.head]!;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.free.length) {
      this.free.splice(0, this.head);
      this.freedAt.splice(0, this.head);
      this.head = 0;
    }
    return p;
  }

  /** Give a pair back; it becomes takeable after the quiet period. */
  release(base: number, now: number): void {
    this.free.push(base);
    this.freedAt.push(Math.max(now, 1));
  }
}
