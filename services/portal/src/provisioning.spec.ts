/**
 * Phone auto-provisioning over HTTP: each vendor's file by MAC, authenticated
 * with the device's password, rendered from the template files; unknown MACs
 * are 404; Linphone gets HA1 only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ha1 } from '@switchboard/sip';
import { parseProvisioningFile, render } from './provisioning';
import { startTestPortal, type TestPortal } from './test-support';

describe('templates', () => {
  test('values are XML-escaped in XML templates and kept to one line in key = value files; unknown names fail', () => {
    assert.equal(
      render('<a b="{{x}}">{{ x }}</a>', { x: `<&"'>` }),
      '<a b="&lt;&amp;&quot;&apos;&gt;">&lt;&amp;&quot;&apos;&gt;</a>',
    );
    assert.equal(render('k = {{x}}\n', { x: 'a\nb=c' }), 'k = ab=c\n');
    assert.throws(() => render('{{nope}}', {}), /unknown variable \{\{nope\}\}/);
  });

  test('file names map to vendors and MACs', () => {
    assert.deepEqual(parseProvisioningFile('001565AABBCC.cfg'), {
      vendors: ['yealink', 'polycom'],
      mac: '001565aabbcc',
    });
    assert.deepEqual(parseProvisioningFile('cfg000b82aabbcc.xml'), {
      vendors: ['grandstream'],
      mac: '000b82aabbcc',
    });
    assert.deepEqual(parseProvisioningFile('spa001122334455.xml'), {
      vendors: ['cisco-spa'],
      mac: '001122334455',
    });
    assert.deepEqual(parseProvisioningFile('linphone-0a0b0c0d0e0f.xml'), {
      vendors: ['linphone'],
      mac: '0a0b0c0d0e0f',
    });
    assert.deepEqual(parseProvisioningFile('000000000000.cfg'), { master: true });
    assert.equal(parseProvisioningFile('../etc/passwd'), undefined);
  });
});

describe('over HTTP', () => {
  let p: TestPortal;
  before(async () => {
    p = await startTestPortal({
      SWITCHBOARD_PORTAL_SECRET_KEY: 'ab'.repeat(32),
      SWITCHBOARD_PORTAL_SIP_PROXY: 'sip.example.com:5070',
    });
  });
  after(async () => {
    await p?.stop();
  });

  const fetchAs = (url: string, auth?: string) =>
    fetch(url, { headers: auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {} });

  test('each vendor fetches its own file with its device password; others get 401, unknown MACs 404', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', {
      username: 'alice',
      password: 'pa&ss<word>',
      displayName: 'Alice',
    });
    const files: Record<string, { mac: string; expect: RegExp[] }> = {
      yealink: {
        mac: '00:15:65:aa:bb:01',
        expect: [/^account\.1\.password = pa&ss<word>$/m, /sip_server\.1\.address = sip\.example\.com$/m],
      },
      polycom: {
        mac: '00-04-F2-AA-BB-02',
        expect: [/reg\.1\.auth\.password="pa&amp;ss&lt;word&gt;"/, /reg\.1\.server\.1\.port="5070"/],
      },
      grandstream: {
        mac: '000b82aabb03',
        expect: [/<P34>pa&amp;ss&lt;word&gt;<\/P34>/, /<P47>sip\.example\.com:5070<\/P47>/],
      },
      'cisco-spa': {
        mac: '00:11:22:aa:bb:04',
        expect: [/<Password_1_>pa&amp;ss&lt;word&gt;<\/Password_1_>/, /<User_ID_1_>alice</],
      },
    };
    for (const [vendor, f] of Object.entries(files)) {
      const d = await p.api('POST', `/api/v1/subscribers/${s.body.id}/devices`, {
        vendor,
        model: 'test',
        mac: f.mac,
      });
      assert.equal(d.status, 201, vendor);
      const url = d.body.provisioningUrl as string;
      const mac = d.body.mac as string;
      assert.match(mac, /^[0-9a-f]{12}$/);
      assert.equal((await fetchAs(url)).status, 401, `${vendor}: no credentials`);
      const wrong = await fetchAs(url, `${mac}:not-it`);
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm=/);
      const ok = await fetchAs(url, `${mac}:${d.body.provisioningPassword}`);
      assert.equal(ok.status, 200, vendor);
      const text = await ok.text();
      for (const re of f.expect) assert.match(text, re, vendor);
      assert.equal((await fetch(d.body.provisioningUrlWithToken)).status, 200, `${vendor}: ?token=`);
    }
    assert.equal(
      (
        await p.api('POST', `/api/v1/subscribers/${s.body.id}/devices`, {
          vendor: 'yealink',
          model: 'x',
          mac: '001565aabb01',
        })
      ).status,
      409,
    );
    const bad = await p.api('POST', `/api/v1/subscribers/${s.body.id}/devices`, {
      vendor: 'yealink',
      model: 'x',
      mac: 'zz',
    });
    assert.equal(bad.body.field, 'mac');

    assert.equal((await fetch(`${p.url}/provisioning/001565ffffff.cfg`)).status, 404);
    assert.equal(
      (await fetch(`${p.url}/provisioning/spa001565aabb01.xml`)).status,
      404,
      'a Yealink MAC asking as a Cisco',
    );
    const master = await fetch(`${p.url}/provisioning/000000000000.cfg`);
    assert.equal(master.status, 200);
    assert.match(await master.text(), /CONFIG_FILES="\[PHONE_MAC_ADDRESS\]\.cfg"/);

    const list = await p.api('GET', `/api/v1/subscribers/${s.body.id}/devices`);
    assert.equal(list.body.items.length, 4);
    assert.ok(list.body.items.every((x: { lastFetchAt: string | null }) => x.lastFetchAt !== null));
    const yl = list.body.items.find((x: { vendor: string }) => x.vendor === 'yealink');
    assert.equal((await p.api('DELETE', `/api/v1/subscribers/${s.body.id}/devices/${yl.id}`)).status, 204);
    assert.equal((await fetch(`${p.url}/provisioning/001565aabb01.cfg`)).status, 404);
  });

  test('Linphone gets the HA1, never the password', async () => {
    const s = await p.api('POST', '/api/v1/subscribers', { username: 'bob', password: 'b0b-secret' });
    const d = await p.api('POST', `/api/v1/subscribers/${s.body.id}/devices`, {
      vendor: 'linphone',
      model: 'linphonec',
      mac: '0a0b0c0d0e0f',
    });
    assert.match(d.body.provisioningUrl, /\/provisioning\/linphone-0a0b0c0d0e0f\.xml$/);
    const r = await fetch(d.body.provisioningUrlWithToken);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/xml/);
    const xml = await r.text();
    assert.ok(
      xml.includes(
        `<entry name="ha1" overwrite="true">${ha1('bob', 'example.com', 'b0b-secret', 'MD5')}</entry>`,
      ),
    );
    assert.ok(!xml.includes('b0b-secret'));
    assert.ok(xml.includes('&lt;sip:bob@example.com&gt;'));
  });
});
