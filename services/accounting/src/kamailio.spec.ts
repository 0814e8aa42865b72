/**
 * Interop with the real client: Kamailio (Debian `kamailio`, `kamailio-radius-modules`)
 * with acc_radius accounts a call (SIPp caller and callee, Debian `sipp`) to the
 * Switchboard accounting service: its Start and Stop arrive, are stored and answered.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb, openEmbeddedBus, type Db, type EventBus } from '@switchboard/platform';
import { freePort } from '@switchboard/platform/testing';
import { TOPICS, encodeRecord, type SubscriberRecord } from '@switchboard/contracts';
import { ha1 } from '@switchboard/sip';
import { DICTIONARY_DIR } from '@switchboard/radius';
import { metricValue, startTestAccounting, until, type TestAccounting } from './test-support';
import type { AccountingRecord } from './record';

const SECRET = 'kamailio-secret';

function kamailioConfig(dir: string, sipPort: number, uasPort: number): string {
  return `#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:${sipPort}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "pv.so"
loadmodule "acc.so"
loadmodule "acc_radius.so"
modparam("acc", "failed_transaction_flag", 3)
modparam("acc_radius", "radius_config", "${dir}/radiusclient.conf")
modparam("acc_radius", "radius_flag", 2)
modparam("acc_radius", "radius_missed_flag", 3)
request_route {
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (is_method("INVITE|BYE")) setflag(2);
  if (is_method("INVITE") && !has_totag()) { record_route(); setflag(3); }
  if (has_totag()) loose_route();
  $du = "sip:127.0.0.1:${uasPort}";
  t_relay();
}
`;
}

/** Runs a process to its end; resolves with its exit code and output. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

/** Sends SIP OPTIONS until Kamailio answers (it is listening and its workers run). */
async function waitForSip(port: number): Promise<void> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  let answered = false;
  s.on('message', () => (answered = true));
  try {
    const local = s.address().port;
    const options = (n: number) =>
      Buffer.from(
        `OPTIONS sip:ping@127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-probe-${n}\r\n` +
          `From: <sip:probe@127.0.0.1>;tag=p${n}\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: probe-${n}@127.0.0.1\r\n` +
          `CSeq: ${n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n`,
      );
    let n = 0;
    await until(
      () => {
        if (!answered) s.send(options(++n), port, '127.0.0.1');
        return answered;
      },
      'Kamailio answering OPTIONS',
      20_000,
    );
  } finally {
    s.close();
  }
}

describe('Kamailio acc_radius as the client', () => {
  let db: Db;
  let bus: EventBus;
  let acct: TestAccounting;
  let dir: string;
  let kamailio: ChildProcess | undefined;
  let kamailioOut = '';

  before(async () => {
    db = await openDb({ memory: true });
    bus = await openEmbeddedBus({ db, pollMs: 50 });
    acct = await startTestAccounting(db, bus, { SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET}` });
    dir = mkdtempSync(join(tmpdir(), 'kamailio-acc-'));
  });
  after(async () => {
    if (kamailio && kamailio.exitCode === null) {
      const exited = once(kamailio, 'exit');
      kamailio.kill('SIGTERM');
      await exited;
    }
    await acct?.stop();
    await bus?.close();
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a call through Kamailio leaves its Start and Stop in Switchboard', { timeout: 90_000 }, async () => {
    const sipPort = await freePort();
    const uasPort = await freePort();
    const uacPort = await freePort();
    // radcli (Kamailio's RADIUS client library): its own dictionary plus Switchboard's dictionary.sip.
    writeFileSync(
      join(dir, 'dictionary'),
      `$INCLUDE /etc/radcli/dictionary\n$INCLUDE ${join(DICTIONARY_DIR, 'dictionary.sip')}\nVALUE\tAcct-Status-Type\tFailed\t15\n`,
    );
    writeFileSync(join(dir, 'servers'), `127.0.0.1\t${SECRET}\n`);
    writeFileSync(
      join(dir, 'radiusclient.conf'),
      `authserver 127.0.0.1:1\nacctserver 127.0.0.1:${acct.port}\nservers ${dir}/servers\ndictionary ${dir}/dictionary\nradius_timeout 2\nradius_retries 3\nbindaddr *\n`,
    );
    writeFileSync(join(dir, 'kamailio.cfg'), kamailioConfig(dir, sipPort, uasPort));

    kamailio = spawn(
      'kamailio',
      ['-DD', '-E', '-f', join(dir, 'kamailio.cfg'), '-Y', dir, '-P', join(dir, 'kamailio.pid'), '-w', dir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    kamailio.stdout!.on('data', (d: Buffer) => (kamailioOut += d.toString()));
    kamailio.stderr!.on('data', (d: Buffer) => (kamailioOut += d.toString()));
    await waitForSip(sipPort);

    const uas = run(
      'sipp',
      ['-sn', 'uas', '-i', '127.0.0.1', '-p', String(uasPort), '-m', '1', '-nostdin', '-timeout', '30s'],
      40_000,
    );
    const uac = await run(
      'sipp',
      [
        '-sn',
        'uac',
        `127.0.0.1:${sipPort}`,
        '-i',
        '127.0.0.1',
        '-p',
        String(uacPort),
        '-m',
        '1',
        '-d',
        '200',
        '-nostdin',
        '-timeout',
        '30s',
      ],
      40_000,
    );
    assert.equal(uac.code, 0, `SIPp caller failed:\n${uac.out}\nKamailio:\n${kamailioOut}`);
    assert.equal((await uas).code, 0);

    const records = async () =>
      (
        await db.query<{ body: AccountingRecord }>(
          "SELECT body::json AS body FROM accounting.records WHERE client = '127.0.0.1/32'",
        )
      ).rows.map((r) => r.body);
    await until(
      async () => (await records()).length >= 2,
      `Start and Stop from Kamailio (its log:\n${kamailioOut})`,
      20_000,
    );
    const all = await records();
    const start = all.find((r) => r.statusType === 'Start')!;
    const stop = all.find((r) => r.statusType === 'Stop')!;
    assert.ok(start && stop, JSON.stringify(all));
    assert.equal(start.method, 'INVITE');
    assert.equal(start.responseCode, 200);
    assert.equal(stop.method, 'BYE');
    assert.equal(start.serviceType, 'Sip-Session');
    assert.ok(start.sessionId && start.sessionId === stop.sessionId, 'same Call-ID');
    assert.ok(start.fromTag && start.toTag, 'dialog tags');
    assert.equal(stop.fromTag, start.fromTag);
    assert.ok(start.eventTimestamp);
    assert.equal(all.length, 2);
    assert.doesNotMatch(kamailioOut, /Radius accounting - (TIMEOUT|BAD RESPONSE|ERROR)/);
  });
});

const REGISTER_WITH_DIGEST = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="REGISTER answering a digest challenge">
  <send retrans="500"><![CDATA[
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@example.com>;tag=[call_number]
To: <sip:alice@example.com>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 60
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@example.com>;tag=[call_number]
To: <sip:alice@example.com>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication username=alice password=wonderland]
Max-Forwards: 70
Expires: 60
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`;

describe('Kamailio auth_radius against the 1812 listener', () => {
  let db: Db;
  let bus: EventBus;
  let acct: TestAccounting;
  let dir: string;
  let kamailio: ChildProcess | undefined;
  let kamailioOut = '';

  before(async () => {
    db = await openDb({ memory: true });
    bus = await openEmbeddedBus({ db, pollMs: 50 });
    acct = await startTestAccounting(db, bus, {
      SWITCHBOARD_ACCOUNTING_CLIENTS: `127.0.0.1/32=${SECRET}`,
      SWITCHBOARD_ACCOUNTING_AUTH: 'true',
      SWITCHBOARD_ACCOUNTING_AUTH_PORT: '0',
      SWITCHBOARD_ACCOUNTING_CLIENTS_REFRESH_MS: '100',
    });
    dir = mkdtempSync(join(tmpdir(), 'kamailio-auth-'));
  });
  after(async () => {
    if (kamailio && kamailio.exitCode === null) {
      const exited = once(kamailio, 'exit');
      kamailio.kill('SIGTERM');
      await exited;
    }
    await acct?.stop();
    await bus?.close();
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test(
    'a REGISTER challenged by Kamailio is authorized by Switchboard from the subscribers topic',
    { timeout: 90_000 },
    async () => {
      const alice: SubscriberRecord = {
        aor: 'sip:alice@example.com',
        username: 'alice',
        domain: 'example.com',
        ha1: ha1('alice', 'example.com', 'wonderland'),
        ha1Sha256: ha1('alice', 'example.com', 'wonderland', 'SHA-256'),
        enabled: true,
        privileges: [],
      };
      await bus.publish(TOPICS.subscribers, [{ key: alice.aor, value: encodeRecord(alice) }]);
      // radcli 1.2 (Debian 12) sends no Message-Authenticator: this client row waives it.
      await db.query('UPDATE accounting.clients SET require_message_authenticator = false');
      const sipPort = await freePort();
      const uacPort = await freePort();
      writeFileSync(
        join(dir, 'dictionary'),
        '$INCLUDE /etc/radcli/dictionary\n$INCLUDE /etc/radcli/dictionary.sip\n$INCLUDE /etc/kamailio/dictionary.kamailio\nVALUE\tService-Type\tSip-Session\t15\n',
      );
      writeFileSync(join(dir, 'servers'), `127.0.0.1\t${SECRET}\n`);
      writeFileSync(
        join(dir, 'radiusclient.conf'),
        `authserver 127.0.0.1:${acct.authPort}\nacctserver 127.0.0.1:1\nservers ${dir}/servers\ndictionary ${dir}/dictionary\nradius_timeout 2\nradius_retries 3\nbindaddr *\n`,
      );
      writeFileSync(
        join(dir, 'kamailio.cfg'),
        `#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:${sipPort}
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "auth.so"
loadmodule "auth_radius.so"
modparam("auth", "secret", "nonce-secret")
modparam("auth_radius", "radius_config", "${dir}/radiusclient.conf")
request_route {
  if (is_method("OPTIONS")) { sl_send_reply("200", "OK"); exit; }
  if (!radius_www_authorize("example.com")) { www_challenge("example.com", "0"); exit; }
  sl_send_reply("200", "OK");
}
`,
      );
      writeFileSync(join(dir, 'register.xml'), REGISTER_WITH_DIGEST);
      kamailio = spawn('kamailio', ['-DD', '-E', '-f', join(dir, 'kamailio.cfg'), '-Y', dir, '-w', dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      kamailio.stdout!.on('data', (d: Buffer) => (kamailioOut += d.toString()));
      kamailio.stderr!.on('data', (d: Buffer) => (kamailioOut += d.toString()));
      await waitForSip(sipPort);
      // The client table and the subscriber replica follow within moments; SIPp retries the whole REGISTER.
      let uac = { code: null as number | null, out: '' };
      await until(
        async () => {
          uac = await run(
            'sipp',
            [
              '-sf',
              join(dir, 'register.xml'),
              `127.0.0.1:${sipPort}`,
              '-i',
              '127.0.0.1',
              '-p',
              String(uacPort),
              '-m',
              '1',
              '-nostdin',
              '-timeout',
              '10s',
            ],
            20_000,
          );
          return uac.code === 0;
        },
        `SIPp REGISTER authorized (last:\n${uac.out}\nKamailio:\n${kamailioOut})`,
        60_000,
      );
      assert.ok(
        (await metricValue(acct.metrics, 'switchboard_radius_auth_total', { result: 'accept' })) >= 1,
      );
    },
  );
});
