import type { Logger } from 'pino';
import type { Db } from '../db/types';
import type { EventBus, LagHook } from './types';
import { openEmbeddedBus } from './embedded';
import { KafkaBus } from './kafka';

export interface OpenEventBusOptions {
  /** Kafka bootstrap brokers: when given (non-empty), the Kafka adapter is used. */
  kafkaBrokers?: string[];
  /** The database the embedded log lives in (used when no brokers are given). */
  db: Db;
  clientId: string;
  logger?: Logger;
  /** Consumer lag after each batch, per group/topic/partition (for a metrics gauge). */
  onLag?: LagHook;
  /** The embedded log's retention of topics that are not compacted (ms; 0 = for good). */
  retentionMs?: number;
}

/** Kafka when brokers are given, else the embedded log in db. */
export async function openEventBus(opts: OpenEventBusOptions): Promise<EventBus> {
  if (opts.kafkaBrokers && opts.kafkaBrokers.length > 0) {
    return new KafkaBus({
      brokers: opts.kafkaBrokers,
      clientId: opts.clientId,
      logger: opts.logger,
      onLag: opts.onLag,
    });
  }
  return openEmbeddedBus({
    db: opts.db,
    logger: opts.logger,
    onLag: opts.onLag,
    retentionMs: opts.retentionMs,
  });
}
