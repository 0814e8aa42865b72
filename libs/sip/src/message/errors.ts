/**
 * The one error type the SIP message layer throws on bad input. `code` says what
 * was wrong; `status` is the SIP response a server should answer with
 * (requests only: a bad response is dropped, never answered).
 */
export type SipParseErrorCode =
  | 'too_large' // message, header section or header over a limit (413 / 513)
  | 'too_many_headers' // more header fields than MAX_HEADERS (513)
  | 'bad_start_line' // request/status line malformed
  | 'bad_version' // SIP-Version is not SIP/2.0 (505)
  | 'bad_header' // a header field (name or value) is malformed
  | 'duplicate_header' // a single-valued header appears twice
  | 'missing_header' // a mandatory header is missing
  | 'bad_content_length' // Content-Length malformed, conflicting, or larger than the body
  | 'bad_uri' // a URI is malformed
  | 'cseq_mismatch' // request-line method differs from the CSeq method
  | 'incomplete'; // stream framing: not enough bytes (internal to StreamFramer)

export class SipParseError extends Error {
  constructor(
    readonly code: SipParseErrorCode,
    message: string,
    /** SIP status a UAS/proxy should answer a request with. */
    readonly status: number = 400,
    /** Header (lower-case full name) or part at fault, when known. */
    readonly header?: string,
  ) {
    super(message);
    this.name = 'SipParseError';
  }
}

export function badHeader(header: string, message: string): SipParseError {
  return new SipParseError('bad_header', `${header}: ${message}`, 400, header);
}

export function badUri(message: string): SipParseError {
  return new SipParseError('bad_uri', message, 400);
}
