/**
 * Registrations to SIP trunks (like Kamailio's uac module registrations): for
 * every gateway with `register` and credentials, the proxy REGISTERs its own
 * address with the trunk, answers the digest challenge, and registers again
 * before the binding expires; after a failure it retries.
 */
import type { Logger } from 'pino';
import type { GatewayRecord } from '@switchboard/contracts';
import {
  answerChallenge,
  createRequest,
  newCallId,
  newTag,
  parseUri,
  type SendTarget,
  type SipRequest,
  type SipResponse,
  type SipUri,
} from '@switchboard/sip';

export interface TrunkDeps {
  send(req: SipRequest, target: SendTarget, onResponse: (res: SipResponse) => void): void;
  resolve(uri: SipUri): Promise<SendTarget | undefined>;
  /** The proxy's address (host:port) the trunk should send calls to. */
  contactHost(target: SendTarget): string | undefined;
  clock: { setTimeout(fn: () => void, ms: number): unknown; clearTimeout(h: unknown): void };
  logger: Logger;
  onOutcome?(outcome: 'registered' | 'failed'): void;
}

interface Trunk {
  gateway: GatewayRecord;
  callId: string;
  fromTag: string;
  cseq: number;
  timer?: unknown;
  registered: boolean;
  /** Bumped when the gateway changes or goes: late answers of older attempts are ignored. */
  generation: number;
}

export class TrunkRegistrations {
  private readonly trunks = new Map<string, Trunk>();
  private generation = 0;

  constructor(
    private readonly d: TrunkDeps,
    private readonly opts: { expiresSec: number; retrySec: number },
  ) {}

  /** The state of each trunk registration (for the ops page and tests). */
  states(): { gateway: string; registered: boolean }[] {
    return [...this.trunks.values()].map((t) => ({ gateway: t.gateway.id, registered: t.registered }));
  }

  /** A gateway record changed (or was deleted: null). */
  update(id: string, g: GatewayRecord | null): void {
    const old = this.trunks.get(id);
    if (old) {
      this.d.clock.clearTimeout(old.timer);
      this.trunks.delete(id);
    }
    if (!g || !g.register || !g.username || !g.password || g.enabled === false) return;
    const t: Trunk = {
      gateway: g,
      callId: newCallId(),
      fromTag: newTag(),
      cseq: 0,
      registered: false,
      generation: ++this.generation,
    };
    this.trunks.set(id, t);
    void this.register(t);
  }

  stop(): void {
    for (const t of this.trunks.values()) this.d.clock.clearTimeout(t.timer);
    this.trunks.clear();
  }

  /** One REGISTER toward the trunk. What it throws (a bug, a gateway setting no request can carry) is retried later, not thrown. */
  private register(t: Trunk, authorization?: string): Promise<void> {
    return this.sendRegister(t, authorization).catch((err: unknown) =>
      this.retry(t, `cannot send the REGISTER: ${(err as Error).message}`),
    );
  }

  private async sendRegister(t: Trunk, authorization?: string): Promise<void> {
    if (this.trunks.get(t.gateway.id)?.generation !== t.generation) return;
    const g = t.gateway;
    let uri: SipUri;
    try {
      uri = parseUri(
        `sip:${g.address}${g.transport && g.transport !== 'udp' ? `;transport=${g.transport}` : ''}`,
      ) as SipUri;
    } catch {
      this.d.logger.warn({ gateway: g.id }, 'trunk registration: bad gateway address');
      return;
    }
    const target = await this.d.resolve(uri).catch(() => undefined);
    const contactHost = target && this.d.contactHost(target);
    if (!target || !contactHost) return this.retry(t, 'no route to the trunk');
    const aor = `sip:${g.username}@${uri.host}${uri.port ? `:${uri.port}` : ''}`;
    const req = createRequest({
      method: 'REGISTER',
      uri: uri.toString(),
      from: `<${aor}>;tag=${t.fromTag}`,
      to: `<${aor}>`,
      callId: t.callId,
      cseq: ++t.cseq,
      contact: [`<sip:${g.username}@${contactHost}>`],
      headers: [
        ['Expires', String(this.opts.expiresSec)],
        ...(authorization ? ([['Authorization', authorization]] as [string, string][]) : []),
      ],
    });
    this.d.send(req, target, (res) => this.onResponse(t, req, res, authorization !== undefined));
  }

  private onResponse(t: Trunk, req: SipRequest, res: SipResponse, authorized: boolean): void {
    if (res.status < 200 || this.trunks.get(t.gateway.id)?.generation !== t.generation) return;
    const g = t.gateway;
    if ((res.status === 401 || res.status === 407) && !authorized) {
      const challenge = res.getHeader(res.status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate');
      try {
        const value = answerChallenge({
          challengeValue: challenge ?? '',
          method: 'REGISTER',
          uri: req.uriText,
          username: g.username!,
          password: g.password!,
        });
        void this.register(t, value);
      } catch (err) {
        this.retry(t, `cannot answer the challenge: ${(err as Error).message}`);
      }
      return;
    }
    if (res.status >= 300) return this.retry(t, `${res.status} ${res.reason}`);
    // Registered: again before it expires (the trunk may have shortened the time).
    const granted = grantedExpires(res, this.opts.expiresSec);
    t.registered = true;
    this.d.onOutcome?.('registered');
    this.d.logger.info({ gateway: g.id, expires: granted }, 'registered with the trunk');
    t.timer = this.d.clock.setTimeout(() => void this.register(t), Math.max(1, granted * 0.8) * 1000);
  }

  private retry(t: Trunk, why: string): void {
    t.registered = false;
    this.d.onOutcome?.('failed');
    this.d.logger.warn({ gateway: t.gateway.id, why }, 'trunk registration failed; retrying');
    t.timer = this.d.clock.setTimeout(() => void this.register(t), this.opts.retrySec * 1000);
  }
}

/** The expiry a registrar granted: the Contact's expires parameter, else Expires, else what was asked. */
function grantedExpires(res: SipResponse, asked: number): number {
  const c = res.contacts[0]?.params.get('expires');
  const v = Number(c ?? res.getHeader('Expires') ?? asked);
  return Number.isFinite(v) && v > 0 ? v : asked;
}
