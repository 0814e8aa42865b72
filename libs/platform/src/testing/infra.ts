/**
 * Helpers for integration tests that run against the real PostgreSQL and
 * Kafka brought up by scripts/infra/postgres and scripts/infra/kafka.
 *
 *   await requirePostgres();           // throws, naming the script to run
 *   const url = testPostgresUrl();
 *   const schema = uniqueName('registrar');
 *
 * An integration test calls require*() first and lets the error fail it: a
 * missing service is a failure to fix, never a reason to skip.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/switchboard_test';
export const DEFAULT_TEST_KAFKA_BROKERS = '127.0.0.1:9092';

/** Bound on one requirePostgres()/requireKafka() probe. */
export const INFRA_PROBE_TIMEOUT_MS = 10_000;

function env(name: string): string | undefined {
  // Test helper: where the test infra lives is the test environment's to say.
  const v = process.env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** URL of the test database: SWITCHBOARD_TEST_DATABASE_URL, else the local switchboard_test. */
export function testPostgresUrl(): string {
  return env('SWITCHBOARD_TEST_DATABASE_URL') ?? DEFAULT_TEST_DATABASE_URL;
}

/** Kafka bootstrap brokers for tests: SWITCHBOARD_TEST_KAFKA_BROKERS (comma separated), else 127.0.0.1:9092. */
export function testKafkaBrokers(): string[] {
  return (env('SWITCHBOARD_TEST_KAFKA_BROKERS') ?? DEFAULT_TEST_KAFKA_BROKERS)
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
}

/** The URL with any password replaced, for error messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const reachedPostgres = new Set<string>();
const reachedKafka = new Set<string>();

/**
 * Connects once to the test database (or `url`) and runs `select 1`.
 * Resolves at once for a URL already reached in this process.
 */
export async function requirePostgres(url: string = testPostgresUrl()): Promise<void> {
  if (reachedPostgres.has(url)) return;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: INFRA_PROBE_TIMEOUT_MS });
  // An error event after a failed connect must not crash the test process.
  client.on('error', () => undefined);
  try {
    await withTimeout(
      (async () => {
        await client.connect();
        await client.query('select 1');
      })(),
      INFRA_PROBE_TIMEOUT_MS,
      'PostgreSQL probe',
    );
  } catch (err) {
    throw new Error(
      `PostgreSQL is not reachable at ${redact(url)}: run scripts/infra/postgres (${messageOf(err)})`,
      {
        cause: err,
      },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
  reachedPostgres.add(url);
}

/** A kafkajs client for tests: quiet logging, short timeouts, few retries. */
export function createTestKafka(
  clientId: string = uniqueName('test'),
  brokers: string[] = testKafkaBrokers(),
  overrides: Partial<KafkaConfig> = {},
): Kafka {
  return new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 },
    ...overrides,
  });
}

/**
 * Connects an admin client to the test brokers (or `brokers`) and lists
 * topics, within INFRA_PROBE_TIMEOUT_MS. Resolves at once for brokers already
 * reached in this process.
 */
export async function requireKafka(brokers: string[] = testKafkaBrokers()): Promise<void> {
  const key = brokers.join(',');
  if (reachedKafka.has(key)) return;
  const admin = createTestKafka(uniqueName('probe'), brokers, { retry: { retries: 0 } }).admin();
  try {
    await withTimeout(
      (async () => {
        await admin.connect();
        await admin.listTopics();
      })(),
      INFRA_PROBE_TIMEOUT_MS,
      'Kafka probe',
    );
  } catch (err) {
    throw new Error(`Kafka is not reachable at ${key}: run scripts/infra/kafka start (${messageOf(err)})`, {
      cause: err,
    });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  reachedKafka.add(key);
}

let counter = 0;

/**
 * A name unique to this call, for a per-test schema, topic or consumer group:
 * `<prefix>_<pid>_<n>_<random>`, lowercase letters, digits and underscores
 * only (valid unquoted in PostgreSQL, and as a Kafka topic), at most 63 chars.
 */
export function uniqueName(prefix: string): string {
  let p = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .slice(0, 32);
  if (!/^[a-z_]/.test(p)) p = `t_${p}`;
  counter += 1;
  return `${p}_${process.pid}_${counter}_${randomBytes(4).toString('hex')}`;
}
