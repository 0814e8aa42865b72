// Builds an N-API addon from one C file with the C compiler and Node's own headers:
// no node-gyp, no network. Used by the install scripts of the packages that carry one
// (services/media-proxy/native, libs/sip/native) and on demand by loadAddon
// (libs/platform/src/native.ts). Never throws: without a compiler or headers it says
// why and returns false, and the caller runs its JavaScript path.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';

/** Where node_api.h is: next to this node binary, or the distribution's. */
function headers() {
  const candidates = [
    `${dirname(process.execPath)}/../include/node`,
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find((d) => existsSync(`${d}/node_api.h`));
}

/**
 * Compiles `source` into `out` (Linux only). `name` prefixes the messages, `fallback`
 * says what runs instead when it cannot be built.
 */
export function buildAddon({ name, source, out, fallback, quiet = false }) {
  const say = (m) => quiet || console.error(`${name}: ${m}`);
  if (process.platform !== 'linux')
    return (say(`not built (${process.platform}: Linux only); ${fallback}`), false);
  const inc = headers();
  if (!inc) return (say(`not built: node_api.h not found (install Node headers); ${fallback}`), false);
  mkdirSync(dirname(out), { recursive: true });
  // build to a private name, then rename: concurrent builds (test processes) never see half a file
  const tmp = `${out}.${process.pid}.tmp`;
  const args = [
    '-O2',
    '-Wall',
    '-shared',
    '-fPIC',
    '-pthread',
    `-I${inc}`,
    '-DNAPI_VERSION=8',
    '-o',
    tmp,
    source,
    '-lm',
  ];
  const failures = [];
  for (const cc of ['cc', 'gcc']) {
    const r = spawnSync(cc, args, { encoding: 'utf8' });
    if (r.status === 0) {
      renameSync(tmp, out);
      say(`built ${out}`);
      return true;
    }
    failures.push(`${cc}: ${r.error?.message ?? r.stderr.trim()}`);
    if (!r.error) break; // the compiler ran and failed: another one would fail the same way
  }
  rmSync(tmp, { force: true });
  say(`not built (${failures.join('; ')}); ${fallback}`);
  return false;
}
