#!/usr/bin/env node
// Runs every *.spec.ts in the tree with Node's test runner (one runner for the
// whole tree). Arguments narrow the set: `npm test -- libs/sip` runs only the
// spec files whose path contains "libs/sip".
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const SKIP = new Set(['node_modules', '.git', 'data', '.nx', 'dist']);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.spec.ts')) out.push(relative(root, p));
  }
  return out;
}

const filters = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const flags = process.argv.slice(2).filter((a) => a.startsWith('-'));
const files = walk(root, [])
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error('no spec files matched', filters.join(' '));
  process.exit(1);
}
// Real infrastructure for the integration tests: PostgreSQL and a Kafka
// broker. Both scripts are idempotent (quick when already up). A failure
// stops the run: tests never skip for want of a service.
// SWITCHBOARD_TEST_NO_INFRA=1 leaves them out (e.g. infra run elsewhere).
if (process.env.SWITCHBOARD_TEST_NO_INFRA !== '1') {
  for (const [script, ...args] of [['scripts/infra/postgres'], ['scripts/infra/kafka', 'start']]) {
    const what = [script, ...args].join(' ');
    const s = spawnSync('bash', [script, ...args], { stdio: 'inherit', cwd: root });
    if (s.status !== 0) {
      console.error(
        `test infrastructure missing: '${what}' failed (${s.error?.message ?? `exit ${s.status ?? s.signal}`}); ` +
          'fix it and rerun, or set SWITCHBOARD_TEST_NO_INFRA=1 to run without PostgreSQL and Kafka',
      );
      process.exit(1);
    }
  }
}

const reporter = 'spec';
// --test-force-exit (Node 20.14+; package.json allows 20.11): a spec file's process ends once its
// tests have, even when a failed test left a handle open (a process it started, a socket);
// without it the whole run waited forever.
const [major, minor] = process.versions.node.split('.').map(Number);
const forceExit = major > 20 || (major === 20 && minor >= 14) ? ['--test-force-exit'] : [];
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    // with --test-force-exit, no result may be left queued on a spec process's stdout (see the file)
    '--import',
    './scripts/test-stdout.mjs',
    '--test',
    ...forceExit,
    `--test-reporter=${reporter}`,
    ...flags,
    ...files,
  ],
  {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: process.env.SWITCHBOARD_LOG_LEVEL ?? 'silent' },
  },
);
process.exit(r.status ?? 1);
