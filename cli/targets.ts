import type { ServiceModule } from '@switchboard/platform';
import { registrarService } from '../services/registrar/src/main';
import { sipProxyService } from '../services/sip-proxy/src/main';
import { mediaProxyService } from '../services/media-proxy/src/main';
import { accountingService } from '../services/accounting/src/main';
import { mediaServerService } from '../services/media-server/src/main';
import { ratingService } from '../services/rating/src/main';
import { portalService } from '../services/portal/src/main';

/**
 * Every service this build can run, in the order `switchboard targets` lists
 * them. Each service issue adds its module here.
 */
export const SERVICES: readonly ServiceModule[] = [
  registrarService,
  mediaProxyService,
  accountingService,
  ratingService,
  mediaServerService,
  sipProxyService,
  portalService,
] as ServiceModule[];
