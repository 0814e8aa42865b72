/**
 * Issues 6 and 7, done-when: two baresip UAs (Debian `baresip`), each in its own
 * network namespace behind a NAT made with iptables MASQUERADE, register through
 * the proxy with digest auth and call each other; the proxy sees them NATed,
 * keeps their NAT bindings open with OPTIONS, anchors the media in the media
 * proxy, and RTP flows both ways through the relay. The NATs map the UAs' media
 * ports to other ports, so audio reaches a UA only if the relay latched onto it.
 *
 * Skipped (saying why) only where network namespaces or iptables are unavailable.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { grpcClient } from '@switchboard/platform';
import { RegistrarClient } from '@switchboard/proto/registrar';
import { MediaProxyClient } from '@switchboard/proto/media';
import { metricValue, startPlatform, type RunningPlatform } from '../lib/platform';
import { Baresip } from './baresip';
import { NAT_MEDIA_PORTS, PUBLIC_IP, createSites, destroySites, unavailable, type Site } from './netns';

const CONTROL_PORT = 4444;
const MEDIA_TIMEOUT_MS = 4000;
const DOMAIN = 'example.com';
const USERS = [
  { username: 'alice', password: 'alice-secret' },
  { username: 'bob', password: 'bob-secret' },
];

const why = existsSync('/usr/bin/baresip') ? unavailable() : 'baresip is not installed (Debian baresip)';

let dir = '';
let sites: Site[] = [];
let platform: RunningPlatform | undefined;
const uas: Baresip[] = [];

before(async () => {
  if (why) return;
  dir = mkdtempSync(join(tmpdir(), 'nat-e2e-'));
  sites = createSites(CONTROL_PORT);
  // The caller's microphone: a 440 Hz tone, 8 kHz mono 16-bit, longer than the call.
  execFileSync('sox', [
    '-n',
    '-r',
    '8000',
    '-c',
    '1',
    '-b',
    '16',
    join(dir, 'tone.wav'),
    'synth',
    '30',
    'sine',
    '440',
  ]);
  platform = await startPlatform({
    subscribers: USERS,
    env: {
      SWITCHBOARD_SIP_DOMAIN: DOMAIN,
      SWITCHBOARD_SIP_LISTEN: `udp:${PUBLIC_IP}:0`,
      SWITCHBOARD_MEDIA_INTERFACES: `default/${PUBLIC_IP}`,
      SWITCHBOARD_SIP_MEDIA_RELAY: 'auto',
      SWITCHBOARD_SIP_NAT_PING_INTERVAL: '2',
      // baresip 1.0 (libre) gives up on a REGISTER challenged with SHA-256 beside MD5 (ENOSYS).
      SWITCHBOARD_SIP_DIGEST_ALGORITHMS: 'MD5',
      // short, so that the vanished UA of the second test is noticed soon
      SWITCHBOARD_MEDIA_TIMEOUT_MS: String(MEDIA_TIMEOUT_MS),
      SWITCHBOARD_MEDIA_SWEEP_MS: '200',
    },
  });
});

after(async () => {
  for (const ua of uas) await ua.stop().catch(() => {});
  await platform?.stop().catch(() => {});
  if (!why) destroySites();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('two baresip UAs behind NAT register with digest auth, call each other, and RTP flows both ways through the media proxy', async (t) => {
  if (why) {
    t.skip(why);
    return;
  }
  const p = platform!;
  const proxy = `sip:${p.sip.udp.host}:${p.sip.udp.port}`;
  const [alice, bob] = sites.map(
    (s, i) =>
      new Baresip({
        dir: join(dir, USERS[i].username),
        ns: s.uaNs,
        ip: s.uaIp,
        user: USERS[i].username,
        password: USERS[i].password,
        domain: DOMAIN,
        proxy,
        controlPort: CONTROL_PORT,
        controlHost: s.publicIp,
        tone: join(dir, 'tone.wav'),
      }),
  );
  uas.push(alice, bob);
  await Promise.all([alice.start(), bob.start()]);

  // The registrar stored each binding with the NAT's address: received differs from the Contact.
  const registrarUrl = p.proc.endpoints.find((e) => e.service === 'registrar' && e.name === 'gRPC')!.url;
  const registrar = grpcClient(RegistrarClient, registrarUrl.replace('grpc://', ''), { deadlineMs: 3000 });
  const mediaUrl = p.proc.endpoints.find((e) => e.service === 'media-proxy' && e.name === 'gRPC')!.url;
  const media = grpcClient(MediaProxyClient, mediaUrl.replace('grpc://', ''), { deadlineMs: 3000 });
  try {
    for (const [i, s] of sites.entries()) {
      // baresip may register before the control connection is up (its REGISTER_OK event then goes
      // nowhere): ask the registrar, and baresip's own registration info.
      const aor = `sip:${USERS[i].username}@${DOMAIN}`;
      // `reginfo` colours the state: `> sip:alice@example.com  <ESC>[32mOK <ESC>[;m  Expires 60s`.
      const reginfo = async () => String((await uas[i].command('reginfo')).data);
      let info = await reginfo();
      for (let k = 0; k < 150 && !/OK\s/.test(info); k++) {
        await new Promise((r) => setTimeout(r, 200));
        info = await reginfo();
      }
      assert.match(
        info,
        /OK\s/,
        `baresip ${USERS[i].username} registered: ${info}\n${uas[i].output.slice(-6000)}`,
      );
      const { bindings } = await registrar.lookup({ aor });
      assert.equal(bindings.length, 1, JSON.stringify(bindings));
      const b = bindings[0];
      assert.match(b.contact, new RegExp(`@${s.uaIp.replace(/\./g, '\\.')}[:;>]|@${s.uaIp}$`), b.contact);
      assert.equal(b.received?.address, s.publicIp, 'received is the NAT public address');
      assert.notEqual(b.received?.address, s.uaIp);
      assert.equal(b.received?.transport, 'udp');
    }

    // alice calls bob; bob answers by itself (answermode=auto).
    const dial = await alice.command('dial', `sip:bob@${DOMAIN}`);
    assert.equal(dial.ok, true, JSON.stringify(dial));
    const [estA, estB] = await Promise.all([
      alice.waitEvent('CALL_ESTABLISHED'),
      bob.waitEvent('CALL_ESTABLISHED'),
    ]);
    assert.ok(estA && estB);

    // Let audio run, then read the relay's view of the call.
    await new Promise((r) => setTimeout(r, 3000));
    const { callIds } = await media.list({ limit: 0 });
    assert.equal(callIds.length, 1, `one anchored call: ${JSON.stringify(callIds)}`);
    const { stats } = await media.query({ callId: callIds[0], fromTag: '', toTag: '' });
    const rtp = (stats?.legs ?? []).flatMap((l) =>
      l.streams.filter((s) => !s.rtcp).map((s) => ({ tag: l.tag, ...s })),
    );
    const detail = JSON.stringify(stats);
    // Each party's RTP reached the relay (packets in on its leg) and the relay latched onto its
    // source: the NAT's public address and the port the NAT chose, which is not the one in the SDP
    // (the NAT maps media ports at random), so nothing else would reach the UA. The callee's first
    // packets arrive before the proxy's Answer; the latch must survive that Answer.
    for (const s of sites) {
      const st = rtp.find((x) => x.advertisedEndpoint.startsWith(`${s.publicIp}:`));
      assert.ok(st, `a stream toward ${s.publicIp}: ${detail}`);
      assert.equal(st.latched, true, `the relay latched onto site ${s.name}: ${detail}`);
      const port = Number(st.endpoint.slice(s.publicIp.length + 1));
      assert.ok(st.endpoint.startsWith(`${s.publicIp}:`), `latched to the NAT of ${s.name}: ${detail}`);
      assert.ok(
        port >= NAT_MEDIA_PORTS.min && port <= NAT_MEDIA_PORTS.max,
        `latched to the port the NAT chose: ${detail}`,
      );
      assert.notEqual(st.endpoint, st.advertisedEndpoint, 'the SDP port is not the NAT port');
      assert.ok(Number(st.stats?.packets ?? 0) > 20, `RTP from site ${s.name} relayed: ${detail}`);
    }
    assert.ok(!detail.includes('10.78.'), `no private address at the relay: ${detail}`);
    const m = await p.metrics();
    assert.ok(
      (metricValue(m, 'switchboard_media_packets_total', 'direction="in"') ?? 0) > 40,
      'relay packets in',
    );
    assert.ok(
      (metricValue(m, 'switchboard_media_packets_total', 'direction="out"') ?? 0) > 40,
      'relay packets out',
    );
    assert.ok(
      (metricValue(m, 'switchboard_sip_nat_pings_total', 'method="OPTIONS"') ?? 0) > 0,
      'the proxy pinged the NATed contacts',
    );

    // Hang up: both sides see the call closed, and the relay ends the session.
    await alice.command('hangup');
    await Promise.all([alice.waitEvent('CALL_CLOSED'), bob.waitEvent('CALL_CLOSED')]);

    // What each baresip decoded from the relay was recorded (sndfile): the 440 Hz tone the other side played.
    for (const u of USERS) {
      const recDir = join(dir, u.username, 'rec');
      const dec = readdirSync(recDir).filter((f) => f.endsWith('dec.wav'));
      assert.ok(
        dec.length > 0,
        `${u.username} recorded received audio: ${JSON.stringify(readdirSync(recDir))}`,
      );
      const file = join(recDir, dec[0]);
      assert.ok(statSync(file).size > 16_000, `${u.username} received over a second of audio`);
      // sox prints its statistics on stderr.
      const stat = spawnSync('sox', [file, '-n', 'stat'], { encoding: 'utf8' }).stderr;
      const freq = Number(/Rough\s+frequency:\s+(\d+)/.exec(stat)?.[1]);
      assert.ok(freq > 400 && freq < 480, `${u.username} heard the 440 Hz tone: ${stat}`);
    }
  } finally {
    registrar.close();
    media.close();
  }
});

test('a call whose UA vanishes (killed, no BYE) is ended by the media timeout', async (t) => {
  if (why) {
    t.skip(why);
    return;
  }
  const [alice, bob] = uas;
  if (!alice || !bob) {
    t.skip('the first test did not start the UAs');
    return;
  }
  const p = platform!;
  const mediaUrl = p.proc.endpoints.find((e) => e.service === 'media-proxy' && e.name === 'gRPC')!.url;
  const media = grpcClient(MediaProxyClient, mediaUrl.replace('grpc://', ''), { deadlineMs: 3000 });
  try {
    const before = metricValue(await p.metrics(), 'switchboard_media_timeouts_total') ?? 0;
    const established = (u: Baresip) => u.events.filter((e) => e.type === 'CALL_ESTABLISHED').length;
    const [a0, b0] = [established(alice), established(bob)];
    const dial = await alice.command('dial', `sip:bob@${DOMAIN}`);
    assert.equal(dial.ok, true, JSON.stringify(dial));
    for (let k = 0; k < 100 && (established(alice) === a0 || established(bob) === b0); k++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(established(alice) > a0 && established(bob) > b0, 'the second call was established');
    await new Promise((r) => setTimeout(r, 1000));
    const { callIds } = await media.list({ limit: 0 });
    assert.equal(callIds.length, 1, JSON.stringify(callIds));
    const callId = callIds[0];

    // Bob's UA vanishes; Alice goes on sending RTP into the call (nobody sends a BYE).
    await bob.kill();
    let stats;
    for (let k = 0; k < 50; k++) {
      await new Promise((r) => setTimeout(r, 200));
      ({ stats } = await media.query({ callId, fromTag: '', toTag: '' }));
      if (stats?.endReason) break;
    }
    assert.equal(stats?.endReason, 'timeout', JSON.stringify(stats));
    const rtpIn = (stats?.legs ?? []).map((l) => Number(l.streams.find((x) => !x.rtcp)?.stats?.packets ?? 0));
    assert.ok(
      rtpIn.every((n) => n > 10),
      `both parties had been sending: ${JSON.stringify(rtpIn)}`,
    );
    assert.equal((await media.list({ limit: 0 })).callIds.length, 0);
    assert.ok((metricValue(await p.metrics(), 'switchboard_media_timeouts_total') ?? 0) > before);
    await alice.command('hangup');
  } finally {
    media.close();
  }
});
