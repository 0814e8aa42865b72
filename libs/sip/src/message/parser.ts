/**
 * parseMessage: one pass over the bytes. Start line, then every header field
 * indexed by offsets (name resolved, value trimmed, folding noted), then the body
 * by Content-Length. The headers every element needs (top Via, From, To,
 * Call-ID, CSeq, Max-Forwards, Request-URI) are validated before returning, so a
 * malformed one is a SipParseError here, not later.
 */
import { isAscii } from 'node:buffer';
import { TOKEN } from './chars';
import { SipParseError, badHeader } from './errors';
import { HID, KNOWN_IDS, NAME_END, knownNameAt, type CSeq, type HeaderId } from './headers';
import {
  MAX_BODY_SIZE,
  MAX_CSEQ,
  MAX_HEADER_LENGTH,
  MAX_HEADER_SECTION,
  MAX_HEADERS,
  MAX_MESSAGE_SIZE,
  MAX_START_LINE,
} from './limits';
import {
  IDX_HEAD,
  IDX_STRIDE,
  SipRequest,
  SipResponse,
  idxEntry,
  idxFolded,
  idxValueEnd,
  idxValueStart,
} from './message';
import { SipUri } from './uri';

export interface ParseOptions {
  /**
   * 'datagram' (UDP, default): a body longer than Content-Length is cut to it, a
   * missing Content-Length means the rest of the datagram.
   * 'stream' (TCP/TLS, buffers from StreamFramer): Content-Length is required.
   */
  transport?: 'datagram' | 'stream';
  /** Skip the eager validation of the mandatory headers (for tools that inspect broken messages). */
  lenient?: boolean;
}

const KNOWN_METHODS = new Set([
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'OPTIONS',
  'REGISTER',
  'PRACK',
  'SUBSCRIBE',
  'NOTIFY',
  'PUBLISH',
  'INFO',
  'REFER',
  'MESSAGE',
  'UPDATE',
]);

const METHOD_LIST = [...KNOWN_METHODS];
/** The method token as a string; the usual ones without allocating. */
function methodName(buf: Buffer, s: number, e: number): string {
  const n = e - s;
  outer: for (let j = 0; j < METHOD_LIST.length; j++) {
    const m = METHOD_LIST[j];
    if (m.length !== n) continue;
    for (let i = 0; i < n; i++) if (buf[s + i] !== m.charCodeAt(i)) continue outer;
    return m;
  }
  return buf.toString('latin1', s, e);
}

/** SP, HT, CR, LF: trimmed around a header value */
const LWS = new Uint8Array(256);
LWS[32] = LWS[9] = LWS[13] = LWS[10] = 1;

/** Header index being built (one per process: parsing is synchronous); copied out per message. */
const SCRATCH: number[] = new Array<number>(IDX_HEAD + MAX_HEADERS * IDX_STRIDE).fill(0);

function err(
  code: ConstructorParameters<typeof SipParseError>[0],
  msg: string,
  status = 400,
  header?: string,
): SipParseError {
  return new SipParseError(code, msg, status, header);
}

/** Parses "SIP/x.y" at buf[s,e); returns 'ok', 'other' (well-formed, not 2.0) or 'bad'. */
function version(buf: Buffer, s: number, e: number): 'ok' | 'other' | 'bad' {
  if (e - s < 7) return 'bad';
  if (
    (buf[s] | 0x20) !== 0x73 ||
    (buf[s + 1] | 0x20) !== 0x69 ||
    (buf[s + 2] | 0x20) !== 0x70 ||
    buf[s + 3] !== 0x2f
  )
    return 'bad';
  let i = s + 4;
  const d1 = i;
  while (i < e && buf[i] >= 48 && buf[i] <= 57) i++;
  if (i === d1 || buf[i] !== 0x2e) return 'bad';
  const d2 = ++i;
  while (i < e && buf[i] >= 48 && buf[i] <= 57) i++;
  if (i === d2 || i !== e) return 'bad';
  return e - s === 7 && buf[s + 4] === 50 && buf[s + 6] === 48 ? 'ok' : 'other';
}

/** Call-ID check of the accessor (non-empty, no whitespace) on bytes; false: non-ASCII, let the accessor decide. */
function callIdBytesOk(buf: Buffer, s: number, e: number): boolean {
  if (s === e) return false;
  for (let i = s; i < e; i++) {
    const c = buf[i];
    if (c <= 32 || c >= 128) return false;
  }
  return true;
}

/** parseCSeq on the bytes of a one-line value; the method string is the request's when the bytes match. */
function cseqFromBytes(buf: Buffer, s: number, e: number, reqMethod: string): CSeq {
  let i = s;
  let seq = 0;
  while (i < e) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    seq = seq * 10 + (c - 48);
    i++;
  }
  if (i === s) throw badHeader('cseq', 'missing sequence number');
  if (seq > MAX_CSEQ) throw badHeader('cseq', 'sequence number over 2**32-1');
  let j = i;
  while (j < e && (buf[j] === 32 || buf[j] === 9)) j++;
  if (j === i) throw badHeader('cseq', 'missing space');
  let k = j;
  while (k < e && TOKEN[buf[k]] === 1) k++;
  if (k === j || k !== e) throw badHeader('cseq', 'bad method');
  let method = reqMethod;
  if (method.length !== e - j) method = methodName(buf, j, e);
  else
    for (let m = 0; m < method.length; m++)
      if (buf[j + m] !== method.charCodeAt(m)) {
        method = methodName(buf, j, e);
        break;
      }
  return { seq, method };
}

/** parseUint on the bytes of a one-line value. */
function uintFromBytes(buf: Buffer, s: number, e: number, header: string): number {
  const n = e - s;
  if (n === 0 || n > 10) throw badHeader(header, 'not a number');
  let v = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) throw badHeader(header, 'not a number');
    v = v * 10 + (c - 48);
  }
  if (v > 0xffffffff) throw badHeader(header, 'value too large');
  return v;
}

/** Parses a message. Throws SipParseError (and nothing else) on bad input. */
export function parseMessage(buf: Buffer, opts?: ParseOptions): SipRequest | SipResponse {
  const len = buf.length;
  if (len > MAX_MESSAGE_SIZE) throw err('too_large', `message of ${len} bytes`, 513);
  const stream = opts !== undefined && opts.transport === 'stream';
  let pos = 0;
  // RFC 3261 §7.5: ignore CRLFs before the start line
  while (pos < len && (buf[pos] === 13 || buf[pos] === 10)) pos++;
  if (pos >= len) throw err('bad_start_line', 'empty message');
  const slStart = pos;
  // an all-ASCII message (the usual case) is decoded once: line ends are then found by
  // String.prototype.indexOf (a V8 builtin, far cheaper than Buffer#indexOf's native call)
  // and header values are substrings of this text
  const text: string | null = isAscii(buf)
    ? (buf as unknown as { latin1Slice(s: number, e: number): string }).latin1Slice(0, len)
    : null;
  let eol = text !== null ? text.indexOf('\n', pos) : buf.indexOf(10, pos);
  if (eol < 0) eol = len;
  const slTextEnd = eol > pos && buf[eol - 1] === 13 ? eol - 1 : eol;
  if (slTextEnd - pos > MAX_START_LINE) throw err('too_large', 'start line too long', 513);
  const slEnd = eol < len ? eol + 1 : len;

  // ---------------------------------------------------------------- start line
  let isReq: boolean;
  let method = '';
  let uriStart = 0;
  let uriEnd = 0;
  let status = 0;
  let reason = '';
  let slClean = slEnd > slStart && buf[slEnd - 1] === 10;
  if (
    pos + 4 <= slTextEnd &&
    (buf[pos] | 0x20) === 0x73 &&
    (buf[pos + 1] | 0x20) === 0x69 &&
    (buf[pos + 2] | 0x20) === 0x70 &&
    buf[pos + 3] === 0x2f
  ) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    isReq = false;
    const sp = buf.indexOf(32, pos);
    if (sp < 0 || sp > slTextEnd) throw err('bad_start_line', 'status line without status code');
    const v = version(buf, pos, sp);
    if (v === 'bad') throw err('bad_start_line', 'bad SIP version');
    if (v === 'other') throw err('bad_version', 'SIP version not supported', 505);
    let i = sp + 1;
    const cs = i;
    while (i < slTextEnd && buf[i] >= 48 && buf[i] <= 57) i++;
    if (i - cs !== 3 || (i < slTextEnd && buf[i] !== 32))
      throw err('bad_start_line', 'status code is not 3 digits');
    status = (buf[cs] - 48) * 100 + (buf[cs + 1] - 48) * 10 + (buf[cs + 2] - 48);
    if (status < 100 || status > 699) throw err('bad_start_line', `status code ${status} out of range`);
    reason = i < slTextEnd ? buf.toString('utf8', i + 1, slTextEnd) : '';
    if (i >= slTextEnd) slClean = false;
    for (let k = 0; k < reason.length; k++) {
      const c = reason.charCodeAt(k);
      if ((c < 32 && c !== 9) || c === 127) throw err('bad_start_line', 'control character in reason phrase');
    }
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version (extra SP tolerated, RFC 4475 §3.1.2.9/10)
    isReq = true;
    let i = pos;
    while (i < slTextEnd && TOKEN[buf[i]] === 1) i++;
    if (i === pos || buf[i] !== 32) throw err('bad_start_line', 'bad method');
    method = methodName(buf, pos, i);
    let j = i;
    while (j < slTextEnd && buf[j] === 32) j++;
    if (j - i > 1) slClean = false;
    const us = j;
    while (j < slTextEnd && buf[j] > 32 && buf[j] !== 127) j++;
    if (j === us || buf[j] !== 32) throw err('bad_start_line', 'request line without SIP-Version');
    uriStart = us;
    uriEnd = j;
    let k = j;
    while (k < slTextEnd && buf[k] === 32) k++;
    if (k - j > 1) slClean = false;
    let ve = k;
    while (ve < slTextEnd && buf[ve] > 32) ve++;
    let t = ve;
    while (t < slTextEnd && (buf[t] === 32 || buf[t] === 9)) t++;
    if (t !== slTextEnd)
      throw err('bad_start_line', 'unexpected text after SIP-Version (LWS in Request-URI?)');
    if (t !== ve) slClean = false;
    const v = version(buf, k, ve);
    if (v === 'bad') throw err('bad_start_line', 'bad SIP-Version');
    if (v === 'other') throw err('bad_version', 'SIP version not supported', 505);
    if (buf[us] === 60) throw err('bad_uri', 'Request-URI enclosed in <>');
  }

  // ---------------------------------------------------------------- headers
  let nf = IDX_HEAD; // SCRATCH numbers in use (the first IDX_HEAD are left free, see IDX_HEAD)
  pos = slEnd;
  let bodyStart = -1;
  let clFields = 0;
  let clValue = -1;
  // counts of single-valued headers, for duplicate detection
  let nFrom = 0,
    nTo = 0,
    nCallId = 0,
    nCSeq = 0,
    nMf = 0,
    nVia = 0;
  // SCRATCH offsets of the Call-ID, CSeq and Max-Forwards fields (validated on the bytes below)
  let kCallId = -1,
    kCSeq = -1,
    kMf = -1;
  while (pos < len) {
    const c = buf[pos];
    if (c === 10) {
      bodyStart = pos + 1;
      break;
    }
    if (c === 13 && (pos + 1 >= len || buf[pos + 1] === 10)) {
      bodyStart = pos + 2 > len ? len : pos + 2;
      break;
    }
    if (pos - slStart > MAX_HEADER_SECTION) throw err('too_large', 'header section too large', 513);
    const known = knownNameAt(buf, pos, len); // KNOWN_HEADERS index, or -1
    const nameEnd = NAME_END;
    let p = nameEnd;
    if (nameEnd === pos) throw err('bad_header', `bad header name at offset ${pos}`);
    while (p < len && (buf[p] === 32 || buf[p] === 9)) p++;
    if (buf[p] !== 58) throw err('bad_header', `header without colon at offset ${pos}`);
    const colon = p;
    let e = text !== null ? text.indexOf('\n', colon + 1) : buf.indexOf(10, colon + 1);
    let folded = false;
    while (e >= 0 && e + 1 < len && (buf[e + 1] === 32 || buf[e + 1] === 9)) {
      folded = true;
      if (e - pos > MAX_HEADER_LENGTH) break;
      e = text !== null ? text.indexOf('\n', e + 1) : buf.indexOf(10, e + 1);
    }
    const lineEnd = e < 0 ? len : e + 1;
    if (lineEnd - pos > MAX_HEADER_LENGTH) throw err('too_large', 'header too long', 513);
    let vs = colon + 1;
    let ve = e < 0 ? len : e;
    // the usual "Name: value CRLF" by two straight checks, else the loops
    if (vs + 1 < ve && buf[vs] === 32 && LWS[buf[vs + 1]] === 0) vs++;
    else while (vs < ve && LWS[buf[vs]] === 1) vs++;
    if (ve - 1 > vs && buf[ve - 1] === 13 && LWS[buf[ve - 2]] === 0) ve--;
    else while (ve > vs && LWS[buf[ve - 1]] === 1) ve--;
    const id = (known >= 0 ? KNOWN_IDS[known] : HID.other) as HeaderId;
    if (id !== HID.other) {
      switch (id) {
        case HID.via:
          nVia++;
          break;
        case HID.from:
          nFrom++;
          break;
        case HID.to:
          nTo++;
          break;
        case HID.callId:
          if (nCallId++ === 0) kCallId = nf;
          break;
        case HID.cseq:
          if (nCSeq++ === 0) kCSeq = nf;
          break;
        case HID.maxForwards:
          if (nMf++ === 0) kMf = nf;
          break;
        case HID.contentLength: {
          clFields++;
          let v = 0;
          const n = ve - vs;
          if (n === 0 || n > 10) throw err('bad_content_length', 'bad Content-Length', 400, 'content-length');
          for (let k = vs; k < ve; k++) {
            const d = buf[k];
            if (d < 48 || d > 57)
              throw err('bad_content_length', 'bad Content-Length', 400, 'content-length');
            v = v * 10 + (d - 48);
          }
          if (clValue >= 0 && clValue !== v)
            throw err('bad_content_length', 'conflicting Content-Length values', 400, 'content-length');
          clValue = v;
          break;
        }
      }
    }
    if (nf >= IDX_HEAD + MAX_HEADERS * IDX_STRIDE)
      throw err('too_many_headers', 'too many header fields', 513);
    idxEntry(SCRATCH, nf, id, known, folded, nameEnd, pos, lineEnd, vs, ve);
    nf += IDX_STRIDE;
    pos = lineEnd;
  }
  if (bodyStart < 0) {
    // no empty line: tolerated on datagrams (RFC 4475 baddn), the header section runs to the end
    if (stream) throw err('incomplete', 'header section not terminated');
    bodyStart = len;
  }

  // ---------------------------------------------------------------- body
  let bodyEnd: number;
  const avail = len - bodyStart;
  if (clValue >= 0) {
    if (clValue > MAX_BODY_SIZE) throw err('too_large', `body of ${clValue} bytes`, 413, 'content-length');
    if (clValue > avail)
      throw err(
        'bad_content_length',
        `Content-Length ${clValue} larger than the ${avail} body bytes`,
        400,
        'content-length',
      );
    bodyEnd = bodyStart + clValue;
  } else {
    if (stream) throw err('missing_header', 'no Content-Length on a stream transport', 400, 'content-length');
    bodyEnd = len;
  }
  void clFields;

  const fields = SCRATCH.slice(0, nf);
  const msg = isReq
    ? new SipRequest(
        method,
        undefined,
        uriStart,
        uriEnd,
        buf,
        fields,
        slStart,
        slEnd,
        slClean,
        bodyStart,
        bodyEnd,
      )
    : new SipResponse(status, reason, buf, fields, slStart, slEnd, slClean, bodyStart, bodyEnd);
  if (text !== null) msg._text = text; // the whole message: offsets hold for the header section
  if (opts !== undefined && opts.lenient) return msg;

  // ---------------------------------------------------------------- mandatory headers
  if (nVia === 0) throw err('missing_header', 'no Via', 400, 'via');
  if (nFrom === 0) throw err('missing_header', 'no From', 400, 'from');
  if (nTo === 0) throw err('missing_header', 'no To', 400, 'to');
  if (nCallId === 0) throw err('missing_header', 'no Call-ID', 400, 'call-id');
  if (nCSeq === 0) throw err('missing_header', 'no CSeq', 400, 'cseq');
  if (nFrom > 1) throw err('duplicate_header', 'more than one From', 400, 'from');
  if (nTo > 1) throw err('duplicate_header', 'more than one To', 400, 'to');
  if (nCallId > 1) throw err('duplicate_header', 'more than one Call-ID', 400, 'call-id');
  if (nCSeq > 1) throw err('duplicate_header', 'more than one CSeq', 400, 'cseq');
  if (nMf > 1) throw err('duplicate_header', 'more than one Max-Forwards', 400, 'max-forwards');
  void msg.via;
  msg._checkFromTo();
  // Call-ID, CSeq and Max-Forwards straight from the bytes when the field is plain ASCII on one
  // line (same checks as the accessors, which handle the other cases)
  const sx = SCRATCH;
  if (!idxFolded(sx, kCallId) && callIdBytesOk(buf, idxValueStart(sx, kCallId), idxValueEnd(sx, kCallId)))
    msg._callId = msg.text(idxValueStart(sx, kCallId), idxValueEnd(sx, kCallId));
  else void msg.callId;
  if (!idxFolded(sx, kCSeq))
    msg._cseq = cseqFromBytes(buf, idxValueStart(sx, kCSeq), idxValueEnd(sx, kCSeq), method);
  const cseq = msg.cseq;
  if (cseq.seq > MAX_CSEQ) throw err('bad_header', 'CSeq too large', 400, 'cseq');
  if (msg instanceof SipRequest) {
    if (kMf >= 0 && !idxFolded(sx, kMf))
      msg._mf = uintFromBytes(buf, idxValueStart(sx, kMf), idxValueEnd(sx, kMf), 'max-forwards');
    else void msg.maxForwards;
    const ruri = msg.uri;
    // RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11)
    if (ruri instanceof SipUri && ruri.hasHeaders) throw err('bad_uri', 'Request-URI with headers', 400);
    if (cseq.method !== msg.method)
      throw err(
        'cseq_mismatch',
        `CSeq method ${cseq.method} differs from ${msg.method}`,
        KNOWN_METHODS.has(msg.method) ? 400 : 501,
        'cseq',
      );
  }
  return msg;
}

export { KNOWN_METHODS };
