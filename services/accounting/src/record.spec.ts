/** The record built from decoded attributes: fields, attributes as JSON, timestamps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountingFieldsOf, type AttributeValue } from '@switchboard/radius';
import { buildRecord, toJsonAttributes } from './record';

const meta = (ms: number) => ({ id: 'id-1', receivedAt: new Date(ms), client: 'nas' });

test('fields as accountingFieldsOf reads them: the first of a repeated attribute, octets as no value, NAS-IPv6-Address as nasIp', () => {
  const decoded: Record<string, AttributeValue | AttributeValue[]> = {
    'Acct-Status-Type': 'Stop',
    'Acct-Session-Id': ['call-1', 'call-2'],
    'Sip-From-Tag': Buffer.from([1, 2]),
    'Sip-Response-Code': 486,
    'NAS-IPv6-Address': '2001:db8::1',
    'Event-Timestamp': 1_700_000_000,
    'Acct-Delay-Time': 3,
  };
  const r = buildRecord(meta(0), decoded);
  const f = accountingFieldsOf(decoded);
  assert.equal(r.statusType, f.statusType);
  assert.equal(r.sessionId, 'call-1');
  assert.equal(r.fromTag, null);
  assert.equal(r.responseCode, 486);
  assert.equal(r.nasIp, '2001:db8::1');
  assert.equal(r.delayTime, 3);
  assert.equal(r.eventTimestamp, '2023-11-14T22:13:20.000Z');
  assert.equal(r.method, null);
  // What the fields carry whole is left out; a repeated attribute and octets stay.
  assert.deepEqual(r.attributes, {
    'Acct-Session-Id': ['call-1', 'call-2'],
    'Sip-From-Tag': '0x0102',
  });
  // NAS-IP-Address present: it wins over NAS-IPv6-Address, which stays in attributes.
  const both = buildRecord(meta(0), { ...decoded, 'NAS-IP-Address': '192.0.2.1' });
  assert.equal(both.nasIp, '192.0.2.1');
  assert.equal(both.attributes['NAS-IPv6-Address'], '2001:db8::1');
  assert.equal(both.attributes['NAS-IP-Address'], undefined);
  assert.equal(buildRecord(meta(0), {}).statusType, 'unknown');
});

test('receivedAt and eventTimestamp follow each record (the remembered last one only when the same)', () => {
  const times = [0, 1, 1, 1_700_000_000_123, 1_700_000_000_123, 5];
  for (const ms of times) {
    const r = buildRecord(meta(ms), { 'Event-Timestamp': Math.floor(ms / 1000) });
    assert.equal(r.receivedAt, new Date(ms).toISOString());
    assert.equal(r.eventTimestamp, new Date(Math.floor(ms / 1000) * 1000).toISOString());
  }
});

test('attributes: every attribute no field carries, with its value as decoded', () => {
  const decoded: Record<string, AttributeValue | AttributeValue[]> = {
    'Acct-Status-Type': 'Start',
    'Acct-Session-Id': 'call-1',
    'User-Name': 'alice',
    'Switchboard-Account': 'acct-1',
    // A string where the field wants a number (a VALUE name): the field is null, the attribute stays.
    'Sip-Response-Code': 'OK',
    'Acct-Session-Time': 60,
    'Switchboard-Record-Id': 'proxy-a:1',
    Class: Buffer.from('ab'),
  };
  const r = buildRecord(meta(0), decoded);
  assert.equal(r.userName, 'alice');
  assert.equal(r.account, 'acct-1');
  assert.equal(r.responseCode, null);
  assert.deepEqual(r.attributes, {
    'Sip-Response-Code': 'OK',
    'Acct-Session-Time': 60,
    'Switchboard-Record-Id': 'proxy-a:1',
    Class: '0x6162',
  });
});

test('attributes: text and numbers kept as they are; octets as hex and Message-Authenticator left out in a copy', () => {
  const plain = { 'User-Name': 'alice', 'Acct-Delay-Time': 0 };
  assert.deepEqual(toJsonAttributes(plain), plain);
  const withOctets = {
    'User-Name': 'alice',
    Class: Buffer.from('ab'),
    'Message-Authenticator': Buffer.alloc(16),
  };
  const out = toJsonAttributes(withOctets);
  assert.deepEqual(out, { 'User-Name': 'alice', Class: '0x6162' });
  assert.ok(Buffer.isBuffer(withOctets.Class), 'the decoded attributes are not changed');
  assert.deepEqual(toJsonAttributes({ 'Message-Authenticator': 'x' }), {});
});
