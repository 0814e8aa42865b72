/**
 * The accounting record: what the server stores and publishes on the
 * `accounting` topic for each accepted Accounting-Request (documented in
 * services/accounting/README.md; rating consumes it).
 */
import { createHash } from 'node:crypto';
import type { AttributeValue } from '@switchboard/radius';

export type JsonAttributeValue = string | number | Array<string | number>;

export interface AccountingRecord {
  /**
   * Unique per request, a UUID derived from RFC 5080's duplicate-detection key (source
   * address and port, Identifier, Request Authenticator): a retransmission has the same id.
   * Consumers dedupe on it.
   */
  id: string;
  /** When the server received the request (ISO 8601, UTC). */
  receivedAt: string;
  /** The RADIUS client (NAS) it came from, by its configured name. */
  client: string;
  /** Acct-Status-Type: Start, Stop, Interim-Update, Accounting-On, Accounting-Off, Failed (or the number). */
  statusType: string;
  /** Acct-Session-Id: the SIP Call-ID for Kamailio and Switchboard's proxy. */
  sessionId: string | null;
  fromTag: string | null;
  toTag: string | null;
  /** Sip-Method by name (INVITE, BYE...), or the number when it has no name. */
  method: string | null;
  responseCode: number | null;
  userName: string | null;
  callingStationId: string | null;
  calledStationId: string | null;
  translatedUri: string | null;
  /** Event-Timestamp (ISO 8601, UTC). */
  eventTimestamp: string | null;
  nasIp: string | null;
  /** Acct-Delay-Time, seconds. */
  delayTime: number | null;
  serviceType: string | null;
  /** Switchboard-Account, Switchboard-Gateway, Switchboard-Source-Address (vendor attributes). */
  account: string | null;
  gateway: string | null;
  sourceAddress: string | null;
  /** Every attribute by dictionary name (octets as "0x..." hex; a repeated attribute as an array). */
  attributes: Record<string, JsonAttributeValue>;
}

const jsonValue = (v: AttributeValue): string | number => (Buffer.isBuffer(v) ? `0x${v.toString('hex')}` : v);

/** Attributes that say nothing about the call (the packet's integrity). */
const LEFT_OUT = new Set(['Message-Authenticator']);

export function toJsonAttributes(
  attrs: Record<string, AttributeValue | AttributeValue[]>,
): Record<string, JsonAttributeValue> {
  const out: Record<string, JsonAttributeValue> = {};
  for (const [k, v] of Object.entries(attrs)) {
    if (LEFT_OUT.has(k)) continue;
    out[k] = Array.isArray(v) ? v.map(jsonValue) : jsonValue(v);
  }
  return out;
}

const first = (v: JsonAttributeValue | undefined): string | number | undefined =>
  Array.isArray(v) ? v[0] : v;
const text = (v: JsonAttributeValue | undefined): string | null => {
  const x = first(v);
  return x === undefined ? null : String(x);
};
const num = (v: JsonAttributeValue | undefined): number | null => {
  const x = first(v);
  return typeof x === 'number' ? x : null;
};

export function buildRecord(
  meta: { id: string; receivedAt: Date; client: string },
  decoded: Record<string, AttributeValue | AttributeValue[]>,
): AccountingRecord {
  const a = toJsonAttributes(decoded);
  const ts = num(a['Event-Timestamp']);
  return {
    id: meta.id,
    receivedAt: meta.receivedAt.toISOString(),
    client: meta.client,
    statusType: text(a['Acct-Status-Type']) ?? 'unknown',
    sessionId: text(a['Acct-Session-Id']),
    fromTag: text(a['Sip-From-Tag']),
    toTag: text(a['Sip-To-Tag']),
    method: text(a['Sip-Method']),
    responseCode: num(a['Sip-Response-Code']),
    userName: text(a['User-Name']),
    callingStationId: text(a['Calling-Station-Id']),
    calledStationId: text(a['Called-Station-Id']),
    translatedUri: text(a['Sip-Translated-Request-URI']),
    eventTimestamp: ts === null ? null : new Date(ts * 1000).toISOString(),
    nasIp: text(a['NAS-IP-Address']) ?? text(a['NAS-IPv6-Address']),
    delayTime: num(a['Acct-Delay-Time']),
    serviceType: text(a['Service-Type']),
    account: text(a['Switchboard-Account']),
    gateway: text(a['Switchboard-Gateway']),
    sourceAddress: text(a['Switchboard-Source-Address']),
    attributes: a,
  };
}

/** The Kafka key: the Call-ID; Accounting-On/Off carry none, so they are keyed by client. */
export const recordKey = (r: AccountingRecord): string => r.sessionId ?? `client:${r.client}`;

/**
 * The record id: MD5 of the duplicate-detection key, formatted as a UUID (version 8,
 * RFC 9562 "custom"). The Request Authenticator already hashes the whole packet, so two
 * different requests get the same id only when they are the same packet retransmitted.
 */
export function recordId(
  srcAddr: string,
  srcPort: number,
  identifier: number,
  authenticatorHex: string,
): string {
  const h = createHash('md5').update(`${srcAddr}|${srcPort}|${identifier}|${authenticatorHex}`).digest();
  h[6] = (h[6] & 0x0f) | 0x80;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
