/**
 * Money is integer micros: millionths of the currency unit (as in
 * proto/rating.proto's balance_micros), held in JS numbers that must stay safe
 * integers. Decimal text is converted digit by digit, never through floats.
 */
export const MICROS_PER_UNIT = 1_000_000;

const DECIMAL = /^(-)?(\d+)(?:\.(\d{1,6}))?$/;

/** "0.0125" → 12500. Up to six decimals; throws on anything else. */
export function parseMoney(text: string): number {
  const m = DECIMAL.exec(text.trim());
  if (!m) throw new Error(`expected an amount with at most 6 decimals, got "${text}"`);
  const units = Number(m[2]);
  const frac = Number((m[3] ?? '').padEnd(6, '0'));
  const v = units * MICROS_PER_UNIT + frac;
  if (!Number.isSafeInteger(v)) throw new Error(`amount too large: "${text}"`);
  return m[1] && v !== 0 ? -v : v;
}

/** 12500 → "0.0125"; always at least two decimals. */
export function formatMoney(micros: number): string {
  const neg = micros < 0;
  const a = Math.abs(micros);
  const units = Math.floor(a / MICROS_PER_UNIT);
  let frac = String(a % MICROS_PER_UNIT)
    .padStart(6, '0')
    .replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${neg ? '-' : ''}${units}.${frac}`;
}

/** a * b / c rounded up, exactly, for non-negative safe integers (BigInt when the product is not safe). */
export function mulDivCeil(a: number, b: number, c: number): number {
  const p = a * b;
  if (Number.isSafeInteger(p)) {
    const r = p % c;
    return (p - r) / c + (r > 0 ? 1 : 0);
  }
  const P = BigInt(a) * BigInt(b);
  const C = BigInt(c);
  return Number((P + C - 1n) / C);
}

/** a * b / c rounded down, exactly, for non-negative safe integers. */
export function mulDivFloor(a: number, b: number, c: number): number {
  const p = a * b;
  if (Number.isSafeInteger(p)) return (p - (p % c)) / c;
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}
