export * from './errors';
export * from './limits';
export { detach } from './detach';
export { Params, unquote as unquoteString } from './params';
export {
  SipUri,
  TelUri,
  AbsoluteUri,
  parseUri,
  parseSipUri,
  uriEquals,
  isSipUri,
  isIPv4,
  isIPv6,
  type Uri,
  type HostType,
} from './uri';
export {
  Via,
  NameAddr,
  Contact,
  BRANCH_MAGIC,
  parseVia,
  parseCSeq,
  parseNameAddr,
  parseContactValue,
  splitList,
  headerName,
  LIST_HEADERS,
  type CSeq,
} from './headers';
export {
  SipMessage,
  SipRequest,
  SipResponse,
  HeaderField,
  isRequest,
  isResponse,
  keepBytes,
  type BodyInput,
} from './message';
export { parseMessage, KNOWN_METHODS, type ParseOptions } from './parser';
export {
  createRequest,
  createResponse,
  newBranch,
  newTag,
  newCallId,
  REASON_PHRASES,
  type RequestInit,
  type ResponseOptions,
} from './builders';
export { StreamFramer, type StreamFramerHandlers, type StreamFramerOptions } from './framing';
