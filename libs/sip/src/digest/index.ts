export {
  DigestParseError,
  MAX_AUTH_HEADER_LENGTH,
  formatAuthHeader,
  parseAuthHeader,
  quote as quoteAuthParam,
  type AuthParams,
} from './params';
export * from './digest';
