/**
 * Configuration: one validated, typed object per service, read from environment
 * variables. This is the only place in the tree that reads process.env.
 *
 * A service declares a spec (variable name, default, description, parser) and
 * gets back a typed object; a bad value stops start-up with a message naming
 * the variable. The specs also generate the README's configuration table.
 */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export interface Setting<T> {
  readonly env: string;
  readonly description: string;
  /** Default as written in the environment; undefined means "not set" is allowed (value undefined). */
  readonly default?: string;
  readonly parse: (raw: string) => T;
}

type Env = Record<string, string | undefined>;
export type ConfigSpec = Record<string, Setting<unknown>>;
export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never;
};

function setting<T>(
  env: string,
  def: string | undefined,
  description: string,
  parse: (raw: string) => T,
): Setting<T> {
  return { env, default: def, description, parse };
}

export const str = (env: string, def: string, description: string) =>
  setting(env, def, description, (s) => s);

/** An optional string: undefined when the variable is unset or empty. */
export const optional = (env: string, description: string): Setting<string | undefined> =>
  setting(env, undefined, description, (s) => (s === '' ? undefined : s));

export const int = (env: string, def: number, description: string, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  setting(env, String(def), description, (s) => {
    if (!/^-?\d+$/.test(s.trim())) throw new Error(`expected an integer, got "${s}"`);
    const n = Number(s);
    if (n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}, got ${n}`);
    return n;
  });

export const port = (env: string, def: number, description: string) => int(env, def, description, 0, 65535);

export const bool = (env: string, def: boolean, description: string) =>
  setting(env, String(def), description, (s) => {
    const v = s.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new Error(`expected true or false, got "${s}"`);
  });

export const oneOf = <const T extends string>(
  env: string,
  def: T,
  values: readonly T[],
  description: string,
) =>
  setting(env, def, `${description} (one of: ${values.join(', ')})`, (s) => {
    if (!(values as readonly string[]).includes(s))
      throw new Error(`expected one of ${values.join(', ')}, got "${s}"`);
    return s as T;
  });

/** Comma-separated list; empty entries dropped. */
export const list = (env: string, def: string, description: string) =>
  setting(env, def, description, (s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  );

/** host:port, IPv6 in brackets. */
export const hostPort = (env: string, def: string, description: string) =>
  setting(env, def, description, (s) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(s.trim());
    if (!m || Number(m[2]) > 65535) throw new Error(`expected host:port, got "${s}"`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  });

/** Read and validate every setting of a spec; throws ConfigError naming the first bad variable. */
export function loadConfig<S extends ConfigSpec>(spec: S, env: Env = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(spec)) {
    const raw = env[s.env] ?? s.default;
    if (raw === undefined) {
      out[key] = undefined;
      continue;
    }
    try {
      out[key] = s.parse(raw);
    } catch (e) {
      throw new ConfigError(s.env, (e as Error).message);
    }
  }
  return Object.freeze(out) as ConfigOf<S>;
}

/** Platform-wide settings every process reads (storage, events, logging, ops port). */
export const platformSpec = {
  logLevel: oneOf(
    'SWITCHBOARD_LOG_LEVEL',
    'info',
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    'Log level',
  ),
  logPretty: oneOf(
    'SWITCHBOARD_LOG_FORMAT',
    'auto',
    ['auto', 'json', 'pretty'],
    'Log format; auto is pretty on a terminal',
  ),
  opsHost: str(
    'SWITCHBOARD_OPS_HOST',
    '0.0.0.0',
    'Address of the ops HTTP server (/metrics, /healthz, /readyz)',
  ),
  opsPort: port('SWITCHBOARD_OPS_PORT', 9464, 'Port of the ops HTTP server; 0 picks a free one'),
  databaseUrl: optional(
    'DATABASE_URL',
    'PostgreSQL URL; unset means embedded PGlite under the data directory',
  ),
  dataDir: str(
    'SWITCHBOARD_DATA_DIR',
    './data',
    'Directory for embedded storage (PGlite) and files; :memory: keeps it in memory',
  ),
  embeddedDbThread: bool(
    'SWITCHBOARD_EMBEDDED_DB_THREAD',
    true,
    'Run embedded PGlite on a thread of its own (off the event loop of SIP and RADIUS); false runs it on the main thread',
  ),
  embeddedDbBuffersMb: int(
    'SWITCHBOARD_EMBEDDED_DB_BUFFERS_MB',
    32,
    "Embedded PGlite's shared_buffers, in MB: resident from the start (PostgreSQL's default, 128, costs ~100 MB more); reads beyond it come from the OS page cache",
    2,
    4096,
  ),
  embeddedDbVacuumS: int(
    'SWITCHBOARD_EMBEDDED_DB_VACUUM_S',
    60,
    "How often embedded PGlite's tables are checked and vacuumed or analyzed, as PostgreSQL's autovacuum would (PGlite has none); 0 turns it off",
    0,
    86400,
  ),
  kafkaBrokers: setting(
    'KAFKA_BROKERS',
    undefined,
    'Comma-separated Kafka brokers; unset means the embedded event log',
    (s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
  ),
  embeddedLogRetentionHours: int(
    'SWITCHBOARD_EMBEDDED_LOG_RETENTION_HOURS',
    168,
    "How long the embedded event log keeps the messages of topics that are not compacted, as Kafka's log.retention.hours; 0 keeps them for good",
    0,
  ),
  kafkaClientId: str('SWITCHBOARD_KAFKA_CLIENT_ID', 'switchboard', 'Kafka client id prefix'),
  shutdownTimeoutMs: int(
    'SWITCHBOARD_SHUTDOWN_TIMEOUT_MS',
    10000,
    'How long a stop may drain before the process exits',
    100,
  ),
} satisfies ConfigSpec;

export type PlatformConfig = ConfigOf<typeof platformSpec>;

/** Whether stdout is a terminal (for pretty logs); kept here with the other environment reads. */
export const isTerminal = (): boolean => Boolean(process.stdout.isTTY);

/** The process environment, for tools that hand it on whole (the CLI); services read a config spec instead. */
export const processEnv = (): Record<string, string | undefined> => process.env;
