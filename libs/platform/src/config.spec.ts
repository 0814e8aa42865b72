import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfigError,
  bool,
  hostPort,
  int,
  list,
  loadConfig,
  oneOf,
  optional,
  platformSpec,
  port,
  str,
} from './config';

const spec = {
  name: str('SWITCHBOARD_NAME', 'sb', 'a name'),
  port: port('SWITCHBOARD_SIP_PORT', 5060, 'SIP port'),
  count: int('SWITCHBOARD_COUNT', 3, 'a count', 1, 10),
  on: bool('SWITCHBOARD_ON', false, 'a switch'),
  mode: oneOf('SWITCHBOARD_MODE', 'proxy', ['proxy', 'redirect'] as const, 'mode'),
  hosts: list('SWITCHBOARD_HOSTS', 'a,b', 'hosts'),
  addr: hostPort('SWITCHBOARD_ADDR', '127.0.0.1:1813', 'addr'),
  url: optional('DATABASE_URL', 'db'),
};

test('defaults apply when variables are unset', () => {
  const c = loadConfig(spec, {});
  assert.deepEqual(
    { ...c },
    {
      name: 'sb',
      port: 5060,
      count: 3,
      on: false,
      mode: 'proxy',
      hosts: ['a', 'b'],
      addr: { host: '127.0.0.1', port: 1813 },
      url: undefined,
    },
  );
});

test('values are parsed and typed', () => {
  const c = loadConfig(spec, {
    SWITCHBOARD_SIP_PORT: '5070',
    SWITCHBOARD_ON: 'yes',
    SWITCHBOARD_MODE: 'redirect',
    SWITCHBOARD_HOSTS: ' x, ,y ',
    SWITCHBOARD_ADDR: '[::1]:5060',
    DATABASE_URL: 'postgres://h/db',
  });
  assert.equal(c.port, 5070);
  assert.equal(c.on, true);
  assert.equal(c.mode, 'redirect');
  assert.deepEqual(c.hosts, ['x', 'y']);
  assert.deepEqual(c.addr, { host: '::1', port: 5060 });
  assert.equal(c.url, 'postgres://h/db');
});

for (const [variable, value] of [
  ['SWITCHBOARD_SIP_PORT', '70000'],
  ['SWITCHBOARD_SIP_PORT', '50x'],
  ['SWITCHBOARD_COUNT', '0'],
  ['SWITCHBOARD_ON', 'maybe'],
  ['SWITCHBOARD_MODE', 'b2bua'],
  ['SWITCHBOARD_ADDR', 'nohost'],
]) {
  test(`a bad ${variable}=${value} stops start-up naming the variable`, () => {
    assert.throws(
      () => loadConfig(spec, { [variable]: value }),
      (e: unknown) =>
        e instanceof ConfigError && e.variable === variable && e.message.startsWith(`${variable}:`),
    );
  });
}

test('platform settings have laptop defaults: embedded storage and events', () => {
  const c = loadConfig(platformSpec, {});
  assert.equal(c.databaseUrl, undefined);
  assert.equal(c.kafkaBrokers, undefined);
  assert.equal(c.dataDir, './data');
  assert.deepEqual(loadConfig(platformSpec, { KAFKA_BROKERS: 'k1:9092,k2:9092' }).kafkaBrokers, [
    'k1:9092',
    'k2:9092',
  ]);
});

test('every variable name has the SWITCHBOARD_ prefix except the two standard ones', () => {
  for (const s of Object.values(platformSpec)) {
    assert.ok(s.env.startsWith('SWITCHBOARD_') || ['DATABASE_URL', 'KAFKA_BROKERS'].includes(s.env), s.env);
  }
});
