// The proxy's accounting client against a real FreeRADIUS (Debian `freeradius`) writing a detail file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import { openDb } from '@switchboard/platform';
import { freePort } from '@switchboard/platform/testing';
import { startFreeRadius } from '@switchboard/radius/testing';
import { AccountingClient, type AccRecord } from './acc';

const rec = (status: AccRecord['status'], callId: string): AccRecord => ({
  status,
  callId,
  fromTag: 'ft1',
  toTag: status === 'Failed' ? '' : 'tt1',
  method: status === 'Stop' ? 'BYE' : 'INVITE',
  responseCode: status === 'Failed' ? 486 : 200,
  userName: 'alice@example.com',
  callingStationId: 'sip:alice@example.com',
  calledStationId: 'sip:bob@example.com',
  translatedUri: 'sip:bob@192.0.2.5:5060',
  timestamp: 1_700_000_000,
  account: 'alice@example.com',
  sourceAddress: '198.51.100.7:5060',
});

async function until(cond: () => boolean, what: string, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('Start, Stop and Failed reach FreeRADIUS with the Kamailio acc attribute set', async () => {
  const port = await freePort();
  const fr = await startFreeRadius({ port, secret: 'testing123' });
  const db = await openDb({ memory: true });
  const acc = new AccountingClient(db, [{ host: '127.0.0.1', port, secret: 'testing123' }], {
    nasIp: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
  });
  try {
    await acc.start();
    await acc.record(rec('Start', 'call-1@test'));
    await acc.record(rec('Stop', 'call-1@test'));
    await acc.record(rec('Failed', 'call-2@test'));
    await until(
      () => (fr.detail().match(/Acct-Status-Type = /g) ?? []).length === 3,
      'three records in the detail file',
    );
    const d = fr.detail();
    for (const line of [
      'Acct-Status-Type = Start',
      'Acct-Status-Type = Stop',
      'Acct-Status-Type = Failed',
      'Acct-Session-Id = "call-1@test"',
      'Sip-From-Tag = "ft1"',
      'Sip-To-Tag = "tt1"',
      'Sip-Method = BYE',
      'Sip-Response-Code = 486',
      'Calling-Station-Id = "sip:alice@example.com"',
      'Called-Station-Id = "sip:bob@example.com"',
      'Sip-Translated-Request-URI = "sip:bob@192.0.2.5:5060"',
      'Switchboard-Account = "alice@example.com"',
      'Switchboard-Source-Address = "198.51.100.7:5060"',
      'Switchboard-Record-Id = "',
    ]) {
      assert.ok(d.includes(line), `detail file lacks ${line}:\n${d.slice(0, 1500)}`);
    }
    const left = await db.query<{ n: string }>('SELECT count(*) AS n FROM sip_proxy.acc_queue');
    assert.equal(Number(left.rows[0].n), 0, 'delivered records leave the queue');
  } finally {
    await acc.stop();
    await fr.stop();
    await db.close();
  }
});

test('records made while the server is down are delivered once it is back, once each', async () => {
  const port = await freePort();
  const db = await openDb({ memory: true });
  const acc = new AccountingClient(db, [{ host: '127.0.0.1', port, secret: 's3cret' }], {
    nasIp: '127.0.0.1',
    logger: pino({ level: 'silent' }),
    registry: new Registry(),
    retryMs: 200,
  });
  await acc.start();
  let fr;
  try {
    for (let i = 0; i < 5; i++) await acc.record(rec('Start', `outage-${i}@test`));
    await new Promise((r) => setTimeout(r, 1500)); // nobody listens: every attempt times out
    const queued = await db.query<{ n: string }>('SELECT count(*) AS n FROM sip_proxy.acc_queue');
    assert.equal(Number(queued.rows[0].n), 5, 'kept while the server is down');
    fr = await startFreeRadius({ port, secret: 's3cret' });
    await until(
      () => (fr!.detail().match(/Acct-Status-Type = /g) ?? []).length >= 5,
      'five records after the outage',
      30_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    const d = fr.detail();
    for (let i = 0; i < 5; i++)
      assert.equal(d.split(`"outage-${i}@test"`).length - 1, 1, `outage-${i} exactly once`);
    assert.match(d, /Acct-Delay-Time = [1-9]/, 'the delay says how long it waited');
  } finally {
    await acc.stop();
    await fr?.stop();
    await db.close();
  }
});
