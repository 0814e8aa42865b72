import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process, with default Node metrics and the build info gauge. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'switchboard_build_info',
    help: 'Build information of each service in this process (value 1)',
    labelNames: ['version', 'service'],
    registers: [registry],
  });
  return registry;
}

/** Mark a service as running in this process in switchboard_build_info. */
export function markService(registry: Registry, version: string, service: string): void {
  const g = registry.getSingleMetric('switchboard_build_info') as Gauge<'version' | 'service'> | undefined;
  g?.set({ version, service }, 1);
}
