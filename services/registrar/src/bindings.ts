/**
 * The registrar's rules (RFC 3261 §10.3 steps 6-8, RFC 5626 §6, RFC 3327) as a
 * pure function over one AoR's bindings: no storage, no clock, no I/O.
 */
import { DomainError } from '@switchboard/platform';

export interface Received {
  address: string;
  port: number;
  transport: string;
  flowId: string;
  localSocket: string;
}

export interface Binding {
  aor: string;
  contact: string;
  /** Absolute expiry, unix seconds. */
  expires: number;
  /** q in thousandths; undefined when the Contact had none. */
  q?: number;
  callId: string;
  cseq: number;
  path: string[];
  instanceId: string;
  regId: number;
  received?: Received;
  userAgent: string;
  /** Last change, unix milliseconds. */
  updatedAt: number;
}

export interface ContactUpdate {
  uri: string;
  /** Requested relative expiry in seconds (Contact expires param or Expires header); undefined: the default. */
  expires?: number;
  q?: number;
  instanceId?: string;
  regId?: number;
}

export interface RegisterInput {
  aor: string;
  contacts: ContactUpdate[];
  removeAll: boolean;
  callId: string;
  cseq: number;
  path: string[];
  received?: Received;
  userAgent: string;
}

export interface RegistrarPolicy {
  minExpires: number;
  maxExpires: number;
  defaultExpires: number;
  maxContacts: number;
  /** When an AoR would exceed maxContacts: drop the oldest bindings, or refuse the request (403). */
  overflow: 'drop-oldest' | 'reject';
}

export type ChangeType = 'upsert' | 'removed' | 'expired';
export interface Change {
  type: ChangeType;
  binding: Binding;
}

export type RegisterOutcome =
  | { kind: 'ok'; bindings: Binding[]; changes: Change[] }
  /** 423 Interval Too Brief with this Min-Expires; nothing changed. */
  | { kind: 'too-brief'; minExpires: number };

/** Contact URI comparison; the proxy hands normalised URIs, so string equality after a light canonical form. */
export type SameUri = (a: string, b: string) => boolean;

/** Order for answers and forking: highest q first (no q counts as 1.0), then most recently updated. */
export function byPriority(a: Binding, b: Binding): number {
  return (b.q ?? 1000) - (a.q ?? 1000) || b.updatedAt - a.updatedAt;
}

/** Bindings still alive at `nowSec`. */
export const live = (bs: Binding[], nowSec: number) => bs.filter((b) => b.expires > nowSec);

/**
 * Apply one REGISTER to the current bindings of its AoR (RFC 3261 §10.3).
 * Throws DomainError failed_precondition when step 8's Call-ID/CSeq check
 * aborts the update, invalid_argument for '*' with a non-zero expiry (step 6),
 * permission_denied when the AoR is full and the policy is 'reject'.
 */
export function applyRegister(
  current: Binding[],
  req: RegisterInput,
  policy: RegistrarPolicy,
  nowMs: number,
  sameUri: SameUri,
): RegisterOutcome {
  const nowSec = Math.floor(nowMs / 1000);
  const alive = live(current, nowSec);
  const changes: Change[] = current
    .filter((b) => b.expires <= nowSec)
    .map((binding) => ({ type: 'expired' as const, binding }));

  // §10.3 step 6: "*" removes every binding, subject to the Call-ID/CSeq rule per binding.
  if (req.removeAll) {
    for (const b of alive) checkOrder(b, req);
    for (const binding of alive) changes.push({ type: 'removed', binding });
    return { kind: 'ok', bindings: [], changes };
  }

  const requested = req.contacts.map((c) => ({
    c,
    expires: Math.min(c.expires ?? policy.defaultExpires, policy.maxExpires),
  }));
  // §10.3 step 7 / RFC 3261 §10.2.8: an expiry below the minimum (and not 0) is refused with 423.
  if (requested.some((r) => r.expires > 0 && r.expires < policy.minExpires)) {
    return { kind: 'too-brief', minExpires: policy.minExpires };
  }

  const next = new Map<Binding, Binding | null>(); // old binding -> replacement (null: removed)
  const added: Binding[] = [];
  for (const { c, expires } of requested) {
    const instanceId = c.instanceId ?? '';
    const regId = c.regId ?? 0;
    // RFC 5626 §6: a binding is identified by instance-id and reg-id when present, else by Contact URI.
    const existing = alive.find((b) =>
      instanceId
        ? b.instanceId === instanceId && b.regId === regId
        : !b.instanceId && sameUri(b.contact, c.uri),
    );
    if (existing) checkOrder(existing, req); // §10.3 step 8
    const binding: Binding | null =
      expires === 0
        ? null
        : {
            aor: req.aor,
            contact: c.uri,
            expires: nowSec + expires,
            q: c.q,
            callId: req.callId,
            cseq: req.cseq,
            path: req.path,
            instanceId,
            regId,
            received: req.received,
            userAgent: req.userAgent,
            updatedAt: nowMs,
          };
    if (existing) next.set(existing, binding);
    else if (binding) added.push(binding);
  }

  let result: Binding[] = [];
  for (const b of alive) {
    if (!next.has(b)) result.push(b);
    else {
      const r = next.get(b);
      if (r) {
        result.push(r);
        changes.push({ type: 'upsert', binding: r });
      } else changes.push({ type: 'removed', binding: b });
    }
  }
  result.push(...added);
  for (const binding of added) changes.push({ type: 'upsert', binding });

  if (result.length > policy.maxContacts) {
    if (policy.overflow === 'reject') {
      throw new DomainError(
        'permission_denied',
        `too many contacts for ${req.aor} (at most ${policy.maxContacts})`,
      );
    }
    const oldestFirst = [...result].sort((a, b) => a.updatedAt - b.updatedAt);
    const drop = new Set(oldestFirst.slice(0, result.length - policy.maxContacts));
    result = result.filter((b) => !drop.has(b));
    for (const binding of drop) changes.push({ type: 'removed', binding });
  }
  return { kind: 'ok', bindings: result.sort(byPriority), changes };
}

/** RFC 3261 §10.3 step 8: same Call-ID needs a higher CSeq, else the whole update is aborted. */
function checkOrder(existing: Binding, req: RegisterInput): void {
  if (existing.callId === req.callId && req.cseq <= existing.cseq) {
    throw new DomainError(
      'failed_precondition',
      `out-of-order REGISTER for ${req.aor}: CSeq ${req.cseq} is not above ${existing.cseq} for the same Call-ID`,
    );
  }
}
