/**
 * The accounting record: what the server stores and publishes on the
 * `accounting` topic for each accepted Accounting-Request (documented in
 * services/accounting/README.md; rating consumes it).
 */
import { hash } from 'node:crypto';
import { ACCOUNTING_ATTRIBUTES, accountingFieldsOf, type AttributeValue } from '@switchboard/radius';

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
  /**
   * Every attribute that no field above carries, by dictionary name (octets as "0x..." hex;
   * a repeated attribute as an array). An attribute read into a field (one value, text or a
   * number) is left out here, so the record says everything the request did, once.
   */
  attributes: Record<string, JsonAttributeValue>;
}

const jsonValue = (v: AttributeValue): string | number => (Buffer.isBuffer(v) ? `0x${v.toString('hex')}` : v);

/** Attributes that say nothing about the call (the packet's integrity). */
const LEFT_OUT = new Set(['Message-Authenticator']);

/** Attribute -> the record field read from it (accountingFieldsOf); Switchboard-Record-Id has none. */
const FIELD_OF: Record<string, keyof AccountingRecord> = { 'NAS-IPv6-Address': 'nasIp' };
for (const [field, attr] of Object.entries(ACCOUNTING_ATTRIBUTES))
  if (field !== 'recordId') FIELD_OF[attr] = field as keyof AccountingRecord;

/**
 * Whether the record's field carries this attribute whole: one value (text or a number, not
 * octets or a repeated attribute) read into a field that is set. nasIp is read from
 * NAS-IPv6-Address only when there is no NAS-IP-Address.
 */
function carried(
  r: AccountingRecord,
  attrs: Record<string, AttributeValue | AttributeValue[]>,
  name: string,
): boolean {
  const field = FIELD_OF[name];
  if (field === undefined || typeof attrs[name] === 'object' || r[field] === null) return false;
  return name !== 'NAS-IPv6-Address' || attrs['NAS-IP-Address'] === undefined;
}

/**
 * The attributes as the record holds them: octets as "0x..." hex, Message-Authenticator
 * left out, and, given the record, the ones its fields carry (see `carried`).
 */
export function toJsonAttributes(
  attrs: Record<string, AttributeValue | AttributeValue[]>,
  record?: AccountingRecord,
): Record<string, JsonAttributeValue> {
  const out: Record<string, JsonAttributeValue> = {};
  for (const k in attrs) {
    if (LEFT_OUT.has(k) || (record !== undefined && carried(record, attrs, k))) continue;
    const v = attrs[k];
    out[k] = Array.isArray(v) ? v.map(jsonValue) : typeof v === 'object' ? jsonValue(v) : v;
  }
  return out;
}

const text = (v: string | number | undefined): string | null => (v === undefined ? null : String(v));
const num = (v: string | number | undefined): number | null => (typeof v === 'number' ? v : null);

type Decoded = Record<string, AttributeValue | AttributeValue[]>;

/** ISO 8601 of a time in ms, the last one remembered (requests arriving together share their ms, their second). */
function isoCache(): (ms: number) => string {
  let lastMs = NaN;
  let last = '';
  return (ms) => {
    if (ms !== lastMs) {
      last = new Date(ms).toISOString();
      lastMs = ms;
    }
    return last;
  };
}
const receivedIso = isoCache();
const eventIso = isoCache();

export function buildRecord(
  meta: { id: string; receivedAt: Date; client: string },
  decoded: Decoded,
): AccountingRecord {
  const f = accountingFieldsOf(decoded);
  const ts = num(f.eventTimestamp);
  const r: AccountingRecord = {
    id: meta.id,
    receivedAt: receivedIso(meta.receivedAt.getTime()),
    client: meta.client,
    statusType: text(f.statusType) ?? 'unknown',
    sessionId: text(f.sessionId),
    fromTag: text(f.fromTag),
    toTag: text(f.toTag),
    method: text(f.method),
    responseCode: num(f.responseCode),
    userName: text(f.userName),
    callingStationId: text(f.callingStationId),
    calledStationId: text(f.calledStationId),
    translatedUri: text(f.translatedUri),
    eventTimestamp: ts === null ? null : eventIso(ts * 1000),
    nasIp: text(f.nasIp),
    delayTime: num(f.delayTime),
    serviceType: text(f.serviceType),
    account: text(f.account),
    gateway: text(f.gateway),
    sourceAddress: text(f.sourceAddress),
    attributes: {},
  };
  r.attributes = toJsonAttributes(decoded, r);
  return r;
}

/** The Kafka key: the Call-ID; Accounting-On/Off carry none, so they are keyed by client. */
export const recordKey = (r: AccountingRecord): string => r.sessionId ?? `client:${r.client}`;

/**
 * The record id, an MD5 formatted as a UUID (version 8, RFC 9562 "custom"), of: the
 * client and its Switchboard-Record-Id when the request carries one (the same record
 * resent with a new Identifier, even after a restart, is stored once); otherwise
 * RFC 5080's duplicate-detection key. The Request Authenticator already hashes the whole
 * packet, so two different requests get the same key only when one retransmits the other.
 */
export function recordId(
  key:
    | { client: string; senderRecordId: string }
    | { srcAddr: string; srcPort: number; identifier: number; authenticatorHex: string },
): string {
  const text =
    'senderRecordId' in key
      ? `record-id|${key.client}|${key.senderRecordId}`
      : `${key.srcAddr}|${key.srcPort}|${key.identifier}|${key.authenticatorHex}`;
  // The version (8) and variant (10) bits set in the hex: a hash answering a string is cheaper than a Buffer.
  const x = hash('md5', text, 'hex');
  const variant = ((parseInt(x[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-8${x.slice(13, 16)}-${variant}${x.slice(17, 20)}-${x.slice(20)}`;
}
