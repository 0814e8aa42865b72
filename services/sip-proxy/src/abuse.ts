/**
 * Abuse protection: a per-source request-rate limiter (what Kamailio's pike
 * module does) and a ban after repeated authentication failures per source
 * and per user (what fail2ban does for a PBX). Pure, with an injected clock.
 */
import { detach } from '@switchboard/sip';

export interface RateLimitPolicy {
  /** Requests allowed per source in one window. */
  maxRequests: number;
  windowMs: number;
  /** How long a source that went over stays blocked. */
  blockMs: number;
}

export interface BanPolicy {
  /** Authentication failures allowed within the window before a ban. */
  maxFailures: number;
  windowMs: number;
  banMs: number;
}

interface Counter {
  start: number;
  count: number;
}

/** Fixed-window counter per key with a block list; bounded by periodic pruning. */
class WindowCounter {
  private readonly counters = new Map<string, Counter>();
  private readonly blocked = new Map<string, number>(); // key -> blocked until (ms)

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly blockMs: number,
  ) {}

  /** Count one event; true when this event pushed the key over the limit (it is now blocked). */
  hit(key: string, now: number): boolean {
    let c = this.counters.get(key);
    if (!c || now - c.start >= this.windowMs) {
      c = { start: now, count: 0 };
      this.counters.set(key, c);
    }
    c.count++;
    if (c.count > this.limit) {
      this.blocked.set(key, now + this.blockMs);
      this.counters.delete(key);
      return true;
    }
    return false;
  }

  isBlocked(key: string, now: number): boolean {
    const until = this.blocked.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.blocked.delete(key);
    return false;
  }

  clear(key: string): void {
    this.counters.delete(key);
  }

  blockedCount(now: number): number {
    let n = 0;
    for (const until of this.blocked.values()) if (until > now) n++;
    return n;
  }

  prune(now: number): void {
    for (const [k, c] of this.counters) if (now - c.start >= this.windowMs) this.counters.delete(k);
    for (const [k, until] of this.blocked) if (until <= now) this.blocked.delete(k);
  }
}

export class AbuseGuard {
  private readonly rate: WindowCounter;
  private readonly sourceFailures: WindowCounter;
  private readonly userFailures: WindowCounter;

  constructor(
    rate: RateLimitPolicy,
    ban: BanPolicy,
    private readonly now: () => number,
    /** Sources never limited (trusted gateways, the proxy's peers). */
    private readonly exempt: (address: string) => boolean = () => false,
  ) {
    this.rate = new WindowCounter(rate.maxRequests, rate.windowMs, rate.blockMs);
    this.sourceFailures = new WindowCounter(ban.maxFailures, ban.windowMs, ban.banMs);
    this.userFailures = new WindowCounter(ban.maxFailures, ban.windowMs, ban.banMs);
  }

  /** Call for every request: 'ok', or why it must be dropped. */
  admit(address: string): 'ok' | 'rate-limited' | 'banned' {
    if (this.exempt(address)) return 'ok';
    const now = this.now();
    if (this.sourceFailures.isBlocked(address, now)) return 'banned';
    if (this.rate.isBlocked(address, now)) return 'rate-limited';
    return this.rate.hit(address, now) ? 'rate-limited' : 'ok';
  }

  /** Whether requests authenticating as this user are refused for now. */
  userBanned(user: string): boolean {
    return this.userFailures.isBlocked(user, this.now());
  }

  /** Record a failed authentication (wrong password or unknown user: counted the same). */
  authFailed(address: string, user: string | undefined): void {
    const now = this.now();
    if (!this.exempt(address)) this.sourceFailures.hit(address, now);
    // The user is a slice of the request's text: detached, a key does not keep the request.
    if (user) this.userFailures.hit(detach(user), now);
  }

  /** A success resets the failure count of the source (not of the user). */
  authSucceeded(address: string): void {
    this.sourceFailures.clear(address);
  }

  bannedSources(): number {
    const now = this.now();
    return this.sourceFailures.blockedCount(now) + this.rate.blockedCount(now);
  }

  prune(): void {
    const now = this.now();
    this.rate.prune(now);
    this.sourceFailures.prune(now);
    this.userFailures.prune(now);
  }
}
