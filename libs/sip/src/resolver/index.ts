export * from './resolver';
