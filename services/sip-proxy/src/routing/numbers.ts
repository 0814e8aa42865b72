/**
 * Numbers: what a phone dials, normalised to E.164 (the dial plan of a
 * domain), and the call class of an E.164 destination (for privileges).
 */

export interface DialPlan {
  /** Country code of the domain's subscribers, digits ('' when numbers must be dialled internationally). */
  countryCode: string;
  /** Prefix of a national number ('0'): 0301234567 → <cc>301234567. */
  nationalPrefix: string;
  /** Prefix of an international number ('00'): 0044… → 44…. */
  internationalPrefix: string;
  /** Shortest E.164 number (country code included); shorter ones are incomplete (484). */
  minDigits: number;
}

export const DEFAULT_DIAL_PLAN: DialPlan = {
  countryCode: '',
  nationalPrefix: '0',
  internationalPrefix: '00',
  minDigits: 7,
};

export type Dialled =
  | { kind: 'e164'; number: string }
  /** Digits, but too few for a number: 484 Address Incomplete. */
  | { kind: 'incomplete'; digits: string }
  /** Not a number: a user name. */
  | { kind: 'name' };

const VISUAL = /[-.() ]/g;

/**
 * Normalises a dialled user part to E.164 digits (no '+'), RFC 3966 visual
 * separators removed: `+4930…`, `004930…` (international prefix), `030…`
 * (national prefix, with the domain's country code).
 */
export function normalizeDialled(user: string, plan: DialPlan): Dialled {
  const u = user.replace(VISUAL, '');
  if (!/^\+?[0-9]+$/.test(u)) return { kind: 'name' };
  let digits: string | undefined;
  if (u.startsWith('+')) digits = u.slice(1);
  else if (plan.internationalPrefix && u.startsWith(plan.internationalPrefix))
    digits = u.slice(plan.internationalPrefix.length);
  else if (plan.countryCode && plan.nationalPrefix && u.startsWith(plan.nationalPrefix))
    digits = plan.countryCode + u.slice(plan.nationalPrefix.length);
  if (digits === undefined || digits.length < plan.minDigits || digits.length > 15 || digits[0] === '0')
    return { kind: 'incomplete', digits: u };
  return { kind: 'e164', number: digits };
}

/** Call classes; a subscriber may call a class it holds as a privilege ('local' is always allowed). */
export type CallClass = 'local' | 'national' | 'international' | 'premium';

export interface ClassTable {
  countryCode: string;
  /** E.164 prefixes of premium-rate destinations. */
  premium: readonly string[];
}

export function classOf(number: string, t: ClassTable): CallClass {
  if (t.premium.some((p) => number.startsWith(p))) return 'premium';
  if (t.countryCode && number.startsWith(t.countryCode)) return 'national';
  return 'international';
}
