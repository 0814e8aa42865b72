/** Money as the rating service keeps it: int64 micros (millionths of the currency unit). */
import { invalidArgument } from '@switchboard/platform';

/** "10", "10.5", "-2.25" → micros; at most 6 decimals, at most a billion units. */
export function toMicros(amount: string, field = 'amount'): number {
  const m = /^(-)?(\d{1,9})(?:\.(\d{1,6}))?$/.exec(amount.trim());
  if (!m) throw invalidArgument(field, `${field}: a decimal amount such as 10.00`);
  const micros = Number(m[2]) * 1_000_000 + Number((m[3] ?? '').padEnd(6, '0'));
  return m[1] ? -micros : micros;
}

/** micros → "12.50" (at least two decimals, no trailing zeros beyond). */
export function formatMicros(micros: number): string {
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  const units = Math.floor(abs / 1_000_000);
  let frac = String(abs % 1_000_000)
    .padStart(6, '0')
    .replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${sign}${units}.${frac}`;
}
