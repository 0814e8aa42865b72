import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { openDb, openEmbeddedBus, type Db, type EventBus } from '@switchboard/platform';
import {
  Dictionary,
  RadiusClient,
  RadiusCode,
  encodeAccountingFields,
  encodeRequest,
  verifyResponse,
} from '@switchboard/radius';
import {
  collectAccounting,
  metricValue,
  radclient,
  startTestAccounting,
  until,
  type TestAccounting,
} from './test-support';
import type { AccountingRecord } from './record';

const dict = Dictionary.standard();
const SECRET = 'testing123';

const START = `Acct-Status-Type = Start,
Acct-Session-Id = "a84b4c76e66710@pc33.example.com",
Sip-Method = INVITE,
Sip-Response-Code = 200,
Sip-From-Tag = "1928301774",
Sip-To-Tag = "a6c85cf",
User-Name = "alice@example.com",
Calling-Station-Id = "sip:alice@example.com",
Called-Station-Id = "sip:+15551234567@example.com",
Sip-Translated-Request-URI = "sip:+15551234567@gw1.example.net",
Event-Timestamp = 1700000000,
NAS-IP-Address = 127.0.0.1,
Acct-Delay-Time = 0,
Service-Type = Sip-Session,
Switchboard-Account = "acct-42",
Switchboard-Gateway = "gw1",
Switchboard-Source-Address = "192.0.2.10:5060"
`;
const STOP = START.replace('Start', 'Stop')
  .replace('INVITE', 'BYE')
  .replace('1700000000', '1700000095')
  .replace('"192.0.2.10:5060"\n', '"192.0.2.10:5060",\nAcct-Session-Time = 95\n');

describe('accounting service on PGlite and the embedded event log', () => {
  let db: Db;
  let bus: EventBus;
  let acct: TestAccounting;

  before(async () => {
    db = await openDb({ memory: true });
    bus = await openEmbeddedBus({ db, pollMs: 50 });
    acct = await startTestAccounting(db, bus, {
      SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET},10.0.0.0/8=other`,
      SWITCHBOARD_ACCOUNTING_CLIENTS_REFRESH_MS: '100',
    });
  });
  after(async () => {
    await acct?.stop();
    await bus?.close();
    await db?.close();
  });

  const stored = async (sessionId: string) =>
    (
      await db.query<{ body: AccountingRecord }>(
        'SELECT body::json AS body FROM accounting.records WHERE session_id = $1 ORDER BY received_at',
        [sessionId],
      )
    ).rows.map((r) => r.body);

  test('radclient Start and Stop with the SIP dictionary: answered, stored with every field, published', async () => {
    const feed = await collectAccounting(bus, 'test-radclient');
    try {
      const start = await radclient(acct.port, 'acct', SECRET, START);
      assert.equal(start.code, 0, start.stdout + start.stderr);
      assert.match(start.stdout, /Received Accounting-Response/);
      const stop = await radclient(acct.port, 'acct', SECRET, STOP);
      assert.equal(stop.code, 0, stop.stdout + stop.stderr);

      const rows = await stored('a84b4c76e66710@pc33.example.com');
      assert.equal(rows.length, 2);
      const [s, e] = rows;
      assert.deepEqual(
        { ...s, id: undefined, receivedAt: undefined, attributes: undefined },
        {
          id: undefined,
          receivedAt: undefined,
          attributes: undefined,
          client: '127.0.0.1/32',
          statusType: 'Start',
          sessionId: 'a84b4c76e66710@pc33.example.com',
          fromTag: '1928301774',
          toTag: 'a6c85cf',
          method: 'INVITE',
          responseCode: 200,
          userName: 'alice@example.com',
          callingStationId: 'sip:alice@example.com',
          calledStationId: 'sip:+15551234567@example.com',
          translatedUri: 'sip:+15551234567@gw1.example.net',
          eventTimestamp: '2023-11-14T22:13:20.000Z',
          nasIp: '127.0.0.1',
          delayTime: 0,
          serviceType: 'Sip-Session',
          account: 'acct-42',
          gateway: 'gw1',
          sourceAddress: '192.0.2.10:5060',
        },
      );
      // The fields carry every attribute of the Start; the Stop's Acct-Session-Time has no field.
      assert.deepEqual(s.attributes, {});
      assert.deepEqual(e.attributes, { 'Acct-Session-Time': 95 });
      assert.equal(e.statusType, 'Stop');
      assert.equal(e.method, 'BYE');

      await until(() => feed.messages.length >= 2, 'two published records');
      const published = feed.messages.map((m) => JSON.parse(m.value!.toString()) as AccountingRecord);
      assert.deepEqual(
        published.map((p) => p.id),
        [s.id, e.id],
      );
      assert.deepEqual(
        feed.messages.map((m) => m.key),
        ['a84b4c76e66710@pc33.example.com', 'a84b4c76e66710@pc33.example.com'],
      );
      assert.deepEqual(published[0], s);
      await until(
        async () => (await db.query('SELECT 1 FROM accounting.outbox')).rowCount === 0,
        'the outbox drained',
      );
      assert.equal(
        await metricValue(acct.metrics, 'switchboard_radius_requests_total', {
          type: 'Start',
          client: '127.0.0.1/32',
        }),
        1,
      );
      assert.equal(await metricValue(acct.metrics, 'switchboard_radius_requests_total', { type: 'Stop' }), 1);
    } finally {
      await feed.close();
    }
  });

  test('a wrong secret: no answer, nothing stored, counted as bad_authenticator', async () => {
    const before = await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
      reason: 'bad_authenticator',
    });
    const r = await radclient(
      acct.port,
      'acct',
      'not-the-secret',
      START.replace('a84b4c76e66710', 'wrong-secret-call'),
      1,
      1,
    );
    assert.notEqual(r.code, 0);
    assert.doesNotMatch(r.stdout, /Received Accounting-Response/);
    assert.equal(
      await metricValue(acct.metrics, 'switchboard_radius_dropped_total', { reason: 'bad_authenticator' }),
      before + 1,
    );
    assert.deepEqual(await stored('wrong-secret-call@pc33.example.com'), []);
  });

  test('Status-Server from radclient is answered', async () => {
    const r = await radclient(acct.port, 'status', SECRET, 'Message-Authenticator = 0x00\n');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Received Accounting-Response/);
  });

  test('a retransmission (same port, Identifier, authenticator) is answered again and stored once', async () => {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    const replies: Buffer[] = [];
    sock.on('message', (m) => replies.push(m));
    try {
      const packet = encodeRequest({
        code: RadiusCode.AccountingRequest,
        identifier: 77,
        attributes: dict.encodeAll([
          ['Acct-Status-Type', 'Start'],
          ['Acct-Session-Id', 'retrans-1'],
        ]),
        secret: SECRET,
      });
      const dup0 = await metricValue(acct.metrics, 'switchboard_radius_duplicates_total');
      // Twice at once (the second joins the write in flight), then once more after it is stored.
      sock.send(packet, acct.port, '127.0.0.1');
      sock.send(packet, acct.port, '127.0.0.1');
      await until(() => replies.length >= 2, 'two replies');
      sock.send(packet, acct.port, '127.0.0.1');
      await until(() => replies.length >= 3, 'three replies');
      for (const r of replies) assert.ok(verifyResponse(r, packet.subarray(4, 20), SECRET));
      assert.deepEqual(replies[2], replies[0]);
      assert.equal((await stored('retrans-1')).length, 1);
      assert.equal(await metricValue(acct.metrics, 'switchboard_radius_duplicates_total'), dup0 + 2);
    } finally {
      sock.close();
    }
  });

  test('a record resent with a new Identifier but the same Switchboard-Record-Id is answered and stored once', async () => {
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.port,
      secret: SECRET,
      initialTimeoutMs: 1000,
    });
    try {
      const dup0 = await metricValue(acct.metrics, 'switchboard_radius_duplicates_total');
      const fields = { statusType: 'Stop', sessionId: 'queued-call-1', recordId: 'proxy-a:17' } as const;
      // The first copy, then the same record from a durable queue after an outage: new packet, Acct-Delay-Time 30.
      assert.equal(
        (await client.accounting(encodeAccountingFields({ ...fields, delayTime: 0 }))).code,
        RadiusCode.AccountingResponse,
      );
      assert.equal(
        (await client.accounting(encodeAccountingFields({ ...fields, delayTime: 30 }))).code,
        RadiusCode.AccountingResponse,
      );
      const rows = await stored('queued-call-1');
      assert.equal(rows.length, 1);
      assert.equal(rows[0].delayTime, 0);
      assert.equal(await metricValue(acct.metrics, 'switchboard_radius_duplicates_total'), dup0 + 1);
      assert.equal(rows[0].attributes['Switchboard-Record-Id'], 'proxy-a:17');
    } finally {
      client.close();
    }
  });

  test('a record whose text holds NUL or a newline is stored (as is in the body) without failing its group commit', async () => {
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.port,
      secret: SECRET,
      initialTimeoutMs: 1000,
    });
    try {
      const sent = [
        client.accounting(
          encodeAccountingFields({ statusType: 'Start', sessionId: 'odd-1', userName: 'a\nb\0c' }),
        ),
        client.accounting(encodeAccountingFields({ statusType: 'Start', sessionId: 'odd-2\0x' })),
        client.accounting(encodeAccountingFields({ statusType: 'Start', sessionId: 'odd-3' })),
      ];
      for (const r of await Promise.all(sent)) assert.equal(r.code, RadiusCode.AccountingResponse);
      assert.equal((await stored('odd-1'))[0].userName, 'a\nb\0c');
      assert.equal((await stored('odd-2\ufffdx')).length, 1);
      assert.equal((await stored('odd-3')).length, 1);
    } finally {
      client.close();
    }
  });

  test('Failed, Interim-Update and Accounting-On/Off are stored; Accounting-On is keyed by client', async () => {
    const feed = await collectAccounting(bus, 'test-types');
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.port,
      secret: SECRET,
      initialTimeoutMs: 1000,
    });
    try {
      for (const t of ['Failed', 'Interim-Update', 'Accounting-On', 'Accounting-Off']) {
        const attrs: Array<[string, string | number]> = [['Acct-Status-Type', t]];
        if (t === 'Failed' || t === 'Interim-Update')
          attrs.push(['Acct-Session-Id', `types-${t}`], ['Sip-Response-Code', 486]);
        const reply = await client.accounting(dict.encodeAll(attrs));
        assert.equal(reply.code, RadiusCode.AccountingResponse);
      }
      const failed = await stored('types-Failed');
      assert.equal(failed[0].statusType, 'Failed');
      assert.equal(failed[0].responseCode, 486);
      const on = (
        await db.query<{ n: string }>(
          "SELECT count(*) AS n FROM accounting.records WHERE status_type IN ('Accounting-On','Accounting-Off')",
        )
      ).rows[0];
      assert.equal(Number(on.n), 2);
      await until(
        () => feed.messages.some((m) => m.key === 'client:127.0.0.1/32'),
        'Accounting-On published under the client key',
      );
    } finally {
      client.close();
      await feed.close();
    }
  });

  test('an unknown client and a malformed packet are dropped unanswered and counted', async () => {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.2');
    await once(sock, 'listening');
    let answered = 0;
    sock.on('message', () => answered++);
    try {
      const unknown0 = await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
        reason: 'unknown_client',
      });
      const packet = encodeRequest({
        code: 4,
        identifier: 1,
        attributes: dict.encodeAll([['Acct-Status-Type', 'Start']]),
        secret: SECRET,
      });
      sock.send(packet, acct.port, '127.0.0.1');
      await until(
        async () =>
          (await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
            reason: 'unknown_client',
          })) ===
          unknown0 + 1,
        'unknown_client counted',
      );
      const sock2 = createSocket('udp4');
      sock2.bind(0, '127.0.0.1');
      await once(sock2, 'listening');
      sock2.on('message', () => answered++);
      const malformed0 = await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
        reason: 'malformed',
      });
      sock2.send(Buffer.from([4, 1, 0, 30, ...Buffer.alloc(16)]), acct.port, '127.0.0.1'); // Length beyond the datagram
      // No Acct-Status-Type: malformed (RFC 2866 §5.1), though correctly signed.
      sock2.send(
        encodeRequest({
          code: 4,
          identifier: 2,
          attributes: dict.encodeAll([['Acct-Session-Id', 'x']]),
          secret: SECRET,
        }),
        acct.port,
        '127.0.0.1',
      );
      await until(
        async () =>
          (await metricValue(acct.metrics, 'switchboard_radius_dropped_total', { reason: 'malformed' })) ===
          malformed0 + 2,
        'malformed counted',
      );
      sock2.close();
      assert.equal(answered, 0);
    } finally {
      sock.close();
    }
  });

  test('a client provisioned in accounting.clients while running is served under its name and secret', async () => {
    const unknown0 = await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
      reason: 'unknown_client',
    });
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.port,
      secret: 'late-secret',
      bindAddress: '127.0.0.3',
      initialTimeoutMs: 100,
      maxTimeoutMs: 200,
      maxAttempts: 100,
    });
    try {
      const reply = client.accounting(
        dict.encodeAll([
          ['Acct-Status-Type', 'Start'],
          ['Acct-Session-Id', 'late-client-call'],
        ]),
      );
      await until(
        async () =>
          (await metricValue(acct.metrics, 'switchboard_radius_dropped_total', {
            reason: 'unknown_client',
          })) > unknown0,
        'the unprovisioned client dropped',
      );
      await db.query(
        "INSERT INTO accounting.clients (name, cidr, secret) VALUES ('late-nas', '127.0.0.3', 'late-secret')",
      );
      assert.equal((await reply).code, RadiusCode.AccountingResponse);
      assert.equal((await stored('late-client-call'))[0].client, 'late-nas');
    } finally {
      client.close();
    }
  });

  test('requests arriving together are stored in group commits, every one answered', async () => {
    const client = await RadiusClient.open({
      host: '127.0.0.1',
      port: acct.port,
      secret: SECRET,
      initialTimeoutMs: 2000,
    });
    try {
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          client.accounting(
            dict.encodeAll([
              ['Acct-Status-Type', 'Start'],
              ['Acct-Session-Id', `bulk-${i}`],
            ]),
          ),
        ),
      );
      assert.equal(replies.length, 200);
      const n = (
        await db.query<{ n: string }>(
          "SELECT count(*) AS n FROM accounting.records WHERE session_id LIKE 'bulk-%'",
        )
      ).rows[0].n;
      assert.equal(Number(n), 200);
      const text = await acct.metrics.getSingleMetricAsString('switchboard_radius_commit_batch_size');
      const count = Number(/_count (\d+)/.exec(text)![1]);
      const sum = Number(/_sum (\d+)/.exec(text)![1]);
      assert.ok(sum >= 200);
      assert.ok(count < sum, `expected group commits: ${count} commits for ${sum} records`);
    } finally {
      client.close();
    }
  });
});
