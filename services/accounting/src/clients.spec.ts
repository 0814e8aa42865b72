import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientTable, parseCidr, parseClientsSetting } from './clients';

describe('RADIUS clients', () => {
  test('the setting parses CIDR=secret pairs, naming each client by its CIDR', () => {
    assert.deepEqual(parseClientsSetting('127.0.0.1/32=secret, 10.0.0.0/8=o=ther,,'), [
      { name: '127.0.0.1/32', cidr: '127.0.0.1/32', secret: 'secret' },
      { name: '10.0.0.0/8', cidr: '10.0.0.0/8', secret: 'o=ther' },
    ]);
    assert.deepEqual(parseClientsSetting(''), []);
    assert.throws(() => parseClientsSetting('10.0.0.0/8'), /CIDR=secret/);
    assert.throws(() => parseClientsSetting('10.0.0.0/33=x'), /prefix/);
    assert.throws(() => parseClientsSetting('example.com=x'), /bad address/);
  });

  test('a bare address is a host route', () => {
    assert.equal(parseCidr('192.0.2.1').prefix, 32);
    assert.equal(parseCidr('2001:db8::1').prefix, 128);
  });

  test('the most specific client wins; IPv4-mapped IPv6 sources match IPv4 clients', () => {
    const t = new ClientTable([
      { name: 'wide', cidr: '10.0.0.0/8', secret: 'a' },
      { name: 'narrow', cidr: '10.1.2.0/24', secret: 'b' },
      { name: 'v6', cidr: '2001:db8::/32', secret: 'c' },
    ]);
    assert.equal(t.match('10.1.2.3')?.name, 'narrow');
    assert.equal(t.match('10.9.9.9')?.name, 'wide');
    assert.equal(t.match('::ffff:10.1.2.3')?.name, 'narrow');
    assert.equal(t.match('2001:db8:1::5')?.name, 'v6');
    assert.equal(t.match('192.0.2.1'), undefined);
    assert.equal(t.match('192.0.2.1'), undefined); // from the cache
  });
});
