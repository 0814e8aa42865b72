import { test } from 'node:test';
import assert from 'node:assert/strict';
import { orderByDependencies, selectTargets } from './service';

const mods = [
  { name: 'sip-proxy', dependsOn: ['registrar', 'rating'] },
  { name: 'registrar' },
  { name: 'rating', dependsOn: ['accounting'] },
  { name: 'accounting' },
];

test('dependencies start first; missing ones are ignored', () => {
  const order = orderByDependencies(mods).map((m) => m.name);
  assert.ok(order.indexOf('registrar') < order.indexOf('sip-proxy'));
  assert.ok(order.indexOf('accounting') < order.indexOf('rating'));
  assert.ok(order.indexOf('rating') < order.indexOf('sip-proxy'));
  assert.deepEqual(
    orderByDependencies([mods[0], mods[1]]).map((m) => m.name),
    ['registrar', 'sip-proxy'],
  );
});

test('a dependency cycle is an error naming the path', () => {
  assert.throws(
    () =>
      orderByDependencies([
        { name: 'a', dependsOn: ['b'] },
        { name: 'b', dependsOn: ['a'] },
      ]),
    /cycle: a -> b -> a/,
  );
});

test('targets: all, a list, or an error naming the unknown one', () => {
  assert.equal(selectTargets(mods, 'all').length, 4);
  assert.deepEqual(
    selectTargets(mods, 'rating, registrar').map((m) => m.name),
    ['rating', 'registrar'],
  );
  assert.throws(() => selectTargets(mods, 'registrar,pbx'), /unknown target "pbx"/);
  assert.throws(() => selectTargets(mods, ''), /no target/);
});
