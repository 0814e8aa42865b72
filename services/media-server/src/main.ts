/**
 * services/media-server: a SIP user agent for announcements, voicemail with
 * message waiting (RFC 3842) and DTMF mailbox menus, with its RTP in the same
 * process. Voicemail metadata in the `media` schema, audio as WAV files under
 * the voicemail directory. The proxy routes calls here (see README.md).
 */
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge } from 'prom-client';
import { readFile, rm } from 'node:fs/promises';
import {
  DomainError,
  grpcService,
  serveGrpc,
  bool,
  defineService,
  grpcClient,
  hostPort,
  int,
  list,
  migrate,
  optional,
  port,
  str,
} from '@switchboard/platform';
import { RegistrarClient } from '@switchboard/proto/registrar';
import { MediaServerService } from '@switchboard/proto/mediaserver';
import type { ListenSpec } from '@switchboard/sip';
import { createApps, createRouter, mailboxOf, type AppRoute } from './apps';
import { Pacer } from './media';
import { Conferences } from './conference';
import { messageSummary } from './mwi';
import { PortAllocator } from './ports';
import { PromptSet } from './prompts';
import { generateMissingPrompts } from './generate';
import { createVoicemailStore } from './store';
import { MediaUa } from './ua';
import { parseUri } from '@switchboard/sip';

export const mediaServerConfig = {
  sipHost: str(
    'SWITCHBOARD_MEDIASERVER_SIP_HOST',
    '127.0.0.1',
    'Address the media server SIP listeners bind',
  ),
  sipPort: port(
    'SWITCHBOARD_MEDIASERVER_SIP_PORT',
    5080,
    'Media server SIP port (UDP and TCP); 0 picks a free one',
  ),
  transports: list('SWITCHBOARD_MEDIASERVER_TRANSPORTS', 'udp,tcp', 'Media server SIP transports (udp, tcp)'),
  advertise: optional(
    'SWITCHBOARD_MEDIASERVER_ADVERTISE',
    'Address put in SDP, Contact and Via (default: the address a request arrived on)',
  ),
  rtpHost: str('SWITCHBOARD_MEDIASERVER_RTP_HOST', '127.0.0.1', 'Address RTP sockets bind'),
  rtpPortMin: port('SWITCHBOARD_MEDIASERVER_RTP_PORT_MIN', 40000, 'Lowest RTP port'),
  rtpPortMax: port('SWITCHBOARD_MEDIASERVER_RTP_PORT_MAX', 44999, 'Highest RTP port'),
  latch: bool(
    'SWITCHBOARD_MEDIASERVER_RTP_LATCH',
    true,
    "Send RTP to where the caller's RTP comes from (symmetric RTP, NAT)",
  ),
  grpcHost: str(
    'SWITCHBOARD_MEDIASERVER_GRPC_HOST',
    '127.0.0.1',
    'Address the media server gRPC server binds',
  ),
  grpcPort: port(
    'SWITCHBOARD_MEDIASERVER_GRPC_PORT',
    50056,
    'Media server gRPC port (voicemail boxes for the portal)',
  ),
  promptsDir: optional(
    'SWITCHBOARD_MEDIASERVER_PROMPTS_DIR',
    'Directory of prompt WAV files (8 kHz mono); default <data dir>/prompts',
  ),
  generatePrompts: bool(
    'SWITCHBOARD_MEDIASERVER_GENERATE_PROMPTS',
    true,
    'At start, make the standard prompts missing from the prompts directory with scripts/generate-prompts.sh (needs espeak-ng and sox)',
  ),
  voicemailDir: optional(
    'SWITCHBOARD_MEDIASERVER_VOICEMAIL_DIR',
    'Directory of voicemail audio; default <data dir>/voicemail',
  ),
  domain: optional(
    'SWITCHBOARD_MEDIASERVER_DOMAIN',
    'Domain of mailboxes addressed as sip:vm-<user>@...; default the To host',
  ),
  accessUsers: list(
    'SWITCHBOARD_MEDIASERVER_ACCESS_USERS',
    '*98,voicemail',
    "Request-URI users that reach the caller's own mailbox menu",
  ),
  maxMessageSec: int('SWITCHBOARD_MEDIASERVER_MAX_MESSAGE_SEC', 120, 'Longest voicemail message', 1, 3600),
  minMessageMs: int('SWITCHBOARD_MEDIASERVER_MIN_MESSAGE_MS', 500, 'Shorter voicemail messages are dropped'),
  noMediaMs: int(
    'SWITCHBOARD_MEDIASERVER_NO_MEDIA_MS',
    10000,
    'A recording ends after this long without RTP',
    100,
  ),
  menuTimeoutMs: int(
    'SWITCHBOARD_MEDIASERVER_MENU_TIMEOUT_MS',
    15000,
    'How long the mailbox menu waits for a key',
    100,
  ),
  registrar: hostPort(
    'SWITCHBOARD_MEDIASERVER_REGISTRAR',
    '127.0.0.1:50051',
    'Registrar gRPC address (contacts for message-waiting NOTIFY)',
  ),
  timersT1: int('SWITCHBOARD_MEDIASERVER_T1_MS', 500, 'SIP timer T1', 10),
};

export const mediaServerService = defineService({
  name: 'media-server',
  description:
    'SIP media server: announcements, voicemail with message waiting, DTMF mailbox menu, conferences',
  dependsOn: ['registrar'],
  configSpec: mediaServerConfig,
  async start(ctx, config) {
    const dataDir =
      ctx.platform.dataDir === ':memory:' ? join(tmpdir(), 'switchboard-media') : ctx.platform.dataDir;
    const promptsDir = resolve(config.promptsDir ?? join(dataDir, 'prompts'));
    const voicemailDir = resolve(config.voicemailDir ?? join(dataDir, 'voicemail'));
    const db = await ctx.db();
    await migrate(db, { schema: 'media', dir: join(import.meta.dirname, '..', 'migrations') });
    const store = createVoicemailStore(db);
    const prompts = new PromptSet();
    let loaded = await prompts.loadDir(promptsDir);
    try {
      const g = await generateMissingPrompts(promptsDir, new Set(loaded), {
        generate: config.generatePrompts,
      });
      if (g.generated.length) {
        loaded = await prompts.loadDir(promptsDir);
        ctx.logger.info({ promptsDir, generated: g.generated }, 'missing prompts generated (espeak-ng, sox)');
      }
      const missing = g.standard.filter((n) => !prompts.has(n));
      if (missing.length)
        ctx.logger.warn(
          { promptsDir, missing, error: g.error },
          'prompts missing: calls to them are refused with 404 (a refused call routed to its announcement still gets its own status from the proxy); ' +
            'install espeak-ng and sox or run scripts/generate-prompts.sh <prompts dir>',
        );
    } catch (err) {
      ctx.logger.warn({ err, promptsDir }, 'could not check the standard prompts');
    }

    const registrarAddress =
      ctx.localEndpoint('registrar', 'gRPC')?.replace('grpc://', '') ??
      `${config.registrar.host}:${config.registrar.port}`;
    const registrar = grpcClient(RegistrarClient, registrarAddress, { deadlineMs: 3000 });

    const m = ctx.metrics;
    const calls = new Counter({
      name: 'switchboard_mediaserver_calls_total',
      help: 'Calls answered, by application',
      labelNames: ['app'],
      registers: [m],
    });
    const rejected = new Counter({
      name: 'switchboard_mediaserver_rejected_total',
      help: 'INVITEs refused, by status',
      labelNames: ['status'],
      registers: [m],
    });
    const dtmf = new Counter({
      name: 'switchboard_mediaserver_dtmf_total',
      help: 'DTMF digits received (RFC 4733)',
      registers: [m],
    });
    const rtp = new Counter({
      name: 'switchboard_mediaserver_rtp_packets_total',
      help: 'RTP packets of ended calls',
      labelNames: ['direction'],
      registers: [m],
    });
    const stored = new Counter({
      name: 'switchboard_mediaserver_voicemail_stored_total',
      help: 'Voicemail messages stored',
      registers: [m],
    });
    const notifies = new Counter({
      name: 'switchboard_mediaserver_mwi_notify_total',
      help: 'Message-waiting NOTIFYs sent, by outcome',
      labelNames: ['result'],
      registers: [m],
    });
    for (const d of ['sent', 'received']) rtp.inc({ direction: d }, 0);
    for (const r of ['ok', 'failed']) notifies.inc({ result: r }, 0);
    for (const a of ['announce', 'voicemail', 'mailbox', 'conference']) calls.inc({ app: a }, 0);

    const listen: ListenSpec[] = config.transports.map((t) => ({
      transport: t as ListenSpec['transport'],
      host: config.sipHost,
      port: config.sipPort,
    }));

    const changed = async (mailbox: string) => {
      const counts = await store.counts(mailbox);
      const account = `sip:${mailbox}`;
      const body = messageSummary(account, counts);
      await ua.notifySubscribers(mailbox);
      let bindings: Awaited<ReturnType<typeof registrar.lookup>>['bindings'] = [];
      try {
        bindings = (await registrar.lookup({ aor: account })).bindings;
      } catch (err) {
        ctx.logger.warn({ err, mailbox }, 'registrar lookup failed: no unsolicited NOTIFY');
      }
      await Promise.all(
        bindings.map(async (b) => {
          const res = await ua.notifyContact({
            aor: account,
            contact: b.contact,
            path: b.path,
            received: b.received,
            body,
          });
          notifies.inc({ result: res && res.status < 300 ? 'ok' : 'failed' });
        }),
      );
    };
    const pacer = new Pacer(performance);
    const conferences = new Conferences(pacer);
    const route = createRouter({ prompts, domain: config.domain, accessUsers: config.accessUsers });
    const run = createApps({
      prompts,
      store,
      voicemailDir,
      maxMessageMs: config.maxMessageSec * 1000,
      minMessageMs: config.minMessageMs,
      noMediaMs: config.noMediaMs,
      menuTimeoutMs: config.menuTimeoutMs,
      changed,
      logger: ctx.logger,
      onStored: () => stored.inc(),
      conferences,
    });
    const ua: MediaUa<AppRoute> = new MediaUa<AppRoute>({
      listen,
      rtpHost: config.rtpHost,
      advertise: config.advertise,
      ports: new PortAllocator(
        { min: config.rtpPortMin, max: config.rtpPortMax },
        config.rtpPortMin + 2 * Math.floor(Math.random() * ((config.rtpPortMax - config.rtpPortMin) / 2)),
      ),
      pacer,
      logger: ctx.logger,
      T1: config.timersT1,
      latch: config.latch,
      route: (req) => {
        const r = route(req);
        ctx.logger.debug({ uri: req.uriText, routed: r }, 'INVITE routed');
        if ('status' in r) rejected.inc({ status: String(r.status) });
        else calls.inc({ app: r.route.app });
        return r;
      },
      run,
      // The To of a message-summary SUBSCRIBE is the subscriber's own AoR (the proxy may have rewritten the Request-URI).
      subscriptionAccount: (req) => mailboxOf(safeUri(req.to.uriText)) ?? mailboxOf(req.uri),
      summary: async (mailbox) => messageSummary(`sip:${mailbox}`, await store.counts(mailbox)),
      onDigit: () => dtmf.inc(),
      onCallEnd: (call) => {
        rtp.inc({ direction: 'sent' }, call.media.stats.sent);
        rtp.inc({ direction: 'received' }, call.media.stats.received);
      },
    });
    await ua.start();

    const message = async (mailbox: string, id: string) => {
      const msg = await store.get(id);
      if (!msg || msg.mailbox !== mailbox)
        throw new DomainError('not_found', `no message ${id} in ${mailbox}`, 'id');
      return msg;
    };
    const server = await serveGrpc({
      host: config.grpcHost,
      port: config.grpcPort,
      logger: ctx.logger,
      services: [
        grpcService(MediaServerService, {
          async listMessages(req) {
            const list = await store.list(req.mailbox);
            return {
              messages: list.map((x) => ({
                id: x.id,
                mailbox: x.mailbox,
                caller: x.caller,
                callerName: x.callerName ?? '',
                callId: x.callId,
                receivedAt: x.receivedAt.getTime(),
                durationMs: x.durationMs,
                folder: x.folder,
              })),
            };
          },
          async getMessageAudio(req) {
            const msg = await message(req.mailbox, req.id);
            return { wav: await readFile(join(voicemailDir, msg.file)), contentType: 'audio/wav' };
          },
          async saveMessage(req) {
            const msg = await message(req.mailbox, req.id);
            await store.setFolder(msg.id, 'saved');
            await changed(msg.mailbox);
            return {};
          },
          async deleteMessage(req) {
            const msg = await message(req.mailbox, req.id);
            await store.remove(msg.id);
            await rm(join(voicemailDir, msg.file), { force: true });
            await changed(msg.mailbox);
            return {};
          },
          async getMailboxSummary(req) {
            const c = await store.counts(req.mailbox);
            return { newMessages: c.new, savedMessages: c.saved, messagesWaiting: c.new > 0 };
          },
        }),
      ],
    });
    ctx.endpoint('gRPC', `grpc://${config.grpcHost}:${server.port}`);
    new Gauge({
      name: 'switchboard_mediaserver_conference_rooms',
      help: 'Conference rooms with participants',
      registers: [m],
      collect() {
        this.set(conferences.count);
      },
    });
    new Gauge({
      name: 'switchboard_mediaserver_active_calls',
      help: 'Calls in progress',
      registers: [m],
      collect() {
        this.set(ua.activeCalls);
      },
    });
    for (const a of ua.transport.addresses())
      ctx.endpoint(`SIP ${a.transport}`, `sip:${a.host}:${a.port};transport=${a.transport}`);
    ctx.logger.info({ prompts: loaded, promptsDir, voicemailDir }, 'media server ready');
    return {
      async stop() {
        await ua.stop();
        await server.shutdown();
        registrar.close();
      },
    };
  },
});

function safeUri(s: string) {
  try {
    return parseUri(s);
  } catch {
    return undefined;
  }
}

export default mediaServerService;
