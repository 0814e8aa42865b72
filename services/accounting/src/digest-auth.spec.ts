import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { openDb, openEmbeddedBus, type Db, type EventBus } from '@switchboard/platform';
import { TOPICS, encodeRecord, type SubscriberRecord } from '@switchboard/contracts';
import { computeResponse, ha1 } from '@switchboard/sip';
import { RadiusClient, RadiusCode, RadiusTimeoutError, type RawAttribute } from '@switchboard/radius';
import { checkDigest, digestParamsOf, type DigestParams } from './digest-auth';
import { metricValue, startTestAccounting, until, type TestAccounting } from './test-support';

const str = (type: number, v: string): RawAttribute => ({ type, value: Buffer.from(v) });
/** A Kamailio auth_radius (draft-sterman) Digest-Attributes sub-attribute. */
const sub = (t: number, v: string): RawAttribute => ({
  type: 207,
  value: Buffer.concat([Buffer.from([t, v.length + 2]), Buffer.from(v)]),
});

const alice = {
  ha1: ha1('alice', 'example.com', 'wonderland'),
  ha1Sha256: ha1('alice', 'example.com', 'wonderland', 'SHA-256'),
  enabled: true,
};

/** An Access-Request's digest for alice as a UA would compute it (libs/sip's digest, an independent implementation). */
function uaResponse(o: {
  qop?: 'auth' | 'auth-int';
  algorithm?: 'MD5' | 'SHA-256' | 'MD5-sess';
  password?: string;
  body?: string;
}) {
  return computeResponse({
    algorithm: o.algorithm ?? 'MD5',
    ha1: ha1(
      'alice',
      'example.com',
      o.password ?? 'wonderland',
      o.algorithm === 'SHA-256' ? 'SHA-256' : 'MD5',
    ),
    nonce: 'n0nce',
    method: 'REGISTER',
    uri: 'sip:example.com',
    qop: o.qop,
    cnonce: o.qop ? 'c0nce' : undefined,
    nc: o.qop ? '00000001' : undefined,
    entityBody: o.body,
  });
}

function rfc5090(response: string, extra: RawAttribute[] = []): RawAttribute[] {
  return [
    str(1, 'alice'),
    str(103, response),
    str(104, 'example.com'),
    str(105, 'n0nce'),
    str(108, 'REGISTER'),
    str(109, 'sip:example.com'),
    str(115, 'alice'),
    ...extra,
  ];
}

describe('digest parameters and check', () => {
  test('RFC 5090 attributes, qop=auth, MD5: accepted; a wrong password is not', () => {
    const p = digestParamsOf(
      rfc5090(uaResponse({ qop: 'auth' }), [str(110, 'auth'), str(113, 'c0nce'), str(114, '00000001')]),
    )!;
    assert.equal(p.form, 'rfc5090');
    assert.ok(checkDigest(p, alice));
    const bad = digestParamsOf(
      rfc5090(uaResponse({ qop: 'auth', password: 'guess' }), [
        str(110, 'auth'),
        str(113, 'c0nce'),
        str(114, '00000001'),
      ]),
    )!;
    assert.ok(!checkDigest(bad, alice));
  });

  test('no qop (RFC 2069 form), SHA-256, MD5-sess and auth-int with the body hash', () => {
    assert.ok(checkDigest(digestParamsOf(rfc5090(uaResponse({})))!, alice));
    const sha = digestParamsOf(rfc5090(uaResponse({ algorithm: 'SHA-256' }), [str(111, 'SHA-256')]))!;
    assert.ok(checkDigest(sha, alice));
    const sess = digestParamsOf(
      rfc5090(uaResponse({ algorithm: 'MD5-sess', qop: 'auth' }), [
        str(111, 'MD5-sess'),
        str(110, 'auth'),
        str(113, 'c0nce'),
        str(114, '00000001'),
      ]),
    )!;
    assert.ok(checkDigest(sess, alice));
    const body = 'v=0\r\n';
    const bodyHash = createHash('md5').update(body).digest('hex');
    const int = digestParamsOf(
      rfc5090(uaResponse({ qop: 'auth-int', body }), [
        str(110, 'auth-int'),
        str(113, 'c0nce'),
        str(114, '00000001'),
        str(112, bodyHash),
      ]),
    )!;
    assert.ok(checkDigest(int, alice));
  });

  test("Kamailio's auth_radius form (Digest-Response 206, Digest-Attributes 207), user from User-Name", () => {
    const attrs = [
      str(1, 'alice@example.com'),
      str(206, uaResponse({ qop: 'auth' })),
      sub(1, 'example.com'),
      sub(2, 'n0nce'),
      sub(3, 'REGISTER'),
      sub(4, 'sip:example.com'),
      sub(5, 'auth'),
      sub(8, 'c0nce'),
      sub(9, '00000001'),
    ];
    const p = digestParamsOf(attrs)!;
    assert.deepEqual(
      { form: p.form, username: p.username, realm: p.realm, qop: p.qop },
      { form: 'sterman', username: 'alice', realm: 'example.com', qop: 'auth' },
    );
    assert.ok(checkDigest(p, alice));
  });

  test('a disabled or unknown subscriber, an incomplete digest and an unknown algorithm are refused', () => {
    const p = digestParamsOf(rfc5090(uaResponse({})))!;
    assert.ok(!checkDigest(p, { ...alice, enabled: false }));
    assert.ok(!checkDigest(p, undefined));
    assert.equal(digestParamsOf([str(1, 'alice'), str(103, 'x')]), undefined);
    const weird: DigestParams = { ...p, algorithm: 'AKAv1-MD5' };
    assert.ok(!checkDigest(weird, alice));
  });
});

describe('RADIUS authentication listener (SWITCHBOARD_ACCOUNTING_AUTH)', () => {
  let db: Db;
  let bus: EventBus;
  let acct: TestAccounting;
  const SECRET = 'auth-secret';

  before(async () => {
    db = await openDb({ memory: true });
    bus = await openEmbeddedBus({ db, pollMs: 50 });
    acct = await startTestAccounting(db, bus, {
      SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET}`,
      SWITCHBOARD_ACCOUNTING_AUTH: 'true',
      SWITCHBOARD_ACCOUNTING_AUTH_PORT: '0',
    });
  });
  after(async () => {
    await acct?.stop();
    await bus?.close();
    await db?.close();
  });

  test('Access-Request with a digest: Accept for the subscriber on the topic, Reject otherwise; no Message-Authenticator: dropped', async () => {
    const record: SubscriberRecord = {
      aor: 'sip:alice@example.com',
      username: 'alice',
      domain: 'example.com',
      ha1: alice.ha1,
      ha1Sha256: alice.ha1Sha256,
      enabled: true,
      privileges: [],
    };
    await bus.publish(TOPICS.subscribers, [{ key: record.aor, value: encodeRecord(record) }]);
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.authPort!,
      secret: SECRET,
      initialTimeoutMs: 200,
      maxAttempts: 3,
    });
    try {
      // The replica follows the topic: retry until the record has arrived.
      let reply = await client.request(RadiusCode.AccessRequest, rfc5090(uaResponse({})));
      await until(async () => {
        reply = await client.request(RadiusCode.AccessRequest, rfc5090(uaResponse({})));
        return reply.code === RadiusCode.AccessAccept;
      }, 'an Access-Accept for alice');
      assert.equal(reply.code, RadiusCode.AccessAccept);

      const rejected = await client.request(
        RadiusCode.AccessRequest,
        rfc5090(uaResponse({ password: 'guess' })),
      );
      assert.equal(rejected.code, RadiusCode.AccessReject);
      assert.ok(
        (await metricValue(acct.metrics, 'switchboard_radius_auth_total', { result: 'reject' })) >= 1,
      );

      const status = await client.statusServer();
      assert.equal(status.code, RadiusCode.AccessAccept);

      // Without a Message-Authenticator (BlastRADIUS): never answered.
      const bad0 = await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
        reason: 'bad_authenticator',
      });
      await assert.rejects(
        client.request(RadiusCode.AccessRequest, rfc5090(uaResponse({})), { messageAuthenticator: false }),
        RadiusTimeoutError,
      );
      assert.equal(
        await metricValue(acct.metrics, 'switchboard_radius_dropped_total', { reason: 'bad_authenticator' }),
        bad0 + 3,
      );
    } finally {
      client.close();
    }
  });
});
