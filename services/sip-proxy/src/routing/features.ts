/**
 * Subscribers' call features as pure decisions over their replicated record:
 * speed dials, block/allow lists and forwarding rules.
 */
import type {
  BlockListEntry,
  ForwardingCondition,
  ForwardingRule,
  SubscriberRecord,
} from '@switchboard/contracts';

/** The target of a speed-dial code the caller dialled (1 to 3 digits), or undefined. */
export function speedDial(sub: SubscriberRecord, dialled: string): string | undefined {
  if (!/^[0-9]{1,3}$/.test(dialled)) return undefined;
  return sub.speedDials?.find((s) => s.code === dialled)?.target;
}

/** Who is calling, as block lists compare it. */
export interface CallerIdentity {
  /** `sip:user@host`, lower-case host, no parameters; undefined when anonymous. */
  uri?: string;
  /** E.164 digits when the caller's user part is a number. */
  number?: string;
  anonymous: boolean;
}

function matches(e: BlockListEntry, who: { uri?: string; number?: string; anonymous: boolean }): boolean {
  const p = e.pattern;
  if (p === 'anonymous') return who.anonymous;
  if (/^sips?:/i.test(p)) return who.uri !== undefined && sameUri(p, who.uri);
  if (who.number === undefined) return false;
  const digits = p.replace(/^\+/, '');
  return digits.endsWith('*') ? who.number.startsWith(digits.slice(0, -1)) : who.number === digits;
}

const sameUri = (a: string, b: string) => {
  const norm = (u: string) => {
    const m = /^(sips?):([^@;?]+@)?([^;?]+)/i.exec(u);
    return m ? `sip:${m[2] ?? ''}${m[3].toLowerCase()}` : u.toLowerCase();
  };
  return norm(a) === norm(b);
};

export type ListVerdict = { allowed: true } | { allowed: false; why: 'blocked' | 'not-allowed' };

/**
 * Incoming: a matching block entry rejects; when the callee has any incoming
 * allow entry, only callers matching one get through (allow-only mode).
 */
export function screenIncoming(callee: SubscriberRecord, caller: CallerIdentity): ListVerdict {
  const entries = (callee.blockList ?? []).filter((e) => e.direction === 'incoming');
  if (entries.some((e) => e.action !== 'allow' && matches(e, caller)))
    return { allowed: false, why: 'blocked' };
  const allows = entries.filter((e) => e.action === 'allow');
  if (allows.length && !allows.some((e) => matches(e, caller))) return { allowed: false, why: 'not-allowed' };
  return { allowed: true };
}

/** Outgoing: the dialled number (E.164 digits) against the caller's outgoing block entries and blocked prefixes. */
export function screenOutgoing(
  callerList: readonly BlockListEntry[],
  number: string,
  blockedPrefixes: readonly string[],
): ListVerdict {
  if (blockedPrefixes.some((p) => number.startsWith(p.replace(/^\+/, ''))))
    return { allowed: false, why: 'blocked' };
  const entries = callerList.filter((e) => e.direction === 'outgoing');
  if (entries.some((e) => e.action !== 'allow' && matches(e, { number, anonymous: false })))
    return { allowed: false, why: 'blocked' };
  return { allowed: true };
}

/** The subscriber's forwarding rule for a condition, if one is set. */
export function forwardingFor(
  sub: SubscriberRecord,
  condition: ForwardingCondition,
): ForwardingRule | undefined {
  return sub.forwarding?.find((f) => f.condition === condition);
}

/** Why a call to a subscriber failed, as forwarding sees it, from the best final response (or no binding). */
export function failureCondition(status: number | 'no-binding'): ForwardingCondition | undefined {
  if (status === 'no-binding' || status === 408 || status === 480) return 'unavailable';
  if (status === 486 || status === 600) return 'busy';
  return undefined;
}
