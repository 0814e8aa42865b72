/** Building requests and responses from scratch (UAC, UAS, proxy-generated responses). */
import { randomFillSync } from 'node:crypto';
import { HID, NameAddr, BRANCH_MAGIC, Via, type HeaderId } from './headers';
import { HeaderField, SipRequest, SipResponse, type BodyInput } from './message';
import type { Uri } from './uri';

/** Default reason phrases (RFC 3261 §21 and common extensions). */
export const REASON_PHRASES: Record<number, string> = {
  100: 'Trying',
  180: 'Ringing',
  181: 'Call Is Being Forwarded',
  182: 'Queued',
  183: 'Session Progress',
  200: 'OK',
  202: 'Accepted',
  204: 'No Notification',
  300: 'Multiple Choices',
  301: 'Moved Permanently',
  302: 'Moved Temporarily',
  305: 'Use Proxy',
  380: 'Alternative Service',
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  410: 'Gone',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  415: 'Unsupported Media Type',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  421: 'Extension Required',
  423: 'Interval Too Brief',
  429: 'Provide Referrer Identity',
  439: 'First Hop Lacks Outbound Support',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  484: 'Address Incomplete',
  485: 'Ambiguous',
  486: 'Busy Here',
  487: 'Request Terminated',
  488: 'Not Acceptable Here',
  489: 'Bad Event',
  491: 'Request Pending',
  493: 'Undecipherable',
  500: 'Server Internal Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Server Time-out',
  505: 'Version Not Supported',
  513: 'Message Too Large',
  580: 'Precondition Failure',
  600: 'Busy Everywhere',
  603: 'Decline',
  604: 'Does Not Exist Anywhere',
  606: 'Not Acceptable',
};

/**
 * Random bytes as hex, from a pool refilled 4 KiB at a time: one `randomBytes` call costs
 * as much as a few hundred bytes of randomness (5-6 µs on a slow machine), and a proxy
 * makes a tag or a branch for most messages it sends. Same generator, drawn in bulk.
 */
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;
function randomHex(bytes: number): string {
  if (poolAt + bytes > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const s = POOL.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}

/** A new branch with the RFC 3261 magic cookie. */
export function newBranch(): string {
  return BRANCH_MAGIC + randomHex(8);
}
/** A new tag (From/To). */
export function newTag(): string {
  return randomHex(6);
}
/** A new Call-ID, optionally @host. */
export function newCallId(host?: string): string {
  const id = randomHex(12);
  return host ? `${id}@${host}` : id;
}

type HeaderInput = Array<[string, string | { toString(): string }]>;

function bodyBuf(b: BodyInput | undefined): Buffer {
  return b === undefined ? Buffer.alloc(0) : typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
}

function finish<T extends SipRequest | SipResponse>(m: T, body: Buffer, contentType?: string): T {
  if (contentType !== undefined || body.length) m.setBody(body, contentType);
  else if (!m.fields.some((f) => f.id === HID.contentLength)) m.addHeader('Content-Length', '0');
  return m;
}

export interface RequestInit {
  method: string;
  uri: Uri | string;
  /** Via values, top first */
  via?: Array<Via | string>;
  from: NameAddr | string;
  to: NameAddr | string;
  callId: string;
  cseq: number;
  maxForwards?: number;
  contact?: Array<NameAddr | string>;
  route?: Array<NameAddr | string>;
  /** other headers, in order */
  headers?: HeaderInput;
  body?: BodyInput;
  contentType?: string;
}

/** Builds a request (RFC 3261 §8.1.1). Header order: Via, Max-Forwards, Route, From, To, Call-ID, CSeq, Contact, others. */
export function createRequest(init: RequestInit): SipRequest {
  const uriText = init.uri.toString();
  const fields: HeaderField[] = [];
  for (const v of init.via ?? []) fields.push(HeaderField.create('Via', v.toString()));
  fields.push(HeaderField.create('Max-Forwards', String(init.maxForwards ?? 70)));
  for (const r of init.route ?? []) fields.push(HeaderField.create('Route', r.toString()));
  fields.push(HeaderField.create('From', init.from.toString()));
  fields.push(HeaderField.create('To', init.to.toString()));
  fields.push(HeaderField.create('Call-ID', init.callId));
  fields.push(HeaderField.create('CSeq', `${init.cseq} ${init.method}`));
  for (const c of init.contact ?? []) fields.push(HeaderField.create('Contact', c.toString()));
  for (const [n, v] of init.headers ?? []) fields.push(HeaderField.create(n, v.toString()));
  const req = new SipRequest(init.method, uriText, 0, 0, Buffer.alloc(0), fields, 0, 0, false, 0, 0);
  if (typeof init.uri !== 'string') req.uri = init.uri;
  return finish(req, bodyBuf(init.body), init.contentType);
}

export interface ResponseOptions {
  /** To tag to add when the request's To has none (required for responses other than 100) */
  toTag?: string;
  headers?: HeaderInput;
  body?: BodyInput;
  contentType?: string;
}

/**
 * Builds a response to a request (RFC 3261 §8.2.6): copies every Via (in order),
 * From, To, Call-ID and CSeq; adds a To tag when the request had none and
 * `toTag` is given; copies Record-Route for 18x/2xx to dialog-creating requests
 * (§12.1.1) and the Timestamp for 100 (§8.2.6.1).
 */
export function createResponse(
  req: SipRequest,
  status: number,
  reason?: string,
  opts: ResponseOptions = {},
): SipResponse {
  const fields: HeaderField[] = [];
  const copy = (id: HeaderId) => {
    for (const [name, value] of req._namedValuesOfId(id))
      fields.push(HeaderField.create(name === 'v' ? 'Via' : name, value));
  };
  copy(HID.via);
  let toValue = req.getHeader('To')!;
  // The request's To as it came, with the tag added (a header parameter whether or not the
  // URI is in angle brackets, RFC 3261 §20): not parsed and written out again.
  if (req.toTag === undefined && opts.toTag !== undefined && status > 100) toValue += `;tag=${opts.toTag}`;
  copy(HID.from);
  fields.push(HeaderField.create('To', toValue));
  copy(HID.callId);
  copy(HID.cseq);
  if (status > 100 && status < 300 && (req.method === 'INVITE' || req.method === 'SUBSCRIBE'))
    copy(HID.recordRoute);
  if (status === 100) {
    const ts = req.getHeader('Timestamp');
    if (ts !== undefined) fields.push(HeaderField.create('Timestamp', ts));
  }
  for (const [n, v] of opts.headers ?? []) fields.push(HeaderField.create(n, v.toString()));
  const res = new SipResponse(
    status,
    reason ?? REASON_PHRASES[status] ?? 'Unknown',
    Buffer.alloc(0),
    fields,
    0,
    0,
    false,
    0,
    0,
  );
  return finish(res, bodyBuf(opts.body), opts.contentType);
}
