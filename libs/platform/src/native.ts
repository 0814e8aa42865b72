/**
 * Loading a package's N-API addon (one C file built by libs/platform/native/build-addon.mjs
 * from the package's install script): when the built file is missing or older than its
 * source it is built here once (the package's build script, run with this node), and
 * when that is not possible either the caller gets an Error and runs its JavaScript path.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';

export interface AddonSpec {
  /** The built addon (build/NAME.node). */
  path: string;
  /** Its C source and the package's build script (node SCRIPT builds `path`); without them it is only loaded. */
  build?: { source: string; script: string };
  /** A function the addon must export (tells a wrong or stale file apart). */
  exportName: string;
}

const loaded = new Map<string, unknown>();
const require = createRequire(import.meta.url);

/** The addon, building it first when missing or stale; an Error when it cannot be had (remembered per path). */
export function loadAddon<T>(spec: AddonSpec): T | Error {
  if (loaded.has(spec.path)) return loaded.get(spec.path) as T | Error;
  let result: T | Error;
  try {
    const b = spec.build;
    if (b && (!existsSync(spec.path) || statSync(b.source).mtimeMs > statSync(spec.path).mtimeMs)) {
      const r = spawnSync(process.execPath, [b.script], { encoding: 'utf8', timeout: 60_000 });
      if (!existsSync(spec.path))
        throw new Error(`${spec.path} not built: ${r.stderr.trim() || r.error?.message}`);
    }
    const mod = require(spec.path) as Record<string, unknown>;
    if (typeof mod[spec.exportName] !== 'function') throw new Error(`${spec.path} is not the expected addon`);
    result = mod as T;
  } catch (e) {
    result = e instanceof Error ? e : new Error(String(e));
  }
  loaded.set(spec.path, result);
  return result;
}
