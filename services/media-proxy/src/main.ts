/**
 * services/media-proxy: the RTP/RTCP relay for NAT, controlled over gRPC
 * (proto/media.proto, modelled on rtpengine's ng protocol). Calls end on
 * Delete or when their media stops; either way the final stats go to the
 * `media-events` topic (key Call-ID).
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { defineService, grpcService, serveGrpc, DomainError } from '@switchboard/platform';
import { MediaProxyService, type CallStats } from '@switchboard/proto/media';
import { mediaConfig, schedulingProblem } from './config';
import { DROP_REASONS, MediaRelay, type EndReason, type RelayCounters } from './relay';

export {
  mediaConfig,
  parseInterfaces,
  schedulingProblem,
  SCHEDULING_POLICIES,
  type RelayInterface,
  type SchedulingPolicy,
} from './config';
export { MediaRelay, type RelayOptions, type Clock, type RelayEngine } from './relay';

export const MEDIA_EVENTS_TOPIC = 'media-events';

/** The value of a media-events record (JSON): why the session ended and its stats. */
export interface MediaEvent {
  type: EndReason;
  callId: string;
  stats: CallStats;
}

/**
 * A prom-client Counter fed from a plain number kept on the hot path: at scrape
 * time the growth since the last scrape is added.
 */
function liveCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Array<[Record<string, string>, number]>,
): void {
  const last = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      for (const [labels, v] of read()) {
        const k = Object.values(labels).join('\u0000');
        const d = v - (last.get(k) ?? 0);
        if (d > 0 || !last.has(k)) this.inc(labels, Math.max(d, 0));
        last.set(k, v);
      }
    },
  });
}

export function registerRelayMetrics(registry: Registry, relay: MediaRelay) {
  // read at each scrape: with the native engine a getter copies what its thread counted
  const counters = (): RelayCounters => relay.counters;
  new Gauge({
    name: 'switchboard_media_sessions_active',
    help: 'Calls the media relay holds',
    registers: [registry],
    collect() {
      this.set(relay.activeCalls);
    },
  });
  new Gauge({
    name: 'switchboard_media_ports_in_use',
    help: 'Relay UDP ports bound (live calls and quiet period)',
    registers: [registry],
    collect() {
      this.set(relay.portsInUse);
    },
  });
  new Gauge({
    name: 'switchboard_media_ports_free',
    help: 'Relay UDP ports free in the configured range',
    registers: [registry],
    collect() {
      this.set(relay.portsFree);
    },
  });
  liveCounter(
    registry,
    'switchboard_media_packets_total',
    'RTP and RTCP packets received (in) and relayed (out)',
    ['direction'],
    () => [
      [{ direction: 'in' }, counters().packetsIn],
      [{ direction: 'out' }, counters().packetsOut],
    ],
  );
  liveCounter(
    registry,
    'switchboard_media_bytes_total',
    'RTP and RTCP bytes received (in) and relayed (out)',
    ['direction'],
    () => [
      [{ direction: 'in' }, counters().bytesIn],
      [{ direction: 'out' }, counters().bytesOut],
    ],
  );
  liveCounter(
    registry,
    'switchboard_media_packets_dropped_total',
    'Packets dropped: no_session (port of an ended call), strict_source, no_destination (peer unknown or on hold), malformed, loop',
    ['reason'],
    () => {
      const c = counters();
      return DROP_REASONS.map((r) => [{ reason: r }, c.dropped[r]]);
    },
  );
  liveCounter(
    registry,
    'switchboard_media_timeouts_total',
    'Calls ended because their media stopped',
    [],
    () => [[{}, counters().timeouts]],
  );
  liveCounter(registry, 'switchboard_media_rtcp_packets_total', 'RTCP packets received and read', [], () => [
    [{}, counters().rtcpIn],
  ]);
}

/** Per-stream loss and jitter histograms, observed when a stream ends. */
export function streamHistograms(registry: Registry) {
  const loss = new Histogram({
    name: 'switchboard_media_stream_loss_ratio',
    help: 'Per stream at its end: packets lost before the relay / packets expected',
    buckets: [0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
    registers: [registry],
  });
  const jitter = new Histogram({
    name: 'switchboard_media_stream_jitter_seconds',
    help: 'Per stream at its end: interarrival jitter at the relay (RFC 3550 A.8)',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2],
    registers: [registry],
  });
  return (lossRatio: number, jitterMs: number) => {
    loss.observe(lossRatio);
    jitter.observe(jitterMs / 1000);
  };
}

export const mediaProxyService = defineService({
  name: 'media-proxy',
  description:
    'RTP/RTCP relay for NAT: latching, IPv4/IPv6 bridging, RTCP stats, media timeouts (gRPC control)',
  configSpec: mediaConfig,
  async start(ctx, config) {
    const events = await ctx.events();
    await events.ensureTopic(MEDIA_EVENTS_TOPIC);
    let pending = Promise.resolve();
    const publish = (stats: CallStats, reason: EndReason) => {
      const value: MediaEvent = { type: reason, callId: stats.callId, stats };
      pending = pending
        .then(() =>
          events.publish(MEDIA_EVENTS_TOPIC, [
            { key: stats.callId, value: JSON.stringify(value), headers: { type: reason } },
          ]),
        )
        .catch((err: unknown) =>
          ctx.logger.error({ err, callId: stats.callId }, 'media-events publish failed'),
        );
      if (reason === 'timeout') ctx.logger.info({ callId: stats.callId }, 'media timeout: call ended');
    };
    const problem = schedulingProblem(config.scheduling, config.priority);
    if (problem) throw new Error(problem);
    const relay = new MediaRelay({
      ...config,
      onSchedulingFailed: (reason) =>
        ctx.logger.warn(
          { reason, scheduling: config.scheduling, priority: config.priority },
          'media-proxy: relay thread scheduling not applied',
        ),
      onEnded: publish,
      onStreamEnded: streamHistograms(ctx.metrics),
      onEngineFallback: (reason) =>
        ctx.logger.warn(
          { reason },
          'media-proxy: native relay engine unavailable, running the JS relay (dgram on the event loop)',
        ),
    });
    registerRelayMetrics(ctx.metrics, relay);
    const sweeper = setInterval(() => relay.sweep(), config.sweepMs);
    sweeper.unref();

    const server = await serveGrpc({
      host: config.grpcHost,
      port: config.grpcPort,
      logger: ctx.logger,
      services: [
        grpcService(MediaProxyService, {
          offer: (req) => relay.offer(req),
          answer: (req) => relay.answer(req),
          delete: async (req) => ({ stats: await relay.delete(req) }),
          query: (req) => {
            if (!req.callId) throw new DomainError('invalid_argument', 'call_id is required', 'call_id');
            return { stats: relay.query(req.callId) };
          },
          list: (req) => ({ callIds: relay.callIds(Math.min(req.limit || 32, 10000)) }),
        }),
      ],
    });
    ctx.endpoint('gRPC', `grpc://${config.grpcHost}:${server.port}`);
    ctx.endpoint(
      'RTP',
      config.interfaces.map((i) => `${i.name}=${i.advertised}:${config.portMin}-${config.portMax}`).join(' '),
    );
    ctx.logger.info(
      { port: server.port, interfaces: config.interfaces.map((i) => i.name), engine: relay.engine },
      'media-proxy ready',
    );

    return {
      /** The bound gRPC port (tests use port 0). */
      port: server.port,
      relay,
      async stop() {
        clearInterval(sweeper);
        await server.shutdown();
        await relay.close();
        await pending;
      },
    };
  },
});

export default mediaProxyService;
