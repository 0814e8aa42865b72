/**
 * services/rating: correlates the `accounting` topic into CDRs, rates them
 * (rate plans in the `rating` schema), debits balances once per CDR, publishes
 * CDRs on `cdrs` (key account), and answers credit checks over gRPC
 * (proto/rating.proto). See README.md.
 */
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { Counter, Gauge, Histogram } from 'prom-client';
import {
  defineService,
  grpcService,
  invalidArgument,
  notFound,
  migrate,
  serveGrpc,
  type EventMessage,
} from '@switchboard/platform';
import {
  AdjustRequest_Kind,
  AuthorizeResponse_Reason,
  RatingAdminService,
  RatingService,
  type Cdr as ProtoCdr,
  type GetBalanceResponse,
  type SetAccountRequest,
} from '@switchboard/proto/rating';
import { ratingConfig } from './config';
import { RATE_PLAN_MAX_BYTES } from '@switchboard/contracts';
import { exportPlan } from './csv';
import { RatingEngine, type AccountSettings, type AuthorizeReason, type Balance } from './engine';
import type { AccountingRecord, Cdr, MediaEventRecord } from './cdr';

export { ratingConfig } from './config';
export { RatingEngine } from './engine';
export type { Cdr } from './cdr';

export const RATING_SCHEMA = 'rating';

/** A record of the rating events topic (key account): for the portal to show and notify. Best effort, not replayed. */
export interface RatingEvent {
  type: 'low_balance';
  account: string;
  balanceMicros: number;
  thresholdMicros: number;
  /** The CDR whose debit crossed the threshold. */
  cdrId: string;
  at: string;
}
/**
 * Accounting records per consumer batch (at most one Kafka fetch, of up to FETCH_BYTES) and per
 * transaction: a batch is stored in slices, each read and built while the one before is written,
 * and the next batch is fetched while the last slice is written.
 * A slice locks its debited accounts (Authorize waits on them) for its balances and commit. End to end
 * (bench/rating/run.ts), alternating: 5,500-6,300 CDRs/s with batches of 1,000 records (~1 MiB
 * fetches) written in one transaction each, 7,600-9,700 with these.
 */
const BATCH_RECORDS = 8000;
const FETCH_BYTES = 8 * 1024 * 1024;
const BATCH_SLICE = 2000;
const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');

const REASONS: Record<AuthorizeReason, AuthorizeResponse_Reason> = {
  ok: AuthorizeResponse_Reason.REASON_OK,
  insufficient_credit: AuthorizeResponse_Reason.REASON_INSUFFICIENT_CREDIT,
  no_rate: AuthorizeResponse_Reason.REASON_NO_RATE,
  account_blocked: AuthorizeResponse_Reason.REASON_ACCOUNT_BLOCKED,
};
const KINDS = {
  [AdjustRequest_Kind.KIND_TOPUP]: 'topup',
  [AdjustRequest_Kind.KIND_VOUCHER]: 'voucher',
  [AdjustRequest_Kind.KIND_ADJUSTMENT]: 'adjustment',
  [AdjustRequest_Kind.KIND_REFUND]: 'refund',
} as const;

const toBalance = (b: Balance): GetBalanceResponse => ({
  account: b.account,
  balanceMicros: b.balanceMicros,
  currency: b.currency,
  prepaid: b.prepaid,
  updatedAt: b.updatedAt,
  reservedMicros: b.reservedMicros,
  creditLimitMicros: b.creditLimitMicros ?? undefined,
  blocked: b.blocked,
  planId: b.planId ?? '',
});
const accountSettings = (req: SetAccountRequest): AccountSettings => ({
  account: req.account,
  prepaid: req.prepaid,
  currency: req.currency || 'EUR',
  creditLimitMicros: req.creditLimitMicros ?? null,
  planId: req.planId || null,
  blocked: req.blocked,
  lowBalanceMicros: req.lowBalanceMicros,
});

export const toProtoCdr = (c: Cdr): ProtoCdr => ({
  id: c.id,
  callId: c.callId,
  account: c.account,
  caller: c.caller,
  callee: c.callee,
  calleeNumber: c.calleeNumber,
  startedAt: c.startedAt,
  answeredAt: c.answeredAt ?? '',
  endedAt: c.endedAt,
  durationSeconds: c.durationSeconds,
  billableSeconds: c.billableSeconds,
  disposition: c.disposition,
  endReason: c.endReason,
  sipCode: c.sipCode,
  gateway: c.gateway,
  destination: c.destination,
  prefix: c.prefix,
  planId: c.planId,
  period: c.period,
  priceMicros: c.priceMicros,
  currency: c.currency,
  flags: c.flags,
  mos: c.quality?.mos ?? 0,
  rateStatus: c.rateStatus,
});

/** Authorize's callee is E.164 digits for a number, an AoR for a subscriber of the platform. */
export const isOnNetCallee = (callee: string): boolean => !/^\+?\d{1,15}$/.test(callee.trim());

function parse<T>(m: EventMessage): T | undefined {
  if (!m.value) return undefined;
  try {
    return JSON.parse(m.value.toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

export const ratingService = defineService({
  name: 'rating',
  description:
    'correlates accounting into CDRs, rates them, debits prepaid balances, answers credit checks (gRPC)',
  dependsOn: ['accounting', 'media-proxy'],
  configSpec: ratingConfig,
  async start(ctx, config) {
    const db = await ctx.db();
    await migrate(db, { schema: RATING_SCHEMA, dir: MIGRATIONS });
    const events = await ctx.events();
    for (const t of [config.accountingTopic, config.mediaTopic, config.cdrsTopic])
      await events.ensureTopic(t);

    const rated = new Counter({
      name: 'switchboard_cdrs_rated_total',
      help: 'CDRs rated and stored (once per CDR, not per redelivery)',
      labelNames: ['disposition', 'rate_status'],
      registers: [ctx.metrics],
    });
    for (const d of ['answered', 'failed'])
      for (const s of ['rated', 'free', 'unrated']) rated.inc({ disposition: d, rate_status: s }, 0);
    const billed = new Counter({
      name: 'switchboard_rating_billed_micros_total',
      help: 'Sum of CDR prices, micros of the plan currency',
      registers: [ctx.metrics],
    });
    const ignored = new Counter({
      name: 'switchboard_rating_records_ignored_total',
      help: 'Accounting and media records that make no CDR (Interim-Update, Accounting-On/Off, malformed)',
      labelNames: ['type'],
      registers: [ctx.metrics],
    });
    const authDuration = new Histogram({
      name: 'switchboard_rating_authorize_duration_seconds',
      help: 'Authorize latency, reservation included',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
      registers: [ctx.metrics],
    });
    new Gauge({
      name: 'switchboard_rating_open_calls',
      help: 'Answered calls waiting for their Stop',
      registers: [ctx.metrics],
      async collect() {
        const r = await db.query<{ n: string }>('SELECT count(*)::text AS n FROM rating.open_calls');
        this.set(Number(r.rows[0].n));
      },
    });

    const engine = new RatingEngine({
      db,
      now: Date.now,
      publish: (cdrs, json) =>
        events.publish(
          config.cdrsTopic,
          cdrs.map((c, i) => ({
            key: c.account,
            value: json[i],
            headers: { 'content-type': 'application/json' },
          })),
        ),
      defaultPlan: config.defaultPlan,
      maxCallSeconds: config.maxCallSeconds,
      reservationGraceSeconds: config.reservationGraceSeconds,
      publishDelayMs: config.publishDelayMs,
      batchSlice: BATCH_SLICE,
      onPublishError: (err) => ctx.logger.warn({ err }, 'publishing CDRs failed; the sweep retries'),
      onLowBalance: (e) => {
        const value: RatingEvent = { type: 'low_balance', ...e, at: new Date().toISOString() };
        events
          .publish(config.eventsTopic, [{ key: e.account, value: JSON.stringify(value) }])
          .catch((err: unknown) =>
            ctx.logger.warn({ err, account: e.account }, 'low-balance event not published'),
          );
      },
      onCdr: (c) => {
        rated.inc({ disposition: c.disposition, rate_status: c.rateStatus });
        billed.inc(c.priceMicros);
      },
      onIgnored: (type) => ignored.inc({ type }),
    });
    await engine.loadPlans(true);
    // CDRs stored before a crash but not published yet
    await engine.flush().catch((err: unknown) => ctx.logger.warn({ err }, 'publishing pending CDRs failed'));

    const subs = [
      await events.subscribeBatch({
        topic: config.accountingTopic,
        group: config.group,
        fromBeginning: true,
        maxBatch: BATCH_RECORDS,
        maxFetchBytes: FETCH_BYTES,
        maxWaitMs: 20,
        handler: async (msgs) => {
          const recs: AccountingRecord[] = [];
          const offsets: string[] = [];
          for (let i = 0; i < msgs.length; i++) {
            // a turn of the event loop now and then: Authorize's requests are not held up by a whole batch
            if (i % 1000 === 999) await setImmediate();
            const m = msgs[i];
            const rec = parse<AccountingRecord>(m);
            if (!rec || typeof rec.statusType !== 'string') {
              ignored.inc({ type: 'malformed' });
              ctx.logger.warn({ offset: m.offset, key: m.key }, 'malformed accounting record skipped');
              continue;
            }
            recs.push(rec);
            offsets.push(m.offset);
          }
          const last = msgs[msgs.length - 1];
          // the CDRs, their debits and the consumed offset in one transaction a slice; the last slice is
          // still being written when this returns (the next batch is fetched meanwhile), so the offset
          // committed to the event log is where that slice begins (its records are skipped when redelivered)
          return engine.handleAccountingBatchInFlight(recs, {
            consumer: config.group,
            topic: last.topic,
            partition: last.partition,
            offsets,
            next: (BigInt(last.offset) + 1n).toString(),
          });
        },
      }),
      await events.subscribe({
        topic: config.mediaTopic,
        // a group per topic: Kafka assigns a group's partitions across all its members
        group: `${config.group}-media`,
        fromBeginning: true,
        handler: async (m) => {
          const ev = parse<MediaEventRecord>(m);
          if (!ev?.callId) {
            ignored.inc({ type: 'malformed' });
            return;
          }
          await engine.handleMediaEvent(ev);
        },
      }),
    ];

    let sweeping: Promise<unknown> | undefined;
    const sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = (async () => {
        await engine.loadPlans();
        const r = await engine.sweep();
        if (r.closed || r.republished) ctx.logger.info(r, 'rating sweep');
      })()
        .catch((err: unknown) => ctx.logger.error({ err }, 'rating sweep failed'))
        .finally(() => (sweeping = undefined));
    }, config.sweepMs);

    const server = await serveGrpc({
      host: config.grpcHost,
      port: config.grpcPort,
      logger: ctx.logger,
      // channelz (grpc-js's call tracking for its admin tools, unused here) costs CPU on every call
      serverOptions: { 'grpc.enable_channelz': 0, 'grpc.max_receive_message_length': RATE_PLAN_MAX_BYTES },
      services: [
        grpcService(RatingService, {
          async authorize(req) {
            const end = authDuration.startTimer();
            let result = 'error';
            try {
              const r = await engine.authorize({
                account: req.account,
                callee: req.callee,
                callId: req.callId,
                onNet: isOnNetCallee(req.callee),
              });
              result = r.allowed ? 'allowed' : r.reason;
              return {
                allowed: r.allowed,
                maxSeconds: r.maxSeconds,
                reason: REASONS[r.reason],
                detail: r.detail,
              };
            } finally {
              end({ result });
            }
          },
          getBalance: async (req) => toBalance(await engine.balance(req.account)),
        }),
        grpcService(RatingAdminService, {
          getAccount: async (req) => ({ account: toBalance(await engine.balance(req.account)) }),
          async adjust(req) {
            const kind = KINDS[req.kind as keyof typeof KINDS];
            if (!kind) throw invalidArgument('kind', 'kind is required');
            return engine.adjust({
              account: req.account,
              kind,
              amountMicros: req.amountMicros,
              actor: req.actor,
              reason: req.reason,
              idempotencyKey: req.idempotencyKey || undefined,
            });
          },
          async setAccount(req) {
            await engine.upsertAccount(accountSettings(req));
            return { account: toBalance(await engine.balance(req.account)) };
          },
          setAccounts: async (req) => ({
            changed: await engine.upsertAccounts(req.accounts.map(accountSettings)),
          }),
          async importRatePlan(req) {
            const r = await engine.importPlan(
              {
                planId: req.planId,
                effectiveFrom: req.effectiveFrom,
                currency: req.currency,
                timezone: req.timezone || 'UTC',
                holidays: req.holidays,
              },
              req.ratesCsv,
              req.periodsCsv,
              req.actor || 'grpc',
            );
            return r.ok
              ? { ok: true, rates: r.rates, errors: [] }
              : { ok: false, rates: 0, errors: r.errors };
          },
          async exportRatePlan(req) {
            const v = req.effectiveFrom
              ? engine.book.versions(req.planId).find((x) => x.effectiveFrom === req.effectiveFrom)
              : engine.book.versionAt(req.planId, Date.now());
            if (!v) throw notFound(`no version of plan ${req.planId} at that date`);
            return {
              planId: v.planId,
              effectiveFrom: v.effectiveFrom,
              currency: v.currency,
              timezone: v.timezone,
              holidays: [...v.holidays].sort(),
              ...(await exportPlan(v)),
            };
          },
          async assignDomainPlan(req) {
            if (!req.domain || !req.planId)
              throw invalidArgument('domain', 'domain and plan_id are required');
            await engine.assignDomainPlan(req.domain, req.planId);
            return {};
          },
          async quote(req) {
            const a = await engine.getAccount(req.account);
            const q = engine.quote(
              engine.planFor(req.account, a?.planId),
              req.callee,
              req.seconds,
              req.at || Date.now(),
              req.onNet,
            );
            return q
              ? {
                  rated: true,
                  priceMicros: q.priceMicros,
                  billableSeconds: q.billableSeconds,
                  destination: q.destination,
                  currency: q.currency,
                }
              : { rated: false, priceMicros: 0, billableSeconds: 0, destination: '', currency: '' };
          },
          rerate: (req) =>
            engine.rerate({
              account: req.account,
              from: req.from,
              to: req.to || Date.now(),
              actor: req.actor,
              reason: req.reason || undefined,
            }),
          async listCdrs(req) {
            const limit = Math.min(req.pageSize || 100, 1000);
            const cdrs = await engine.listCdrs({
              account: req.account,
              from: req.from || undefined,
              to: req.to || undefined,
              limit,
              after: req.pageToken || undefined,
              disposition: req.disposition,
              calleePrefix: req.calleePrefix,
              gateway: req.gateway,
            });
            return {
              cdrs: cdrs.map(toProtoCdr),
              nextPageToken: cdrs.length === limit ? cdrs[cdrs.length - 1].id : '',
            };
          },
        }),
      ],
    });
    ctx.endpoint('gRPC', `grpc://${config.grpcHost}:${server.port}`);
    ctx.logger.info({ port: server.port, plans: config.defaultPlan }, 'rating ready');

    return {
      port: server.port,
      engine,
      async stop() {
        clearInterval(sweeper);
        await server.shutdown();
        for (const s of subs) await s.close();
        // the last batch's last slice, when still in flight (not stored: it is redelivered after the restart)
        await engine
          .settle()
          .catch((err: unknown) => ctx.logger.warn({ err }, 'last accounting slice not stored'));
        await sweeping;
        await engine
          .flush()
          .catch((err: unknown) => ctx.logger.warn({ err }, 'CDRs left unpublished at stop'));
      },
    };
  },
});

export default ratingService;
