export {};
export * from './resolver';
export * from './digest';
export * from './message';
export * from './transport';
export * from './transaction';
