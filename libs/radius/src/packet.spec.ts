import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  ATTR_VENDOR_SPECIFIC,
  RadiusDecodeError,
  decodePacket,
  encodePacket,
  findMessageAuthenticator,
  type Packet,
} from './index';

const auth = Buffer.alloc(16, 7);

describe('packet codec', () => {
  test('header and attributes round trip', () => {
    const p: Packet = {
      code: 4,
      identifier: 200,
      authenticator: auth,
      attributes: [
        { type: 1, value: Buffer.from('alice') },
        { type: 40, value: Buffer.from([0, 0, 0, 1]) },
      ],
    };
    const buf = encodePacket(p);
    assert.equal(buf.length, 20 + 7 + 6);
    assert.equal(buf.readUInt16BE(2), buf.length);
    const d = decodePacket(buf);
    assert.equal(d.code, 4);
    assert.equal(d.identifier, 200);
    assert.deepEqual(d.authenticator, auth);
    assert.deepEqual(d.attributes, p.attributes);
  });

  test('a vendor attribute is wrapped in Vendor-Specific and split out again', () => {
    const buf = encodePacket({
      code: 4,
      identifier: 1,
      authenticator: auth,
      attributes: [{ type: 2, vendor: 32473, value: Buffer.from('gw1') }],
    });
    // 26, len, vendor id (4), vendor type, vendor len, value
    assert.deepEqual([...buf.subarray(20, 28)], [26, 11, 0, 0, 0x7e, 0xd9, 2, 5]);
    assert.deepEqual(decodePacket(buf).attributes, [{ type: 2, vendor: 32473, value: Buffer.from('gw1') }]);
  });

  test('a Vendor-Specific holding two sub-attributes gives both', () => {
    const vsa = Buffer.from([0, 0, 0, 9, 1, 3, 0x41, 2, 4, 0x42, 0x43]);
    const raw = encodePacket({
      code: 4,
      identifier: 1,
      authenticator: auth,
      attributes: [{ type: ATTR_VENDOR_SPECIFIC, value: vsa }],
    });
    assert.deepEqual(decodePacket(raw).attributes, [
      { type: 1, vendor: 9, value: Buffer.from('A') },
      { type: 2, vendor: 9, value: Buffer.from('BC') },
    ]);
  });

  test('a Vendor-Specific not in the usual format is kept whole', () => {
    const vsa = Buffer.from([0, 0, 0, 9, 1, 9, 0x41]);
    const raw = encodePacket({
      code: 4,
      identifier: 1,
      authenticator: auth,
      attributes: [{ type: ATTR_VENDOR_SPECIFIC, value: vsa }],
    });
    assert.deepEqual(decodePacket(raw).attributes, [{ type: 26, value: vsa }]);
  });

  test('octets past Length are padding and ignored', () => {
    const buf = encodePacket({
      code: 4,
      identifier: 1,
      authenticator: auth,
      attributes: [{ type: 1, value: Buffer.from('x') }],
    });
    const padded = Buffer.concat([buf, Buffer.from([1, 5, 0, 0, 0])]);
    assert.equal(decodePacket(padded).attributes.length, 1);
  });

  test('malformed packets are refused', () => {
    const good = encodePacket({
      code: 4,
      identifier: 1,
      authenticator: auth,
      attributes: [{ type: 1, value: Buffer.from('x') }],
    });
    assert.throws(() => decodePacket(good.subarray(0, 19)), RadiusDecodeError);
    const longer = Buffer.from(good);
    longer.writeUInt16BE(good.length + 1, 2);
    assert.throws(() => decodePacket(longer), /exceeds the datagram/);
    const zeroLen = Buffer.from(good);
    zeroLen[21] = 0;
    assert.throws(() => decodePacket(zeroLen), /bad length 0/);
    const overrun = Buffer.from(good);
    overrun[21] = 9;
    assert.throws(() => decodePacket(overrun), /bad length 9/);
    const tiny = Buffer.from(good);
    tiny.writeUInt16BE(19, 2);
    assert.throws(() => decodePacket(tiny), /bad Length 19/);
  });

  test('encoding refuses an over-long value or packet', () => {
    assert.throws(
      () =>
        encodePacket({
          code: 4,
          identifier: 1,
          authenticator: auth,
          attributes: [{ type: 1, value: Buffer.alloc(254) }],
        }),
      RangeError,
    );
    const many = Array.from({ length: 20 }, () => ({ type: 1, value: Buffer.alloc(250) }));
    assert.throws(
      () => encodePacket({ code: 4, identifier: 1, authenticator: auth, attributes: many }),
      /exceeds 4096/,
    );
  });

  test('findMessageAuthenticator finds attribute 80', () => {
    const buf = encodePacket({
      code: 12,
      identifier: 1,
      authenticator: auth,
      attributes: [
        { type: 1, value: Buffer.from('ab') },
        { type: 80, value: Buffer.alloc(16, 1) },
      ],
    });
    assert.equal(findMessageAuthenticator(buf), 20 + 4 + 2);
    assert.equal(
      findMessageAuthenticator(
        encodePacket({ code: 12, identifier: 1, authenticator: auth, attributes: [] }),
      ),
      -1,
    );
  });

  test('property: decode(encode(p)) = p for standard and vendor attributes', () => {
    const attr = fc.oneof(
      fc
        .record({
          type: fc.integer({ min: 1, max: 255 }).filter((t) => t !== 26),
          value: fc.uint8Array({ maxLength: 253 }).map((a) => Buffer.from(a)),
        })
        .map((r) => ({ ...r })),
      fc
        .record({
          type: fc.integer({ min: 0, max: 255 }),
          vendor: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
          value: fc.uint8Array({ maxLength: 247 }).map((a) => Buffer.from(a)),
        })
        .map((r) => ({ ...r })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 255 }),
        fc.integer({ min: 0, max: 255 }),
        fc.array(attr, { maxLength: 12 }),
        (code, identifier, attributes) => {
          const p = { code, identifier, authenticator: auth, attributes };
          const d = decodePacket(encodePacket(p));
          assert.deepEqual(d, p);
        },
      ),
    );
  });

  test('property: decoding arbitrary bytes either works or throws RadiusDecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodePacket(Buffer.from(bytes));
        } catch (e) {
          assert.ok(e instanceof RadiusDecodeError, String(e));
        }
      }),
    );
  });
});
