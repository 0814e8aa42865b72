import { Worker } from 'node:worker_threads';

/**
 * Starts the module at `moduleUrl` (its own `import.meta.url`) on a new thread with
 * `workerData`. Run from TypeScript sources (tsx), the thread needs tsx's loader first:
 * Node 20 does not carry `--import tsx` hooks into worker threads.
 */
export function startModuleWorker(moduleUrl: string, workerData: unknown): Worker {
  if (!moduleUrl.endsWith('.ts')) return new Worker(new URL(moduleUrl), { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
