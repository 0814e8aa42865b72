#!/usr/bin/env node
// Builds the native relay engine (relay.c, an N-API addon) into build/relay.node
// with the C compiler and Node's own headers: no node-gyp, no network.
// Runs as the media-proxy package's install script (npm ci) and on demand from
// src/native.ts. Never fails the install: without a compiler or headers it says
// why and exits 0, and the service runs the JS relay.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

const here = import.meta.dirname;
const out = join(here, 'build', 'relay.node');

/** Where node_api.h is: next to this node binary, or the distribution's. */
function headers() {
  const candidates = [
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find((d) => existsSync(join(d, 'node_api.h')));
}

export function build({ quiet = false } = {}) {
  const say = (m) => quiet || console.error(`media-proxy native: ${m}`);
  if (process.platform !== 'linux')
    return (say(`not built (${process.platform}: the engine is Linux-only)`), false);
  const inc = headers();
  if (!inc)
    return (say('not built: node_api.h not found (install Node headers); the JS relay will run'), false);
  mkdirSync(join(here, 'build'), { recursive: true });
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
    join(here, 'relay.c'),
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
  say(`not built (${failures.join('; ')}); the JS relay will run`);
  return false;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) build();
