import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NaptrRecord } from 'node:dns';
import { applyNaptrRegexp, enumDomain, enumLookup } from './enum';

const rec = (
  order: number,
  preference: number,
  service: string,
  regexp: string,
  flags = 'u',
): NaptrRecord => ({
  order,
  preference,
  service,
  regexp,
  flags,
  replacement: '',
});

test('the ENUM domain of a number is its digits reversed under the suffix', () => {
  assert.equal(enumDomain('4930123', 'e164.arpa'), '3.2.1.0.3.9.4.e164.arpa');
});

test('NAPTR substitution expressions (RFC 3402), back-references and flags', () => {
  assert.equal(applyNaptrRegexp('!^.*$!sip:info@example.com!', '+4930123'), 'sip:info@example.com');
  assert.equal(applyNaptrRegexp('!^\\+49(.*)$!sip:\\1@de.example!', '+4930123'), 'sip:30123@de.example');
  assert.equal(applyNaptrRegexp('!^\\+44.*$!sip:uk@example!', '+4930123'), undefined);
  assert.equal(applyNaptrRegexp('!bad', '+1'), undefined);
});

test('lookup: E2U+sip records in order and preference, others and misses ignored', async () => {
  const zone: Record<string, NaptrRecord[]> = {
    '3.2.1.0.3.9.4.e164.arpa': [
      rec(100, 10, 'E2U+mailto', '!^.*$!mailto:a@example.com!'),
      rec(100, 20, 'E2U+sip', '!^.*$!sip:second@example.com!'),
      rec(100, 10, 'E2U+sip', '!^.*$!sip:first@example.com!'),
      rec(50, 10, 'E2U+sip', '!^\\+44.*$!sip:never@example.com!'),
    ],
  };
  const dns = {
    resolveNaptr: async (name: string) => {
      const r = zone[name];
      if (!r) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      return r;
    },
  };
  assert.equal(await enumLookup('4930123', 'e164.arpa', dns), 'sip:first@example.com');
  assert.equal(await enumLookup('4930999', 'e164.arpa', dns), undefined);
});
