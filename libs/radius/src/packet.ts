/**
 * RADIUS packets on the wire (RFC 2865 §3, §5): a 20-octet header (Code,
 * Identifier, Length, Authenticator) and type-length-value attributes.
 * Vendor-Specific (26) is split into its vendor sub-attributes (RFC 2865 §5.26,
 * the one-octet type / one-octet length format every vendor here uses).
 */

export const RadiusCode = {
  AccessRequest: 1,
  AccessAccept: 2,
  AccessReject: 3,
  AccountingRequest: 4,
  AccountingResponse: 5,
  AccessChallenge: 11,
  StatusServer: 12,
  StatusClient: 13,
} as const;
export type RadiusCodeName = keyof typeof RadiusCode;

export const CODE_NAMES: Record<number, string> = {
  1: 'Access-Request',
  2: 'Access-Accept',
  3: 'Access-Reject',
  4: 'Accounting-Request',
  5: 'Accounting-Response',
  11: 'Access-Challenge',
  12: 'Status-Server',
  13: 'Status-Client',
};

/** RFC 2865 §3: packets are 20 to 4096 octets. */
export const HEADER_LENGTH = 20;
export const MAX_PACKET_LENGTH = 4096;
export const AUTHENTICATOR_LENGTH = 16;
export const ATTR_VENDOR_SPECIFIC = 26;
export const ATTR_MESSAGE_AUTHENTICATOR = 80;
/** An attribute's value is at most 253 octets (its length octet counts type and length). */
export const MAX_ATTRIBUTE_VALUE = 253;

/** One attribute; `vendor` is set for a vendor sub-attribute of Vendor-Specific (then `type` is the vendor type). */
export interface RawAttribute {
  type: number;
  vendor?: number;
  value: Buffer;
}

export interface Packet {
  code: number;
  identifier: number;
  authenticator: Buffer;
  attributes: RawAttribute[];
}

export class RadiusDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RadiusDecodeError';
  }
}

/**
 * Decodes a packet. Throws RadiusDecodeError for a packet RFC 2865 §3 says to
 * silently discard (short, Length beyond the datagram, a malformed attribute).
 * Octets past Length are padding and ignored.
 */
export function decodePacket(buf: Buffer): Packet {
  if (buf.length < HEADER_LENGTH)
    throw new RadiusDecodeError(`packet of ${buf.length} octets is shorter than the header`);
  const length = buf.readUInt16BE(2);
  if (length < HEADER_LENGTH || length > MAX_PACKET_LENGTH)
    throw new RadiusDecodeError(`bad Length ${length}`);
  if (length > buf.length)
    throw new RadiusDecodeError(`Length ${length} exceeds the datagram (${buf.length} octets)`);
  const attributes: RawAttribute[] = [];
  let off = HEADER_LENGTH;
  while (off < length) {
    if (off + 2 > length) throw new RadiusDecodeError(`truncated attribute at offset ${off}`);
    const type = buf[off];
    const len = buf[off + 1];
    if (len < 2 || off + len > length)
      throw new RadiusDecodeError(`attribute ${type} at offset ${off} has bad length ${len}`);
    const value = buf.subarray(off + 2, off + len);
    if (type === ATTR_VENDOR_SPECIFIC) attributes.push(...splitVendorSpecific(value));
    else attributes.push({ type, value });
    off += len;
  }
  return { code: buf[0], identifier: buf[1], authenticator: buf.subarray(4, HEADER_LENGTH), attributes };
}

/** Vendor-Specific's value split into sub-attributes; kept whole (as a plain 26) when it is not in the usual format. */
function splitVendorSpecific(v: Buffer): RawAttribute[] {
  if (v.length < 4 + 2) return [{ type: ATTR_VENDOR_SPECIFIC, value: v }];
  const vendor = v.readUInt32BE(0);
  const out: RawAttribute[] = [];
  let off = 4;
  while (off < v.length) {
    const t = v[off];
    const l = v[off + 1];
    if (off + 2 > v.length || l < 2 || off + l > v.length) return [{ type: ATTR_VENDOR_SPECIFIC, value: v }];
    out.push({ type: t, vendor, value: v.subarray(off + 2, off + l) });
    off += l;
  }
  return out;
}

/** The wire form of one attribute (a vendor attribute wrapped in its own Vendor-Specific). */
export function encodeAttribute(a: RawAttribute): Buffer {
  if (a.vendor === undefined) {
    if (a.value.length > MAX_ATTRIBUTE_VALUE)
      throw new RangeError(`attribute ${a.type}: value of ${a.value.length} octets is too long`);
    const b = Buffer.allocUnsafe(2 + a.value.length);
    b[0] = a.type;
    b[1] = 2 + a.value.length;
    a.value.copy(b, 2);
    return b;
  }
  if (a.value.length > MAX_ATTRIBUTE_VALUE - 6) {
    throw new RangeError(
      `vendor ${a.vendor} attribute ${a.type}: value of ${a.value.length} octets is too long`,
    );
  }
  const b = Buffer.allocUnsafe(8 + a.value.length);
  b[0] = ATTR_VENDOR_SPECIFIC;
  b[1] = 8 + a.value.length;
  b.writeUInt32BE(a.vendor, 2);
  b[6] = a.type;
  b[7] = 2 + a.value.length;
  a.value.copy(b, 8);
  return b;
}

/** Encodes a packet as given (the authenticator is written as is; see auth.ts for signing). */
export function encodePacket(p: Packet): Buffer {
  const parts = p.attributes.map(encodeAttribute);
  const length = HEADER_LENGTH + parts.reduce((n, b) => n + b.length, 0);
  if (length > MAX_PACKET_LENGTH)
    throw new RangeError(`packet of ${length} octets exceeds ${MAX_PACKET_LENGTH}`);
  if (p.authenticator.length !== AUTHENTICATOR_LENGTH)
    throw new RangeError('authenticator must be 16 octets');
  const out = Buffer.allocUnsafe(length);
  out[0] = p.code;
  out[1] = p.identifier & 0xff;
  out.writeUInt16BE(length, 2);
  p.authenticator.copy(out, 4);
  let off = HEADER_LENGTH;
  for (const b of parts) {
    b.copy(out, off);
    off += b.length;
  }
  return out;
}

/** The offset of the Message-Authenticator value in an encoded packet, or -1. */
export function findMessageAuthenticator(buf: Buffer): number {
  const length = Math.min(buf.readUInt16BE(2), buf.length);
  let off = HEADER_LENGTH;
  while (off + 2 <= length) {
    const len = buf[off + 1];
    if (len < 2) return -1;
    if (buf[off] === ATTR_MESSAGE_AUTHENTICATOR && len === 18) return off + 2;
    off += len;
  }
  return -1;
}
