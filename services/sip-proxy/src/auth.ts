/**
 * Digest authentication at the proxy edge (RFC 3261 §22): REGISTER is
 * challenged with 401/WWW-Authenticate, other requests with
 * 407/Proxy-Authenticate. An unknown user and a wrong password get the same
 * answer on the wire (a fresh challenge, and 403 once banned), so nothing
 * tells an attacker which users exist.
 */
import {
  createResponse,
  newTag,
  parseCredentials,
  type DigestCredentials,
  type DigestServer,
  type SipRequest,
  type SipResponse,
} from '@switchboard/sip';
import { hash } from 'node:crypto';
import type { SubscriberRecord } from '@switchboard/contracts';
import type { AbuseGuard } from './abuse';

export interface SubscriberLookup {
  /** The subscriber of an AoR `sip:user@domain`. */
  byAor(aor: string): SubscriberRecord | undefined;
}

/** Who is challenged for what: see authRealm. */
export type ForeignPolicy = 'none' | 'challenge';

/**
 * The realm an initial request (of a method that is authenticated) from an untrusted source is
 * challenged in, or undefined when it is not. A caller of one of our domains: its domain, and it
 * must be that subscriber (`local`). A caller of another domain: not challenged (Kamailio's default
 * configuration), or with `foreign: 'challenge'` challenged in the realm of the domain called (else
 * our default one), where only a subscriber's credentials pass (RFC 3665 §3.3's Proxy 2).
 */
export function authRealm(o: {
  trusted: boolean;
  /** The From's domain when it is one of ours. */
  fromDomain: string | undefined;
  /** The Request-URI's domain when it is one of ours. */
  calledDomain: string | undefined;
  defaultDomain: string;
  foreign: ForeignPolicy;
}): { realm: string; local: boolean } | undefined {
  if (o.trusted) return undefined;
  if (o.fromDomain !== undefined) return { realm: o.fromDomain, local: true };
  if (o.foreign === 'challenge') return { realm: o.calledDomain ?? o.defaultDomain, local: false };
  return undefined;
}

/**
 * Consume the request's Proxy-Authorization credentials for `realm` (once they were checked): the
 * ones for any other realm stay for the proxies downstream (RFC 3261 §22.3, RFC 3665 §3.3), as do
 * values that do not parse (they are not ours to judge).
 */
export function consumeCredentials(req: SipRequest, realm: string): void {
  const values = req.proxyAuthorization;
  const others = values.filter((v) => {
    try {
      return parseCredentials(v).realm !== realm;
    } catch {
      return true;
    }
  });
  if (others.length === values.length) return;
  req.removeHeader('Proxy-Authorization');
  for (const v of others) req.addHeader('Proxy-Authorization', v);
}

export type AuthOutcome =
  | { ok: true; subscriber: SubscriberRecord }
  | { ok: false; response: SipResponse; reason: string; user?: string };

export class Authenticator {
  /** The last request's parsed credentials: its stateless pass, then check(), both need them. */
  private last: { req: SipRequest; realm: string; creds: DigestCredentials | undefined } | undefined;

  constructor(
    private readonly digest: DigestServer,
    private readonly subscribers: SubscriberLookup,
    private readonly guard: AbuseGuard,
    private readonly onFailure: (reason: string) => void = () => {},
  ) {}

  /**
   * Check the request's credentials for `realm`. REGISTER uses Authorization
   * and 401; anything else Proxy-Authorization and 407.
   */
  check(req: SipRequest, sourceAddress: string, realm: string): AuthOutcome {
    const challenge = (stale = false) => this.challenge(req, realm, stale);
    const forbidden = () =>
      createResponse(req, 403, 'Forbidden', { toTag: req.toTag ? undefined : newTag() });

    const creds = this.credentials(req, realm);
    this.last = undefined; // check() is the last to read them (the request may be edited after it)
    if (!creds) return { ok: false, response: challenge(), reason: 'no_credentials' };
    if (this.guard.userBanned(creds.username)) {
      return { ok: false, response: forbidden(), reason: 'user_banned', user: creds.username };
    }
    const aor = `sip:${creds.username}@${realm}`;
    const sub = this.subscribers.byAor(aor);
    const enabled = sub?.enabled !== false;
    const result = this.digest.verify({
      credentials: creds,
      method: req.method,
      realm,
      lookupHa1: (_user, _realm, hash) =>
        sub && enabled
          ? hash === 'SHA-256'
            ? sub.ha1Sha256
            : hash === 'MD5'
              ? sub.ha1
              : undefined
          : undefined,
      entityBody: req.body,
    });
    if (result.ok && sub && enabled) {
      this.guard.authSucceeded(sourceAddress);
      return { ok: true, subscriber: sub };
    }
    const reason = result.ok ? 'disabled' : result.reason;
    // A reused nonce-count with the right response proves the password, not a guess: most often a
    // retransmission that outlived its transaction (an overloaded proxy). Stale, as Kamailio and
    // OpenSIPS answer it: the UA retries with a fresh nonce instead of taking its password for
    // wrong, and no failure counts toward a ban.
    if (reason === 'stale' || reason === 'replay') return { ok: false, response: challenge(true), reason };
    this.guard.authFailed(sourceAddress, creds.username);
    this.onFailure(reason);
    return { ok: false, response: challenge(), reason, user: creds.username };
  }

  /**
   * The challenge check() answers a request without credentials for `realm` with (nothing is
   * recorded for it), or undefined when the request carries some: it can be sent statelessly.
   */
  challengeIfNoCredentials(req: SipRequest, realm: string): SipResponse | undefined {
    if (this.credentials(req, realm)) return undefined;
    // No transaction keeps this answer: a retransmission must get the same one (To tag and
    // nonce from what identifies the request), as Kamailio's sl and auth give it.
    const seed = `${req.via.branch ?? ''}\n${req.callId}\n${req.fromTag ?? ''}\n${req.cseq.seq}\n${realm}`;
    return this.challenge(req, realm, false, seed);
  }

  private credentials(req: SipRequest, realm: string): DigestCredentials | undefined {
    const last = this.last;
    if (last !== undefined && last.req === req && last.realm === realm) return last.creds;
    const creds = credentialsFor(req, realm);
    this.last = { req, realm, creds };
    return creds;
  }

  /** 401 with WWW-Authenticate for REGISTER, 407 with Proxy-Authenticate for anything else. */
  private challenge(req: SipRequest, realm: string, stale: boolean, seed?: string): SipResponse {
    const isRegister = req.method === 'REGISTER';
    const header = isRegister ? 'WWW-Authenticate' : 'Proxy-Authenticate';
    const toTag = req.toTag ? undefined : seed === undefined ? newTag() : hash('sha256', seed).slice(0, 12);
    return createResponse(req, isRegister ? 401 : 407, undefined, {
      toTag,
      headers: this.digest.challenge({ realm, stale, seed }).map((v) => [header, v] as [string, string]),
    });
  }
}

/** The request's first credentials for `realm` (Authorization for REGISTER, else Proxy-Authorization). */
function credentialsFor(req: SipRequest, realm: string): DigestCredentials | undefined {
  const values = req.method === 'REGISTER' ? req.authorization : req.proxyAuthorization;
  for (const v of values) {
    try {
      const c = parseCredentials(v);
      if (c.realm === realm) return c;
    } catch {
      // A malformed credential counts as none for this realm; try the next one.
    }
  }
  return undefined;
}
