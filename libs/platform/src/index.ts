export * from './errors';
export * from './config';
export * from './logging';
export * from './metrics';
export * from './ops-server';
export * from './service';
export * from './grpc';
