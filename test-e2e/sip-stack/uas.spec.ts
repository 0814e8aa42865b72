/**
 * The SIP stack (transport + transaction layers) against real peers:
 * - SIPp's built-in `uac` scenario, 1000 calls over UDP and over TCP;
 * - a TLS client and a WebSocket client (this stack's own client transactions
 *   over its own transports) completing REGISTER → 200, plus raw tls/ws sockets.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import {
  TransactionLayer,
  createRequest,
  createSipTransport,
  newBranch,
  newCallId,
  newTag,
  parseMessage,
  type SipResponse,
  type TransportName,
} from '@switchboard/sip';
import { startTestUas, type TestUas } from './test-uas';

const certDir = new URL('../../libs/sip/src/transport/testdata/', import.meta.url);
const cert = readFileSync(new URL('cert.pem', certDir));
const key = readFileSync(new URL('key.pem', certDir));

const CALLS = 1000;

interface SippResult {
  code: number | null;
  successful: number;
  failed: number;
  output: string;
}

function sippAvailable(): boolean {
  return spawnSync('sipp', ['-v'], { stdio: 'ignore' }).error === undefined;
}

/** Runs SIPp's built-in uac scenario and reads the final counters from its -trace_stat CSV. */
async function runSipp(port: number, transport: 'u1' | 't1'): Promise<SippResult> {
  const dir = mkdtempSync(join(tmpdir(), 'sipp-'));
  const stf = join(dir, 'stat.csv');
  const args = [
    '-sn',
    'uac',
    `127.0.0.1:${port}`,
    '-i',
    '127.0.0.1',
    '-t',
    transport,
    '-m',
    String(CALLS),
    '-r',
    '200',
    '-l',
    '200',
    '-d',
    '0',
    '-nostdin',
    '-timeout',
    '60s',
    '-timeout_error',
    '-trace_stat',
    '-stf',
    stf,
    '-fd',
    '1',
  ];
  const child = spawn('sipp', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  const [code] = (await once(child, 'exit')) as [number | null];
  let successful = -1;
  let failed = -1;
  try {
    const lines = readFileSync(stf, 'utf8').trim().split('\n');
    const head = lines[0].split(';');
    const last = lines[lines.length - 1].split(';');
    successful = Number(last[head.indexOf('SuccessfulCall(C)')]);
    failed = Number(last[head.indexOf('FailedCall(C)')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { code, successful, failed, output };
}

describe('SIP stack vs SIPp uac (1000 calls)', { timeout: 120_000 }, () => {
  let uas: TestUas;
  before(async () => {
    assert.ok(sippAvailable(), 'sipp not installed: apt-get install -y sip-tester');
    uas = await startTestUas([
      { transport: 'udp', host: '127.0.0.1', port: 0 },
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
    ]);
  });
  after(() => uas?.stop());

  for (const [name, mode] of [
    ['udp', 'u1'],
    ['tcp', 't1'],
  ] as const) {
    test(`${name}: ${CALLS} successful calls, 0 failed`, async () => {
      const before = { ...uas.stats };
      const r = await runSipp(uas.port(name), mode);
      assert.equal(r.failed, 0, r.output);
      assert.equal(r.successful, CALLS, r.output);
      assert.equal(r.code, 0, r.output);
      assert.equal(uas.stats.invites - before.invites, CALLS);
      assert.equal(uas.stats.byes - before.byes, CALLS);
      assert.equal(uas.stats.acks - before.acks, CALLS);
      assert.equal(uas.stats.parseErrors, 0);
    });
  }
});

describe('REGISTER over TLS and WebSocket', { timeout: 30_000 }, () => {
  let uas: TestUas;
  before(async () => {
    uas = await startTestUas([
      { transport: 'tls', host: '127.0.0.1', port: 0, tls: { cert, key } },
      { transport: 'ws', host: '127.0.0.1', port: 0 },
      { transport: 'wss', host: '127.0.0.1', port: 0, tls: { cert, key } },
      { transport: 'tls', host: '::1', port: 0, tls: { cert, key } },
    ]);
  });
  after(() => uas?.stop());

  const viaToken: Record<TransportName, string> = {
    udp: 'UDP',
    tcp: 'TCP',
    tls: 'TLS',
    ws: 'WS',
    wss: 'WSS',
  };

  function register(transport: TransportName, host = 'example.com') {
    return createRequest({
      method: 'REGISTER',
      uri: `sip:${host}`,
      via: [`SIP/2.0/${viaToken[transport]} client.invalid;branch=${newBranch()};rport`],
      from: `<sip:alice@${host}>;tag=${newTag()}`,
      to: `<sip:alice@${host}>`,
      callId: newCallId(),
      cseq: 1,
      contact: [`<sip:alice@client.invalid;transport=${transport}>`],
      headers: [['Expires', '3600']],
    });
  }

  for (const [transport, host] of [
    ['tls', '127.0.0.1'],
    ['tls', '::1'],
    ['ws', '127.0.0.1'],
    ['wss', '127.0.0.1'],
  ] as const) {
    test(`${transport} [${host}]: client transaction on this stack gets 200`, async () => {
      const client = createSipTransport({ listen: [], tlsClient: { ca: cert } });
      const txl = new TransactionLayer({ transport: client });
      txl.attach({ onRequest: () => {} });
      await client.start();
      try {
        const port = uas.transport
          .addresses()
          .find((a) => a.transport === transport && a.host === host)!.port;
        const res = await new Promise<SipResponse>((resolve) => {
          txl.request(
            register(transport),
            { transport, address: host, port, hostname: 'localhost' },
            {
              onResponse: (r) => {
                if (r.status >= 200) resolve(r);
              },
            },
          );
        });
        assert.equal(res.status, 200);
        assert.equal(res.cseq.method, 'REGISTER');
        assert.match(res.getHeader('Contact') ?? '', /expires=3600/);
        // the UAS saw our source and rport
        assert.ok(res.via.received);
        assert.equal(typeof res.via.rport, 'number');
      } finally {
        await client.stop();
      }
    });
  }

  test('raw TLS socket and raw WebSocket writing a REGISTER get 200', async () => {
    const wire = register('tls').serialize();
    const s = tls.connect({ host: '127.0.0.1', port: uas.port('tls'), ca: cert, servername: 'localhost' });
    await once(s, 'secureConnect');
    s.write(wire);
    let buf = Buffer.alloc(0);
    while (!buf.includes('\r\n\r\n')) buf = Buffer.concat([buf, (await once(s, 'data'))[0] as Buffer]);
    const res = parseMessage(buf) as SipResponse;
    assert.equal(res.status, 200);
    s.destroy();

    const ws = new WebSocket(`ws://127.0.0.1:${uas.port('ws')}/`, 'sip');
    await once(ws, 'open');
    ws.send(register('ws').toString());
    const [data] = (await once(ws, 'message')) as [Buffer];
    assert.equal((parseMessage(Buffer.from(data)) as SipResponse).status, 200);
    ws.close();
  });
});
