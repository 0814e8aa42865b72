import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The node flags `npm start` runs with: the words between `node` and `bin/switchboard.js` in
 * package.json's start script. The SIP proxy's container sets the same in NODE_OPTIONS
 * (deploy/compose.spec checks it) and bench/proxy starts Switchboard with them.
 */
export function startNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf('bin/switchboard.js'));
}
