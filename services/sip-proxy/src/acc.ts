/**
 * Call accounting over RADIUS, as Kamailio's acc module sends it with
 * acc_radius: Start on the 2xx to an initial INVITE, Stop on the BYE, Failed
 * on a final response >= 300. Records never wait on the call path: each is
 * written to a durable queue (the process database) and delivered in the
 * background, with retransmission, failover to the next server, and retry
 * while every server is down, so a record made during an outage arrives
 * after it, once.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Db } from '@switchboard/platform';
import { Dictionary, RadiusClient, type AttributeValue } from '@switchboard/radius';

export type AccStatus = 'Start' | 'Stop' | 'Failed';

export interface AccRecord {
  status: AccStatus;
  callId: string;
  fromTag: string;
  toTag: string;
  method: string;
  responseCode: number;
  /** The authenticated user (user@domain), or the caller's AoR without "sip:". */
  userName: string;
  /** From URI. */
  callingStationId: string;
  /** To URI (as dialled). */
  calledStationId: string;
  /** Request-URI after routing. */
  translatedUri: string;
  /** Unix seconds when it happened. */
  timestamp: number;
  account?: string;
  gateway?: string;
  sourceAddress?: string;
  /** Identifies the record across resends (Switchboard-Record-Id): the server stores it once. Set when queued. */
  recordId?: string;
}

export interface RadiusServer {
  host: string;
  port: number;
  secret: string;
}

const QUEUE_SQL = `
CREATE SCHEMA IF NOT EXISTS sip_proxy;
CREATE TABLE IF NOT EXISTS sip_proxy.acc_queue (
  id         bigserial PRIMARY KEY,
  record     jsonb NOT NULL,
  created_at bigint NOT NULL
);`;

/** The Kamailio acc_radius attribute set, plus Switchboard's vendor attributes. */
export function accAttributes(
  r: AccRecord,
  nasIp: string,
  queuedSec: number,
): Array<[string, AttributeValue]> {
  const attrs: Array<[string, AttributeValue]> = [
    ['Acct-Status-Type', r.status],
    ['Service-Type', 'Sip-Session'],
    ['Acct-Session-Id', r.callId],
    ['Sip-Method', r.method],
    ['Sip-Response-Code', r.responseCode],
    ['Sip-From-Tag', r.fromTag],
    ['User-Name', r.userName],
    ['Calling-Station-Id', r.callingStationId],
    ['Called-Station-Id', r.calledStationId],
    ['Sip-Translated-Request-URI', r.translatedUri],
    ['Event-Timestamp', r.timestamp],
    ['NAS-IP-Address', nasIp],
    ['Acct-Delay-Time', Math.max(0, queuedSec)],
  ];
  if (r.toTag) attrs.push(['Sip-To-Tag', r.toTag]);
  if (r.account) attrs.push(['Switchboard-Account', r.account]);
  if (r.gateway) attrs.push(['Switchboard-Gateway', r.gateway]);
  if (r.sourceAddress) attrs.push(['Switchboard-Source-Address', r.sourceAddress]);
  if (r.recordId) attrs.push(['Switchboard-Record-Id', r.recordId]);
  return attrs;
}

export class AccountingClient {
  private clients: RadiusClient[] = [];
  private running?: Promise<void>;
  private wake?: () => void;
  private stopped = false;
  private readonly sent: Counter<'status'>;
  private readonly failures: Counter;
  private readonly queued: Gauge;
  private readonly dict = Dictionary.standard();

  constructor(
    private readonly db: Db,
    private readonly servers: RadiusServer[],
    private readonly opts: {
      nasIp: string;
      logger: Logger;
      registry: Registry;
      retryMs?: number;
      now?: () => number;
    },
  ) {
    const registers = [opts.registry];
    this.sent = new Counter({
      name: 'switchboard_radius_client_sent_total',
      help: 'Accounting records the RADIUS server acknowledged',
      labelNames: ['status'],
      registers,
    });
    this.failures = new Counter({
      name: 'switchboard_radius_client_timeouts_total',
      help: 'Accounting deliveries that got no answer from a server',
      registers,
    });
    this.queued = new Gauge({
      name: 'switchboard_radius_client_queue_length',
      help: 'Accounting records waiting for delivery',
      registers,
    });
  }

  async start(): Promise<void> {
    await this.db.exec(QUEUE_SQL);
    this.clients = await Promise.all(
      this.servers.map((s) =>
        RadiusClient.open({
          host: s.host,
          port: s.port,
          secret: s.secret,
          initialTimeoutMs: 500,
          maxTimeoutMs: 2000,
          maxAttempts: 3,
        }),
      ),
    );
    this.running = this.loop();
  }

  /** Queue a record durably; delivery happens in the background. */
  async record(r: AccRecord): Promise<void> {
    const queued = { ...r, recordId: r.recordId ?? randomUUID() };
    await this.db.query('INSERT INTO sip_proxy.acc_queue (record, created_at) VALUES ($1, $2)', [
      JSON.stringify(queued),
      this.now(),
    ]);
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    for (const c of this.clients) c.close();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let delivered = 0;
      try {
        delivered = await this.deliverBatch();
      } catch (err) {
        this.opts.logger.error({ err }, 'accounting queue failed');
      }
      if (this.stopped) break;
      if (delivered === 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, this.opts.retryMs ?? 1000);
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = undefined;
      }
    }
  }

  /** Deliver queued records oldest first; a record leaves the queue only once a server acknowledged it. */
  private async deliverBatch(): Promise<number> {
    const rows = await this.db.query<{ id: string; record: AccRecord; created_at: string }>(
      'SELECT id, record, created_at FROM sip_proxy.acc_queue ORDER BY id LIMIT 200',
    );
    const c = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM sip_proxy.acc_queue');
    this.queued.set(Number(c.rows[0].n));
    if (rows.rows.length === 0) return 0;
    let delivered = 0;
    await Promise.all(
      rows.rows.map(async (row) => {
        const delaySec = Math.floor((this.now() - Number(row.created_at)) / 1000);
        const attrs = this.dict.encodeAll(accAttributes(row.record, this.opts.nasIp, delaySec));
        for (const client of this.clients) {
          try {
            await client.accounting(attrs);
            await this.db.query('DELETE FROM sip_proxy.acc_queue WHERE id = $1', [row.id]);
            this.sent.inc({ status: row.record.status });
            delivered++;
            return;
          } catch {
            this.failures.inc(); // next server
          }
        }
      }),
    );
    return delivered;
  }
}
