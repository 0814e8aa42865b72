/**
 * Authenticators: the Request Authenticator of an Accounting-Request (RFC 2866 §3),
 * the Response Authenticator of every reply (RFC 2865 §3), and the
 * Message-Authenticator attribute, HMAC-MD5 keyed by the shared secret
 * (RFC 3579 §3.2; RFC 5997 for Status-Server).
 *
 * The Message-Authenticator is computed over the packet with its own value
 * zeroed and the Authenticator field holding: the packet's own (random) Request
 * Authenticator for Access-Request and Status-Server, 16 zero octets for
 * Accounting-Request, the request's Authenticator for a reply. It is computed
 * before the Request/Response Authenticator that covers it.
 */
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  ATTR_MESSAGE_AUTHENTICATOR,
  AUTHENTICATOR_LENGTH,
  HEADER_LENGTH,
  RadiusCode,
  encodePacket,
  findMessageAuthenticator,
  type RawAttribute,
} from './packet';

const ZERO_AUTH = Buffer.alloc(AUTHENTICATOR_LENGTH);

const packetBytes = (buf: Buffer): Buffer => buf.subarray(0, buf.readUInt16BE(2));
const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/** Where md5With lays out its input: one one-shot hash instead of a Hash object and four updates. */
let scratch = Buffer.allocUnsafe(8192);

/**
 * MD5(Code | Identifier | Length | auth | Attributes | secret), as a latin1 string of its 16
 * bytes: a one-shot hash answering a string costs a third of one answering a Buffer.
 */
function md5With(buf: Buffer, auth: Buffer, secret: string | Buffer): string {
  const length = Math.min(buf.readUInt16BE(2), buf.length);
  const secretLength = typeof secret === 'string' ? Buffer.byteLength(secret) : secret.length;
  const n = length + secretLength;
  if (scratch.length < n) scratch = Buffer.allocUnsafe(n);
  buf.copy(scratch, 0, 0, 4);
  auth.copy(scratch, 4, 0, AUTHENTICATOR_LENGTH);
  buf.copy(scratch, HEADER_LENGTH, HEADER_LENGTH, length);
  if (typeof secret === 'string') scratch.write(secret, length);
  else secret.copy(scratch, length);
  return hash('md5', scratch.subarray(0, n), 'binary'); // 'binary' is latin1
}

/** Whether the packet's Authenticator field holds `digest` (md5With's latin1), in constant time. */
function authenticatorIs(buf: Buffer, digest: string): boolean {
  let diff = 0;
  for (let i = 0; i < AUTHENTICATOR_LENGTH; i++) diff |= buf[4 + i]! ^ digest.charCodeAt(i);
  return diff === 0;
}

/** RFC 2866 §3: the Request Authenticator of an Accounting-Request. */
export function accountingRequestAuthenticator(buf: Buffer, secret: string | Buffer): Buffer {
  return Buffer.from(md5With(buf, ZERO_AUTH, secret), 'latin1');
}

/** RFC 2865 §3: the Response Authenticator of a reply to a request with `requestAuthenticator`. */
export function responseAuthenticator(
  buf: Buffer,
  requestAuthenticator: Buffer,
  secret: string | Buffer,
): Buffer {
  return Buffer.from(md5With(buf, requestAuthenticator, secret), 'latin1');
}

/**
 * HMAC-MD5 of the packet with the Message-Authenticator value zeroed and the
 * Authenticator field replaced by `auth`. Undefined when the packet has none.
 */
export function messageAuthenticator(buf: Buffer, secret: string | Buffer, auth: Buffer): Buffer | undefined {
  const at = findMessageAuthenticator(buf);
  if (at < 0) return undefined;
  const p = Buffer.from(packetBytes(buf));
  auth.copy(p, 4);
  p.fill(0, at, at + 16);
  return createHmac('md5', secret).update(p).digest();
}

/** True when the packet carries no Message-Authenticator or a correct one; false when it is wrong. */
function messageAuthenticatorOk(buf: Buffer, secret: string | Buffer, auth: Buffer): boolean {
  const at = findMessageAuthenticator(buf);
  if (at < 0) return true;
  const want = messageAuthenticator(buf, secret, auth)!;
  return equal(want, buf.subarray(at, at + 16));
}

export const hasMessageAuthenticator = (buf: Buffer): boolean => findMessageAuthenticator(buf) >= 0;

/** Verifies an Accounting-Request: its Request Authenticator, and its Message-Authenticator when present. */
export function verifyAccountingRequest(buf: Buffer, secret: string | Buffer): boolean {
  if (buf.length < HEADER_LENGTH || !authenticatorIs(buf, md5With(buf, ZERO_AUTH, secret))) return false;
  return messageAuthenticatorOk(buf, secret, ZERO_AUTH);
}

/**
 * Verifies a request whose Request Authenticator is random (Access-Request,
 * Status-Server): only its Message-Authenticator proves the secret, so it is
 * required here (RFC 5997 §3; the BlastRADIUS mitigation for Access-Request).
 */
export function verifyMessageAuthenticatedRequest(buf: Buffer, secret: string | Buffer): boolean {
  if (!hasMessageAuthenticator(buf)) return false;
  return messageAuthenticatorOk(buf, secret, buf.subarray(4, HEADER_LENGTH));
}

/** Verifies a reply: its Response Authenticator and, when present, its Message-Authenticator. */
export function verifyResponse(buf: Buffer, requestAuthenticator: Buffer, secret: string | Buffer): boolean {
  if (buf.length < HEADER_LENGTH || !authenticatorIs(buf, md5With(buf, requestAuthenticator, secret)))
    return false;
  return messageAuthenticatorOk(buf, secret, requestAuthenticator);
}

/** Attributes with a zeroed Message-Authenticator first, when asked for and not already there. */
function withMessageAuthenticator(attrs: readonly RawAttribute[], add: boolean): RawAttribute[] {
  const has = attrs.some((a) => a.vendor === undefined && a.type === ATTR_MESSAGE_AUTHENTICATOR);
  if (!add || has) return [...attrs];
  return [{ type: ATTR_MESSAGE_AUTHENTICATOR, value: Buffer.alloc(16) }, ...attrs];
}

function signMessageAuthenticator(buf: Buffer, secret: string | Buffer, auth: Buffer): void {
  const at = findMessageAuthenticator(buf);
  if (at < 0) return;
  buf.fill(0, at, at + 16);
  messageAuthenticator(buf, secret, auth)!.copy(buf, at);
}

export interface RequestOptions {
  code: number;
  identifier: number;
  attributes: readonly RawAttribute[];
  secret: string | Buffer;
  /** Add a Message-Authenticator (always added for Status-Server and Access-Request). */
  messageAuthenticator?: boolean;
  /** The Request Authenticator for Access-Request/Status-Server (random when not given). */
  authenticator?: Buffer;
}

/**
 * Encodes and signs a request. An Accounting-Request gets the RFC 2866
 * authenticator (after its Message-Authenticator, if asked for); Access-Request
 * and Status-Server get a random Request Authenticator and a Message-Authenticator.
 */
export function encodeRequest(o: RequestOptions): Buffer {
  if (o.code === RadiusCode.AccountingRequest) {
    const buf = encodePacket({
      code: o.code,
      identifier: o.identifier,
      authenticator: ZERO_AUTH,
      attributes: withMessageAuthenticator(o.attributes, o.messageAuthenticator ?? false),
    });
    signMessageAuthenticator(buf, o.secret, ZERO_AUTH);
    buf.write(md5With(buf, ZERO_AUTH, o.secret), 4, 'latin1');
    return buf;
  }
  const auth = o.authenticator ?? randomBytes(AUTHENTICATOR_LENGTH);
  const needsMa = o.code === RadiusCode.StatusServer || o.code === RadiusCode.AccessRequest;
  const buf = encodePacket({
    code: o.code,
    identifier: o.identifier,
    authenticator: auth,
    attributes: withMessageAuthenticator(o.attributes, o.messageAuthenticator ?? needsMa),
  });
  signMessageAuthenticator(buf, o.secret, auth);
  return buf;
}

export interface ResponseOptions {
  code: number;
  identifier: number;
  requestAuthenticator: Buffer;
  attributes?: readonly RawAttribute[];
  secret: string | Buffer;
  messageAuthenticator?: boolean;
}

/** Encodes and signs a reply (Message-Authenticator first when asked for, then the Response Authenticator). */
export function encodeResponse(o: ResponseOptions): Buffer {
  if (!o.messageAuthenticator && (o.attributes === undefined || o.attributes.length === 0)) {
    // The common Accounting-Response: a bare header.
    const buf = Buffer.allocUnsafe(HEADER_LENGTH);
    buf[0] = o.code;
    buf[1] = o.identifier & 0xff;
    buf.writeUInt16BE(HEADER_LENGTH, 2);
    o.requestAuthenticator.copy(buf, 4, 0, AUTHENTICATOR_LENGTH);
    buf.write(md5With(buf, o.requestAuthenticator, o.secret), 4, 'latin1');
    return buf;
  }
  const buf = encodePacket({
    code: o.code,
    identifier: o.identifier,
    authenticator: o.requestAuthenticator,
    attributes: withMessageAuthenticator(o.attributes ?? [], o.messageAuthenticator ?? false),
  });
  signMessageAuthenticator(buf, o.secret, o.requestAuthenticator);
  buf.write(md5With(buf, o.requestAuthenticator, o.secret), 4, 'latin1');
  return buf;
}
