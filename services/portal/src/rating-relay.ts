/**
 * Delivery of the portal's `@rating` outbox channel: account settings and credit changes, in
 * the order they were queued, through the rating service's admin gRPC API.
 */
import type { Logger } from 'pino';
import { DomainError } from '@switchboard/platform';
import {
  AdjustRequest_Kind,
  type AdjustRequest,
  type SetAccountRequest,
  type SetAccountsRequest,
} from '@switchboard/proto/rating';
import type { RatingOp } from './store';

/** What the delivery calls of RatingAdmin. */
export interface RatingAdminCalls {
  setAccounts(req: SetAccountsRequest): Promise<unknown>;
  setAccount(req: SetAccountRequest): Promise<unknown>;
  adjust(req: AdjustRequest): Promise<unknown>;
}

const ADJUST_KIND = {
  topup: AdjustRequest_Kind.KIND_TOPUP,
  voucher: AdjustRequest_Kind.KIND_VOUCHER,
  adjustment: AdjustRequest_Kind.KIND_ADJUSTMENT,
  refund: AdjustRequest_Kind.KIND_REFUND,
} as const;

/** Rating refused a queued change for good (not a transient failure): retrying would not help. */
const refused = (err: unknown) =>
  err instanceof DomainError && ['invalid_argument', 'not_found', 'failed_precondition'].includes(err.kind);

/** A rating service older than the call (UNIMPLEMENTED): during a rolling upgrade, the portal first. */
const unimplemented = (err: unknown) => err instanceof DomainError && err.kind === 'unimplemented';

/**
 * Delivers a run of queued rows. Consecutive account settings go in one SetAccounts call (100,000
 * subscribers at start-up); a top-up or adjustment goes after the settings queued before it. When
 * rating refuses one account for good, or is a version without SetAccounts, the settings are sent one
 * SetAccount at a time, so that only a refused one is dropped. Any other failure is thrown: the relay
 * delivers the run again later.
 */
export function ratingDelivery(rating: RatingAdminCalls, logger: Logger) {
  const dropIfRefused = async (op: unknown, call: () => Promise<unknown>) => {
    try {
      await call();
    } catch (err) {
      if (!refused(err)) throw err;
      logger.error({ err, op }, 'rating refused a queued change; dropped');
    }
  };
  return async (_topic: string, rows: { key: string; value: string | null }[]): Promise<void> => {
    let accounts: SetAccountRequest[] = [];
    const flush = async () => {
      const batch = accounts;
      accounts = [];
      if (!batch.length) return;
      try {
        await rating.setAccounts({ accounts: batch });
      } catch (err) {
        if (!refused(err) && !unimplemented(err)) throw err;
        for (const a of batch) await dropIfRefused(a, () => rating.setAccount(a));
      }
    };
    for (const row of rows) {
      const op = JSON.parse(row.value ?? 'null') as RatingOp | null;
      if (!op) continue;
      if (op.op === 'account') {
        accounts.push({
          account: op.account,
          prepaid: op.prepaid,
          currency: op.currency,
          planId: op.planId,
          blocked: op.blocked,
          lowBalanceMicros: 0,
        });
        continue;
      }
      await flush();
      await dropIfRefused(op, () =>
        rating.adjust({
          account: op.account,
          kind: ADJUST_KIND[op.kind],
          amountMicros: op.amountMicros,
          actor: `portal:${op.actor}`,
          reason: op.reason,
          idempotencyKey: op.idempotencyKey,
        }),
      );
    }
    await flush();
  };
}
