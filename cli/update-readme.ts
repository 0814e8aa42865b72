// Rewrites the README's configuration table from the config specs: npm run docs:config
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TABLE_END, TABLE_START, configTable } from './config-doc';
import { SERVICES } from './targets';

const path = join(import.meta.dirname, '..', 'README.md');
const readme = readFileSync(path, 'utf8');
const start = readme.indexOf(TABLE_START);
const end = readme.indexOf(TABLE_END);
if (start < 0 || end < start) throw new Error('README.md lacks the config-table markers');
writeFileSync(
  path,
  readme.slice(0, start + TABLE_START.length) + '\n' + configTable(SERVICES) + '\n' + readme.slice(end),
);
execFileSync(
  process.execPath,
  [join(import.meta.dirname, '..', 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--write', path],
  {
    stdio: 'ignore',
  },
);
console.log('README.md configuration table updated');
