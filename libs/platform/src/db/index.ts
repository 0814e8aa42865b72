export * from './types';
export * from './jsonb-array';
export * from './open';
export * from './pg';
export * from './pglite';
export * from './migrate';
export * from './vacuum';
