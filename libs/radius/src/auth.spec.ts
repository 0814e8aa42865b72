import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import {
  RadiusCode,
  accountingRequestAuthenticator,
  decodePacket,
  encodeRequest,
  encodeResponse,
  findMessageAuthenticator,
  responseAuthenticator,
  verifyAccountingRequest,
  verifyMessageAuthenticatedRequest,
  verifyResponse,
} from './index';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('RFC 2865 §7.1 example (secret xyzzy5461)', () => {
  const request =
    hex(`01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce
    31 96 e4 3f 78 2a 0a ee 04 06 c0 a8 01 10 05 06 00 00 00 03`);
  const accept = hex(
    `02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03`,
  );
  const requestAuth = request.subarray(4, 20);

  test('the Access-Accept Response Authenticator is reproduced and verified', () => {
    assert.deepEqual(responseAuthenticator(accept, requestAuth, 'xyzzy5461'), accept.subarray(4, 20));
    assert.ok(verifyResponse(accept, requestAuth, 'xyzzy5461'));
    assert.ok(!verifyResponse(accept, requestAuth, 'xyzzy5462'));
  });

  test('encodeResponse builds the same octets', () => {
    const d = decodePacket(accept);
    const built = encodeResponse({
      code: 2,
      identifier: 0,
      requestAuthenticator: requestAuth,
      attributes: d.attributes,
      secret: 'xyzzy5461',
    });
    assert.deepEqual(built, accept);
  });
});

describe('Accounting-Request (RFC 2866 §3)', () => {
  const attrs = [
    { type: 40, value: Buffer.from([0, 0, 0, 1]) },
    { type: 44, value: Buffer.from('call-1@host') },
  ];

  test('the authenticator is MD5(code id length 0*16 attributes secret)', () => {
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 9,
      attributes: attrs,
      secret: 's3cret',
    });
    const zeroed = Buffer.from(buf);
    zeroed.fill(0, 4, 20);
    const want = createHash('md5').update(zeroed).update('s3cret').digest();
    assert.deepEqual(buf.subarray(4, 20), want);
    assert.deepEqual(accountingRequestAuthenticator(buf, 's3cret'), want);
    assert.ok(verifyAccountingRequest(buf, 's3cret'));
    assert.ok(!verifyAccountingRequest(buf, 'other'));
  });

  test('a changed attribute octet fails verification', () => {
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 9,
      attributes: attrs,
      secret: 's3cret',
    });
    buf[buf.length - 1] ^= 1;
    assert.ok(!verifyAccountingRequest(buf, 's3cret'));
  });

  test('with a Message-Authenticator: HMAC over a zero authenticator, then the MD5 covers it', () => {
    const buf = encodeRequest({
      code: RadiusCode.AccountingRequest,
      identifier: 3,
      attributes: attrs,
      secret: 'k',
      messageAuthenticator: true,
    });
    const at = findMessageAuthenticator(buf);
    assert.ok(at > 0);
    const copy = Buffer.from(buf);
    copy.fill(0, 4, 20);
    copy.fill(0, at, at + 16);
    assert.deepEqual(buf.subarray(at, at + 16), createHmac('md5', 'k').update(copy).digest());
    assert.ok(verifyAccountingRequest(buf, 'k'));
    // A wrong Message-Authenticator with a re-computed (so correct) Request Authenticator still fails.
    const bad = Buffer.from(buf);
    bad[at] ^= 0xff;
    accountingRequestAuthenticator(bad, 'k').copy(bad, 4);
    assert.ok(!verifyAccountingRequest(bad, 'k'));
  });
});

describe('Status-Server (RFC 5997) and replies', () => {
  test('a Status-Server carries a Message-Authenticator over its random authenticator', () => {
    const buf = encodeRequest({ code: RadiusCode.StatusServer, identifier: 1, attributes: [], secret: 'k' });
    assert.equal(buf.length, 38);
    assert.ok(verifyMessageAuthenticatedRequest(buf, 'k'));
    assert.ok(!verifyMessageAuthenticatedRequest(buf, 'x'));
    const withoutMa = encodeRequest({
      code: RadiusCode.AccessRequest,
      identifier: 1,
      attributes: [],
      secret: 'k',
      messageAuthenticator: false,
    });
    assert.ok(!verifyMessageAuthenticatedRequest(withoutMa, 'k'));
  });

  test('a reply with a Message-Authenticator verifies; tampering with it fails', () => {
    const req = encodeRequest({ code: RadiusCode.StatusServer, identifier: 1, attributes: [], secret: 'k' });
    const reqAuth = req.subarray(4, 20);
    const resp = encodeResponse({
      code: RadiusCode.AccountingResponse,
      identifier: 1,
      requestAuthenticator: reqAuth,
      secret: 'k',
      messageAuthenticator: true,
    });
    assert.ok(verifyResponse(resp, reqAuth, 'k'));
    const at = findMessageAuthenticator(resp);
    const bad = Buffer.from(resp);
    bad[at] ^= 1;
    responseAuthenticator(bad, reqAuth, 'k').copy(bad, 4);
    assert.ok(!verifyResponse(bad, reqAuth, 'k'));
    assert.ok(!verifyResponse(resp, Buffer.alloc(16), 'k'));
  });
});
