/**
 * The location service: every AoR's bindings in memory (as usrloc's cache),
 * written through to the database with group commit, published to the
 * compacted `location` topic after each commit, and swept for expiry.
 */
import { EventEmitter } from 'node:events';
import { DomainError } from '@switchboard/platform';
import {
  applyRegister,
  byPriority,
  live,
  type Binding,
  type Change,
  type RegisterInput,
  type RegisterOutcome,
  type RegistrarPolicy,
  type SameUri,
} from './bindings';
import type { BindingStore } from './store';

export interface Clock {
  now(): number;
}

export class Registry {
  private readonly aors = new Map<string, Binding[]>();
  /**
   * No binding expires before this (unix seconds): a lower bound, lowered by every commit and
   * recomputed by each sweep that scans. A sweep before it has nothing to do and reads nothing,
   * so with 100,000 AoRs the registrar's event loop is not held ~10 ms every second.
   */
  private nextExpiry = -Infinity;
  /** Every binding change, as it is committed: ('change', Change). */
  readonly changes = new EventEmitter();

  constructor(
    private readonly store: BindingStore,
    private readonly policy: RegistrarPolicy,
    private readonly clock: Clock,
    private readonly sameUri: SameUri,
  ) {
    this.changes.setMaxListeners(0);
  }

  /** Load every AoR from storage. Returns the AoRs loaded. */
  async load(): Promise<Map<string, Binding[]>> {
    const all = await this.store.loadAll();
    for (const [aor, bs] of all) this.aors.set(aor, bs);
    return all;
  }

  /** Live bindings currently held, for the registrations gauge. */
  countLive(): number {
    const now = this.nowSec();
    let n = 0;
    for (const bs of this.aors.values()) n += live(bs, now).length;
    return n;
  }

  async register(input: RegisterInput): Promise<RegisterOutcome> {
    const current = this.aors.get(input.aor) ?? [];
    const outcome = applyRegister(current, input, this.policy, this.clock.now(), this.sameUri);
    if (outcome.kind === 'ok' && outcome.changes.length > 0)
      await this.commit(input.aor, outcome.bindings, outcome.changes);
    return outcome;
  }

  lookup(aor: string): Binding[] {
    return live(this.aors.get(aor) ?? [], this.nowSec()).sort(byPriority);
  }

  /** Bindings across AoRs ordered by AoR, paged by the last AoR of the previous page. */
  list(opts: { domain?: string; aorPrefix?: string; pageSize: number; after?: string }): {
    bindings: Binding[];
    next?: string;
  } {
    const now = this.nowSec();
    const suffix = opts.domain ? `@${opts.domain}` : undefined;
    // The page's AoRs (and one more, to tell whether another page follows) picked in one pass,
    // kept in order: sorting every AoR for each page took ~100 ms with 100,000 of them.
    const want = opts.pageSize + 1;
    const page: string[] = [];
    for (const a of this.aors.keys()) {
      if (opts.after !== undefined && a <= opts.after) continue;
      if (suffix && !a.endsWith(suffix)) continue;
      if (opts.aorPrefix && !a.startsWith(opts.aorPrefix)) continue;
      if (page.length === want && a >= page[want - 1]) continue;
      let lo = 0;
      let hi = page.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (page[mid] < a) lo = mid + 1;
        else hi = mid;
      }
      page.splice(lo, 0, a);
      if (page.length > want) page.pop();
    }
    const more = page.length > opts.pageSize;
    if (more) page.pop();
    return {
      bindings: page.flatMap((a) => live(this.aors.get(a)!, now).sort(byPriority)),
      next: more ? page[page.length - 1] : undefined,
    };
  }

  async unregister(aor: string, contact?: string): Promise<number> {
    const current = live(this.aors.get(aor) ?? [], this.nowSec());
    const removed = contact ? current.filter((b) => this.sameUri(b.contact, contact)) : current;
    if (removed.length === 0) return 0;
    const keep = current.filter((b) => !removed.includes(b));
    await this.commit(
      aor,
      keep,
      removed.map((binding) => ({ type: 'removed', binding })),
    );
    return removed.length;
  }

  /** Remove expired bindings of every AoR due; returns how many bindings expired. */
  async sweep(): Promise<number> {
    const now = this.nowSec();
    if (now < this.nextExpiry) return 0;
    const due: [string, Binding[]][] = [];
    let next = Infinity;
    for (const [aor, bs] of this.aors) {
      let expired = false;
      for (const b of bs) {
        if (b.expires <= now) expired = true;
        else if (b.expires < next) next = b.expires;
      }
      if (expired) due.push([aor, bs]);
    }
    this.nextExpiry = next;
    let expired = 0;
    await Promise.all(
      due.map(([aor, bs]) => {
        const gone = bs.filter((b) => b.expires <= now);
        expired += gone.length;
        return this.commit(
          aor,
          bs.filter((b) => b.expires > now),
          gone.map((binding) => ({ type: 'expired', binding })),
        );
      }),
    );
    return expired;
  }

  /** Every AoR with its live bindings (for republishing the location topic at start). */
  snapshot(): Map<string, Binding[]> {
    const now = this.nowSec();
    return new Map([...this.aors].map(([aor, bs]) => [aor, live(bs, now)]));
  }

  private async commit(aor: string, bindings: Binding[], changes: Change[]): Promise<void> {
    const before = this.aors.get(aor);
    if (bindings.length) this.aors.set(aor, bindings);
    else this.aors.delete(aor);
    this.lowerNextExpiry(bindings);
    try {
      await this.store.save(aor, bindings);
    } catch (e) {
      // Not durable: put the old state back, so memory never runs ahead of storage.
      if (this.aors.get(aor) === bindings || (!bindings.length && !this.aors.has(aor))) {
        if (before) {
          this.aors.set(aor, before);
          this.lowerNextExpiry(before);
        } else this.aors.delete(aor);
      }
      throw new DomainError('unavailable', `could not store the bindings of ${aor}`, undefined, { cause: e });
    }
    for (const c of changes) this.changes.emit('change', c);
  }

  private lowerNextExpiry(bindings: Binding[]): void {
    for (const b of bindings) if (b.expires < this.nextExpiry) this.nextExpiry = b.expires;
  }

  private nowSec(): number {
    return Math.floor(this.clock.now() / 1000);
  }
}
