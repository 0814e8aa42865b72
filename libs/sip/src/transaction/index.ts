export * from './timers';
export { Transaction, type TimerName, type TxHost } from './transaction';
export { TimerQueue, TimerSlot, type TimerOwner } from './timer-queue';
export * from './client';
export * from './server';
export * from './layer';
export { errorResponseForRaw } from './stateless';
