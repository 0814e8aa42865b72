export {};
export * from './resolver';
export * from './digest';
