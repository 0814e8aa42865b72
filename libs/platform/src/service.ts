import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { ConfigOf, ConfigSpec, PlatformConfig } from './config';
import type { OpsServer } from './ops-server';
import type { Db } from './db';
import type { EventBus } from './events';

/** What the runner hands each service when it starts. */
export interface ServiceContext {
  readonly platform: PlatformConfig;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly ops: Pick<OpsServer, 'addReadinessCheck' | 'addRoute'>;
  /** The services started in this process (a service may call a local peer directly over loopback). */
  readonly targets: readonly string[];
  /** The process's database (PGlite or a pg pool), opened on first use; each service migrates its own schema. */
  db(): Promise<Db>;
  /** The process's event bus (embedded log or Kafka), opened on first use. */
  events(): Promise<EventBus>;
  /** Say where the service listens; the runner prints these once everything started. */
  endpoint(name: string, url: string): void;
  /** Where a service started earlier in this process listens (its `endpoint` URL), if it runs here. */
  localEndpoint(service: string, name: string): string | undefined;
}

export interface RunningService {
  /** Stop accepting, drain in-flight work, release resources. */
  stop(): Promise<void>;
}

/** A service as the target runner sees it: a name, its config spec, its dependencies and a start function. */
export interface ServiceModule<S extends ConfigSpec = ConfigSpec> {
  readonly name: string;
  readonly description: string;
  /** Services that must be started first when they are in the same process. */
  readonly dependsOn?: readonly string[];
  readonly configSpec: S;
  start(ctx: ServiceContext, config: ConfigOf<S>): Promise<RunningService>;
}

/**
 * Resolves once the event loop has turned (I/O and timers that were waiting run first). Services
 * share one process under `npm start`: a long loop awaits this now and then, so that no single task
 * holds SIP, RADIUS and media for long.
 */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const defineService = <S extends ConfigSpec>(m: ServiceModule<S>): ServiceModule<S> => m;

/**
 * Order modules so that each comes after the ones it depends on (those present
 * in the set). Throws on an unknown target or a dependency cycle.
 */
export function orderByDependencies<M extends Pick<ServiceModule, 'name' | 'dependsOn'>>(
  modules: readonly M[],
): M[] {
  const byName = new Map(modules.map((m) => [m.name, m]));
  const out: M[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (m: M, path: string[]) => {
    const s = state.get(m.name);
    if (s === 'done') return;
    if (s === 'visiting') throw new Error(`dependency cycle: ${[...path, m.name].join(' -> ')}`);
    state.set(m.name, 'visiting');
    for (const d of m.dependsOn ?? []) {
      const dep = byName.get(d);
      if (dep) visit(dep, [...path, m.name]);
    }
    state.set(m.name, 'done');
    out.push(m);
  };
  for (const m of modules) visit(m, []);
  return out;
}

/** Resolve `--target=all|a,b` against the known modules; throws naming an unknown target. */
export function selectTargets<M extends Pick<ServiceModule, 'name'>>(all: readonly M[], spec: string): M[] {
  const names = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0)
    throw new Error('no target given: use --target=all or --target=<service>[,<service>]');
  if (names.includes('all')) return [...all];
  return names.map((n) => {
    const m = all.find((x) => x.name === n);
    if (!m)
      throw new Error(
        `unknown target "${n}"; known: all, ${all.map((x) => x.name).join(', ') || '(none yet)'}`,
      );
    return m;
  });
}
