/**
 * A fixed-window limiter per key (a client address): at most `limit` hits per
 * `windowMs`. The clock is injected, so it is tested without waiting.
 */
export class RateLimiter {
  private readonly hits = new Map<string, { start: number; n: number }>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts a hit; returns 0 when allowed, else the seconds until the key may try again. */
  hit(key: string): number {
    const t = this.now();
    let w = this.hits.get(key);
    if (!w || t - w.start >= this.windowMs) {
      w = { start: t, n: 0 };
      this.hits.set(key, w);
      if (this.hits.size > 10_000) this.prune(t);
    }
    w.n++;
    return w.n <= this.limit ? 0 : Math.max(1, Math.ceil((w.start + this.windowMs - t) / 1000));
  }

  private prune(t: number): void {
    for (const [k, w] of this.hits) if (t - w.start >= this.windowMs) this.hits.delete(k);
  }
}
