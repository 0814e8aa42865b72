export {};
export * from './resolver';
