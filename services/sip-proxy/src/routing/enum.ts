/**
 * ENUM (RFC 6116): an E.164 number's NAPTR records under a suffix
 * (e164.arpa or a private tree) may name a SIP URI that reaches it without
 * the PSTN. The first E2U+sip record (order, then preference) whose regexp
 * matches gives the URI.
 */
import type { NaptrRecord } from 'node:dns';

export interface NaptrLookup {
  resolveNaptr(name: string): Promise<NaptrRecord[]>;
}

/** `4930123` under `e164.arpa` → `3.2.1.0.3.9.4.e164.arpa`. */
export function enumDomain(number: string, suffix: string): string {
  return `${[...number].reverse().join('.')}.${suffix.replace(/^\.|\.$/g, '')}`;
}

export async function enumLookup(
  number: string,
  suffix: string,
  dns: NaptrLookup,
): Promise<string | undefined> {
  let records: NaptrRecord[];
  try {
    records = await dns.resolveNaptr(enumDomain(number, suffix));
  } catch {
    return undefined; // NXDOMAIN, no data, timeout: the number is not in ENUM
  }
  const sip = records
    .filter((r) => r.flags.toLowerCase() === 'u' && /^e2u\+sip(:|$)/i.test(r.service))
    .sort((a, b) => a.order - b.order || a.preference - b.preference);
  for (const r of sip) {
    const uri = applyNaptrRegexp(r.regexp, `+${number}`);
    if (uri && /^sips?:/i.test(uri)) return uri;
  }
  return undefined;
}

/** RFC 3402 §3.2 substitution expression `!pattern!replacement!flags` applied to the AUS; undefined if it does not match. */
export function applyNaptrRegexp(expr: string, aus: string): string | undefined {
  if (expr.length < 4) return undefined;
  const delim = expr[0];
  const parts = expr.slice(1).split(delim);
  if (parts.length !== 3) return undefined;
  const [pattern, replacement, flags] = parts;
  let m: RegExpExecArray | null;
  try {
    m = new RegExp(pattern, flags.includes('i') ? 'i' : '').exec(aus);
  } catch {
    return undefined;
  }
  if (!m) return undefined;
  return replacement.replace(/\\(\d)/g, (_, d: string) => m![Number(d)] ?? '');
}
