import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from './ports';

test('freePort never gives the same port twice in a process, and gives blocks of four in 10000-15999', async () => {
  // 200 random picks from 1,500 blocks would repeat one almost surely (birthday bound) if nothing prevented it.
  const ports: number[] = [];
  for (let i = 0; i < 200; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length);
  for (const p of ports) assert.ok(p % 4 === 0 && p >= 10000 && p + 3 <= 15999, String(p));
});
