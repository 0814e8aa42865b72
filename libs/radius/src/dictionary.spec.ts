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
  RadiusDecodeError,
} from './index';
import fc from 'fast-check';

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

describe('decodePacketAttributes (the server fast path)', () => {
  const same = (buf: Buffer) => {
    let want: unknown;
    let wantErr: unknown;
    try {
      want = dict.decodeAll(decodePacket(buf).attributes);
    } catch (e) {
      wantErr = e;
    }
    if (wantErr) {
      assert.throws(() => dict.decodePacketAttributes(buf), RadiusDecodeError);
      assert.ok(wantErr instanceof RadiusDecodeError);
    } else assert.deepEqual(dict.decodePacketAttributes(buf), want);
  };

  test('reads the accounting attribute set as decodeAll(decodePacket()) does', () => {
    const attrs = dict.encodeAll([
      ['Acct-Status-Type', 'Start'],
      ['Acct-Session-Id', 'call-1@example.com'],
      ['Sip-Method', 'INVITE'],
      ['Sip-Response-Code', 200],
      ['Event-Timestamp', 1700000000],
      ['NAS-IP-Address', '192.0.2.1'],
      ['NAS-IPv6-Address', '2001:db8::1'],
      ['Service-Type', 'Sip-Session'],
      ['Switchboard-Account', 'acct-1'],
      ['Switchboard-Gateway', 'gw1'],
      ['Class', Buffer.from([0, 1, 2])],
      ['User-Name', 'älice'],
      ['User-Name', 'bob'],
      ['User-Name', 'carol'],
    ]);
    attrs.push({ type: 224, value: Buffer.from('x') }, { type: 9, vendor: 99999, value: Buffer.from('y') });
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 1,
      attributes: attrs,
      secret: 's',
    });
    same(buf);
    const d = dict.decodePacketAttributes(buf);
    assert.equal(d['Acct-Status-Type'], 'Start');
    assert.deepEqual(d['User-Name'], ['älice', 'bob', 'carol']);
  });

  test('property: the same answer (or the same RadiusDecodeError) on arbitrary attribute bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, fixLength) => {
        const buf = Buffer.concat([Buffer.from([4, 1, 0, 0]), Buffer.alloc(16), Buffer.from(bytes)]);
        if (fixLength) buf.writeUInt16BE(buf.length, 2);
        else buf.writeUInt16BE(Math.min(4096, 20 + ((bytes[0] ?? 0) << 2)), 2);
        same(buf);
      }),
      { numRuns: 2000 },
    );
  });

  test('property: vendor-specific runs, well formed or not', () => {
    const vsa = fc
      .tuple(
        fc.constantFrom(32473, 0, 9, 12345),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 10 }), fc.boolean())),
      )
      .map(([vendor, subs]) => {
        const parts = subs.map(([t, v, bad]) =>
          Buffer.concat([Buffer.from([t, bad ? v.length : v.length + 2]), Buffer.from(v)]),
        );
        const value = Buffer.concat([Buffer.from([0, 0, 0, 0]), ...parts]).subarray(0, 253);
        value.writeUInt32BE(vendor, 0);
        return Buffer.concat([Buffer.from([26, value.length + 2]), value]);
      });
    fc.assert(
      fc.property(fc.array(vsa, { maxLength: 6 }), (vsas) => {
        const buf = Buffer.concat([Buffer.from([4, 1, 0, 0]), Buffer.alloc(16), ...vsas]);
        buf.writeUInt16BE(Math.min(buf.length, 4096), 2);
        same(buf);
      }),
      { numRuns: 2000 },
    );
  });
});
