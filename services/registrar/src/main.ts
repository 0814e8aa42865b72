/**
 * services/registrar: the location service. Bindings owned here (PostgreSQL
 * schema `registrar`), served over gRPC (proto/registrar.proto) and published
 * on the compacted `location` topic for the proxies' replicas.
 */
import { join } from 'node:path';
import { Gauge, Histogram } from 'prom-client';
import {
  defineService,
  grpcService,
  int,
  migrate,
  oneOf,
  port,
  serveGrpc,
  str,
  DomainError,
  grpcCode,
  type PublishMessage,
} from '@switchboard/platform';
import {
  RegistrarService,
  WatchEvent_Type,
  type RegisterError,
  type RegisterRequest,
  type RegisterResponse,
} from '@switchboard/proto/registrar';
import type { Binding } from './bindings';
import { Registry } from './registry';
import { createBindingStore } from './store';

export const LOCATION_TOPIC = 'location';

/** The `location` topic's records of a batch: an AoR's bindings, or a tombstone when it has none. */
export const locationRecords = (latest: Map<string, Binding[]>): PublishMessage[] =>
  [...latest].map(([aor, bindings]) => ({
    key: aor,
    value: bindings.length ? JSON.stringify({ aor, bindings }) : null,
  }));

/**
 * Publishes every AoR's bindings `batch` AoRs at a time (as the portal's relay publishes
 * subscribers): 100,000 AoRs in one publish is one statement of tens of MB on the embedded
 * log, which grows PGlite's memory for good.
 */
export async function publishInBatches(
  all: Map<string, Binding[]>,
  publish: (part: Map<string, Binding[]>) => Promise<void>,
  batch = 500,
): Promise<void> {
  const entries = [...all];
  for (let i = 0; i < entries.length; i += batch) await publish(new Map(entries.slice(i, i + batch)));
}

export const registrarConfig = {
  grpcHost: str('SWITCHBOARD_REGISTRAR_GRPC_HOST', '127.0.0.1', 'Address the registrar gRPC server binds'),
  grpcPort: port('SWITCHBOARD_REGISTRAR_GRPC_PORT', 50051, 'Registrar gRPC port'),
  minExpires: int(
    'SWITCHBOARD_REGISTRAR_MIN_EXPIRES',
    60,
    'Shortest registration accepted (else 423 with Min-Expires)',
    1,
  ),
  maxExpires: int(
    'SWITCHBOARD_REGISTRAR_MAX_EXPIRES',
    3600,
    'Longest registration granted (longer ones are shortened)',
    1,
  ),
  defaultExpires: int('SWITCHBOARD_REGISTRAR_DEFAULT_EXPIRES', 3600, 'Expiry when a REGISTER names none', 1),
  maxContacts: int('SWITCHBOARD_REGISTRAR_MAX_CONTACTS', 10, 'Most contacts per address-of-record', 1),
  overflow: oneOf(
    'SWITCHBOARD_REGISTRAR_OVERFLOW',
    'drop-oldest',
    ['drop-oldest', 'reject'] as const,
    'When an AoR has too many contacts: drop the oldest, or refuse with 403',
  ),
  sweepIntervalMs: int('SWITCHBOARD_REGISTRAR_SWEEP_MS', 1000, 'How often expired bindings are removed', 50),
  commitIntervalMs: int(
    'SWITCHBOARD_REGISTRAR_COMMIT_MS',
    50,
    'Shortest time between two group commits of bindings (ms): under load the writes of the interval share one transaction and one location publish',
    0,
  ),
};

const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');

/** Contact URIs as the proxy sends them are already canonical; compare case-insensitively in scheme and host. */
export const sameContact = (a: string, b: string): boolean => a === b || a.toLowerCase() === b.toLowerCase();

export const registrarService = defineService({
  name: 'registrar',
  description: 'location service: AoR bindings, expiry, Path, instance-id (gRPC)',
  configSpec: registrarConfig,
  async start(ctx, config) {
    const db = await ctx.db();
    await migrate(db, { schema: 'registrar', dir: MIGRATIONS });
    const events = await ctx.events();
    await events.ensureTopic(LOCATION_TOPIC, { compacted: true });

    const batchSize = new Histogram({
      name: 'switchboard_registrar_commit_batch_size',
      help: 'Binding writes per group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500],
      registers: [ctx.metrics],
    });
    const publish = (latest: Map<string, Binding[]>) =>
      events.publish(LOCATION_TOPIC, locationRecords(latest));
    const store = createBindingStore(db, {
      afterCommit: publish,
      onBatch: (n) => batchSize.observe(n),
      minIntervalMs: config.commitIntervalMs,
    });
    const registry = new Registry(store, config, { now: Date.now }, sameContact);
    const loaded = await registry.load();
    // Republish what storage holds, so the topic agrees with it even after a crash between commit and publish.
    if (loaded.size) await publishInBatches(registry.snapshot(), publish);
    new Gauge({
      name: 'switchboard_registrations_active',
      help: 'Live contact bindings held by the registrar',
      registers: [ctx.metrics],
      collect() {
        this.set(registry.countLive());
      },
    });

    let sweeping = false;
    const sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      registry
        .sweep()
        .then((n) => n && ctx.logger.debug({ expired: n }, 'expired bindings removed'))
        .catch((err) => ctx.logger.error({ err }, 'sweep failed'))
        .finally(() => (sweeping = false));
    }, config.sweepIntervalMs);

    const watchType = {
      upsert: WatchEvent_Type.TYPE_UPSERT,
      removed: WatchEvent_Type.TYPE_REMOVED,
      expired: WatchEvent_Type.TYPE_EXPIRED,
    };
    const register = async (req: RegisterRequest): Promise<RegisterResponse> => {
      if (!req.aor) throw new DomainError('invalid_argument', 'aor is required', 'aor');
      const out = await registry.register({
        aor: req.aor,
        contacts: req.contacts.map((c) => ({ ...c, expires: c.expires })),
        removeAll: req.removeAll,
        callId: req.callId,
        cseq: req.cseq,
        path: req.path,
        received: req.received,
        userAgent: req.userAgent,
      });
      return out.kind === 'too-brief'
        ? { bindings: [], minExpires: out.minExpires }
        : { bindings: out.bindings, minExpires: 0 };
    };
    /** A batch item's failure as the status Register would have answered with (as the gRPC server maps it). */
    const registerError = (e: unknown): RegisterError => {
      if (e instanceof DomainError) {
        if (e.kind === 'internal') ctx.logger.error({ err: e }, 'RegisterBatch item failed');
        return { code: grpcCode(e), message: e.message, field: e.field ?? '' };
      }
      ctx.logger.error({ err: e }, 'RegisterBatch item failed');
      return { code: grpcCode(e), message: 'internal error', field: '' };
    };

    const server = await serveGrpc({
      host: config.grpcHost,
      port: config.grpcPort,
      logger: ctx.logger,
      services: [
        grpcService(RegistrarService, {
          register,
          registerBatch: async (req) => ({
            // Each item is applied as Register applies it, in the batch's order (registry.register
            // reads and updates the AoR in memory before its first await), so they all join the
            // same group commit; each gets its own answer or error.
            results: await Promise.all(
              req.requests.map((r) =>
                register(r).then(
                  (response) => ({ response }),
                  (e: unknown) => ({ error: registerError(e) }),
                ),
              ),
            ),
          }),
          lookup: (req) => ({ bindings: registry.lookup(req.aor) }),
          listBindings(req) {
            const page = registry.list({
              domain: req.domain || undefined,
              aorPrefix: req.aorPrefix || undefined,
              pageSize: Math.min(req.pageSize || 100, 1000),
              after: req.pageToken || undefined,
            });
            return { bindings: page.bindings, nextPageToken: page.next ?? '' };
          },
          unregister: async (req) => ({
            removed: await registry.unregister(req.aor, req.contact || undefined),
          }),
          watch(call) {
            const wanted = (b: Binding) => !call.request.aor || b.aor === call.request.aor;
            if (call.request.snapshot) {
              for (const [, bs] of registry.snapshot()) {
                for (const b of bs.filter(wanted))
                  call.write({ type: WatchEvent_Type.TYPE_UPSERT, binding: b });
              }
            }
            const onChange = (c: { type: keyof typeof watchType; binding: Binding }) => {
              if (wanted(c.binding)) call.write({ type: watchType[c.type], binding: c.binding });
            };
            registry.changes.on('change', onChange);
            call.on('cancelled', () => registry.changes.off('change', onChange));
            call.on('close', () => registry.changes.off('change', onChange));
          },
        }),
      ],
    });
    ctx.endpoint('gRPC', `grpc://${config.grpcHost}:${server.port}`);
    ctx.logger.info({ aors: loaded.size, port: server.port }, 'registrar ready');

    return {
      async stop() {
        clearInterval(sweeper);
        await server.shutdown();
        await store.flush();
      },
    };
  },
});

export default registrarService;
