import type { ServiceModule } from '@switchboard/platform';

/**
 * Every service this build can run, in the order `switchboard targets` lists
 * them. Each service issue adds its module here.
 */
export const SERVICES: readonly ServiceModule[] = [];
