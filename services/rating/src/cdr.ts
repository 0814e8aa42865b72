/**
 * CDRs: the pure half of correlation. What an accounting record says about a
 * call (services/accounting/README.md), the session identity CDR ids derive
 * from, callee normalisation, media quality, and the CDR itself.
 */
import { hash } from 'node:crypto';
import { rateCall, type PlanBook, type RateOutcome } from './tariff';

/** The fields of an `accounting` topic record rating reads (the full record has more). */
export interface AccountingRecord {
  id: string;
  receivedAt: string;
  statusType: string;
  sessionId: string | null;
  fromTag: string | null;
  toTag: string | null;
  method?: string | null;
  responseCode: number | null;
  userName: string | null;
  callingStationId: string | null;
  calledStationId: string | null;
  translatedUri?: string | null;
  eventTimestamp: string | null;
  delayTime?: number | null;
  account: string | null;
  gateway: string | null;
  attributes?: Record<string, unknown>;
}

/** A `media-events` record (services/media-proxy: MediaEvent); only what rating reads. */
export interface MediaEventRecord {
  type: string;
  callId: string;
  stats: {
    deleted?: number;
    endReason?: string;
    legs?: { streams?: MediaStream[] }[];
  };
}
interface MediaStream {
  rtcp?: boolean;
  stats?: { packets?: number };
  lost?: number;
  jitterMs?: number;
  rttMs?: number;
  lastPacket?: number;
  fractionLost?: number;
}

export interface Quality {
  /** Lost / (received + lost) over the RTP streams, 0..1. */
  lossRatio: number;
  jitterMs: number;
  rttMs: number;
  /** An E-model estimate (ITU-T G.107, simplified), 1..4.5. */
  mos: number;
}

export type Disposition = 'answered' | 'failed';
export type EndReason = 'bye' | 'media_timeout' | 'max_duration' | 'failed';
export type CdrFlag = 'stop_without_start' | 'unrated' | 'unknown_account' | 'no_end_time';

/** A rated CDR: stored in rating.cdrs and published on `cdrs` (key = account). Money in micros. */
export interface Cdr {
  id: string;
  callId: string;
  fromTag: string;
  toTag: string;
  /** The billed account (Switchboard-Account, else User-Name). */
  account: string;
  caller: string;
  /** The dialled URI as accounted, and its E.164 digits when it is a number. */
  callee: string;
  calleeNumber: string;
  startedAt: string;
  answeredAt: string | null;
  endedAt: string;
  durationSeconds: number;
  billableSeconds: number;
  disposition: Disposition;
  endReason: EndReason;
  sipCode: number;
  gateway: string;
  onNet: boolean;
  rateStatus: RateOutcome['status'];
  prefix: string;
  destination: string;
  country: string;
  planId: string;
  /** Effective-from of the plan version used (ISO), '' when unrated. */
  planVersion: string;
  period: string;
  priceMicros: number;
  currency: string;
  flags: CdrFlag[];
  quality: Quality | null;
  ratedAt: string;
}

/** When a record's event happened (ms): Event-Timestamp, else arrival minus Acct-Delay-Time. */
export function eventTime(r: AccountingRecord): number {
  if (r.eventTimestamp) {
    const t = Date.parse(r.eventTimestamp);
    if (Number.isFinite(t)) return t;
  }
  return Date.parse(r.receivedAt) - (r.delayTime ?? 0) * 1000;
}

/**
 * The dialog's identity: Call-ID and the two tags unordered (a BYE from the
 * callee carries them swapped).
 */
export function sessionKey(callId: string, tagA: string | null, tagB: string | null): string {
  // The two tags in code-unit order, as sort() would put them (without its arrays: twice a record).
  const x = tagA ?? '';
  const y = tagB ?? '';
  return x <= y ? `${callId}\n${x}\n${y}` : `${callId}\n${y}\n${x}`;
}

/** CDR id: a hash of the session identity, so every redelivery of the same call lands on the same row. */
export function cdrId(kind: 'call' | 'failed', key: string): string {
  return hash('sha256', `${kind}\n${key}`, 'hex').slice(0, 32);
}

/** The key of a failed attempt: one per Call-ID, From tag and SIP code (serial forking can fail several times). */
export const failedKey = (r: AccountingRecord): string =>
  `${r.sessionId}\n${r.fromTag ?? ''}\n${r.toTag ?? ''}\n${r.responseCode ?? 0}`;

/**
 * E.164 digits of a dialled URI or number: the user part without "+" or an
 * international "00" prefix; undefined when it is not a number (a subscriber name).
 */
export function normalizeNumber(uri: string | null | undefined): string | undefined {
  if (!uri) return undefined;
  let user = uri.trim();
  const m = /^(?:sips?|tel):([^@;?>]*)/i.exec(user.replace(/^.*</, ''));
  if (m) user = m[1];
  user = decodeURIComponent(user).replace(/[-.() ]/g, '');
  if (/^\+\d{1,15}$/.test(user)) return user.slice(1);
  if (/^00\d{1,15}$/.test(user)) return user.slice(2);
  if (/^\d{1,15}$/.test(user)) return user;
  return undefined;
}

/** The billed account of a record. */
export const billedAccount = (r: AccountingRecord): string =>
  r.account || r.userName || r.callingStationId || 'unknown';

/** A call routed to no gateway stayed on the platform. */
export const isOnNet = (r: AccountingRecord): boolean => !r.gateway;

/** Acct-Session-Time of a Stop, seconds, when it carries one. */
export function sessionTime(r: AccountingRecord): number | undefined {
  const v = r.attributes?.['Acct-Session-Time'];
  const n = Array.isArray(v) ? v[0] : v;
  return typeof n === 'number' && n >= 0 ? n : undefined;
}

/** Quality from a media-events record's stats: loss over RTP streams, worst jitter, worst RTT, MOS. */
export function qualityOf(ev: MediaEventRecord): Quality | null {
  let packets = 0;
  let lost = 0;
  let jitter = 0;
  let rtt = 0;
  let any = false;
  for (const leg of ev.stats.legs ?? []) {
    for (const s of leg.streams ?? []) {
      if (s.rtcp) {
        rtt = Math.max(rtt, s.rttMs ?? 0);
        continue;
      }
      any = true;
      packets += s.stats?.packets ?? 0;
      lost += s.lost ?? 0;
      jitter = Math.max(jitter, s.jitterMs ?? 0);
    }
  }
  if (!any) return null;
  const lossRatio = packets + lost > 0 ? lost / (packets + lost) : 0;
  return {
    lossRatio: round(lossRatio, 4),
    jitterMs: round(jitter, 2),
    rttMs: round(rtt, 2),
    mos: estimateMos(lossRatio, jitter, rtt),
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** The simplified E-model: R from one-way delay (RTT/2 + 2 x jitter + 10 ms codec) and loss, then MOS. */
export function estimateMos(lossRatio: number, jitterMs: number, rttMs: number): number {
  const delay = rttMs / 2 + jitterMs * 2 + 10;
  let r = delay < 160 ? 93.2 - delay / 40 : 93.2 - (delay - 120) / 10;
  r -= lossRatio * 100 * 2.5;
  r = Math.max(0, Math.min(100, r));
  const mos = 1 + 0.035 * r + 0.000007 * r * (r - 60) * (100 - r);
  return round(Math.max(1, Math.min(4.5, mos)), 2);
}

/** The moment media was last seen (ms) in a media-events record, else when the session ended. */
export function mediaEndTime(ev: MediaEventRecord): number | undefined {
  let last = 0;
  for (const leg of ev.stats.legs ?? [])
    for (const s of leg.streams ?? []) last = Math.max(last, s.lastPacket ?? 0);
  const t = last || ev.stats.deleted || 0;
  return t > 0 ? t * 1000 : undefined;
}

export interface CallFacts {
  start: AccountingRecord | undefined;
  /** The record that ended it (Stop or Failed); undefined when closed by a timeout or sweep. */
  end: AccountingRecord | undefined;
  endReason: EndReason;
  /** End of the call (ms) when no end record says it. */
  endedAt?: number;
  planId: string | undefined;
  accountKnown: boolean;
  quality: Quality | null;
  now: number;
  /** The CDR id when the caller has it already (else derived from the records). */
  id?: string;
}

/** ISO 8601 of a time, the last few remembered (a batch's CDRs share their rating time and plan versions). */
const isoCache = new Map<number, string>();
function isoOf(ms: number): string {
  let s = isoCache.get(ms);
  if (s === undefined) {
    if (isoCache.size >= 64) isoCache.clear();
    isoCache.set(ms, (s = new Date(ms).toISOString()));
  }
  return s;
}

/** Builds and rates the CDR of one call. */
export function buildCdr(book: PlanBook, f: CallFacts): Cdr {
  const base = f.start ?? f.end!;
  const flags: CdrFlag[] = [];
  const failed = f.endReason === 'failed';
  let answeredAt: number | undefined;
  let endedAt: number;
  if (failed) {
    endedAt = eventTime(f.end!);
  } else if (f.start) {
    answeredAt = eventTime(f.start);
    endedAt = f.end ? eventTime(f.end) : (f.endedAt ?? answeredAt);
    if (endedAt < answeredAt) endedAt = answeredAt;
  } else {
    // a Stop without its Start: rated from its own timestamps
    flags.push('stop_without_start');
    endedAt = eventTime(f.end!);
    const secs = sessionTime(f.end!);
    if (secs === undefined) flags.push('no_end_time');
    answeredAt = endedAt - (secs ?? 0) * 1000;
  }
  const durationSeconds = answeredAt === undefined ? 0 : Math.ceil((endedAt - answeredAt) / 1000);
  const calleeUri = base.calledStationId ?? base.translatedUri ?? '';
  const calleeNumber = normalizeNumber(calleeUri) ?? normalizeNumber(base.translatedUri) ?? '';
  const onNet = isOnNet(base);
  const rated: RateOutcome = failed
    ? { status: 'unrated', reason: 'no-rate', billableSeconds: 0, priceMicros: 0 }
    : rateCall(book, {
        planId: f.planId,
        callee: calleeNumber || undefined,
        onNet,
        answeredAt: answeredAt!,
        durationSeconds,
      });
  if (!failed && rated.status === 'unrated') flags.push('unrated');
  if (!f.accountKnown) flags.push('unknown_account');
  const id =
    f.id ??
    (failed
      ? cdrId('failed', failedKey(f.end!))
      : cdrId('call', sessionKey(base.sessionId!, base.fromTag, base.toTag)));
  const code = failed ? (f.end!.responseCode ?? 0) : (f.start?.responseCode ?? 200);
  const answered = answeredAt === undefined ? null : new Date(answeredAt).toISOString();
  return {
    id,
    callId: base.sessionId!,
    fromTag: base.fromTag ?? '',
    toTag: base.toTag ?? '',
    account: billedAccount(base),
    caller: base.callingStationId ?? base.userName ?? '',
    callee: calleeUri,
    calleeNumber,
    startedAt: answered ?? new Date(endedAt).toISOString(),
    answeredAt: answered,
    endedAt: answered !== null && endedAt === answeredAt ? answered : new Date(endedAt).toISOString(),
    durationSeconds,
    billableSeconds: rated.billableSeconds,
    disposition: failed ? 'failed' : 'answered',
    endReason: f.endReason,
    sipCode: code,
    gateway: base.gateway ?? '',
    onNet,
    rateStatus: rated.status,
    prefix: rated.status === 'rated' ? rated.prefix : '',
    destination: rated.status === 'rated' ? rated.destination : rated.status === 'free' ? 'on-net' : '',
    country: rated.status === 'rated' ? rated.country : '',
    planId: rated.status === 'unrated' ? (f.planId ?? '') : rated.planId,
    planVersion: rated.status === 'unrated' ? '' : isoOf(rated.planVersion),
    period: rated.status === 'rated' ? rated.period : '',
    priceMicros: rated.priceMicros,
    currency: rated.status === 'unrated' ? '' : rated.currency,
    flags,
    quality: f.quality,
    ratedAt: isoOf(f.now),
  };
}
