import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DICTIONARY_DIR,
  Dictionary,
  DictionaryError,
  decodePacket,
  encodeRequest,
  RadiusCode,
} from './index';

const dict = Dictionary.standard();

/** name -> code of the standard (non-vendor) ATTRIBUTE lines of a FreeRADIUS dictionary file. */
function freeradiusCodes(file: string): Map<string, number> {
  const out = new Map<string, number>();
  let inVendor = false;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (f[0] === 'BEGIN-VENDOR') inVendor = true;
    if (f[0] === 'END-VENDOR') inVendor = false;
    if (f[0] === 'ATTRIBUTE' && !inVendor) out.set(f[1].toLowerCase(), Number(f[2]));
  }
  return out;
}

describe('the shipped dictionary', () => {
  test('agrees with FreeRADIUS (Debian) on every standard attribute both define', () => {
    const theirs = new Map<string, number>();
    for (const f of ['rfc2865', 'rfc2866', 'rfc2869', 'rfc3162', 'openser']) {
      for (const [n, c] of freeradiusCodes(`/usr/share/freeradius/dictionary.${f}`)) theirs.set(n, c);
    }
    const ours = freeradiusCodes(join(DICTIONARY_DIR, 'dictionary.rfc'));
    for (const [n, c] of freeradiusCodes(join(DICTIONARY_DIR, 'dictionary.sip'))) ours.set(n, c);
    let compared = 0;
    for (const [name, code] of ours) {
      if (!theirs.has(name)) continue;
      assert.equal(code, theirs.get(name), name);
      compared++;
    }
    assert.ok(compared >= 40, `compared only ${compared}`);
  });

  test('has the SIP accounting attributes at the Kamailio/FreeRADIUS numbers', () => {
    const want: Record<string, number> = {
      'Sip-Method': 101,
      'Sip-Response-Code': 102,
      'Sip-Cseq': 103,
      'Sip-To-Tag': 104,
      'Sip-From-Tag': 105,
      'Sip-Translated-Request-URI': 107,
      'Acct-Session-Id': 44,
      'Event-Timestamp': 55,
      'Acct-Status-Type': 40,
    };
    for (const [n, c] of Object.entries(want)) assert.equal(dict.attribute(n)?.code, c, n);
    assert.equal(dict.attribute('acct-status-type')!.values.get('Failed'), 15);
    assert.equal(dict.attribute('Service-Type')!.values.get('Sip-Session'), 15);
    // Kamailio's method flags (dictionary.kamailio)
    assert.equal(dict.attribute('Sip-Method')!.values.get('BYE'), 8);
  });

  test('Switchboard vendor attributes sit under the placeholder enterprise number', () => {
    assert.equal(dict.vendorId('Switchboard'), 32473);
    const a = dict.attribute('Switchboard-Account')!;
    assert.equal(a.vendor, 32473);
    assert.equal(a.code, 1);
    assert.equal(dict.attribute('Switchboard-Gateway')!.code, 2);
    assert.equal(dict.attribute('Switchboard-Source-Address')!.code, 3);
  });
});

describe('typed values', () => {
  test('encode then decode by name: string, integer enum, ipaddr, date, vendor, ipv6', () => {
    const attrs = dict.encodeAll([
      ['User-Name', 'alice@example.com'],
      ['Acct-Status-Type', 'Stop'],
      ['Sip-Response-Code', 200],
      ['NAS-IP-Address', '192.0.2.7'],
      ['Event-Timestamp', 1700000000],
      ['Switchboard-Account', 'acct-42'],
      ['NAS-IPv6-Address', '2001:db8::1'],
      ['Sip-Method', 'INVITE'],
    ]);
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 1,
      attributes: attrs,
      secret: 's',
    });
    const decoded = dict.decodeAll(decodePacket(buf).attributes);
    assert.deepEqual(decoded, {
      'User-Name': 'alice@example.com',
      'Acct-Status-Type': 'Stop',
      'Sip-Response-Code': 200,
      'NAS-IP-Address': '192.0.2.7',
      'Event-Timestamp': 1700000000,
      'Switchboard-Account': 'acct-42',
      'NAS-IPv6-Address': '2001:db8:0:0:0:0:0:1',
      'Sip-Method': 'INVITE',
    });
  });

  test('an integer with no VALUE name stays a number; unknown attributes are named by number', () => {
    const d = dict.decodeAll([
      { type: 40, value: Buffer.from([0, 0, 0, 99]) },
      { type: 200, value: Buffer.from('x') },
      { type: 9, vendor: 77, value: Buffer.from('y') },
    ]);
    assert.deepEqual(d, {
      'Acct-Status-Type': 99,
      'Attr-200': Buffer.from('x'),
      'Vendor-77-Attr-9': Buffer.from('y'),
    });
  });

  test('a repeated attribute decodes to an array', () => {
    const d = dict.decodeAll(
      dict.encodeAll([
        ['Class', Buffer.from('a')],
        ['Class', Buffer.from('b')],
      ]),
    );
    assert.deepEqual(d.Class, [Buffer.from('a'), Buffer.from('b')]);
  });

  test('bad values are refused', () => {
    assert.throws(() => dict.encode('Acct-Status-Type', 'Sideways'), DictionaryError);
    assert.throws(() => dict.encode('NAS-IP-Address', '300.1.1.1'), DictionaryError);
    assert.throws(() => dict.encode('No-Such-Thing', 'x'), /unknown attribute/);
  });
});

describe('parser', () => {
  test('VENDOR blocks, $INCLUDE and the old vendor column', () => {
    const files: Record<string, string> = {
      '/d/main': 'VENDOR Acme 9\n$INCLUDE sub\nATTRIBUTE Acme-Old 5 integer Acme\n',
      '/d/sub':
        'BEGIN-VENDOR Acme\nATTRIBUTE Acme-Thing 1 string # comment\nEND-VENDOR Acme\nVALUE Acme-Thing-None x 1\n',
    };
    assert.throws(
      () => Dictionary.parse(files['/d/main'], '/d', (p) => files[p]),
      /unknown attribute Acme-Thing-None/,
    );
    files['/d/sub'] = files['/d/sub'].replace('VALUE Acme-Thing-None x 1\n', '');
    const d = Dictionary.parse(files['/d/main'], '/d', (p) => files[p]);
    assert.equal(d.attribute('Acme-Thing')!.vendor, 9);
    assert.equal(d.attribute('Acme-Old')!.vendor, 9);
    assert.equal(d.byType(5, 9)!.name, 'Acme-Old');
  });

  test('an attribute defined twice differently is an error; a bad line names its place', () => {
    assert.throws(() => Dictionary.parse('ATTRIBUTE A 1 string\nATTRIBUTE A 2 string\n'), /defined twice/);
    assert.throws(
      () => Dictionary.parse('ATTRIBUTE A 1 string\nATTRIBUTE B x string\n'),
      /<text>:2: bad ATTRIBUTE/,
    );
    assert.throws(() => Dictionary.parse('FROB A\n'), /unknown keyword FROB/);
  });
});
