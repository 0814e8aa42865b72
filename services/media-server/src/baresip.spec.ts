// Interop with baresip (Debian package baresip): a real UA calls an
// announcement over UDP, hears it (its sndfile filter dumps the decoded audio)
// and is hung up by the server's BYE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTargets } from '@switchboard/platform';
import { registrarService } from '@switchboard/registrar';
import { freePort } from '@switchboard/platform/testing';
import { mediaServerService } from './main';
import { readWav } from './wav';

test(
  'baresip calls an announcement: hears the whole prompt, then the server hangs up',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-ms-baresip-'));
    const dataDir = join(dir, 'data');
    mkdirSync(join(dataDir, 'prompts'), { recursive: true });
    execFileSync(join(import.meta.dirname, '..', 'scripts', 'generate-prompts.sh'), [
      join(dataDir, 'prompts'),
      'not-in-service',
    ]);
    const promptMs = readWav(readFileSync(join(dataDir, 'prompts', 'not-in-service.wav'))).length / 8;
    const rtpBase = 46400 + 2 * Math.floor(Math.random() * 200);
    const proc = await runTargets([registrarService, mediaServerService], {
      version: 'test',
      env: {
        SWITCHBOARD_DATA_DIR: dataDir,
        SWITCHBOARD_OPS_PORT: '0',
        SWITCHBOARD_OPS_HOST: '127.0.0.1',
        SWITCHBOARD_LOG_LEVEL: 'silent',
        SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
        SWITCHBOARD_MEDIASERVER_GRPC_PORT: '0',
        SWITCHBOARD_MEDIASERVER_SIP_PORT: '0',
        SWITCHBOARD_MEDIASERVER_RTP_PORT_MIN: String(rtpBase),
        SWITCHBOARD_MEDIASERVER_RTP_PORT_MAX: String(rtpBase + 100),
      },
    });
    try {
      const url = proc.endpoints.find((e) => e.service === 'media-server' && e.name === 'SIP udp')!.url;
      const port = Number(/:(\d+);/.exec(url)![1]);
      const conf = join(dir, 'baresip');
      mkdirSync(join(conf, 'snd'), { recursive: true });
      // aubridge loops what is played back into the source (no sound card); sndfile dumps the decoded audio.
      writeFileSync(
        join(conf, 'config'),
        [
          'poll_method epoll',
          `sip_listen 127.0.0.1:${await freePort()}`,
          'audio_player aubridge,x',
          'audio_source aubridge,x',
          'audio_alert aubridge,y',
          'module_path /usr/lib/baresip/modules',
          'module g711.so',
          'module aubridge.so',
          'module sndfile.so',
          'module_app account.so',
          'module_app menu.so',
          `snd_path ${join(conf, 'snd')}`,
          '',
        ].join('\n'),
      );
      writeFileSync(join(conf, 'accounts'), '<sip:alice@127.0.0.1>;regint=0\n');
      const out = await new Promise<string>((resolve) => {
        execFile(
          'baresip',
          [
            '-f',
            conf,
            '-e',
            `/dial sip:announce-not-in-service@127.0.0.1:${port}`,
            '-t',
            String(Math.ceil(promptMs / 1000) + 4),
          ],
          { timeout: 30_000 },
          (_err, stdout, stderr) => resolve(stdout + stderr),
        );
      });
      assert.match(out, /Call established/);
      // the server's BYE ends the call: baresip reports a BYE from the peer as ECONNRESET
      assert.match(out, /session closed: Connection reset by peer/);
      const dec = readdirSync(join(conf, 'snd')).find((f) => f.endsWith('-dec.wav'));
      assert.ok(dec, 'no decoded audio dumped');
      const heardMs = readWav(readFileSync(join(conf, 'snd', dec))).length / 8;
      // baresip's jitter buffer may drop the first packets while the stream starts
      assert.ok(
        heardMs > promptMs - 400 && heardMs <= promptMs + 40,
        `heard ${heardMs} ms of ${promptMs} ms`,
      );
    } finally {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
