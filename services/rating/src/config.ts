import { int, optional, port, str } from '@switchboard/platform';
import { TOPICS } from '@switchboard/contracts';

export const ratingConfig = {
  grpcHost: str('SWITCHBOARD_RATING_GRPC_HOST', '127.0.0.1', 'Address the rating gRPC server binds'),
  grpcPort: port('SWITCHBOARD_RATING_GRPC_PORT', 50054, 'Rating gRPC port; 0 picks a free one'),
  accountingTopic: str(
    'SWITCHBOARD_RATING_ACCOUNTING_TOPIC',
    TOPICS.accounting,
    'Topic of accounting records consumed (key Call-ID)',
  ),
  mediaTopic: str(
    'SWITCHBOARD_RATING_MEDIA_TOPIC',
    TOPICS.mediaEvents,
    'Topic of media-events consumed (key Call-ID)',
  ),
  cdrsTopic: str(
    'SWITCHBOARD_RATING_CDRS_TOPIC',
    TOPICS.cdrs,
    'Topic rated CDRs are published to (key account)',
  ),
  eventsTopic: str(
    'SWITCHBOARD_RATING_EVENTS_TOPIC',
    'rating-events',
    'Topic of account events for the portal, e.g. low balance (key account)',
  ),
  group: str('SWITCHBOARD_RATING_GROUP', 'rating', 'Consumer group of the rating instances'),
  defaultPlan: optional(
    'SWITCHBOARD_RATING_DEFAULT_PLAN',
    'Rate plan for accounts with none of their own or of their domain',
  ),
  maxCallSeconds: int(
    'SWITCHBOARD_RATING_MAX_CALL_SECONDS',
    14400,
    'Longest call: an answered call with no Stop is closed after this long; Authorize never grants more',
    1,
  ),
  reservationGraceSeconds: int(
    'SWITCHBOARD_RATING_RESERVATION_GRACE_SECONDS',
    120,
    'How long a credit reservation outlives the time it was granted for (the Stop and its CDR may be late)',
    0,
  ),
  publishDelayMs: int(
    'SWITCHBOARD_RATING_PUBLISH_DELAY_MS',
    50,
    'How long a stored CDR waits so that the CDRs of that time are published (and marked) together',
    0,
    10000,
  ),
  sweepMs: int(
    'SWITCHBOARD_RATING_SWEEP_MS',
    10000,
    'How often over-long calls are closed, expired reservations dropped, unpublished CDRs published and plans reloaded',
    10,
  ),
};
