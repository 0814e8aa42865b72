export * from './types';
export * from './embedded';
export * from './kafka';
export * from './open';
export * from './relay';
export * from './replica';
