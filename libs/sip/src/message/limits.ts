/** Parser limits. Anything over them is rejected with a SipParseError. */

/** Largest message accepted (start line + headers + body), bytes. UDP datagrams can't exceed this. */
export const MAX_MESSAGE_SIZE = 65535;
/** Largest header section (start line + headers + empty line), bytes. Over it: 513. */
export const MAX_HEADER_SECTION = 32768;
/** Most header fields (lines, after unfolding) in one message. */
export const MAX_HEADERS = 256;
/** Longest single (unfolded) header field, bytes, name included. */
export const MAX_HEADER_LENGTH = 8192;
/** Longest start line, bytes. */
export const MAX_START_LINE = 8192;
/** Most Via values (RFC 4475 longreq has 34). */
export const MAX_VIA_COUNT = 70;
/** Most comma-separated values in one list header (Route, Record-Route, Contact ...). */
export const MAX_HEADER_VALUES = 256;
/** Most parameters on one header value or URI. */
export const MAX_PARAMS = 64;
/** Largest body (Content-Length), bytes. Over it: 413 Request Entity Too Large. */
export const MAX_BODY_SIZE = 61440;
/** Largest CSeq sequence number (RFC 3261 §8.1.1.5: 2^31 for new requests, parsers accept 2^32-1). */
export const MAX_CSEQ = 0xffffffff;
/** Stream framer buffer bound: a peer that sends more than this without a complete message is cut off. */
export const MAX_STREAM_BUFFER = MAX_MESSAGE_SIZE + 4096;
