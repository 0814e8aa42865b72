/**
 * The pure rating rules: rate plans, the prefix index, time periods, and the
 * price of a call. No I/O; times are unix milliseconds, money is micros.
 *
 * Billing rules (see README.md):
 * - duration = answered time in whole seconds, rounded up;
 * - a call not longer than the free seconds costs nothing (no connect fee);
 * - otherwise chargeable = duration - free seconds, raised to the minimum
 *   duration, then to the increment grid a/b: the first a seconds, then
 *   steps of b (1/1 per second, 60/60 per minute, 30/6 ...);
 * - price = connect fee + ceil(billable * price per minute / 60) micros;
 * - the period is the one in force when the call was answered (a period
 *   like 22:00-06:00 crosses midnight and belongs to the day it starts on).
 */
import { mulDivCeil, mulDivFloor } from './money';

export interface RateTerms {
  connectFeeMicros: number;
  perMinuteMicros: number;
  minSeconds: number;
  /** Increment a/b: the first a seconds, then steps of b. */
  incrementFirst: number;
  incrementNext: number;
  freeSeconds: number;
}

export interface Destination {
  /** E.164 digits, or ON_NET. */
  prefix: string;
  name: string;
  country: string;
  /** Terms per period name; '' is the default (any time). */
  rates: Map<string, RateTerms>;
}

/** Day numbers: 0 = Sunday ... 6 = Saturday, 7 = a holiday of the plan. */
export const HOLIDAY = 7;

export interface Period {
  name: string;
  days: ReadonlySet<number>;
  /** Minutes after local midnight, [from, to); to <= from crosses midnight; 0-1440 is all day. */
  fromMinute: number;
  toMinute: number;
}

/** The destination name that rates calls between subscribers of the platform when a plan has it. */
export const ON_NET = 'on-net';

export interface PlanVersion {
  planId: string;
  /** Applies to calls answered from this instant on (unix ms), until the next version. */
  effectiveFrom: number;
  currency: string;
  /** IANA time zone the periods and holidays are written in. */
  timezone: string;
  periods: Period[];
  /** Local dates YYYY-MM-DD. */
  holidays: ReadonlySet<string>;
  index: PrefixIndex;
  /** Rates for on-net calls; absent means on-net calls are free. */
  onNet?: Destination;
}

interface TrieNode {
  next: (TrieNode | undefined)[];
  dest?: Destination;
}
const node = (): TrieNode => ({ next: new Array<TrieNode | undefined>(10) });

/** Longest-prefix match over E.164 digit strings: a 10-way trie. */
export class PrefixIndex {
  private readonly root = node();
  private n = 0;

  get size(): number {
    return this.n;
  }

  add(dest: Destination): void {
    let cur = this.root;
    for (let i = 0; i < dest.prefix.length; i++) {
      const d = dest.prefix.charCodeAt(i) - 48;
      if (d < 0 || d > 9) throw new Error(`prefix "${dest.prefix}" is not digits`);
      cur = cur.next[d] ??= node();
    }
    if (!cur.dest) this.n++;
    cur.dest = dest;
  }

  /** The destination with the longest prefix of number, if any. */
  match(number: string): Destination | undefined {
    let cur: TrieNode | undefined = this.root;
    let best = cur.dest;
    for (let i = 0; i < number.length && cur; i++) {
      const d = number.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      cur = cur.next[d];
      if (cur?.dest) best = cur.dest;
    }
    return best;
  }

  *entries(): Generator<Destination> {
    const stack: TrieNode[] = [this.root];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.dest) yield n.dest;
      for (let i = 9; i >= 0; i--) if (n.next[i]) stack.push(n.next[i]!);
    }
  }
}

/** Every version of every plan; a call is rated by the version in force when it was answered. */
export class PlanBook {
  private readonly plans = new Map<string, PlanVersion[]>();

  add(v: PlanVersion): void {
    const list = this.plans.get(v.planId) ?? [];
    const i = list.findIndex((x) => x.effectiveFrom === v.effectiveFrom);
    if (i >= 0) list[i] = v;
    else list.push(v);
    list.sort((a, b) => a.effectiveFrom - b.effectiveFrom);
    this.plans.set(v.planId, list);
  }

  has(planId: string): boolean {
    return this.plans.has(planId);
  }

  versions(planId: string): readonly PlanVersion[] {
    return this.plans.get(planId) ?? [];
  }

  /** The latest version effective at `at`, or undefined when the plan does not exist yet then. */
  versionAt(planId: string, at: number): PlanVersion | undefined {
    const list = this.plans.get(planId);
    if (!list) return undefined;
    for (let i = list.length - 1; i >= 0; i--) if (list[i].effectiveFrom <= at) return list[i];
    return undefined;
  }
}

// ---- local time -------------------------------------------------------------

export interface LocalTime {
  /** 0 = Sunday ... 6 = Saturday */
  dow: number;
  minute: number;
  date: string;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    });
    formatters.set(timezone, f);
  }
  return f;
}

/** UTC offsets (ms) per time zone and quarter hour: zones change offset only on quarter hours. */
const offsets = new Map<string, Map<number, number>>();
const QUARTER = 15 * 60_000;

function utcOffset(at: number, timezone: string): number {
  let byZone = offsets.get(timezone);
  if (!byZone) offsets.set(timezone, (byZone = new Map()));
  const q = Math.floor(at / QUARTER);
  let off = byZone.get(q);
  if (off === undefined) {
    const p: Record<string, string> = {};
    for (const x of formatter(timezone).formatToParts(q * QUARTER)) p[x.type] = x.value;
    const asUtc = Date.UTC(
      Number(p.year),
      Number(p.month) - 1,
      Number(p.day),
      Number(p.hour),
      Number(p.minute),
    );
    off = asUtc - q * QUARTER;
    if (byZone.size > 50_000) byZone.clear();
    byZone.set(q, off);
  }
  return off;
}

/** Day of week, minute of day and date of an instant in a time zone. */
export function localTime(at: number, timezone: string): LocalTime {
  const d = new Date(timezone === 'UTC' ? at : at + utcOffset(at, timezone));
  return {
    dow: d.getUTCDay(),
    minute: d.getUTCHours() * 60 + d.getUTCMinutes(),
    date: d.toISOString().slice(0, 10),
  };
}

/** Whether a time zone name is known to this runtime. */
export function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const DAY_MS = 86_400_000;

const dayKind = (v: PlanVersion, t: LocalTime) => (v.holidays.has(t.date) ? HOLIDAY : t.dow);

/** Whether period p is in force at `at` (a window crossing midnight belongs to the day it starts on). */
export function periodMatches(
  v: PlanVersion,
  p: Period,
  at: number,
  local = localTime(at, v.timezone),
): boolean {
  const { fromMinute: from, toMinute: to } = p;
  if (from < to) return local.minute >= from && local.minute < to && p.days.has(dayKind(v, local));
  // crosses midnight: [from, 24:00) on its own day, [00:00, to) on the next
  if (local.minute >= from) return p.days.has(dayKind(v, local));
  if (local.minute < to) return p.days.has(dayKind(v, localTime(at - DAY_MS, v.timezone)));
  return false;
}

/** The terms of a destination at `at`: the first matching period it has a rate for, else its default. */
export function termsAt(
  v: PlanVersion,
  dest: Destination,
  at: number,
): { period: string; terms: RateTerms } | undefined {
  if (dest.rates.size > 1 || !dest.rates.has('')) {
    const local = localTime(at, v.timezone);
    for (const p of v.periods) {
      const t = dest.rates.get(p.name);
      if (t && periodMatches(v, p, at, local)) return { period: p.name, terms: t };
    }
  }
  const t = dest.rates.get('');
  return t ? { period: '', terms: t } : undefined;
}

// ---- price ----------------------------------------------------------------

/** Seconds billed for a call of `duration` whole seconds. */
export function billableSeconds(duration: number, t: RateTerms): number {
  if (duration <= t.freeSeconds) return 0;
  const chargeable = Math.max(duration - t.freeSeconds, t.minSeconds);
  if (chargeable <= t.incrementFirst) return t.incrementFirst;
  return t.incrementFirst + Math.ceil((chargeable - t.incrementFirst) / t.incrementNext) * t.incrementNext;
}

/** Price in micros of `billable` seconds (0 billable seconds cost nothing, not even the connect fee). */
export function priceOf(billable: number, t: RateTerms): number {
  if (billable <= 0) return 0;
  return t.connectFeeMicros + mulDivCeil(billable, t.perMinuteMicros, 60);
}

/**
 * The longest call (whole seconds) whose price stays within `available`
 * micros: undefined when nothing limits it (a free rate); 0 when not even the
 * first increment is affordable (a call that short would still be free only
 * within the free seconds, which are granted).
 */
export function maxSecondsFor(available: number, t: RateTerms): number | undefined {
  const afterFee = available - t.connectFeeMicros;
  if (t.perMinuteMicros === 0) return afterFee >= 0 ? undefined : t.freeSeconds;
  if (afterFee < 0) return t.freeSeconds;
  // price(g) <= available  <=>  g * perMinute <= afterFee * 60, for g on the increment grid
  const affordable = mulDivFloor(afterFee, 60, t.perMinuteMicros);
  if (affordable < billableSeconds(t.freeSeconds + 1, t)) return t.freeSeconds;
  const g =
    t.incrementFirst + Math.floor((affordable - t.incrementFirst) / t.incrementNext) * t.incrementNext;
  return g + t.freeSeconds;
}

// ---- a call ----------------------------------------------------------------

export interface RateRequest {
  planId: string | undefined;
  /** E.164 digits of the callee, or undefined when it is not a number. */
  callee: string | undefined;
  onNet: boolean;
  /** When the call was answered (unix ms); picks the plan version and the period. */
  answeredAt: number;
  /** Answered time in whole seconds. */
  durationSeconds: number;
}

export type RateOutcome =
  | {
      status: 'rated';
      billableSeconds: number;
      priceMicros: number;
      currency: string;
      planId: string;
      planVersion: number;
      prefix: string;
      destination: string;
      country: string;
      period: string;
      terms: RateTerms;
    }
  | {
      status: 'free';
      reason: 'on-net';
      billableSeconds: 0;
      priceMicros: 0;
      currency: string;
      planId: string;
      planVersion: number;
    }
  | { status: 'unrated'; reason: 'no-plan' | 'no-rate'; billableSeconds: 0; priceMicros: 0 };

export interface ResolvedRate {
  version: PlanVersion;
  dest: Destination;
  period: string;
  terms: RateTerms;
}

/** The plan version, destination and terms that apply; or why none does. */
export function resolveRate(
  book: PlanBook,
  req: Pick<RateRequest, 'planId' | 'callee' | 'onNet' | 'answeredAt'>,
): ResolvedRate | { version: PlanVersion; free: true } | { unrated: 'no-plan' | 'no-rate' } {
  if (!req.planId) return { unrated: 'no-plan' };
  const version = book.versionAt(req.planId, req.answeredAt);
  if (!version) return { unrated: 'no-plan' };
  let dest: Destination | undefined;
  if (req.onNet) {
    if (!version.onNet) return { version, free: true };
    dest = version.onNet;
  } else {
    dest = req.callee ? version.index.match(req.callee) : undefined;
  }
  if (!dest) return { unrated: 'no-rate' };
  const t = termsAt(version, dest, req.answeredAt);
  if (!t) return { unrated: 'no-rate' };
  return { version, dest, period: t.period, terms: t.terms };
}

/** The price of one call. */
export function rateCall(book: PlanBook, req: RateRequest): RateOutcome {
  const r = resolveRate(book, req);
  if ('unrated' in r) return { status: 'unrated', reason: r.unrated, billableSeconds: 0, priceMicros: 0 };
  if ('free' in r) {
    return {
      status: 'free',
      reason: 'on-net',
      billableSeconds: 0,
      priceMicros: 0,
      currency: r.version.currency,
      planId: r.version.planId,
      planVersion: r.version.effectiveFrom,
    };
  }
  const billable = billableSeconds(req.durationSeconds, r.terms);
  return {
    status: 'rated',
    billableSeconds: billable,
    priceMicros: priceOf(billable, r.terms),
    currency: r.version.currency,
    planId: r.version.planId,
    planVersion: r.version.effectiveFrom,
    prefix: r.dest.prefix,
    destination: r.dest.name,
    country: r.dest.country,
    period: r.period,
    terms: r.terms,
  };
}
