/**
 * The accounting attribute set of a SIP call, as Kamailio's acc_radius sends it
 * (plus Switchboard's vendor attributes), in both directions: a client (the SIP
 * proxy) encodes AccountingFields into attributes; the server reads them back.
 */
import { Dictionary, type AttributeValue } from './dictionary';
import type { RawAttribute } from './packet';

export type AcctStatusType =
  'Start' | 'Stop' | 'Interim-Update' | 'Accounting-On' | 'Accounting-Off' | 'Failed';

/** One call event. Only statusType is required; absent fields send no attribute. */
export interface AccountingFields {
  statusType: AcctStatusType;
  /** Acct-Session-Id: the SIP Call-ID. */
  sessionId?: string;
  fromTag?: string;
  toTag?: string;
  /** Sip-Method: INVITE, BYE, CANCEL... (Kamailio's method flags). */
  method?: string;
  responseCode?: number;
  userName?: string;
  callingStationId?: string;
  calledStationId?: string;
  translatedUri?: string;
  /** Event-Timestamp, seconds since the epoch. */
  eventTimestamp?: number;
  nasIp?: string;
  /** Acct-Delay-Time, seconds (a resend with a new value needs a new Identifier, RFC 2866 §5.2). */
  delayTime?: number;
  /** Service-Type; Kamailio sends Sip-Session. */
  serviceType?: string;
  /** Switchboard vendor attributes. */
  account?: string;
  gateway?: string;
  sourceAddress?: string;
  /**
   * Switchboard-Record-Id: the sender's id of this record, kept across resends (a
   * durable queue resending after an outage): the server stores it once per client.
   */
  recordId?: string;
}

/** Field -> attribute name, in the order they are sent. */
export const ACCOUNTING_ATTRIBUTES = {
  statusType: 'Acct-Status-Type',
  serviceType: 'Service-Type',
  responseCode: 'Sip-Response-Code',
  method: 'Sip-Method',
  eventTimestamp: 'Event-Timestamp',
  fromTag: 'Sip-From-Tag',
  toTag: 'Sip-To-Tag',
  sessionId: 'Acct-Session-Id',
  userName: 'User-Name',
  callingStationId: 'Calling-Station-Id',
  calledStationId: 'Called-Station-Id',
  translatedUri: 'Sip-Translated-Request-URI',
  nasIp: 'NAS-IP-Address',
  delayTime: 'Acct-Delay-Time',
  account: 'Switchboard-Account',
  gateway: 'Switchboard-Gateway',
  sourceAddress: 'Switchboard-Source-Address',
  recordId: 'Switchboard-Record-Id',
} as const satisfies Record<keyof AccountingFields, string>;

/** Encodes the fields that are set (IPv6 nasIp goes in NAS-IPv6-Address). */
export function encodeAccountingFields(
  f: AccountingFields,
  dict: Dictionary = Dictionary.standard(),
): RawAttribute[] {
  const out: RawAttribute[] = [];
  for (const [field, attr] of Object.entries(ACCOUNTING_ATTRIBUTES) as Array<
    [keyof AccountingFields, string]
  >) {
    const v = f[field];
    if (v === undefined) continue;
    const name = field === 'nasIp' && String(v).includes(':') ? 'NAS-IPv6-Address' : attr;
    out.push(dict.encode(name, v));
  }
  return out;
}

const FIELDS = Object.entries(ACCOUNTING_ATTRIBUTES) as Array<[keyof AccountingFields, string]>;

/** Reads the fields back from decoded attributes (Dictionary.decodeAll); the first of a repeated attribute wins. */
export function accountingFieldsOf(
  attrs: Record<string, AttributeValue | AttributeValue[]>,
): Partial<Record<keyof AccountingFields, string | number>> {
  const out: Partial<Record<keyof AccountingFields, string | number>> = {};
  for (const [field, attr] of FIELDS) {
    let v = attrs[attr];
    if (field === 'nasIp' && v === undefined) v = attrs['NAS-IPv6-Address'];
    if (Array.isArray(v)) v = v[0];
    if (v === undefined || Buffer.isBuffer(v)) continue;
    out[field] = v;
  }
  return out;
}
