/**
 * Starts the platform for a test the way `npm start` does (the target runner,
 * one process, embedded storage in memory), with every port ephemeral on
 * loopback, and subscribers seeded on the `subscribers` topic.
 */
import {
  defineService,
  processEnv,
  runTargets,
  type RunningProcess,
  type ServiceModule,
} from '@switchboard/platform';
import { ha1 } from '@switchboard/sip';
import { TOPICS, encodeRecord, type SubscriberRecord } from '@switchboard/contracts';
import { SERVICES } from '../../cli/targets';

const MODULES: readonly ServiceModule[] = SERVICES;

export interface TestSubscriber {
  username: string;
  password: string;
  domain?: string;
  privileges?: string[];
}

export interface RunningPlatform {
  proc: RunningProcess;
  /** The portal's HTTP base URL, when it runs. */
  portal?: string;
  /** The proxy's UDP and TCP addresses. */
  sip: { udp: { host: string; port: number }; tcp?: { host: string; port: number } };
  domain: string;
  metrics(): Promise<string>;
  addSubscribers(subs: TestSubscriber[]): Promise<void>;
  stop(): Promise<void>;
}

export function subscriberRecord(s: TestSubscriber, defaultDomain: string): SubscriberRecord {
  const domain = s.domain ?? defaultDomain;
  return {
    aor: `sip:${s.username}@${domain}`,
    username: s.username,
    domain,
    ha1: ha1(s.username, domain, s.password, 'MD5'),
    ha1Sha256: ha1(s.username, domain, s.password, 'SHA-256'),
    enabled: true,
    privileges: s.privileges ?? [],
  };
}

export async function startPlatform(
  opts: {
    subscribers?: TestSubscriber[];
    env?: Record<string, string>;
    targets?: string[];
  } = {},
): Promise<RunningPlatform> {
  const domain = opts.env?.SWITCHBOARD_SIP_DOMAIN ?? 'example.com';
  let publish: ((subs: TestSubscriber[]) => Promise<void>) | undefined;
  // A module of the test's own, in the same process: it seeds the subscribers topic as the portal would.
  const seed: ServiceModule = defineService({
    name: 'test-seed',
    description: 'publishes test subscribers',
    configSpec: {},
    async start(ctx) {
      const bus = await ctx.events();
      await bus.ensureTopic(TOPICS.subscribers, { compacted: true });
      // In batches of 500, as the portal's outbox relay publishes: a benchmark's 100,000 subscribers
      // in one statement would grow the embedded database's memory as no deployment does.
      publish = async (subs) => {
        for (let i = 0; i < subs.length; i += 500)
          await bus.publish(
            TOPICS.subscribers,
            subs.slice(i, i + 500).map((s) => {
              const r = subscriberRecord(s, domain);
              return { key: r.aor, value: encodeRecord(r) };
            }),
          );
      };
      await publish(opts.subscribers ?? []);
      return { stop: async () => {} };
    },
  });
  const wanted = opts.targets ?? SERVICES.map((s) => s.name);
  const proc = await runTargets([seed, ...MODULES.filter((s) => wanted.includes(s.name))], {
    version: 'test',
    env: {
      SWITCHBOARD_LOG_LEVEL: processEnv().SWITCHBOARD_TEST_LOG_LEVEL ?? 'silent',
      SWITCHBOARD_OPS_HOST: '127.0.0.1',
      SWITCHBOARD_OPS_PORT: '0',
      SWITCHBOARD_DATA_DIR: ':memory:',
      SWITCHBOARD_REGISTRAR_GRPC_PORT: '0',
      SWITCHBOARD_MEDIA_GRPC_PORT: '0',
      SWITCHBOARD_ACCOUNTING_HOST: '127.0.0.1',
      SWITCHBOARD_ACCOUNTING_PORT: '0',
      SWITCHBOARD_MEDIASERVER_SIP_PORT: '0',
      SWITCHBOARD_MEDIASERVER_GRPC_PORT: '0',
      SWITCHBOARD_RATING_GRPC_PORT: '0',
      SWITCHBOARD_SIP_LISTEN: 'udp:127.0.0.1:0,tcp:127.0.0.1:0',
      SWITCHBOARD_SIP_DOMAIN: domain,
      SWITCHBOARD_SIP_T1_MS: '100',
      SWITCHBOARD_PORTAL_HOST: '127.0.0.1',
      SWITCHBOARD_PORTAL_PORT: '0',
      ...opts.env,
    },
  });
  const find = (t: string) => {
    const e = proc.endpoints.find((x) => x.service === 'sip-proxy' && x.name === `SIP ${t}`);
    const m = e && /^sip:(\[[^\]]+\]|[^:]+):(\d+)/.exec(e.url);
    return m ? { host: m[1], port: Number(m[2]) } : undefined;
  };
  const udp = find('udp');
  return {
    proc,
    portal: proc.endpoints.find((x) => x.service === 'portal' && x.name === 'HTTP')?.url,
    sip: { udp: udp!, tcp: find('tcp') },
    domain,
    metrics: () => fetch(`${proc.ops.url}/metrics`).then((r) => r.text()),
    addSubscribers: (subs) => publish!(subs),
    stop: () => proc.stop(),
  };
}

/** One sample of a Prometheus text exposition, or undefined (keeps assertion output short). */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}
