export * from './packet';
export * from './auth';
export * from './dictionary';
export * from './client';
export * from './accounting';
