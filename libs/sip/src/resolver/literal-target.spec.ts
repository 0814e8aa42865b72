import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isSipUri, parseUri, type SipUri } from '../message';
import { SipResolver, literalTarget, resolveInputFromUri } from './resolver';

const input = (u: SipUri) => resolveInputFromUri(u);

test('an IP literal hop is the target SipResolver gives, without DNS; a name is left to it', async () => {
  const noDns = {
    resolveNaptr: () => Promise.reject(new Error('no DNS expected')),
    resolveSrv: () => Promise.reject(new Error('no DNS expected')),
    resolve4: () => Promise.reject(new Error('no DNS expected')),
    resolve6: () => Promise.reject(new Error('no DNS expected')),
  };
  const resolver = new SipResolver({ dns: noDns as never });
  const literals = [
    'sip:127.0.0.1',
    'sip:user@127.0.0.1:5070',
    'sip:127.0.0.1:5070;transport=TCP;lr',
    'sip:127.0.0.1;transport=tls',
    'sip:127.0.0.1;transport=ws',
    'sip:127.0.0.1;transport=sctp',
    'sips:127.0.0.1',
    'sips:127.0.0.1;transport=tcp',
    'sips:127.0.0.1:5071;transport=ws',
    'sip:[2001:db8::1]',
    'sip:[2001:db8::1]:5062;transport=udp',
    'sip:proxy.example.com;maddr=192.0.2.7',
    'sip:192.0.2.1;maddr=[2001:db8::2];transport=tcp',
  ];
  for (const s of literals) {
    const u = parseUri(s);
    assert.ok(isSipUri(u));
    const [want] = await resolver.resolve(input(u) as never);
    assert.deepEqual(literalTarget(input(u)), want, s);
  }
  for (const s of ['sip:proxy.example.com', 'sip:bob@example.com:5060;transport=udp']) {
    const u = parseUri(s) as SipUri;
    assert.equal(literalTarget(input(u)), undefined, s);
  }
});
