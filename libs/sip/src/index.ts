export {};
export * from './resolver';
export * from './digest';
export * from './message';
