import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TABLE_END, TABLE_START, configTable } from './config-doc';
import { SERVICES } from './targets';

const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');

test('README shows the two commands', () => {
  assert.ok(readme.includes('npm ci && npm start'));
  assert.ok(readme.includes('npm ci && npm test'));
});

test('README configuration table matches the config specs (regenerate: npx switchboard config --markdown)', () => {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  assert.ok(start >= 0 && end > start, 'README lacks the config-table markers');
  // Compared cell by cell: prettier pads the table in the README.
  const cells = (t: string) =>
    t
      .trim()
      .split('\n')
      .map((l) => l.replace(/\s*\|\s*/g, '|').replace(/\|-+(?=\|)/g, '|-'));
  assert.deepEqual(cells(readme.slice(start + TABLE_START.length, end)), cells(configTable(SERVICES)));
});
