// RFC 3665 §2: registration flows against the platform as `npm start` runs it, one SIPp UA per flow.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { SipResponse } from '@switchboard/sip';
import { startPlatform, type RunningPlatform } from '../lib/platform';
import { explain, freePort, ladder, pick, ua } from './lib';

const BOB = { username: 'bob', password: 'b0b-Reg1stration' };

describe('RFC 3665 §2 registration', () => {
  let p: RunningPlatform;
  let proxy: { host: string; port: number };
  let firstContact = '';
  let secondContact = '';
  before(async () => {
    p = await startPlatform({ subscribers: [BOB], targets: ['registrar', 'sip-proxy'] });
    proxy = p.sip.udp;
  });
  after(() => p?.stop());

  const bob = (
    scenario: string,
    keys: Record<string, string | number> = {},
    password = BOB.password,
    port?: number,
  ) =>
    ua(scenario, {
      remote: proxy,
      port,
      keys: { user: BOB.username, dom: p.domain, ...keys },
      args: ['-au', BOB.username, '-ap', password],
    }).then((u) => u.done.then((run) => ({ ...run, port: u.port })));

  /** The proxy's own Via handling (RFC 3581): received and rport on every response. */
  const assertViaReflected = (res: SipResponse, port: number) => {
    assert.equal(res.vias.length, 1);
    assert.equal(res.via.received, '127.0.0.1');
    assert.equal(res.via.rport, port);
  };

  test('2.1 successful new registration: 401 with a digest challenge, then 200 with the binding', async () => {
    const run = await bob('2.1-bob.xml', { expires: 3600 });
    assert.deepEqual(ladder(run.log), ['> REGISTER', '< 401', '> REGISTER', '< 200'], explain(run));
    assert.equal(run.result.successful, 1, explain(run));

    const challenge = pick<SipResponse>(run.log, '< 401');
    assertViaReflected(challenge, run.port);
    assert.ok(challenge.toTag, '401 carries a To tag');
    const www = challenge.getHeaders('WWW-Authenticate');
    assert.ok(www.length >= 1);
    for (const w of www) {
      assert.match(w, /^Digest /);
      assert.match(w, /realm="example\.com"/);
      assert.match(w, /nonce="[^"]+"/);
      assert.match(w, /qop="auth"/);
    }
    assert.equal(challenge.getHeader('Proxy-Authenticate'), undefined);

    const authorized = pick(run.log, '> REGISTER', 1);
    assert.match(authorized.getHeader('Authorization') ?? '', /username="bob".*response="/);

    const ok = pick<SipResponse>(run.log, '< 200');
    assertViaReflected(ok, run.port);
    assert.equal(ok.cseq.seq, 2);
    firstContact = `sip:bob@127.0.0.1:${run.port}`;
    const contacts = ok.getHeaderValues('Contact');
    assert.equal(contacts.length, 1, contacts.join(' | '));
    assert.match(contacts[0], new RegExp(`^<${firstContact}>;expires=(3600|359\\d)$`));
    assert.ok(ok.getHeader('Date'), '200 carries Date (RFC 3261 §10.3 step 8)');
  });

  test('2.2 update of contact list: a second contact is added, the 200 lists both', async () => {
    assert.ok(firstContact, '2.1 registered the first contact');
    secondContact = `sip:bob@127.0.0.1:${await freePort()};transport=udp`;
    const run = await bob('2.2-bob.xml', { contact: secondContact, expires: 1800 });
    assert.deepEqual(ladder(run.log), ['> REGISTER', '< 401', '> REGISTER', '< 200'], explain(run));
    const ok = pick<SipResponse>(run.log, '< 200');
    assertViaReflected(ok, run.port);
    const contacts = ok.getHeaderValues('Contact').sort();
    assert.equal(contacts.length, 2, contacts.join(' | '));
    assert.ok(
      contacts.some((c) => c.startsWith(`<${firstContact}>;expires=`)),
      contacts.join(' | '),
    );
    assert.ok(
      contacts.some((c) => new RegExp(`^<${secondContact}>;expires=(1800|179\\d)$`).test(c)),
      contacts.join(' | '),
    );
  });

  test('2.3 request for current contact list: REGISTER without Contact changes nothing and lists the bindings', async () => {
    const run = await bob('2.3-bob.xml');
    assert.deepEqual(ladder(run.log), ['> REGISTER', '< 401', '> REGISTER', '< 200'], explain(run));
    assert.equal(pick(run.log, '> REGISTER', 1).getHeader('Contact'), undefined);
    const contacts = pick<SipResponse>(run.log, '< 200').getHeaderValues('Contact');
    assert.equal(contacts.length, 2, contacts.join(' | '));
    assert.ok(contacts.some((c) => c.startsWith(`<${firstContact}>;expires=`)));
    assert.ok(contacts.some((c) => c.startsWith(`<${secondContact}>;expires=`)));
  });

  test('2.4 cancellation of registration: Contact * with Expires 0 removes every binding', async () => {
    const run = await bob('2.4-bob.xml');
    assert.deepEqual(ladder(run.log), ['> REGISTER', '< 401', '> REGISTER', '< 200'], explain(run));
    assert.equal(pick(run.log, '> REGISTER', 1).getHeader('Contact'), '*');
    const ok = pick<SipResponse>(run.log, '< 200');
    assertViaReflected(ok, run.port);
    assert.deepEqual(ok.getHeaderValues('Contact'), []);
    // And a query afterwards finds nothing.
    const query = await bob('2.3-bob.xml');
    assert.deepEqual(pick<SipResponse>(query.log, '< 200').getHeaderValues('Contact'), [], explain(query));
  });

  test('2.5 unsuccessful registration: a wrong password gets a fresh 401, never a 200', async () => {
    const run = await bob('2.5-bob.xml', { expires: 3600 }, 'not-the-password');
    assert.deepEqual(ladder(run.log), ['> REGISTER', '< 401', '> REGISTER', '< 401'], explain(run));
    assert.equal(run.result.successful, 1, explain(run));
    const [first, second] = [pick<SipResponse>(run.log, '< 401'), pick<SipResponse>(run.log, '< 401', 1)];
    assertViaReflected(second, run.port);
    assert.match(second.getHeader('WWW-Authenticate') ?? '', /^Digest realm="example\.com"/);
    const nonce = (r: SipResponse) => /nonce="([^"]+)"/.exec(r.getHeader('WWW-Authenticate') ?? '')?.[1];
    assert.notEqual(nonce(second), nonce(first), 'a fresh nonce after the failure');
    // Nothing was bound.
    const query = await bob('2.3-bob.xml');
    assert.deepEqual(pick<SipResponse>(query.log, '< 200').getHeaderValues('Contact'), [], explain(query));
  });
});
