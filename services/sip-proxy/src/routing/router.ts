/**
 * The routing decision for an initial request, as a pure function of the
 * target, who is calling, and the replicated subscriber and routing data:
 * speed dial, aliases and DIDs, the dial plan, privileges, block lists, PSTN
 * routes, and the media server's applications. The proxy core carries it out.
 */
import type { GatewayRecord, SubscriberRecord } from '@switchboard/contracts';
import { SipUri, TelUri, parseUri, type Uri } from '@switchboard/sip';
import type { Domains } from '../domains';
import { screenIncoming, screenOutgoing, speedDial, type CallerIdentity } from './features';
import type { GatewayHop, GatewayTable } from './gateways';
import { classOf, normalizeDialled, type CallClass, type ClassTable, type DialPlan } from './numbers';

export type Decision =
  /** Refuse; `announce` names the media server prompt that says why (when announcements are on). */
  | { action: 'reject'; status: number; reason: string; announce?: string; metric?: string }
  /** A subscriber of ours (or an AoR with bindings but no subscriber record): its bindings, then its forwarding rules. */
  | { action: 'subscriber'; aor: string; callee?: SubscriberRecord }
  /** The PSTN through these gateways, in failover order. */
  | { action: 'pstn'; number: string; hops: GatewayHop[]; callClass: CallClass }
  /** One of the media server's applications (voicemail, mailbox, conference, announcement). */
  | { action: 'media'; uri: string }
  /** Somewhere else: proxy to the URI as it is. */
  | { action: 'relay'; uri: string };

export interface Caller {
  /** The authenticated subscriber (or, for a forwarded leg, the forwarding subscriber who pays). */
  subscriber?: SubscriberRecord;
  /** The request came from a trusted peer (not challenged). */
  trusted: boolean;
  /** The request came from a PSTN gateway. */
  gateway?: GatewayRecord;
  identity: CallerIdentity;
}

export interface RouterDeps {
  domains: Domains;
  byAor(aor: string): SubscriberRecord | undefined;
  /** Whether an AoR has live bindings (registered without a subscriber record: a static peer). */
  isRegistered(aor: string): boolean;
  /** The dial plan of a local domain. */
  dialPlan(domain: string): DialPlan;
  /** National and premium prefixes for a domain's callers. */
  classes(domain: string): ClassTable;
  /** Destination prefixes nobody may call (premium, fraud). */
  blockedPrefixes: readonly string[];
  gateways: GatewayTable;
  /** host:port of the media server, if there is one. */
  mediaServer?: string;
  /** Request-URI users that reach the caller's own mailbox (*98). */
  mailboxUsers: readonly string[];
}

const MEDIA_USER = /^(vm-|conf-|announce-)/;

export class Router {
  /** Alias and DID AoRs → subscriber AoR; E.164 digits of numeric aliases → subscriber AoR. */
  private readonly aliases = new Map<string, string>();
  private readonly dids = new Map<string, string>();

  constructor(private readonly d: RouterDeps) {}

  /** Keeps the alias index in step with the `subscribers` replica. */
  subscriberChanged(prev: SubscriberRecord | undefined, next: SubscriberRecord | null): void {
    for (const a of prev?.aliases ?? []) {
      if (this.aliases.get(a.toLowerCase()) === prev!.aor) this.aliases.delete(a.toLowerCase());
      const n = didOf(a);
      if (n && this.dids.get(n) === prev!.aor) this.dids.delete(n);
    }
    for (const a of next?.aliases ?? []) {
      this.aliases.set(a.toLowerCase(), next!.aor);
      const n = didOf(a);
      if (n) this.dids.set(n, next!.aor);
    }
  }

  /** The subscriber an AoR (its own, an alias or a DID) reaches. */
  subscriberOf(aor: string): SubscriberRecord | undefined {
    const own = this.d.byAor(aor);
    if (own) return own;
    const to = this.aliases.get(aor.toLowerCase());
    return to ? this.d.byAor(to) : undefined;
  }

  /** The subscriber owning a DID (E.164 digits). */
  didOwner(number: string): SubscriberRecord | undefined {
    const to = this.dids.get(number);
    return to ? this.d.byAor(to) : undefined;
  }

  /** The DID a subscriber presents to the PSTN: the one it chose, else its first; E.164 digits. */
  presentedNumber(sub: SubscriberRecord): string | undefined {
    const chosen = sub.callerId?.replace(/^\+/, '');
    if (chosen && (sub.aliases ?? []).some((a) => didOf(a) === chosen)) return chosen;
    for (const a of sub.aliases ?? []) {
      const n = didOf(a);
      if (n) return n;
    }
    return undefined;
  }

  decide(target: Uri, caller: Caller, depth = 0): Decision {
    if (target instanceof TelUri) {
      const n = normalizeDialled(target.digits, this.d.dialPlan(this.d.domains.defaultDomain));
      if (n.kind !== 'e164') return { action: 'reject', status: 484, reason: 'Address Incomplete' };
      return this.number(n.number, caller, this.d.domains.defaultDomain);
    }
    if (!(target instanceof SipUri))
      return { action: 'reject', status: 416, reason: 'Unsupported URI Scheme' };
    const domain = this.d.domains.domainOf(target);
    const user = target.userDecoded ?? target.user ?? '';
    if (!domain) {
      if (this.isMediaServer(target)) return { action: 'media', uri: target.toString() };
      // From a gateway, only our numbers; elsewhere, the proxy core decides who may relay.
      if (caller.gateway) return { action: 'reject', status: 404, reason: 'Not Found' };
      return { action: 'relay', uri: target.toString() };
    }
    if (!user) return { action: 'reject', status: 404, reason: 'Not Found' };

    // The media server's applications, addressed in our domain.
    if (
      this.d.mediaServer &&
      (MEDIA_USER.test(user) || this.d.mailboxUsers.includes(user)) &&
      !caller.gateway
    ) {
      return { action: 'media', uri: `sip:${target.user}@${this.d.mediaServer}` };
    }
    // Speed dial: the caller's own short codes, before anything else is looked up.
    const sd = caller.subscriber && depth === 0 ? speedDial(caller.subscriber, user) : undefined;
    if (sd !== undefined) return this.decide(this.targetUri(sd, domain), caller, depth + 1);

    const aor = `sip:${user}@${domain}`;
    const callee = this.subscriberOf(aor);
    if (callee) return this.toSubscriber(callee, caller);
    if (this.d.isRegistered(aor)) return { action: 'subscriber', aor };

    const dialled = normalizeDialled(user, this.d.dialPlan(domain));
    if (dialled.kind === 'incomplete') return { action: 'reject', status: 484, reason: 'Address Incomplete' };
    if (dialled.kind === 'name')
      return { action: 'reject', status: 404, reason: 'Not Found', announce: 'not-in-service' };
    return this.number(dialled.number, caller, domain);
  }

  /** A forwarding or speed-dial target (a URI or a number) as a URI in the subscriber's domain. */
  targetUri(target: string, domain: string): Uri {
    if (/^sips?:/i.test(target)) return parseUri(target);
    return parseUri(`sip:${target.replace(/#/g, '%23')}@${domain}`);
  }

  private number(number: string, caller: Caller, domain: string): Decision {
    const owner = this.didOwner(number);
    if (owner) return this.toSubscriber(owner, caller);
    if (caller.gateway) return { action: 'reject', status: 404, reason: 'Not Found' };
    const sub = caller.subscriber;
    if (!sub && !caller.trusted) return { action: 'reject', status: 403, reason: 'Relaying Denied' };
    const callClass = classOf(number, this.d.classes(sub?.domain ?? domain));
    if (sub && !sub.privileges.includes(callClass)) {
      return {
        action: 'reject',
        status: 403,
        reason: `Forbidden: no privilege for ${callClass} calls`,
        announce: 'not-allowed',
        metric: 'privilege',
      };
    }
    const screened = screenOutgoing(sub?.blockList ?? [], number, this.d.blockedPrefixes);
    if (!screened.allowed) {
      return {
        action: 'reject',
        status: 403,
        reason: 'Forbidden: destination blocked',
        announce: 'not-allowed',
        metric: 'outgoing-block',
      };
    }
    const { hops, routed } = this.d.gateways.select(number, sub?.domain ?? domain);
    if (!routed)
      return { action: 'reject', status: 404, reason: 'No Route to Destination', announce: 'not-in-service' };
    if (!hops.length)
      return {
        action: 'reject',
        status: 503,
        reason: 'Service Unavailable: no gateway up',
        announce: 'try-later',
      };
    return { action: 'pstn', number, hops, callClass };
  }

  private toSubscriber(callee: SubscriberRecord, caller: Caller): Decision {
    if (!callee.enabled) return { action: 'reject', status: 480, reason: 'Temporarily Unavailable' };
    const screened = screenIncoming(callee, caller.identity);
    if (!screened.allowed)
      return { action: 'reject', status: 603, reason: 'Decline', metric: `incoming-${screened.why}` };
    return { action: 'subscriber', aor: callee.aor, callee };
  }

  private isMediaServer(uri: SipUri): boolean {
    if (!this.d.mediaServer) return false;
    const [host, port] = splitHostPort(this.d.mediaServer);
    return uri.host.toLowerCase().replace(/^\[|\]$/g, '') === host && (uri.port ?? 5060) === port;
  }
}

/** E.164 digits of an alias AoR whose user part is a number (a DID), else undefined. */
export function didOf(aor: string): string | undefined {
  const m = /^(?:sips?|tel):\+?([0-9]{4,15})(?:@|$|;)/i.exec(aor);
  return m?.[1];
}

function splitHostPort(hp: string): [string, number] {
  const m = /^\[([^\]]+)\](?::(\d+))?$|^([^:]+)(?::(\d+))?$/.exec(hp);
  return [(m?.[1] ?? m?.[3] ?? hp).toLowerCase(), Number(m?.[2] ?? m?.[4] ?? 5060)];
}

/** Who is calling, for block lists: the From (or, from a trusted peer, the P-Asserted-Identity) and Privacy. */
export function callerIdentity(
  from: Uri,
  asserted: Uri | undefined,
  privacy: string | undefined,
): CallerIdentity {
  const uri = asserted ?? from;
  const anon =
    /\bid\b|\buser\b/i.test(privacy ?? '') ||
    (uri instanceof SipUri && (uri.host.toLowerCase() === 'anonymous.invalid' || uri.user === 'anonymous'));
  if (anon) return { anonymous: true };
  if (uri instanceof TelUri) return { anonymous: false, number: uri.digits.replace(/^\+/, '') };
  if (!(uri instanceof SipUri)) return { anonymous: false };
  const user = uri.userDecoded ?? uri.user ?? '';
  const num = /^\+?[0-9]{3,15}$/.test(user) ? user.replace(/^\+/, '') : undefined;
  return {
    anonymous: false,
    uri: `sip:${user ? `${user}@` : ''}${uri.host.toLowerCase()}`,
    ...(num ? { number: num } : {}),
  };
}
