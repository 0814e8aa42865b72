export * from './params';
export * from './digest';
