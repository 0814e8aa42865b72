export * from './sdp';
export * from './rewrite';
