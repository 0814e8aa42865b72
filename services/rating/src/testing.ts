/** Test and bench helpers: accounting records as the accounting service publishes them, and a sample plan. */
import { randomUUID } from 'node:crypto';
import type { AccountingRecord } from './cdr';

export interface CallSpec {
  callId: string;
  account: string;
  callee: string;
  fromTag?: string;
  toTag?: string;
  gateway?: string | null;
  /** unix ms */
  answeredAt: number;
  /** seconds */
  duration: number;
}

const base = (c: CallSpec, statusType: string, at: number): AccountingRecord => ({
  id: randomUUID(),
  receivedAt: new Date(at).toISOString(),
  statusType,
  sessionId: c.callId,
  fromTag: c.fromTag ?? 'ftag',
  toTag: c.toTag ?? 'ttag',
  method: 'INVITE',
  responseCode: 200,
  userName: c.account.replace(/^sip:/, ''),
  callingStationId: c.account,
  calledStationId: `sip:+${c.callee}@example.com`,
  translatedUri: `sip:+${c.callee}@gw1.example.net`,
  eventTimestamp: new Date(at - (at % 1000)).toISOString(),
  delayTime: 0,
  account: c.account,
  gateway: c.gateway === undefined ? 'gw1' : c.gateway,
  attributes: {},
});

/** The Start record of a call (at its answer). */
export const startRecord = (c: CallSpec): AccountingRecord => base(c, 'Start', c.answeredAt);

/** The Stop record of a call; `byCallee` swaps the tags as a BYE from the callee does. */
export function stopRecord(c: CallSpec, byCallee = false): AccountingRecord {
  const r = base(c, 'Stop', c.answeredAt + c.duration * 1000);
  r.method = 'BYE';
  r.attributes = { 'Acct-Session-Time': c.duration };
  if (byCallee) [r.fromTag, r.toTag] = [r.toTag, r.fromTag];
  return r;
}

/** A Failed record (final response >= 300 to the INVITE). */
export function failedRecord(c: CallSpec, code: number): AccountingRecord {
  const r = base(c, 'Failed', c.answeredAt);
  r.responseCode = code;
  return r;
}

export const SAMPLE_RATES = `prefix,name,country,period,connect_fee,price_per_minute,min_seconds,increment,free_seconds
1,USA,US,,0,0.02,0,60/60,0
1555,USA fictional,US,,0.01,0.10,0,1/1,0
44,United Kingdom,GB,,0,0.06,0,30/6,0
49,Germany,DE,,0,0.05,0,1/1,0
`;
