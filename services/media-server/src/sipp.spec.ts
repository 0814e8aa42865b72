// The media server as it runs (with the registrar, on embedded storage),
// driven by real SIPp over loopback: announcements (UDP and TCP, PCMU and
// PCMA), voicemail deposits with RTP from pcap, the message-waiting NOTIFY to
// the mailbox owner's registered phone (a SIPp UAS), and the DTMF mailbox menu.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grpcClient, openDb, runTargets, type RunningProcess } from '@switchboard/platform';
import { RegistrarClient } from '@switchboard/proto/registrar';
import { MediaServerClient } from '@switchboard/proto/mediaserver';
import { registrarService } from '@switchboard/registrar';
import { sipp } from '../../../test-e2e/lib/sipp';
import { freePort } from '@switchboard/platform/testing';
import { mediaServerService } from './main';
import { parseRtp, type RtpHeader } from './rtp';
import { rtpAudio, rtpDigit, writePcap } from './testing/pcap';
import { dominant, goertzel, tone } from './tone';
import { decode, encode } from './g711';
import { readWav, writeWav } from './wav';

const HERE = import.meta.dirname;
const SCENARIOS = join(HERE, '..', 'testdata', 'sipp');

/** A UDP socket that takes RTP and keeps the headers (seq, timestamp, payload type). */
async function rtpSink() {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const packets: Array<{ seq: number; ts: number; pt: number; len: number; payload: Buffer }> = [];
  const h: RtpHeader = {
    payloadType: 0,
    marker: false,
    seq: 0,
    timestamp: 0,
    ssrc: 0,
    payloadStart: 0,
    payloadEnd: 0,
  };
  sock.on('message', (b) => {
    if (parseRtp(b, h))
      packets.push({
        seq: h.seq,
        ts: h.timestamp,
        pt: h.payloadType,
        len: h.payloadEnd - h.payloadStart,
        payload: b.subarray(h.payloadStart, h.payloadEnd),
      });
  });
  return { port: (sock.address() as { port: number }).port, packets, close: () => sock.close() };
}

/** Runs a SIPp scenario in a fresh directory holding pcap.pcap. */
async function runSipp(scenario: string, args: string[], pcap: Buffer, timeoutMs = 30_000) {
  const port = await freePort();
  const mport = await freePort();
  const cwd = mkdtempSync(join(tmpdir(), 'sb-ms-sipp-'));
  writeFileSync(join(cwd, 'pcap.pcap'), pcap);
  copyFileSync(join(SCENARIOS, scenario), join(cwd, scenario));
  return await sipp(
    [
      '-sf',
      join(cwd, scenario),
      '-i',
      '127.0.0.1',
      '-p',
      String(port),
      '-mp',
      String(mport),
      '-m',
      '1',
      '-timeout',
      `${Math.round(timeoutMs / 1000)}s`,
      ...args,
    ],
    {
      cwd,
      timeoutMs,
    },
  ).done;
}

async function startPlatform(dataDir: string) {
  const rtpBase = 46000 + 2 * Math.floor(Math.random() * 500);
  return runTargets([registrarService, mediaServerService], {
    version: 'test',
    env: {
      SWITCHBOARD_DATA_DIR: dataDir,
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_LOG_LEVEL: process.env.SWITCHBOARD_LOG_LEVEL ?? 'silent',
      SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
      SWITCHBOARD_MEDIASERVER_GRPC_PORT: '0',
      SWITCHBOARD_MEDIASERVER_SIP_PORT: '0',
      SWITCHBOARD_MEDIASERVER_RTP_PORT_MIN: String(rtpBase),
      SWITCHBOARD_MEDIASERVER_RTP_PORT_MAX: String(rtpBase + 200),
      // The listening tests name their own RTP socket in SDP while SIPp sends the pcap from another port.
      SWITCHBOARD_MEDIASERVER_RTP_LATCH: 'false',
      SWITCHBOARD_MEDIASERVER_MENU_TIMEOUT_MS: '4000',
      // Only the prompts the test places (the menu's packet count assumes no spoken vm-menu).
      SWITCHBOARD_MEDIASERVER_GENERATE_PROMPTS: 'false',
    },
  });
}

const sipPort = (proc: RunningProcess, t: string) =>
  Number(
    /:(\d+);/.exec(
      proc.endpoints.find((e) => e.service === 'media-server' && e.name === `SIP ${t}`)!.url,
    )![1],
  );

const oneSilentPacket = () => writePcap(rtpAudio(new Int16Array(160), 'pcmu', { pt: 0 }));

test(
  'media server with SIPp: announcements, voicemail deposit with MWI NOTIFY, DTMF mailbox menu',
  { timeout: 120_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-media-'));
    const promptsDir = join(dataDir, 'prompts');
    mkdirSync(promptsDir);
    // An espeak-ng prompt through the shipped script, and a short greeting of our own (a 500 ms tone) to keep the test quick.
    execFileSync(join(HERE, '..', 'scripts', 'generate-prompts.sh'), [promptsDir, 'not-in-service']);
    writeFileSync(join(promptsDir, 'vm-greeting.wav'), writeWav(tone(600, 500)));
    const announcementSamples = readWav(readFileSync(join(promptsDir, 'not-in-service.wav'))).length;
    const proc = await startPlatform(dataDir);
    const portOf = (t: string) => sipPort(proc, t);
    const registrar = grpcClient(
      RegistrarClient,
      proc.endpoints.find((e) => e.service === 'registrar')!.url.replace('grpc://', ''),
    );
    try {
      // ---- 1. Announcement over UDP, PCMU: the prompt's length in 20 ms packets, then BYE.
      for (const [transport, codec] of [
        ['udp', 0],
        ['tcp', 8],
      ] as const) {
        const sink = await rtpSink();
        try {
          const r = await runSipp(
            'uac-play.xml',
            [
              `127.0.0.1:${portOf(transport)}`,
              '-t',
              transport === 'udp' ? 'u1' : 't1',
              '-key',
              'ruri_user',
              'announce-not-in-service',
              '-key',
              'caller',
              'alice',
              '-key',
              'callee',
              'announce-not-in-service',
              '-key',
              'rtp_port',
              String(sink.port),
              '-key',
              'codec',
              String(codec),
              '-d',
              '100',
            ],
            oneSilentPacket(),
          );
          assert.equal(r.successful, 1, `${transport}: ${r.stdout.slice(-1500)}${r.stderr}`);
          const expected = Math.ceil(announcementSamples / 160);
          assert.equal(sink.packets.length, expected, `${transport}: packets`);
          for (let i = 1; i < sink.packets.length; i++) {
            assert.equal(sink.packets[i].seq, (sink.packets[0].seq + i) & 0xffff);
            assert.equal(sink.packets[i].ts, (sink.packets[0].ts + 160 * i) >>> 0);
          }
          assert.ok(sink.packets.every((p) => p.pt === codec && p.len === 160));
        } finally {
          sink.close();
        }
      }

      // ---- 2. Bob's phone registers (a SIPp UAS that takes the NOTIFYs); Alice leaves two messages.
      const phonePort = await freePort();
      await registrar.register({
        aor: 'sip:bob@example.com',
        contacts: [{ uri: `sip:bob@127.0.0.1:${phonePort}`, expires: 600, instanceId: '', regId: 0 }],
        removeAll: false,
        callId: 'reg-bob',
        cseq: 1,
        path: [],
        userAgent: 'sipp',
        received: { address: '127.0.0.1', port: phonePort, transport: 'udp', flowId: '', localSocket: '' },
      });
      const phoneDir = mkdtempSync(join(tmpdir(), 'sb-ms-phone-'));
      const phoneLog = join(phoneDir, 'messages.log');
      copyFileSync(join(SCENARIOS, 'uas-notify.xml'), join(phoneDir, 'uas-notify.xml'));
      // deposit, deposit, save, delete: four NOTIFYs
      const phone = sipp(
        [
          '-sf',
          join(phoneDir, 'uas-notify.xml'),
          '-i',
          '127.0.0.1',
          '-p',
          String(phonePort),
          '-m',
          '4',
          '-trace_msg',
          '-message_file',
          phoneLog,
          '-timeout',
          '60s',
        ],
        { cwd: phoneDir, timeoutMs: 60_000 },
      );

      // Message A: 2 s of 440 Hz, then the digit 5 (RFC 4733), addressed as sip:vm-bob@.
      // Message B: 2 s of 880 Hz, reached through a Diversion header naming bob.
      // Message B comes over a lossy, reordering network: frames LOST never arrive, SWAPPED pairs arrive in reverse.
      const LOST = [7, 30, 31, 64];
      const SWAPPED = [10, 50, 80];
      const deposit = async (service: string, hz: number, lossy = false) => {
        let audio = rtpAudio(tone(hz, 2000), 'pcmu', { pt: 0, ts: 5000, seq: 10 });
        if (lossy) {
          for (const i of SWAPPED)
            [audio[i].payload, audio[i + 1].payload] = [audio[i + 1].payload, audio[i].payload];
          audio = audio.filter((_, i) => !LOST.includes(i));
        }
        const pcap = writePcap([
          ...audio,
          ...rtpDigit('5', { pt: 101, atUs: 2_040_000, ts: 5000 + 16000 + 320, seq: 110 }),
        ]);
        const r = await runSipp(
          'uac-deposit.xml',
          [
            `127.0.0.1:${portOf('udp')}`,
            '-key',
            'ruri_user',
            service,
            '-key',
            'divert',
            'bob@example.com',
            '-d',
            '1400',
          ],
          pcap,
        );
        assert.equal(r.successful, 1, `deposit ${service}: ${r.stdout.slice(-1500)}${r.stderr}`);
      };
      await deposit('vm-bob', 440);
      await deposit('forwarded-call', 880, true);
      // A message is stored (its file written, then its row) after its call has ended.
      for (let t = Date.now(); ;) {
        const m = await (await fetch(`${proc.ops.url}/metrics`)).text();
        if (/switchboard_mediaserver_voicemail_stored_total 2\b/.test(m)) break;
        assert.ok(Date.now() - t < 5000, 'the second message stored within 5 s of its call');
        await new Promise((r) => setTimeout(r, 20));
      }

      const vmDir = join(dataDir, 'voicemail', 'bob@example.com');
      const files = readdirSync(vmDir)
        .filter((f) => f.endsWith('.wav'))
        .sort();
      assert.equal(files.length, 2);
      const recorded = files.map((f) => readWav(readFileSync(join(vmDir, f))));
      for (const [i, hz] of [
        [0, 440],
        [1, 880],
      ] as const) {
        // the recording is the 2 s sent (timeline from RTP timestamps), and holds the tone sent
        assert.equal(recorded[i].length, 16000, `message ${i} length`);
        assert.equal(dominant(recorded[i], [300, 440, 600, 880, 1000]), hz);
      }
      // lost frames are silence in place, reordered ones are where their timestamps say
      const frameSilent = (f: number) => recorded[1].subarray(f * 160, (f + 1) * 160).every((x) => x === 0);
      assert.deepEqual(Array.from({ length: 100 }, (_, f) => f).filter(frameSilent), LOST);
      // every frame that arrived, reordered or not, is exactly the audio sent at its place (after G.711)
      const expected = decode(encode(tone(880, 2000), 'pcmu'), 'pcmu');
      for (const f of LOST) expected.fill(0, f * 160, (f + 1) * 160);
      assert.ok(
        Buffer.from(recorded[1].buffer, recorded[1].byteOffset, recorded[1].byteLength).equals(
          Buffer.from(expected.buffer),
        ),
      );
      const metrics = await (await fetch(`${proc.ops.url}/metrics`)).text();
      assert.match(metrics, /switchboard_mediaserver_dtmf_total 2\b/);
      assert.match(metrics, /switchboard_mediaserver_voicemail_stored_total 2\b/);

      // ---- 3. Bob calls his mailbox: 1 plays A, 9 saves it, 1 plays B, 7 deletes it, # ends the call.
      const sink = await rtpSink();
      try {
        const d = (digit: string, ms: number, seq: number) =>
          rtpDigit(digit, { pt: 101, atUs: ms * 1000, ts: 1000 + ms * 8, seq });
        const menu = writePcap([
          ...d('1', 0, 1),
          ...d('9', 2400, 20),
          ...d('1', 2700, 40),
          ...d('7', 5100, 60),
          ...d('#', 5400, 80),
        ]);
        const r = await runSipp(
          'uac-play.xml',
          [
            `127.0.0.1:${portOf('udp')}`,
            '-key',
            'ruri_user',
            'voicemail',
            '-key',
            'caller',
            'bob',
            '-key',
            'callee',
            'voicemail',
            '-key',
            'rtp_port',
            String(sink.port),
            '-key',
            'codec',
            '0',
            '-d',
            '300',
          ],
          menu,
        );
        assert.equal(r.successful, 1, `menu: ${r.stdout.slice(-1500)}${r.stderr}`);
        assert.equal(sink.packets.length, 200, 'both messages played, 2 s each');
      } finally {
        sink.close();
      }
      const p = await phone.done;
      assert.equal(p.successful, 4, `phone: ${p.stdout.slice(-1500)}${p.stderr}`);
      const log = readFileSync(phoneLog, 'utf8');
      const summaries = [
        ...log.matchAll(
          /Messages-Waiting: (yes|no)\r?\nMessage-Account: sip:bob@example.com\r?\nVoice-Message: (\d+\/\d+)/g,
        ),
      ].map((m) => `${m[1]} ${m[2]}`);
      assert.deepEqual(summaries, ['yes 1/0', 'yes 2/0', 'yes 1/1', 'no 0/1']);
      assert.equal(
        readdirSync(vmDir).filter((f) => f.endsWith('.wav')).length,
        1,
        'deleted message file removed',
      );

      // ---- 4. The portal's view over gRPC: the saved message, its audio, the summary; unknown ids are NOT_FOUND.
      const ms = grpcClient(
        MediaServerClient,
        proc.endpoints
          .find((e) => e.service === 'media-server' && e.name === 'gRPC')!
          .url.replace('grpc://', ''),
      );
      try {
        const { messages } = await ms.listMessages({ mailbox: 'bob@example.com' });
        assert.equal(messages.length, 1);
        assert.equal(messages[0].folder, 'saved');
        assert.equal(messages[0].caller, 'sip:alice@example.com');
        assert.equal(messages[0].callerName, 'Alice');
        assert.equal(messages[0].durationMs, 2000);
        const audio = await ms.getMessageAudio({ mailbox: 'bob@example.com', id: messages[0].id });
        assert.equal(audio.contentType, 'audio/wav');
        assert.equal(dominant(readWav(Buffer.from(audio.wav)), [440, 880]), 440);
        assert.deepEqual(await ms.getMailboxSummary({ mailbox: 'bob@example.com' }), {
          newMessages: 0,
          savedMessages: 1,
          messagesWaiting: false,
        });
        await assert.rejects(
          ms.getMessageAudio({ mailbox: 'carol@example.com', id: messages[0].id }),
          /no message/,
        );
        await assert.rejects(ms.deleteMessage({ mailbox: 'bob@example.com', id: '999999' }), /no message/);
      } finally {
        ms.close();
      }
    } finally {
      registrar.close();
      await proc.stop();
    }
    // ---- 5. What is stored: the saved message, its caller and duration.
    const db = await openDb({ dataDir: join(dataDir, 'pglite') });
    try {
      const rows = (
        await db.query<{
          mailbox: string;
          caller: string;
          duration_ms: number;
          folder: string;
          file: string;
        }>('SELECT mailbox, caller, duration_ms, folder, file FROM media.voicemail_messages')
      ).rows;
      assert.equal(rows.length, 1);
      assert.deepEqual(
        { ...rows[0], file: undefined },
        {
          mailbox: 'bob@example.com',
          caller: 'sip:alice@example.com',
          duration_ms: 2000,
          folder: 'saved',
          file: undefined,
        },
      );
      assert.ok(existsSync(join(dataDir, 'voicemail', rows[0].file)));
      assert.equal(
        dominant(readWav(readFileSync(join(dataDir, 'voicemail', rows[0].file))), [440, 880]),
        440,
      );
    } finally {
      await db.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);

test(
  'conference with SIPp: three callers in conf-7, each hears the other two and not itself',
  { timeout: 60_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'sb-media-conf-'));
    const proc = await startPlatform(dataDir);
    const sinks = await Promise.all([0, 1, 2].map(() => rtpSink()));
    try {
      const hz = [400, 700, 1100];
      const results = await Promise.all(
        hz.map((f, k) =>
          runSipp(
            'uac-talk.xml',
            [
              `127.0.0.1:${sipPort(proc, 'udp')}`,
              '-key',
              'ruri_user',
              'conf-7',
              '-key',
              'caller',
              `user${k}`,
              '-key',
              'rtp_port',
              String(sinks[k].port),
              '-key',
              'codec',
              k === 1 ? '8' : '0',
              '-d',
              '500',
            ],
            writePcap(
              rtpAudio(tone(f, 3000, 6000), k === 1 ? 'pcma' : 'pcmu', {
                pt: k === 1 ? 8 : 0,
                ssrc: 100 + k,
              }),
            ),
          ),
        ),
      );
      results.forEach((r, k) =>
        assert.equal(r.successful, 1, `caller ${k}: ${r.stdout.slice(-1500)}${r.stderr}`),
      );
      sinks.forEach((sink, k) => {
        const heard = decode(Buffer.concat(sink.packets.map((p) => p.payload)), k === 1 ? 'pcma' : 'pcmu');
        assert.ok(sink.packets.length > 100, `caller ${k} got ${sink.packets.length} packets`);
        const power = hz.map((f) => goertzel(heard, f));
        const others = power.filter((_, j) => j !== k);
        assert.ok(power[k] * 100 < Math.min(...others), `caller ${k} hears itself: ${power.join(', ')}`);
        for (const p of others) assert.ok(p > 1000, `caller ${k} misses someone: ${power.join(', ')}`);
      });
    } finally {
      for (const s of sinks) s.close();
      await proc.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
