/** The proxy's Prometheus metrics (names are a contract: dashboards and alerts use them). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/**
 * Counts of a per-message counter kept as plain numbers and added to the prom-client
 * counter when it is read (scrape, get()): a labelled inc() builds a key from its labels on
 * every call, several times per call at thousands of calls a second.
 */
class PendingCounts<K> {
  private readonly counts = new Map<K, number>();
  add(k: K): void {
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }
  /** Hands each count over (and clears it). */
  drain(to: (k: K, n: number) => void): void {
    for (const [k, n] of this.counts) if (n > 0) to(k, n);
    this.counts.clear();
  }
}

export class ProxyMetrics {
  private readonly authFailures: Counter<'reason'>;
  private readonly droppedTotal: Counter<'reason'>;
  private readonly parseErrors: Counter;
  private readonly duration: Histogram;
  private readonly refused: Counter<'reason'>;
  private readonly forwards: Counter<'condition'>;
  private readonly gatewayEvents: Counter<'event'>;
  private readonly cut: Counter;
  private readonly pendingRequests = new PendingCounts<string>();
  private readonly pendingResponses = new PendingCounts<number>();
  private readonly pendingCalls = new PendingCounts<string>();

  constructor(
    registry: Registry,
    gauges: {
      transactions: () => number;
      callsActive: () => number;
      bannedSources: () => number;
      gatewaysDown?: () => number;
      /** Datagrams the UDP send thread sent and failed so far; undefined when sends go through dgram. */
      udpSendThread?: () => [sent: number, failed: number] | undefined;
    },
  ) {
    const registers = [registry];
    const pendingRequests = this.pendingRequests;
    const pendingResponses = this.pendingResponses;
    const pendingCalls = this.pendingCalls;
    new Counter({
      name: 'switchboard_sip_requests_total',
      help: 'SIP requests received',
      labelNames: ['method'],
      registers,
      collect() {
        pendingRequests.drain((method, n) => this.inc({ method }, n));
      },
    });
    new Counter({
      name: 'switchboard_sip_responses_total',
      help: 'SIP responses sent or forwarded',
      labelNames: ['code'],
      registers,
      collect() {
        pendingResponses.drain((code, n) => this.inc({ code: String(code) }, n));
      },
    });
    this.authFailures = new Counter({
      name: 'switchboard_auth_failures_total',
      help: 'Failed digest authentications',
      labelNames: ['reason'],
      registers,
    });
    this.droppedTotal = new Counter({
      name: 'switchboard_sip_dropped_total',
      help: 'Requests dropped unanswered (rate limit, ban)',
      labelNames: ['reason'],
      registers,
    });
    this.parseErrors = new Counter({
      name: 'switchboard_sip_parse_errors_total',
      help: 'Messages that did not parse',
      registers,
    });
    this.duration = new Histogram({
      name: 'switchboard_sip_request_duration_seconds',
      help: 'Time from an INVITE to its final response at the proxy',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    new Counter({
      name: 'switchboard_calls_total',
      help: 'INVITEs forwarded, by outcome',
      labelNames: ['outcome'],
      registers,
      collect() {
        pendingCalls.drain((outcome, n) => this.inc({ outcome }, n));
      },
    });
    this.refused = new Counter({
      name: 'switchboard_calls_refused_total',
      help: 'Calls refused by routing: block lists, privileges, credit, no route',
      labelNames: ['reason'],
      registers,
    });
    this.forwards = new Counter({
      name: 'switchboard_calls_forwarded_total',
      help: 'Calls forwarded by a subscriber rule, by condition',
      labelNames: ['condition'],
      registers,
    });
    this.gatewayEvents = new Counter({
      name: 'switchboard_gateway_events_total',
      help: 'PSTN gateway failovers, gateways marked down and back up',
      labelNames: ['event'],
      registers,
    });
    this.cut = new Counter({
      name: 'switchboard_calls_cut_total',
      help: 'Answered calls ended by the proxy: granted (credit) time over, or no media (media proxy timeout)',
      registers,
    });
    const udpSent = { sent: 0, failed: 0 };
    new Counter({
      name: 'switchboard_sip_udp_send_thread_datagrams_total',
      help: 'Datagrams sent by the UDP send thread, by outcome (sent, failed); absent when UDP sends go through node:dgram',
      labelNames: ['outcome'],
      registers,
      collect() {
        const now = gauges.udpSendThread?.();
        if (!now) return;
        this.inc({ outcome: 'sent' }, now[0] - udpSent.sent);
        this.inc({ outcome: 'failed' }, now[1] - udpSent.failed);
        [udpSent.sent, udpSent.failed] = now;
      },
    });
    new Gauge({
      name: 'switchboard_gateways_down',
      help: 'PSTN gateways marked down (probed with OPTIONS until they answer)',
      registers,
      collect() {
        this.set(gauges.gatewaysDown?.() ?? 0);
      },
    });
    new Gauge({
      name: 'switchboard_sip_transactions_active',
      help: 'Live SIP transactions',
      registers,
      collect() {
        this.set(gauges.transactions());
      },
    });
    new Gauge({
      name: 'switchboard_calls_active',
      help: 'INVITEs being forwarded and not yet answered or failed',
      registers,
      collect() {
        this.set(gauges.callsActive());
      },
    });
    new Gauge({
      name: 'switchboard_banned_sources',
      help: 'Sources blocked by the rate limit or the failure ban',
      registers,
      collect() {
        this.set(gauges.bannedSources());
      },
    });
  }

  request(method: string): void {
    this.pendingRequests.add(KNOWN.has(method) ? method : 'other');
  }
  response(status: number, _local = false): void {
    this.pendingResponses.add(status);
  }
  authFailure(reason: string): void {
    this.authFailures.inc({ reason });
  }
  /** A challenge or refusal sent at the edge (401/407/403) for the authentication counters. */
  authOutcome(status: number): void {
    this.response(status, true);
  }
  dropped(reason: string): void {
    this.droppedTotal.inc({ reason });
  }
  parseError(): void {
    this.parseErrors.inc();
  }
  callAttempt(): void {
    this.pendingCalls.add('attempt');
  }
  callAnswered(ms: number): void {
    this.pendingCalls.add('answered');
    this.duration.observe(ms / 1000);
  }
  callRefused(reason: string): void {
    this.refused.inc({ reason });
  }
  callForwarded(condition: string): void {
    this.forwards.inc({ condition });
  }
  gateway(event: 'failover' | 'down' | 'up'): void {
    this.gatewayEvents.inc({ event });
  }
  callCut(): void {
    this.cut.inc();
  }
  callFailed(status: number): void {
    this.pendingCalls.add(status === 487 ? 'cancelled' : 'failed');
  }
}

const KNOWN = new Set([
  'INVITE',
  'ACK',
  'BYE',
  'CANCEL',
  'REGISTER',
  'OPTIONS',
  'MESSAGE',
  'SUBSCRIBE',
  'NOTIFY',
  'REFER',
  'INFO',
  'UPDATE',
  'PRACK',
  'PUBLISH',
]);
