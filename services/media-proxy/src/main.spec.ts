import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import {
  grpcClient,
  loadConfig,
  openDb,
  openEmbeddedBus,
  platformSpec,
  type Db,
  type EventBus,
  type EventMessage,
  type ServiceContext,
} from '@switchboard/platform';
import { MediaProxyClient, MediaProxyService, type OfferRequest } from '@switchboard/proto/media';
import { mediaConfig } from './config';
import { MEDIA_EVENTS_TOPIC, mediaProxyService, type MediaEvent } from './main';
import { audioSdp, rtpPacket, target, UdpPeer } from './testing';

for (const engine of ['native', 'js'] as const) {
  describe(`media-proxy service (gRPC, media-events, metrics), engine: ${engine}`, () => {
    let db: Db;
    let bus: EventBus;
    let metrics: Registry;
    let ctx: ServiceContext;
    let running: { stop(): Promise<void>; port?: number; relay: { engine: string } };
    let client: ReturnType<typeof grpcClient<typeof MediaProxyService, MediaProxyClient>>;
    const events: EventMessage[] = [];
    const peers: UdpPeer[] = [];

    before(async () => {
      db = await openDb({ memory: true });
      bus = await openEmbeddedBus({ db, pollMs: 20 });
      metrics = new Registry();
      ctx = {
        platform: loadConfig(platformSpec, {}),
        logger: pino({ level: 'silent' }),
        metrics,
        ops: { addReadinessCheck: () => undefined, addRoute: () => undefined },
        targets: ['media-proxy'],
        db: async () => db,
        events: async () => bus,
        endpoint: () => undefined,
        localEndpoint: () => undefined,
      };
      const base = 20000 + 200 * Math.floor(Math.random() * 49);
      const config = loadConfig(mediaConfig, {
        SWITCHBOARD_MEDIA_GRPC_PORT: '0',
        SWITCHBOARD_MEDIA_PORT_MIN: String(base),
        SWITCHBOARD_MEDIA_PORT_MAX: String(base + 199),
        // short timeout so the real sweeper ends the silent call below
        SWITCHBOARD_MEDIA_TIMEOUT_MS: '300',
        SWITCHBOARD_MEDIA_SWEEP_MS: '20',
        SWITCHBOARD_MEDIA_ENGINE: engine,
        // a policy any user may set: the setting reaches the native relay's thread (relay.spec.ts checks it took)
        SWITCHBOARD_MEDIA_SCHEDULING: engine === 'native' ? 'batch' : 'default',
      });
      running = (await mediaProxyService.start(ctx, config)) as typeof running;
      assert.equal(running.relay.engine, engine, 'the engine asked for runs');
      client = grpcClient(MediaProxyClient, `127.0.0.1:${running.port}`);
      await bus.subscribe({
        topic: MEDIA_EVENTS_TOPIC,
        group: 'media-proxy-spec',
        fromBeginning: true,
        handler: async (m) => void events.push(m),
      });
    });

    test('a real-time scheduling policy without a priority stops the start, naming the setting', async () => {
      const config = loadConfig(mediaConfig, {
        SWITCHBOARD_MEDIA_GRPC_PORT: '0',
        SWITCHBOARD_MEDIA_ENGINE: engine,
        SWITCHBOARD_MEDIA_SCHEDULING: 'fifo',
      });
      await assert.rejects(
        mediaProxyService.start(ctx, config),
        /SWITCHBOARD_MEDIA_PRIORITY: fifo needs a priority/,
      );
    });

    after(async () => {
      client.close();
      for (const p of peers) p.close();
      await running.stop();
      await bus.close();
      await db.close();
    });

    const offer = (callId: string, sdp: string): OfferRequest => ({
      callId,
      fromTag: 'A',
      viaBranch: '',
      sdp,
      flags: [],
      replace: [],
      direction: [],
      receivedFrom: '',
      transportProtocol: '',
      ice: '',
      toTag: '',
      rtcpMux: [],
    });

    const eventFor = async (callId: string, type: string): Promise<MediaEvent> => {
      for (;;) {
        const m = events.find((e) => e.key === callId && JSON.parse(e.value!.toString()).type === type);
        if (m) return JSON.parse(m.value!.toString()) as MediaEvent;
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    test(
      'offer, answer, media, query, list and delete over gRPC; delete publishes the final stats',
      { timeout: 15000 },
      async () => {
        const a = await UdpPeer.open();
        const b = await UdpPeer.open();
        peers.push(a, b);
        const o = await client.offer(offer('svc-1', audioSdp(a.address, a.port)));
        const ans = await client.answer({ ...offer('svc-1', audioSdp(b.address, b.port)), toTag: 'B' });
        await a.send(rtpPacket(1, 160, 1), target(ans.sdp));
        assert.equal((await b.next()).msg.readUInt16BE(2), 1);
        await b.send(rtpPacket(2, 160, 2), target(o.sdp));
        assert.equal((await a.next()).msg.readUInt16BE(2), 2);

        const q = await client.query({ callId: 'svc-1', fromTag: '', toTag: '' });
        assert.equal(q.stats!.rtp!.packets, 2);
        assert.deepEqual(
          q.stats!.legs.map((l) => l.tag),
          ['A', 'B'],
        );
        assert.ok((await client.list({ limit: 0 })).callIds.includes('svc-1'));

        const text = await metrics.metrics();
        assert.match(text, /switchboard_media_sessions_active \d+/);
        assert.match(text, /switchboard_media_packets_total\{direction="in"\} 2/);
        assert.match(text, /switchboard_media_packets_total\{direction="out"\} 2/);
        assert.match(text, /switchboard_media_ports_in_use 4/);
        assert.match(text, /switchboard_media_packets_dropped_total\{reason="strict_source"\} 0/);

        const del = await client.delete({
          callId: 'svc-1',
          fromTag: 'A',
          toTag: '',
          viaBranch: '',
          deleteDelay: 0,
        });
        assert.equal(del.stats!.endReason, 'delete');
        const ev = await eventFor('svc-1', 'delete');
        assert.equal(ev.stats.rtp!.packets, 2);
        assert.equal(ev.stats.legs.length, 2);
        assert.ok(!(await client.list({ limit: 0 })).callIds.includes('svc-1'));
        assert.match(await metrics.metrics(), /switchboard_media_stream_loss_ratio_count 2/);

        await assert.rejects(
          client.answer({ ...offer('nope', audioSdp(b.address, b.port)), toTag: 'B' }),
          (e: Error & { kind?: string }) => e.kind === 'not_found',
        );
      },
    );

    test(
      'a call whose one UA vanishes (the other talks on) is ended by the timeout and a media-events record appears',
      { timeout: 15000 },
      async () => {
        const a = await UdpPeer.open();
        const b = await UdpPeer.open();
        peers.push(a, b);
        const o = await client.offer(offer('svc-vanish', audioSdp(a.address, a.port)));
        const ans = await client.answer({ ...offer('svc-vanish', audioSdp(b.address, b.port)), toTag: 'B' });
        await a.send(rtpPacket(1, 160, 0xa), target(ans.sdp));
        await b.next();
        // A is gone; B goes on sending every 20 ms (bounded: 250 packets, 5 s)
        let ended: MediaEvent | undefined;
        const found = () =>
          events.find((e) => e.key === 'svc-vanish' && JSON.parse(e.value!.toString()).type === 'timeout');
        for (let seq = 2; seq < 252 && !ended; seq++) {
          await b.send(rtpPacket(seq, seq * 160, 0xb), target(o.sdp));
          await new Promise((r) => setTimeout(r, 20));
          const m = found();
          if (m) ended = JSON.parse(m.value!.toString()) as MediaEvent;
        }
        assert.ok(ended, 'a timeout record while B still sent');
        assert.equal(ended.stats.endReason, 'timeout');
        const legA = ended.stats.legs.find((l) => l.tag === 'A')!.streams.find((x) => !x.rtcp)!;
        const legB = ended.stats.legs.find((l) => l.tag === 'B')!.streams.find((x) => !x.rtcp)!;
        assert.equal(Number(legA.stats!.packets), 1);
        assert.ok(Number(legB.stats!.packets) > 1, 'B was still talking');
      },
    );

    test(
      'a call whose media stops is ended by the timeout and a media-events record appears',
      { timeout: 15000 },
      async () => {
        await client.offer(offer('svc-silent', audioSdp('127.0.0.1', 5000)));
        await client.answer({ ...offer('svc-silent', audioSdp('127.0.0.1', 5002)), toTag: 'B' });
        const ev = await eventFor('svc-silent', 'timeout');
        assert.equal(ev.callId, 'svc-silent');
        assert.equal(ev.stats.endReason, 'timeout');
        assert.match(await metrics.metrics(), /switchboard_media_timeouts_total [1-9]/);
      },
    );
  });
}
