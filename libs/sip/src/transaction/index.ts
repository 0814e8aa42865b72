export * from './timers';
export { Transaction, type TxHost } from './transaction';
export * from './client';
export * from './server';
export * from './layer';
export { errorResponseForRaw } from './stateless';
