import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Dictionary,
  RadiusCode,
  accountingFieldsOf,
  decodePacket,
  encodeAccountingFields,
  encodeRequest,
  verifyAccountingRequest,
  type AccountingFields,
} from './index';

const dict = Dictionary.standard();

describe('accounting fields', () => {
  test('a Stop with every field goes out as Kamailio attributes and reads back the same', () => {
    const f: AccountingFields = {
      statusType: 'Stop',
      sessionId: 'a84b4c76e66710@pc33.example.com',
      fromTag: '1928301774',
      toTag: 'a6c85cf',
      method: 'BYE',
      responseCode: 200,
      userName: 'alice@example.com',
      callingStationId: 'sip:alice@example.com',
      calledStationId: 'sip:+15551234567@example.com',
      translatedUri: 'sip:+15551234567@gw1.example.net',
      eventTimestamp: 1700000095,
      nasIp: '192.0.2.5',
      delayTime: 0,
      serviceType: 'Sip-Session',
      account: 'acct-42',
      gateway: 'gw1',
      sourceAddress: '192.0.2.10:5060',
      recordId: 'proxy-1:000042',
    };
    const attrs = encodeAccountingFields(f);
    assert.deepEqual(
      attrs.slice(0, 4).map((a) => a.type),
      [40, 6, 102, 101],
    );
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 1,
      attributes: attrs,
      secret: 's',
    });
    assert.ok(verifyAccountingRequest(buf, 's'));
    assert.deepEqual(accountingFieldsOf(dict.decodeAll(decodePacket(buf).attributes)), f);
  });

  test('absent fields send nothing; an IPv6 NAS address goes in NAS-IPv6-Address', () => {
    const attrs = encodeAccountingFields({ statusType: 'Failed', sessionId: 'c1', nasIp: '2001:db8::5' });
    assert.deepEqual(
      attrs.map((a) => a.type),
      [40, 44, 95],
    );
    assert.deepEqual(accountingFieldsOf(dict.decodeAll(attrs)), {
      statusType: 'Failed',
      sessionId: 'c1',
      nasIp: '2001:db8:0:0:0:0:0:5',
    });
  });
});
