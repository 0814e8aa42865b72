// The media server behind the proxy, end to end, on the platform as `npm start` runs it: voicemail on busy
// and on no answer (a real 5 s timer), message waiting (unsolicited NOTIFY to the registered phone, and a
// SUBSCRIBE through the proxy), *98 to the caller's own mailbox, a conference room, and the announcement a
// refused call hears. Provisioned through the portal's API; SIPp phones, RTP from SIPp's pcap play or the test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SipRequest, SipResponse } from '@switchboard/sip';
import { metricValue, type RunningPlatform } from '../lib/platform';
import { create, finalResponse, settled, startProvisioned, type Api } from '../features/lib';
import { explain, freePort, pick, type UaRun } from '../rfc3665/lib';
import {
  dominant,
  eventually,
  goertzel,
  mediaCall,
  mediaDirs,
  mediaServerClient,
  readWav,
  registeredPhone,
  rtpAudio,
  rtpDigit,
  rtpEndpoint,
  subscribeMwi,
  tone,
  writePcap,
  writeWav,
} from './lib';

/** The caller's final response, or a failure showing what SIPp saw. */
function final(run: UaRun): SipResponse {
  assert.ok(run.log.length, explain(run));
  return finalResponse(run);
}

const ALICE = { username: 'alice', password: 'al1ce-Secret' };
const BOB = { username: 'bob', password: 'b0b-Secret' };
const CAROL = { username: 'carol', password: 'car0l-Secret' };
const ERIN = { username: 'erin', password: 'er1n-Secret' };
/** Prepaid, never topped up: no credit for a PSTN call. */
const PAULA = { username: 'paula', password: 'paul4-Secret' };

/** What a caller says into voicemail: `ms` of a tone, 20 ms PCMU packets. */
const speech = (hz: number, ms: number) =>
  writePcap(rtpAudio(tone(hz, ms), 'pcmu', { pt: 0, ts: 8000, seq: 1 }));
const silence = () => writePcap(rtpAudio(new Int16Array(160), 'pcmu', { pt: 0 }));

describe('media server behind the proxy', () => {
  let p: RunningPlatform;
  let api: Api;
  const dirs = mediaDirs();
  const ids: Record<string, string> = {};

  before(async () => {
    ({ p, api } = await startProvisioned({
      SWITCHBOARD_SIP_ANNOUNCE_FAILURES: 'true',
      SWITCHBOARD_MEDIASERVER_PROMPTS_DIR: dirs.prompts,
      SWITCHBOARD_MEDIASERVER_VOICEMAIL_DIR: dirs.voicemail,
    }));
    for (const s of [ALICE, BOB, CAROL, ERIN, PAULA])
      ids[s.username] = (await create(api, '/api/v1/subscribers', { ...s, privileges: ['national'] })).id;
    const sub = (u: string) => `/api/v1/subscribers/${ids[u]}`;
    await create(api, `${sub('bob')}/forwarding`, { condition: 'busy', target: `sip:voicemail@${p.domain}` });
    await create(api, `${sub('erin')}/forwarding`, {
      condition: 'no-answer',
      target: `sip:voicemail@${p.domain}`,
      timeout: 5,
    });
    // German numbers go to a gateway (never reached here: the caller has no credit) and cost 0.60 a minute.
    const gw = await create(api, '/api/v1/gateways', {
      name: 'gw',
      address: `127.0.0.1:${await freePort()}`,
    });
    await create(api, '/api/v1/routes', { name: 'de', prefix: '49', gatewayIds: [gw.id] });
    const plan = await api('PUT', '/api/v1/rate-plans/std', {
      currency: 'EUR',
      ratesCsv: 'prefix,name,price_per_minute,increment\n49,Germany,0.60,1/1\n',
    });
    assert.equal(plan.status, 200, JSON.stringify(plan.body));
    // Bob recorded a greeting of his own: one second of 600 Hz (the test hears it, and it is short).
    mkdirSync(join(dirs.voicemail, `bob@${p.domain}`), { recursive: true });
    writeFileSync(join(dirs.voicemail, `bob@${p.domain}`, 'greeting.wav'), writeWav(tone(600, 1000)));
    await settled(p);
  });
  after(async () => {
    await p?.stop();
    rmSync(dirs.root, { recursive: true, force: true });
  });

  test('busy → voicemail: greeting heard, message stored, NOTIFY to the phone, SUBSCRIBE answered', async () => {
    const bobPhone = await registeredPhone(p, BOB, 'busy.xml');
    const ear = await rtpEndpoint();
    try {
      const alice = await mediaCall(p, ALICE, 'bob', {
        rtpPort: ear.port,
        pcap: speech(440, 3000),
        greetMs: 2500,
        talkMs: 3600,
      });
      const b = await bobPhone.done;
      // Bob's phone again, on the same port: now it takes the message-waiting NOTIFY.
      const bobMwi = await registeredPhone(p, BOB, 'notify.xml', { port: bobPhone.port, register: false });
      const a = await alice.done;
      assert.equal(final(a).status, 200, explain(a, b));
      assert.equal(b.result.successful, 1, explain(b));
      const answer = pick<SipResponse>(a.log, '< 200');
      assert.match(answer.getHeader('Content-Type') ?? '', /application\/sdp/);
      // What Alice heard before she spoke: the greeting (600 Hz), then the beep (1000 Hz).
      const firstSecond = ear.heard().subarray(0, 8000);
      assert.ok(firstSecond.length === 8000, `heard ${ear.packets.length} packets`);
      assert.equal(dominant(firstSecond, [440, 600, 1000]), 600);
      assert.ok(goertzel(ear.heard(), 1000) > 1000 * goertzel(ear.heard(), 440), 'the beep');

      // The message, stored for bob: caller, about 3 s, and the 440 Hz Alice said.
      const ms = mediaServerClient(p);
      try {
        const [msg] = await eventually(async () => {
          const { messages } = await ms.listMessages({ mailbox: `bob@${p.domain}` });
          return messages.length ? messages : undefined;
        }, 'the voicemail message');
        assert.equal(msg.caller, `sip:alice@${p.domain}`);
        assert.equal(msg.folder, 'new');
        assert.ok(msg.durationMs >= 2500 && msg.durationMs <= 3500, `${msg.durationMs} ms`);
        const audio = readWav(
          Buffer.from((await ms.getMessageAudio({ mailbox: `bob@${p.domain}`, id: msg.id })).wav),
        );
        assert.equal(dominant(audio, [440, 600, 1000]), 440);
        assert.deepEqual(await ms.getMailboxSummary({ mailbox: `bob@${p.domain}` }), {
          newMessages: 1,
          savedMessages: 0,
          messagesWaiting: true,
        });
      } finally {
        ms.close();
      }
      const text = await p.metrics();
      assert.equal(metricValue(text, 'switchboard_mediaserver_voicemail_stored_total'), 1);
      assert.equal(metricValue(text, 'switchboard_mediaserver_calls_total', 'app="voicemail"'), 1);

      // The registered phone got the unsolicited NOTIFY (RFC 3842).
      const n = await bobMwi.done;
      assert.equal(n.result.successful, 1, explain(n));
      const notify = pick<SipRequest>(n.log, '< NOTIFY');
      assert.match(notify.getHeader('Event') ?? '', /^message-summary/);
      const body = notify.body.toString();
      assert.match(body, /Messages-Waiting: yes/);
      assert.match(body, new RegExp(`Message-Account: sip:bob@${p.domain}`));
      assert.match(body, /Voice-Message: 1\/0/);

      // Bob's phone subscribes through the proxy: 200 and a NOTIFY saying a message waits.
      const s = await subscribeMwi(p, BOB);
      assert.equal(s.result.successful, 1, explain(s));
      const first = pick<SipRequest>(s.log, '< NOTIFY');
      assert.match(first.body.toString(), /Messages-Waiting: yes/);
      assert.match(first.getHeader('Subscription-State') ?? '', /^active/);
    } finally {
      ear.close();
    }
  });

  test('bob retrieves the message with *98 and DTMF: 1 plays it (the tone alice left), 7 deletes it', async () => {
    const ear = await rtpEndpoint();
    const ms = mediaServerClient(p);
    try {
      const keys = writePcap([
        ...rtpDigit('1', { pt: 101, atUs: 0, ts: 1000, seq: 1 }),
        ...rtpDigit('7', { pt: 101, atUs: 5_000_000, ts: 1000 + 40_000, seq: 40 }),
        ...rtpDigit('#', { pt: 101, atUs: 7_500_000, ts: 1000 + 60_000, seq: 60 }),
      ]);
      const bob = await mediaCall(p, BOB, '*98', {
        rtpPort: ear.port,
        pcap: keys,
        greetMs: 1000,
        talkMs: 12_000,
      });
      const b = await bob.done;
      assert.equal(final(b).status, 200, explain(b));
      pick<SipRequest>(b.log, '< BYE'); // '#' hung up from the media server's side
      // He heard his message: alice's 440 Hz stands out of what the menu played him.
      const heard = ear.heard();
      assert.ok(goertzel(heard, 440) > 100 * goertzel(heard, 1700), `heard ${ear.packets.length} packets`);
      const left = await eventually(async () => {
        const { messages } = await ms.listMessages({ mailbox: `bob@${p.domain}` });
        return messages.length === 0 ? messages : undefined;
      }, 'the message deleted');
      assert.deepEqual(left, []);
      assert.deepEqual(await ms.getMailboxSummary({ mailbox: `bob@${p.domain}` }), {
        newMessages: 0,
        savedMessages: 0,
        messagesWaiting: false,
      });
    } finally {
      ms.close();
      ear.close();
    }
  });

  test('no answer → voicemail after the 5 s forwarding timer', async () => {
    const erinPhone = await registeredPhone(p, ERIN, 'ring.xml', { timeoutMs: 30_000 });
    const ear = await rtpEndpoint();
    try {
      const started = Date.now();
      // Erin has no greeting of her own: the generated vm-greeting prompt plays before the beep.
      const greeting = readWav(readFileSync(join(dirs.prompts, 'vm-greeting.wav'))).length / 8;
      const alice = await mediaCall(p, ALICE, 'erin', {
        rtpPort: ear.port,
        pcap: speech(880, 1500),
        greetMs: Math.round(greeting + 1500),
        talkMs: 2200,
        timeoutMs: 40_000,
      });
      const e = await erinPhone.done;
      const rang = Date.now() - started;
      const a = await alice.done;
      assert.equal(final(a).status, 200, explain(a, e));
      // Erin's phone rang (180) until the proxy's no-answer timer cancelled it (CANCEL, 487, ACK).
      assert.equal(e.result.successful, 1, `erin's phone rang and was cancelled: ${explain(e)}`);
      assert.ok(rang >= 5000 && rang < 9000, `erin rang for ${rang} ms`);
      assert.match(pick<SipRequest>(a.log, '< 200').getHeader('Content-Type') ?? '', /application\/sdp/);
      // Alice heard the spoken greeting and the beep (20 ms packets) before she spoke.
      const expected = Math.ceil((greeting + 400) / 20);
      assert.ok(ear.packets.length >= expected * 0.9, `heard ${ear.packets.length} of ${expected} packets`);
      assert.ok(goertzel(ear.heard(), 1000) > 0);
      const ms = mediaServerClient(p);
      try {
        const [msg] = await eventually(async () => {
          const { messages } = await ms.listMessages({ mailbox: `erin@${p.domain}` });
          return messages.length ? messages : undefined;
        }, "erin's voicemail");
        assert.equal(msg.caller, `sip:alice@${p.domain}`);
        const audio = readWav(
          Buffer.from((await ms.getMessageAudio({ mailbox: `erin@${p.domain}`, id: msg.id })).wav),
        );
        assert.equal(dominant(audio, [440, 600, 880, 1000]), 880);
      } finally {
        ms.close();
      }
    } finally {
      ear.close();
    }
  });

  test("*98 reaches the caller's own mailbox menu: answered, keys work, # hangs up", async () => {
    const before = await p.metrics();
    const ear = await rtpEndpoint();
    try {
      const keys = writePcap([
        ...rtpDigit('1', { pt: 101, atUs: 0, ts: 1000, seq: 1 }),
        ...rtpDigit('#', { pt: 101, atUs: 2_500_000, ts: 1000 + 20_000, seq: 20 }),
      ]);
      const alice = await mediaCall(p, ALICE, '*98', {
        rtpPort: ear.port,
        pcap: keys,
        greetMs: 1000,
        talkMs: 10_000,
      });
      const a = await alice.done;
      assert.equal(final(a).status, 200, explain(a));
      // '#' ended the call from the media server's side.
      pick<SipRequest>(a.log, '< BYE');
      assert.ok(ear.packets.length > 25, `heard ${ear.packets.length} packets of the menu`);
      const after = await p.metrics();
      const v = (t: string, n: string, l = '') => metricValue(t, n, l) ?? 0;
      assert.equal(
        v(after, 'switchboard_mediaserver_calls_total', 'app="mailbox"') -
          v(before, 'switchboard_mediaserver_calls_total', 'app="mailbox"'),
        1,
      );
      assert.equal(
        v(after, 'switchboard_mediaserver_dtmf_total') - v(before, 'switchboard_mediaserver_dtmf_total'),
        2,
      );
    } finally {
      ear.close();
    }
  });

  test('announce-try-later in our domain: the media server answers, plays the prompt, hangs up', async () => {
    const ear = await rtpEndpoint();
    try {
      const prompt = readWav(readFileSync(join(dirs.prompts, 'try-later.wav')));
      const expected = Math.ceil(prompt.length / 160);
      const alice = await mediaCall(p, ALICE, 'announce-try-later', {
        rtpPort: ear.port,
        pcap: silence(),
        greetMs: expected * 20 + 3000,
      });
      const a = await alice.done;
      assert.equal(final(a).status, 200, explain(a));
      pick<SipRequest>(a.log, '< BYE');
      assert.ok(
        ear.packets.length >= expected * 0.95 && ear.packets.length <= expected,
        `${ear.packets.length} packets of ${expected}`,
      );
    } finally {
      ear.close();
    }
  });

  test('three subscribers dial conf-42: all answered by the conference, each hears the mix of the other two', async () => {
    const before = await p.metrics();
    const ears = [await rtpEndpoint(), await rtpEndpoint(), await rtpEndpoint()];
    try {
      const hz = [400, 1100, 1700];
      const calls = await Promise.all(
        [ALICE, CAROL, ERIN].map((who, k) =>
          mediaCall(p, who, 'conf-42', {
            rtpPort: ears[k].port,
            pcap: silence(),
            greetMs: 5000,
            talkMs: 300,
          }),
        ),
      );
      // Each phone talks (its own tone) once the conference sends it audio: symmetric RTP, so the server latches to it.
      await Promise.all(ears.map((e, k) => e.talk(tone(hz[k], 3500), 0x1000 + k)));
      const runs = await Promise.all(calls.map((c) => c.done));
      runs.forEach((r) => assert.equal(final(r).status, 200, explain(...runs)));
      const v = (t: string) => metricValue(t, 'switchboard_mediaserver_calls_total', 'app="conference"') ?? 0;
      assert.equal(v(await p.metrics()) - v(before), 3, 'all three calls answered by the conference');
      ears.forEach((e, k) => {
        const heard = e.heard();
        const own = goertzel(heard, hz[k]);
        for (const j of [0, 1, 2].filter((j) => j !== k)) {
          const other = goertzel(heard, hz[j]);
          assert.ok(
            other > 1000 && other > 100 * own,
            `caller ${k} hears ${hz[j]} Hz at ${other}, its own at ${own}`,
          );
        }
      });
    } finally {
      for (const e of ears) e.close();
    }
  });

  test('a PSTN call without credit hears "insufficient credit" in early media, then gets 402', async () => {
    const ear = await rtpEndpoint();
    try {
      const prompt = readWav(readFileSync(join(dirs.prompts, 'insufficient-credit.wav')));
      const paula = await mediaCall(p, PAULA, '0301234567', { rtpPort: ear.port, pcap: silence() });
      const a = await paula.done;
      const res = final(a);
      assert.equal(res.status, 402, explain(a));
      assert.match(pick<SipResponse>(a.log, '< 183').getHeader('Content-Type') ?? '', /application\/sdp/);
      const expected = Math.ceil(prompt.length / 160);
      assert.ok(
        ear.packets.length >= expected * 0.95 && ear.packets.length <= expected,
        `${ear.packets.length} packets of ${expected}`,
      );
    } finally {
      ear.close();
    }
  });

  test('a call refused for no privilege hears "not allowed" in early media, then gets 403', async () => {
    const ear = await rtpEndpoint();
    try {
      const prompt = readWav(readFileSync(join(dirs.prompts, 'not-allowed.wav')));
      const alice = await mediaCall(p, ALICE, '00442079460000', { rtpPort: ear.port, pcap: silence() });
      const a = await alice.done;
      const res = final(a);
      assert.equal(res.status, 403, explain(a));
      assert.match(res.reason, /international/);
      const early = pick<SipResponse>(a.log, '< 183');
      assert.match(early.getHeader('Content-Type') ?? '', /application\/sdp/);
      assert.match(early.body.toString(), /m=audio \d+ RTP\/AVP 0/);
      // The whole prompt, in 20 ms PCMU packets from the media server, before the 403.
      const expected = Math.ceil(prompt.length / 160);
      assert.ok(
        ear.packets.length >= expected * 0.95 && ear.packets.length <= expected,
        `${ear.packets.length} packets of ${expected}`,
      );
      const heard = ear.heard();
      assert.ok(goertzel(heard, 300) + goertzel(heard, 500) > 0, 'speech, not silence');
    } finally {
      ear.close();
    }
  });
});

describe('announcements without prompts', () => {
  let p: RunningPlatform;
  let api: Api;
  const dirs = mediaDirs();

  before(async () => {
    // No prompt files and no generation: the media server logs which are missing and refuses them with 404.
    ({ p, api } = await startProvisioned({
      SWITCHBOARD_SIP_ANNOUNCE_FAILURES: 'true',
      SWITCHBOARD_MEDIASERVER_PROMPTS_DIR: dirs.prompts,
      SWITCHBOARD_MEDIASERVER_VOICEMAIL_DIR: dirs.voicemail,
      SWITCHBOARD_MEDIASERVER_GENERATE_PROMPTS: 'false',
    }));
    await create(api, '/api/v1/subscribers', { ...ALICE, privileges: ['national'] });
    await settled(p);
  });
  after(async () => {
    await p?.stop();
    rmSync(dirs.root, { recursive: true, force: true });
  });

  test('a refused call whose prompt is missing still gets its own status (403), without early media', async () => {
    const ear = await rtpEndpoint();
    try {
      const alice = await mediaCall(p, ALICE, '00442079460000', { rtpPort: ear.port, pcap: silence() });
      const a = await alice.done;
      const res = final(a);
      assert.equal(res.status, 403, explain(a));
      assert.match(res.reason, /international/);
      assert.ok(
        !a.log.some((l) => l.dir === 'recv' && !l.msg.isRequest && (l.msg as SipResponse).status === 183),
      );
      assert.equal(ear.packets.length, 0);
      const text = await p.metrics();
      assert.equal(metricValue(text, 'switchboard_mediaserver_rejected_total', 'status="404"'), 1);
    } finally {
      ear.close();
    }
  });
});
