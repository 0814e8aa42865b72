/**
 * services/accounting: the RADIUS accounting server (RFC 2866, RFC 5080, RFC 5997).
 * Records are stored in the `accounting` schema before they are answered and
 * published to the `accounting` topic (key Call-ID) through an outbox.
 */
import { join } from 'node:path';
import { Counter, Histogram } from 'prom-client';
import { bool, defineService, int, migrate, port, Replica, str, type Setting } from '@switchboard/platform';
import { TOPICS, type SubscriberRecord } from '@switchboard/contracts';
import { Dictionary } from '@switchboard/radius';
import { ClientTable, loadClients, parseClientsSetting, seedClients, type NasClient } from './clients';
import { OutboxBodyCache, OutboxRelay } from './relay';
import { RelayThread } from './relay-worker';
import { startAccountingServer } from './server';
import { startAuthServer, type AuthServer } from './auth-server';
import { RecordWriter } from './writer';

export const ACCOUNTING_TOPIC = 'accounting';
/** A second group commit goes in flight only for at least this many waiting records. */
const PARALLEL_COMMIT_FROM = 64;
export const ACCOUNTING_SCHEMA = 'accounting';
const MIGRATIONS = join(import.meta.dirname, '..', 'migrations');

const clientsSetting: Setting<NasClient[]> = {
  env: 'SWITCHBOARD_ACCOUNTING_CLIENTS',
  // The proxy in the same process (npm start) sends from loopback with its default secret.
  default: '127.0.0.1/32=switchboard-local,::1/128=switchboard-local',
  description:
    'RADIUS clients to provision at start, as CIDR=secret pairs separated by commas (e.g. 127.0.0.1/32=secret,10.0.0.0/8=other); others are provisioned in accounting.clients',
  parse: parseClientsSetting,
};

export const accountingConfig = {
  host: str('SWITCHBOARD_ACCOUNTING_HOST', '0.0.0.0', 'Address the RADIUS accounting server binds'),
  port: port('SWITCHBOARD_ACCOUNTING_PORT', 1813, 'RADIUS accounting UDP port; 0 picks a free one'),
  clients: clientsSetting,
  auth: bool(
    'SWITCHBOARD_ACCOUNTING_AUTH',
    false,
    'Also answer RADIUS Access-Requests with SIP digest (RFC 5090 or Kamailio auth_radius) against the subscribers topic',
  ),
  authPort: port(
    'SWITCHBOARD_ACCOUNTING_AUTH_PORT',
    1812,
    'RADIUS authentication UDP port (when SWITCHBOARD_ACCOUNTING_AUTH is on)',
  ),
  clientsRefreshMs: int(
    'SWITCHBOARD_ACCOUNTING_CLIENTS_REFRESH_MS',
    30000,
    'How often the RADIUS client table is reloaded',
    100,
  ),
  batchMax: int('SWITCHBOARD_ACCOUNTING_BATCH_MAX', 500, 'Most records stored in one group commit', 1, 5000),
  writers: int(
    'SWITCHBOARD_ACCOUNTING_WRITERS',
    2,
    'Group commits in flight at once (PostgreSQL; PGlite uses 1)',
    1,
    16,
  ),
  queueMax: int(
    'SWITCHBOARD_ACCOUNTING_QUEUE_MAX',
    20000,
    'Most requests waiting to be stored; more are dropped unanswered',
    1,
  ),
  relayBatch: int(
    'SWITCHBOARD_ACCOUNTING_RELAY_BATCH',
    2000,
    'Most records published per round (whole group commits, at least one)',
    1,
    5000,
  ),
  relayLingerMs: int(
    'SWITCHBOARD_ACCOUNTING_RELAY_LINGER_MS',
    // Larger rounds cost kafkajs and the broker less per record (bench/RESULTS.md, RADIUS accounting).
    100,
    'How long the relay waits after a commit so that one round publishes several',
    0,
    1000,
  ),
  relayThread: bool(
    'SWITCHBOARD_ACCOUNTING_RELAY_THREAD',
    true,
    'On PostgreSQL and Kafka, run the outbox relay (Kafka publishing) on a worker thread of its own',
  ),
  relayPollMs: int(
    'SWITCHBOARD_ACCOUNTING_RELAY_POLL_MS',
    1000,
    'How often the outbox is checked when idle',
    10,
  ),
  topic: str(
    'SWITCHBOARD_ACCOUNTING_TOPIC',
    ACCOUNTING_TOPIC,
    'Topic the accepted records are published to (key Call-ID)',
  ),
  relayLeaseMs: int(
    'SWITCHBOARD_ACCOUNTING_RELAY_LEASE_MS',
    10000,
    'How long a relay holds the outbox without renewing',
    100,
  ),
};

export const accountingService = defineService({
  name: 'accounting',
  description:
    'RADIUS accounting server (UDP 1813): records stored, answered, published to the accounting topic',
  configSpec: accountingConfig,
  async start(ctx, config) {
    const db = await ctx.db();
    await migrate(db, { schema: ACCOUNTING_SCHEMA, dir: MIGRATIONS });
    await seedClients(db, config.clients);
    const events = await ctx.events();
    await events.ensureTopic(config.topic);

    const reg = [ctx.metrics];
    // Counted per request in plain maps (type -> client -> n) and added to the counter when it is
    // collected (a scrape): prom-client's inc() hashes and checks the labels on every call.
    const pendingRequests = new Map<string, Map<string, number>>();
    new Counter({
      name: 'switchboard_radius_requests_total',
      help: 'RADIUS requests accepted (authenticated), by Acct-Status-Type (or Status-Server) and client',
      labelNames: ['type', 'client'],
      registers: reg,
      collect() {
        for (const [type, byClient] of pendingRequests)
          for (const [client, n] of byClient) if (n > 0) this.inc({ type, client }, n);
        pendingRequests.clear();
      },
    });
    const countRequest = (type: string, client: string) => {
      let byClient = pendingRequests.get(type);
      if (!byClient) pendingRequests.set(type, (byClient = new Map()));
      byClient.set(client, (byClient.get(client) ?? 0) + 1);
    };
    const dropped = new Counter({
      name: 'switchboard_radius_dropped_total',
      help: 'RADIUS requests dropped unanswered, by reason',
      labelNames: ['reason'],
      registers: reg,
    });
    const duplicates = new Counter({
      name: 'switchboard_radius_duplicates_total',
      help: 'Retransmitted Accounting-Requests answered again and not stored again (RFC 5080)',
      labelNames: ['client'],
      registers: reg,
    });
    const writeSeconds = new Histogram({
      name: 'switchboard_radius_write_seconds',
      help: 'Time to store one group commit of accounting records',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers: reg,
    });
    const batchSize = new Histogram({
      name: 'switchboard_radius_commit_batch_size',
      help: 'Accounting records per group commit',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: reg,
    });
    const published = new Counter({
      name: 'switchboard_accounting_published_total',
      help: 'Accounting records published to the accounting topic (at least once)',
      registers: reg,
    });

    let clients: ClientTable = await loadClients(db, (name, err) =>
      ctx.logger.warn({ client: name, err }, 'bad RADIUS client row skipped'),
    );
    if (clients.size === 0)
      ctx.logger.warn(
        'no RADIUS clients provisioned: every request will be dropped (set SWITCHBOARD_ACCOUNTING_CLIENTS)',
      );
    let refreshing = false;
    const refresher = setInterval(() => {
      if (refreshing) return;
      refreshing = true;
      loadClients(db)
        .then((t) => (clients = t))
        .catch((err) => ctx.logger.warn({ err }, 'reloading RADIUS clients failed; keeping the old table'))
        .finally(() => (refreshing = false));
    }, config.clientsRefreshMs);
    refresher.unref();

    const relayOptions = {
      topic: config.topic,
      batchSize: config.relayBatch,
      pollMs: config.relayPollMs,
      leaseMs: config.relayLeaseMs,
      lingerMs: config.relayLingerMs,
    };
    const { databaseUrl, kafkaBrokers } = ctx.platform;
    const localRelay = (): Pick<RelayThread, 'stored' | 'drained' | 'stop'> => {
      const cache = new OutboxBodyCache();
      const local = new OutboxRelay(db, events, {
        ...relayOptions,
        cache,
        logger: ctx.logger,
        onPublished: (n) => published.inc(n),
      });
      local.start();
      return {
        stored: (group) => {
          cache.add(group.seq, { keys: group.keys, bodies: group.bodies.split('\n') });
          local.notify();
        },
        drained: () => local.drained(),
        stop: () => local.stop(),
      };
    };
    let relay: Pick<RelayThread, 'stored' | 'drained' | 'stop'> | undefined;
    if (config.relayThread && db.kind === 'pg' && events.kind === 'kafka' && databaseUrl && kafkaBrokers) {
      relay = await RelayThread.start(
        {
          databaseUrl,
          kafkaBrokers,
          kafkaClientId: ctx.platform.kafkaClientId,
          logLevel: ctx.platform.logLevel,
          relay: relayOptions,
        },
        { logger: ctx.logger, onPublished: (n) => published.inc(n) },
      ).catch((err: unknown) => {
        ctx.logger.warn({ err }, 'the relay worker thread did not start; relaying on the main thread');
        return undefined;
      });
    }
    relay ??= localRelay();
    const outbox = relay;
    const writer = new RecordWriter(db, {
      maxBatch: config.batchMax,
      concurrency: db.kind === 'pglite' ? 1 : config.writers,
      // A second commit in flight only for a group worth it (see WriterOptions.parallelFrom).
      parallelFrom: PARALLEL_COMMIT_FROM,
      maxQueued: config.queueMax,
      onCommit: (n, _stored, seconds) => {
        writeSeconds.observe(seconds);
        batchSize.observe(n);
      },
      onStored: (group) => outbox.stored(group),
    });

    const server = await startAccountingServer({
      host: config.host,
      port: config.port,
      clients: () => clients,
      store: writer,
      dictionary: Dictionary.standard(),
      logger: ctx.logger,
      hooks: {
        request: countRequest,
        dropped: (reason) => dropped.inc({ reason }),
        duplicate: (client) => duplicates.inc({ client }),
      },
    });
    const hostInUrl = config.host.includes(':') ? `[${config.host}]` : config.host;
    const auths = new Counter({
      name: 'switchboard_radius_auth_total',
      help: 'RADIUS digest authentications answered, by result and client',
      labelNames: ['result', 'client'],
      registers: reg,
    });
    let subscribers: Replica<SubscriberRecord> | undefined;
    let authServer: AuthServer | undefined;
    if (config.auth) {
      const replica = new Replica<SubscriberRecord>(TOPICS.subscribers, 'accounting-subscribers');
      replica.onMalformed = (key, err) =>
        ctx.logger.warn({ topic: replica.topic, key, err }, 'a record that is not JSON was skipped');
      await replica.start(events);
      subscribers = replica;
      authServer = await startAuthServer({
        host: config.host,
        port: config.authPort,
        clients: () => clients,
        subscribers: { lookup: (u, r) => replica.get(`sip:${u}@${r}`) },
        logger: ctx.logger,
        hooks: {
          request: countRequest,
          dropped: (reason) => dropped.inc({ reason }),
          duplicate: (client) => duplicates.inc({ client }),
          auth: (result, client) => auths.inc({ result, client }),
        },
      });
      ctx.endpoint('RADIUS authentication', `udp://${hostInUrl}:${authServer.port}`);
    }
    ctx.endpoint('RADIUS accounting', `udp://${hostInUrl}:${server.port}`);
    ctx.logger.info({ port: server.port, clients: clients.size }, 'accounting ready');

    return {
      async stop() {
        clearInterval(refresher);
        await authServer?.close();
        await subscribers?.stop();
        server.stopAccepting();
        await writer.flush();
        await server.close();
        await outbox.stop();
      },
    };
  },
});

export default accountingService;
